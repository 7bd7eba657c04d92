//! `patchsync export --format wsus`: a site's catalog as a `wsusutil export` package that the
//! wsus-export source reads back to the same catalog.

use crate::common::{Site, catalog, generated, shared_data};

#[test]
fn a_wsus_export_reads_back_to_the_same_catalog() {
    let (Some(real), Some(scan), Some(dell)) = (
        shared_data("wsus-export/WSUS.cab"),
        shared_data("wsusscn2/wsusscn2.cab"),
        shared_data("third-party/0e6cf4ac-2853-48aa-825b-8fe28206575f.sdp"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let synthetic = generated(dir.path(), "gen.cab", 600, 3);
    let connected = Site::new();
    connected.write_config(
        &[
            ("real", "wsus-export", &real),
            ("gen", "wsus-export", &synthetic),
            ("scan", "wsusscn2", &scan),
            ("dell", "sdp-catalog", &dell),
        ],
        &["*"],
        &["*"],
        &["en", "de"],
    );
    connected.sync();
    let out = connected.path("export/WSUS-out.cab");
    let summary = connected.cli_json(&[
        "export",
        "--format",
        "wsus",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(summary["skipped_vendor_packages"], 1, "{summary}");
    assert!(summary["files"].as_u64().unwrap() > 100, "{summary}");

    // A second site fed only by that package.
    let fed = Site::new();
    fed.write_config(
        &[("export", "wsus-export", &out)],
        &["*"],
        &["*"],
        &["en", "de"],
    );
    let r = fed.sync();
    assert_eq!(r.new, summary["records"].as_u64().unwrap(), "{r:?}");

    let mut expected = catalog(&connected.db());
    // The Dell package is the one thing a WSUS export cannot carry.
    expected.retain(|l| !l.contains("0e6cf4ac-2853-48aa-825b-8fe28206575f"));
    let got = catalog(&fed.db());
    let missing: Vec<&String> = expected
        .iter()
        .filter(|l| !got.contains(l))
        .take(3)
        .collect();
    let extra: Vec<&String> = got
        .iter()
        .filter(|l| !expected.contains(l))
        .take(3)
        .collect();
    assert_eq!(
        got.len(),
        expected.len(),
        "missing {missing:#?}\nextra {extra:#?}"
    );
    for (a, b) in expected.iter().zip(&got) {
        assert_eq!(a, b);
    }

    // And the package is what the wsus-export source expects of WSUS's own: the real
    // export's 451 category records are all there.
    let cats: i64 = fed.sql("SELECT COUNT(*) FROM categories");
    assert_eq!(
        cats,
        connected.sql::<i64>("SELECT COUNT(*) FROM categories")
    );
}
