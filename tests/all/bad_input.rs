//! Bad input: a clear error naming the file and the update or line, a non-zero exit, and a
//! store exactly as before.

use crate::common::{Site, package_xml, record, update_xml, write_cab};

const P: &str = "aaaaaaaa-0000-0000-0000-000000000001";
const SEC: &str = "0fa1201d-4330-4fa8-8ae9-b877473b6441";
const U1: &str = "cccccccc-0000-0000-0000-000000000001";
const U2: &str = "cccccccc-0000-0000-0000-000000000002";

fn good_records() -> Vec<(String, u32, String)> {
    vec![
        (
            P.into(),
            1,
            update_xml(P, 1, "Category:Product", "Contoso Widgets", &[], &[], ""),
        ),
        (
            SEC.into(),
            1,
            update_xml(
                SEC,
                1,
                "Category:UpdateClassification",
                "Security Updates",
                &[],
                &[],
                "",
            ),
        ),
        (
            U1.into(),
            1,
            update_xml(U1, 1, "Software", "Widgets fix 1", &[P, SEC], &[], ""),
        ),
    ]
}

fn package(path: &std::path::Path, records: &[(String, u32, String)], metadata: Option<String>) {
    let entries: Vec<(&str, u32)> = records.iter().map(|(i, r, _)| (i.as_str(), *r)).collect();
    let meta =
        metadata.unwrap_or_else(|| records.iter().map(|(i, r, x)| record(i, *r, x)).collect());
    write_cab(
        path,
        &[
            ("package.xml", package_xml(&entries).as_bytes()),
            ("metadata.txt", meta.as_bytes()),
        ],
    );
}

/// A synced site whose package is then replaced by `breakage`; returns the failed CLI run's
/// stderr after checking the exit code and that the store did not change.
fn fails_and_keeps_store(breakage: impl FnOnce(&Site, &std::path::Path)) -> String {
    fails_and_keeps_store_with(&["sync", "--json"], breakage)
}

