//! The offline scan file (`wsusscn2.cab`): the real sample field by field, and broken copies.

use std::io::Read;
use std::path::Path;

use crate::common::{Site, shared_data, write_cab};

fn members(cab: &Path) -> Vec<(String, Vec<u8>)> {
    let mut c = cab::Cabinet::new(std::fs::File::open(cab).unwrap()).unwrap();
    let names: Vec<String> = c
        .folder_entries()
        .flat_map(|f| f.file_entries())
        .map(|e| e.name().to_owned())
        .collect();
    names
        .into_iter()
        .map(|n| {
            let mut b = Vec::new();
            c.read_file(&n).unwrap().read_to_end(&mut b).unwrap();
            (n, b)
        })
        .collect()
}

fn write(path: &Path, m: &[(String, Vec<u8>)]) {
    let refs: Vec<(&str, &[u8])> = m.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
    write_cab(path, &refs);
}

fn site_for(cab: &Path) -> Site {
    let site = Site::new();
    site.write_config(&[("scan", "wsusscn2", cab)], &["*"], &["*"], &["*"]);
    site
}

#[test]
fn the_real_offline_scan_file_reads_field_by_field() {
    let Some(cab) = shared_data("wsusscn2/wsusscn2.cab") else {
        return;
    };
    let site = site_for(&cab);
    let r = site.sync();
    assert_eq!(r.new, 4, "{r:?}");
    assert_eq!(r.updates, 4);
    let warnings = r.sources[0].warnings.join("\n");
    assert!(
        warnings.contains("913aa7a4-75d8-4abc-9d66-8ddc163be471") && warnings.contains("c/456789"),
        "the revision without a core fragment is reported: {warnings}"
    );

    // RevisionId 123456 is update 0a51549b rev 201, superseded by RevisionId 234567.
    let s = site.cli_json(&["show", "0a51549b-4e86-4a26-97d4-9e3567f24ea1", "--json"]);
    assert_eq!(s["revision"], 201, "{s}");
    assert_eq!(
        s["title"],
        "Security Update for Windows Server 2012 R2 (KB3019978)"
    );
    assert_eq!(s["severity"], "Important");
    assert_eq!(s["creation_date"], "2017-06-27T00:03:52Z");
    assert_eq!(
        s["kb_articles"],
        serde_json::json!(["654321"]),
        "from x/123456"
    );
    assert_eq!(s["security_bulletins"], serde_json::json!(["MS00-000"]));
    assert_eq!(
        site.sql::<String>(
            "SELECT more_info_url FROM updates WHERE id = '0a51549b-4e86-4a26-97d4-9e3567f24ea1'"
        ),
        "http://support.microsoft.com/kb/3019978"
    );
    assert_eq!(
        site.sql::<String>(
            "SELECT group_concat(category_id, ' ') FROM (SELECT category_id FROM update_categories uc
             JOIN updates u ON u.uid = uc.uid
             WHERE u.id = '0a51549b-4e86-4a26-97d4-9e3567f24ea1' ORDER BY 1)"
        ),
        "0fa1201d-4330-4fa8-8ae9-b877473b6441 d31bd4c3-d872-41c9-a2e7-231f372588cb",
        "categories from the core fragment"
    );
    let text = s.to_string();
    assert!(
        text.contains("daad7390-d95c-4fd5-99a0-790dc6a2dc2a"),
        "bundled leaf: {text}"
    );
    let superseder: String = site.sql(
        "SELECT u.id FROM relations r JOIN updates u ON u.uid = r.uid
         WHERE r.kind = 'superseded' AND r.other_id = '0a51549b-4e86-4a26-97d4-9e3567f24ea1'",
    );
    assert_eq!(
        superseder, "05a7711a-079e-4fbb-8d1a-9015c92a2ae0",
        "RevisionId 234567"
    );
    let superseder: String = site.sql(
        "SELECT u.id FROM relations r JOIN updates u ON u.uid = r.uid
         WHERE r.kind = 'superseded' AND r.other_id = '05a7711a-079e-4fbb-8d1a-9015c92a2ae0'",
    );
    assert_eq!(
        superseder, "1c560bb8-276c-41ca-b597-35ae23bf424c",
        "RevisionId 345678"
    );
    assert_eq!(
        site.sql::<String>(
            "SELECT title FROM updates WHERE id = '1c560bb8-276c-41ca-b597-35ae23bf424c'"
        ),
        "Security Update for Windows 8 for x64-based Systems (KB2922229)"
    );

    // 456789 has no fragments: its categories and prerequisites come from package.xml.
    let cats: i64 = site.sql(
        "SELECT COUNT(*) FROM update_categories uc JOIN updates u ON u.uid = uc.uid
         WHERE u.id = '913aa7a4-75d8-4abc-9d66-8ddc163be471'",
    );
    assert_eq!(cats, 4);
    assert_eq!(
        site.sql::<String>(
            "SELECT creation_date FROM updates WHERE id = '913aa7a4-75d8-4abc-9d66-8ddc163be471'"
        ),
        "2023-04-06T18:29:32Z"
    );

    // The raw metadata holds the fragments and the package.xml entry as written.
    let raw = site.cli(&["show", "0a51549b-4e86-4a26-97d4-9e3567f24ea1", "--xml"]);
    let raw = String::from_utf8_lossy(&raw.stdout);
    assert!(raw.contains("<SupersededBy>"), "{raw}");
    // The superseder's stored XML says what package.xml's SupersededBy resolved to.
    let raw = site.cli(&["show", "05a7711a-079e-4fbb-8d1a-9015c92a2ae0", "--xml"]);
    let raw = String::from_utf8_lossy(&raw.stdout);
    let superseded = raw.split("<SupersededUpdates>").nth(1).unwrap_or_default();
    assert!(
        superseded.contains("0a51549b-4e86-4a26-97d4-9e3567f24ea1"),
        "{raw}"
    );
    assert!(raw.contains("AutoSelectOnWebSites=\"true\""), "{raw}");

    let again = site.sync();
    assert_eq!(
        again.sources[0].outcome,
        patchsync::sync::SourceOutcome::Unchanged
    );
}

