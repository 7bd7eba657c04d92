//! `patchsync export --format wsus`: a site's catalog as a `wsusutil export` package that the
//! wsus-export source reads back to the same catalog.

use std::path::Path;

use crate::common::{Site, generated, shared_data};

/// Every active update with what a site stores of it, one line each.
fn catalog(db: &Path) -> Vec<String> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut s = c
        .prepare(
            "SELECT u.id, u.revision, u.update_type, COALESCE(u.title, ''), u.publication_state,
                    COALESCE(u.msrc_severity, ''), u.is_bundle,
                    (SELECT group_concat(category_id) FROM (SELECT category_id FROM update_categories uc WHERE uc.uid = u.uid ORDER BY 1)),
                    (SELECT group_concat(k) FROM (SELECT r.kind || '>' || r.other_id AS k FROM relations r WHERE r.uid = u.uid ORDER BY 1)),
                    (SELECT group_concat(k) FROM (SELECT f.name || '@' || COALESCE(fu.url, '') AS k FROM files f LEFT JOIN file_urls fu ON fu.digest = f.digest WHERE f.uid = u.uid ORDER BY 1)),
                    (SELECT group_concat(k) FROM (SELECT l.language || '=' || l.title AS k FROM localized l WHERE l.uid = u.uid ORDER BY 1)),
                    (SELECT group_concat(kb) FROM (SELECT kb FROM kb_articles k WHERE k.uid = u.uid ORDER BY 1))
             FROM updates u WHERE u.state = 'active' ORDER BY u.id",
        )
        .unwrap();
    s.query_map([], |r| {
        let mut line = String::new();
        for i in 0..12 {
            match r.get_ref(i)? {
                rusqlite::types::ValueRef::Text(t) => line.push_str(&String::from_utf8_lossy(t)),
                v => line.push_str(&format!("{v:?}")),
            }
            line.push('|');
        }
        Ok(line)
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

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