fn fails_and_keeps_store_with(
    sync: &[&str],
    breakage: impl FnOnce(&Site, &std::path::Path),
) -> String {
    let site = Site::new();
    let cab = site.path("export.cab");
    package(&cab, &good_records(), None);
    site.write_config(&[("contoso", "wsus-export", &cab)], &["*"], &["*"], &["en"]);
    let ok = site.cli(&["sync"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let before = site.snapshot();
    breakage(&site, &cab);
    let out = site.cli(sync);
    assert!(!out.status.success(), "a broken catalog must fail the sync");
    assert_eq!(
        site.snapshot(),
        before,
        "the store changed after a failed sync"
    );
    let status = site.cli_json(&["status", "--json"]);
    assert_eq!(status["state"], "failed");
    assert!(status["last_error"].as_str().is_some_and(|e| !e.is_empty()));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn with_extra(
    extra: (String, u32, String),
    raw: Option<String>,
) -> impl FnOnce(&Site, &std::path::Path) {
    move |_, cab| {
        let mut recs = good_records();
        recs.push(extra);
        let meta = raw.map(|r| {
            recs[..3]
                .iter()
                .map(|(i, v, x)| record(i, *v, x))
                .collect::<String>()
                + &r
        });
        package(cab, &recs, meta);
    }
}

#[test]
fn malformed_xml_names_the_record_and_update() {
    let bad = update_xml(U2, 1, "Software", "Broken", &[P, SEC], &[], "")
        .replace("</upd:Title>", "</upd:Titel>");
    let err = fails_and_keeps_store(with_extra((U2.into(), 1, bad), None));
    assert!(err.contains("source 'contoso'"), "{err}");
    assert!(err.contains("metadata.txt) record 4"), "{err}");
    assert!(err.contains(U2) && err.contains("malformed XML"), "{err}");
}

#[test]
fn a_lying_length_field_is_reported() {
    let x = update_xml(U2, 1, "Software", "Liar", &[P, SEC], &[], "");
    let lie = record(U2, 1, &x).replacen(
        &format!(",{:08x},", x.len()),
        &format!(",{:08x},", x.len() - 40),
        1,
    );
    let err = fails_and_keeps_store(with_extra((U2.into(), 1, x), Some(lie)));
    assert!(
        err.contains("record 4") && err.contains(U2) && err.contains("length field"),
        "{err}"
    );
}

#[test]
fn a_bad_guid_is_reported() {
    let bad_id = "cccccccc-0000-0000-0000-00000000000z";
    let x = update_xml(bad_id, 1, "Software", "Bad id", &[P, SEC], &[], "");
    let err = fails_and_keeps_store(move |_, cab| {
        let recs = good_records();
        let meta: String = recs
            .iter()
            .map(|(i, v, x)| record(i, *v, x))
            .collect::<String>()
            + &record(bad_id, 1, &x);
        let mut entries: Vec<(&str, u32)> = recs.iter().map(|(i, r, _)| (i.as_str(), *r)).collect();
        entries.push((U2, 1));
        write_cab(
            cab,
            &[
                ("package.xml", package_xml(&entries).as_bytes()),
                ("metadata.txt", meta.as_bytes()),
            ],
        );
    });
    assert!(
        err.contains("record 4") && err.contains("is not a GUID") && err.contains(bad_id),
        "{err}"
    );
}

#[test]
fn an_unknown_namespace_is_reported() {
    let x = update_xml(U2, 1, "Software", "Alien", &[P, SEC], &[], "").replace(
        "http://schemas.microsoft.com/msus/2002/12/Update",
        "urn:example:not-updates",
    );
    let err = fails_and_keeps_store(with_extra((U2.into(), 1, x), None));
    assert!(
        err.contains(U2)
            && err.contains("urn:example:not-updates")
            && err.contains("expected <Update>"),
        "{err}"
    );
}

#[test]
fn a_truncated_cab_is_reported() {
    let err = fails_and_keeps_store(|_, cab| {
        // A bigger package, cut in half.
        let mut recs = good_records();
        for i in 0..400 {
            let id = format!("dddddddd-0000-0000-0000-{i:012}");
            recs.push((
                id.clone(),
                1,
                update_xml(
                    &id,
                    1,
                    "Software",
                    &format!("Filler {i} {}", "x".repeat(300)),
                    &[P, SEC],
                    &[],
                    "",
                ),
            ));
        }
        package(cab, &recs, None);
        let bytes = std::fs::read(cab).unwrap();
        std::fs::write(cab, &bytes[..bytes.len() / 2]).unwrap();
    });
    assert!(
        err.contains("export.cab") && err.contains("source 'contoso'"),
        "{err}"
    );
    assert!(err.contains("truncated or corrupt"), "{err}");
}

#[test]
fn a_file_that_is_not_a_cab_is_reported() {
    let err = fails_and_keeps_store(|_, cab| {
        std::fs::write(cab, b"this is not a cabinet at all").unwrap()
    });
    assert!(
        err.contains("export.cab") && err.contains("not a readable CAB archive"),
        "{err}"
    );
}

#[test]
fn an_incomplete_package_is_reported() {
    // package.xml is the listing when the package is read in two passes (first and full
    // syncs); a delta sync reads metadata.txt alone.
    let err = fails_and_keeps_store_with(&["sync", "--full"], |_, cab| {
        let recs = good_records();
        let meta: String = recs.iter().map(|(i, v, x)| record(i, *v, x)).collect();
        let mut entries: Vec<(&str, u32)> = recs.iter().map(|(i, r, _)| (i.as_str(), *r)).collect();
        entries.push((U2, 1));
        write_cab(
            cab,
            &[
                ("package.xml", package_xml(&entries).as_bytes()),
                ("metadata.txt", meta.as_bytes()),
            ],
        );
    });
    assert!(err.contains(U2) && err.contains("incomplete"), "{err}");
}

#[test]
fn an_unreadable_path_is_reported() {
    let err = fails_and_keeps_store(|_, cab| std::fs::remove_file(cab).unwrap());
    assert!(
        err.contains("export.cab") && err.contains("cannot read the export package"),
        "{err}"
    );
}

#[test]
fn a_config_with_an_unknown_key_fails_at_load() {
    let site = Site::new();
    let cab = site.path("export.cab");
    package(&cab, &good_records(), None);
    site.write_config(&[("contoso", "wsus-export", &cab)], &["*"], &["*"], &["en"]);
    let text = std::fs::read_to_string(site.config_path())
        .unwrap()
        .replace("[filter]\n", "[filter]\nproduct = [\"x\"]\n");
    std::fs::write(site.config_path(), &text).unwrap();
    let line = text
        .lines()
        .position(|l| l.starts_with("product ="))
        .unwrap()
        + 1;
    let out = site.cli(&["sync"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("patchsync.toml:{line}:")), "{err}");
    assert!(err.contains("unknown field `product`"), "{err}");
    assert!(!site.db().exists(), "nothing is created from a bad config");
}

#[test]
fn a_second_sync_while_one_runs_is_refused() {
    let site = Site::new();
    let cab = site.path("export.cab");
    package(&cab, &good_records(), None);
    site.write_config(&[("contoso", "wsus-export", &cab)], &["*"], &["*"], &["en"]);
    site.sync();
    let lock = std::fs::File::options()
        .write(true)
        .open(site.path("data/patchsync.db.lock"))
        .unwrap();
    lock.lock().unwrap();
    let err = site.try_sync().unwrap_err().to_string();
    assert!(
        err.contains("another sync of this site is running"),
        "{err}"
    );
    drop(lock);
    site.sync();
}
