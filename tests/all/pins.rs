//! `import-update` fetches an update the filter would not select and pins it; `unpin` hands
//! it back to the filter.

use crate::common::{Site, generated, shared_data};

#[test]
fn an_imported_update_stays_until_unpinned() {
    let Some(zip) = shared_data("third-party/HpCatalogForSms.zip") else {
        return;
    };
    let site = Site::new();
    site.write_config(
        &[("hp", "sdp-catalog", &zip)],
        &["*"],
        &["Critical Updates"],
        &["en"],
    );
    assert_eq!(site.sync().updates, 254);
    // An "Updates" package, which the filter leaves out.
    let id = "00004850-0000-0000-5350-000000065001";
    let out = site.cli(&["show", id]);
    assert!(!out.status.success());

    let r = site.cli_json(&["import-update", "--source", "hp", "--id", id, "--json"]);
    assert_eq!(r["pinned"][0]["id"], id, "{r}");
    let s = site.cli_json(&["show", id, "--json"]);
    assert_eq!(s["pinned"], true, "{s}");
    assert_eq!(
        s["title"],
        "AMD Video Driver and Control Panel [13.152.1.9001-131203]"
    );
    let listed = site.cli(&["updates", "--kb", "sp65001"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("active (pinned)"), "{listed}");

    // Later syncs keep it: unchanged, full, and after a filter change.
    for full in [false, true] {
        let r = if full {
            site.cli_json(&["sync", "--full", "--json"])
        } else {
            site.cli_json(&["sync", "--json"])
        };
        assert_eq!(r["removed"], 0, "{r}");
        assert_eq!(r["updates"], 255, "{r}");
    }
    site.write_config(&[("hp", "sdp-catalog", &zip)], &["*"], &["Tools"], &["en"]);
    let r = site.sync_allowing_mass_removal();
    assert_eq!(r.updates, 26 + 1, "{r:?}");

    // Unpinned, the next sync removes it as the filter says.
    let out = site.cli(&["unpin", id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = site.sync();
    assert_eq!((r.removed, r.updates), (1, 26), "{r:?}");
    assert!(!site.cli(&["show", id]).status.success());
    let again = site.cli(&["unpin", id]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("is not pinned"));
}

#[test]
fn importing_by_kb_brings_bundled_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let cab = generated(dir.path(), "gen.cab", 400, 7);
    // A reference site that has everything, to pick a bundle and its KB.
    let all = Site::new();
    all.write_config(&[("gen", "wsus-export", &cab)], &["*"], &["*"], &["en"]);
    all.sync();
    let (bundle, kb): (String, String) = {
        let c = rusqlite::Connection::open(all.db()).unwrap();
        c.query_row(
            "SELECT u.id, k.kb FROM updates u JOIN kb_articles k ON k.uid = u.uid
             WHERE u.is_bundle = 1 ORDER BY u.id LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    let leaves: i64 = all.sql(&format!(
        "SELECT COUNT(*) FROM relations r JOIN updates u ON u.uid = r.uid
         WHERE u.id = '{bundle}' AND r.kind = 'bundled'"
    ));
    assert!(leaves > 0);

    // A site that syncs categories only.
    let site = Site::new();
    site.write_config(&[("gen", "wsus-export", &cab)], &[], &["*"], &["en"]);
    assert_eq!(site.sync().updates, 0);
    let r = site.cli_json(&[
        "import-update",
        "--source",
        "gen",
        "--kb",
        &format!("KB{kb}"),
        "--json",
    ]);
    let pinned: Vec<String> = r["pinned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(pinned.contains(&bundle), "{r}");
    assert!(r["leaves"].as_i64().unwrap() >= leaves, "{r}");
    let stored_leaves: i64 = site.sql(&format!(
        "SELECT COUNT(*) FROM relations r JOIN updates u ON u.uid = r.uid
         JOIN updates l ON l.id = r.other_id
         WHERE u.id = '{bundle}' AND r.kind = 'bundled'"
    ));
    assert_eq!(stored_leaves, leaves);
    // The next syncs keep the bundle and its leaves.
    let r = site.cli_json(&["sync", "--full", "--json"]);
    assert_eq!(r["removed"], 0, "{r}");
    let kept: i64 = site.sql(&format!(
        "SELECT COUNT(*) FROM relations r JOIN updates u ON u.uid = r.uid
         JOIN updates l ON l.id = r.other_id
         WHERE u.id = '{bundle}' AND r.kind = 'bundled'"
    ));
    assert_eq!(kept, leaves);

    // Unknown ids and sources are named.
    let out = site.cli(&[
        "import-update",
        "--source",
        "gen",
        "--id",
        "00000000-0000-0000-0000-000000000001",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not in source 'gen'"));
    let out = site.cli(&["import-update", "--source", "nope", "--kb", "1"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no source named 'nope'"));
}