#[test]
fn broken_offline_scan_files_are_named_and_change_nothing() {
    let (Some(cab), Some(sdp)) = (
        shared_data("wsusscn2/wsusscn2.cab"),
        shared_data("third-party/0e6cf4ac-2853-48aa-825b-8fe28206575f.sdp"),
    ) else {
        return;
    };
    let outer = members(&cab);
    let dir = tempfile::tempdir().unwrap();
    let inner = |name: &str| -> Vec<(String, Vec<u8>)> {
        let p = dir.path().join(name);
        std::fs::write(&p, &outer.iter().find(|(n, _)| n == name).unwrap().1).unwrap();
        members(&p)
    };

    // package2.cab without c\123456.
    let mut p2 = inner("package2.cab");
    p2.retain(|(n, _)| n != "c\\123456");
    let p2_path = dir.path().join("p2.cab");
    write(&p2_path, &p2);
    let mut no_fragment = outer.clone();
    for (n, b) in no_fragment.iter_mut() {
        if n == "package2.cab" {
            *b = std::fs::read(&p2_path).unwrap();
        }
    }
    let missing_fragment = dir.path().join("missing-fragment.cab");
    write(&missing_fragment, &no_fragment);

    // index.xml names package3.cab, which is gone.
    let mut no_cab = outer.clone();
    no_cab.retain(|(n, _)| n != "package3.cab");
    let missing_cab = dir.path().join("missing-cab.cab");
    write(&missing_cab, &no_cab);

    // Cut in half.
    let truncated = dir.path().join("truncated.cab");
    let bytes = std::fs::read(&cab).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();

    for (file, expect) in [
        (
            &missing_fragment,
            vec!["c/123456", "package2.cab", "0a51549b"],
        ),
        (&missing_cab, vec!["package3.cab", "345678", "1c560bb8"]),
        (&truncated, vec!["truncated"]),
    ] {
        let site = Site::new();
        site.write_config(&[("dell", "sdp-catalog", &sdp)], &["*"], &["*"], &["*"]);
        site.sync();
        let before = site.snapshot();
        site.write_config(
            &[("dell", "sdp-catalog", &sdp), ("scan", "wsusscn2", file)],
            &["*"],
            &["*"],
            &["*"],
        );
        let err = site.try_sync().unwrap_err().to_string();
        assert!(err.contains("source 'scan'"), "{err}");
        for e in expect {
            assert!(err.contains(e), "{e}: {err}");
        }
        assert_eq!(site.snapshot(), before, "{err}");
    }
}

#[test]
fn a_generated_offline_file_stores_what_the_same_wsus_export_stores() {
    let dir = tempfile::tempdir().unwrap();
    let opts = patchsync::generate::GenerateOptions {
        updates: 1500,
        seed: 11,
        categories_from: None,
    };
    let export = dir.path().join("export.cab");
    let offline = dir.path().join("wsusscn2.cab");
    patchsync::generate::generate(&export, &opts).unwrap();
    patchsync::generate::generate_offline(&offline, &opts).unwrap();
    let rows = |kind: &str, path: &Path| {
        let site = Site::new();
        site.write_config(
            &[("src", kind, path)],
            &["Windows 11", "Office"],
            &["*"],
            &["en"],
        );
        let r = site.sync();
        let c = rusqlite::Connection::open(site.db()).unwrap();
        let mut s = c
            .prepare(
                "SELECT u.id, u.revision, u.update_type, COALESCE(u.title, ''), u.state,
                        (SELECT COUNT(*) FROM relations r WHERE r.uid = u.uid AND r.kind = 'bundled'),
                        (SELECT group_concat(category_id) FROM update_categories uc WHERE uc.uid = u.uid),
                        (SELECT COUNT(*) FROM files f WHERE f.uid = u.uid)
                 FROM updates u ORDER BY u.id",
            )
            .unwrap();
        let v: Vec<String> = s
            .query_map([], |r| {
                Ok(format!(
                    "{}|{}|{}|{}|{}|{}|{:?}|{}",
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, i64>(7)?
                ))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        (r.updates, v)
    };
    let (n_export, from_export) = rows("wsus-export", &export);
    let (n_offline, from_offline) = rows("wsusscn2", &offline);
    assert!(n_export > 100, "the filter keeps a real share: {n_export}");
    assert_eq!(n_offline, n_export);
    assert_eq!(from_offline.len(), from_export.len());
    for (a, b) in from_export.iter().zip(&from_offline) {
        assert_eq!(a, b);
    }
}

/// id, revision, title, raw XML (zstd), languages kept.
type Row = (String, i64, String, Vec<u8>, Option<String>);

#[test]
fn reading_fragment_cabs_once_or_twice_stores_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let offline = dir.path().join("wsusscn2.cab");
    patchsync::generate::generate_offline(
        &offline,
        &patchsync::generate::GenerateOptions {
            updates: 800,
            seed: 5,
            categories_from: None,
        },
    )
    .unwrap();
    let digest = |budget: u64| {
        let site = Site::new();
        site.write_config(&[], &["*"], &["*"], &["en", "de"]);
        let mut engine = site.engine();
        let location = patchsync::config::Location::Path(offline.clone());
        engine.add_source(
            "wsusscn2",
            Box::new(
                patchsync::source::Wsusscn2Source::new("scan", location, None).hold_at_most(budget),
            ),
        );
        let r = engine
            .sync(patchsync::SyncOptions::default(), &mut |_| {})
            .unwrap();
        assert_eq!(r.new, 853, "{r:?}");
        let c = rusqlite::Connection::open(site.db()).unwrap();
        let mut s = c
            .prepare(
                "SELECT u.id, u.revision, COALESCE(u.title, ''), x.xml,
                        (SELECT group_concat(language, ' ') FROM localized l WHERE l.uid = u.uid)
                 FROM updates u JOIN update_xml x ON x.uid = u.uid ORDER BY u.id",
            )
            .unwrap();
        let rows: Vec<Row> = s
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rows
    };
    let once = digest(64 << 20);
    let twice = digest(0);
    assert_eq!(once.len(), twice.len());
    assert!(once == twice, "the two ways of reading store the same rows");
    // Only the kept languages were read from the localized fragments.
    assert!(once.iter().all(|r| {
        r.4.as_deref()
            .unwrap_or("")
            .split(' ')
            .all(|l| l.is_empty() || l == "en" || l == "de")
    }));
    // And the raw metadata holds no other language's fragment.
    let raw = zstd::decode_all(&once.iter().find(|r| r.2.contains("KB")).unwrap().3[..]).unwrap();
    let raw = String::from_utf8(raw).unwrap();
    assert!(!raw.contains("<Language>fr</Language>"), "{raw}");
}

#[test]
fn an_offline_scan_file_can_come_from_a_url() {
    let Some(cab) = shared_data("wsusscn2/wsusscn2.cab") else {
        return;
    };
    let bytes = std::fs::read(&cab).unwrap();
    let server = crate::common::HttpServer::start(
        "/microsoftupdate/v6/wsusscan/wsusscn2.cab",
        crate::common::Serve::Cached(bytes.clone(), "\"v1\"".into()),
    );
    let site = Site::new();
    std::fs::write(
        site.config_path(),
        format!(
            "[site]\nname = \"URL\"\nstore = \"data/patchsync.db\"\n[[source]]\nname = \"scan\"\nkind = \"wsusscn2\"\npath = {:?}\n[filter]\nproducts = [\"*\"]\n",
            server.url
        ),
    )
    .unwrap();
    let r = site.sync();
    assert_eq!(r.updates, 4, "{r:?}");
    assert_eq!(server.bodies.load(std::sync::atomic::Ordering::Relaxed), 1);
    // Unchanged: the server says "not modified" to the ETag the last sync kept, so nothing
    // is downloaded or read again.
    let again = site.sync();
    assert_eq!(
        again.sources[0].outcome,
        patchsync::sync::SourceOutcome::Unchanged
    );
    assert_eq!(server.bodies.load(std::sync::atomic::Ordering::Relaxed), 1);
    // A full sync needs the contents: downloaded again, whatever the server said before.
    let full = site.cli_json(&["sync", "--full", "--json"]);
    assert_eq!(full["unchanged"], 4, "{full}");
    assert_eq!(server.bodies.load(std::sync::atomic::Ordering::Relaxed), 2);
    drop(server);
    // Cut off half way: refused, nothing changes.
    let before = site.snapshot();
    let cut = crate::common::HttpServer::start(
        "/microsoftupdate/v6/wsusscan/wsusscn2.cab",
        crate::common::Serve::CutOff(bytes.clone(), bytes.len() / 2),
    );
    std::fs::write(
        site.config_path(),
        format!(
            "[site]\nname = \"URL\"\nstore = \"data/patchsync.db\"\n[[source]]\nname = \"scan\"\nkind = \"wsusscn2\"\npath = {:?}\n[filter]\nproducts = [\"*\"]\n",
            cut.url
        ),
    )
    .unwrap();
    let err = site.try_sync().unwrap_err().to_string();
    assert!(err.contains("cut off"), "{err}");
    assert_eq!(site.snapshot(), before);
}
