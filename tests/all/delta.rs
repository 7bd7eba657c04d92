//! Delta semantics against the generator's manifest: new, revised, expired, removed,
//! unchanged, catalog version.

use patchsync::generate::{EvolveOptions, evolve};

use crate::common::{Site, generated};

#[test]
fn evolution_is_applied_exactly_as_the_manifest_says() {
    let site = Site::new();
    let month1 = generated(site.dir.path(), "m1.cab", 3000, 7);
    let live = site.path("catalog.cab");
    std::fs::copy(&month1, &live).unwrap();
    site.write_config(&[("gen", "wsus-export", &live)], &["*"], &["*"], &["en"]);

    let first = site.sync();
    let catalog_records = first.read.total();
    assert_eq!(
        first.new, catalog_records,
        "every record of a fresh catalog is new (one revision each)"
    );
    assert_eq!(first.read.software + first.read.driver, 3000);
    assert_eq!(first.catalog_version, 1);
    assert_eq!(first.excluded, 0);
    let before_digest = site.cli_json(&["status", "--json"])["content_digest"]
        .as_str()
        .unwrap()
        .to_owned();

    // Next month: 5 % of the top-level updates change.
    let month2 = site.path("m2.cab");
    let m = evolve(
        &month1,
        &month2,
        &EvolveOptions {
            seed: 3,
            change_percent: 5.0,
        },
    )
    .unwrap();
    assert!(
        !m.new.is_empty()
            && !m.revised.is_empty()
            && !m.expired.is_empty()
            && !m.removed.is_empty()
    );
    std::fs::copy(&month2, &live).unwrap();
    let second = site.sync();
    assert_eq!(second.new as usize, m.new.len(), "new");
    assert_eq!(second.revised as usize, m.revised.len(), "revised");
    // Unpublished revisions and updates gone from the full listing are both expired (kept).
    assert_eq!(
        second.expired as usize,
        m.expired.len() + m.removed.len(),
        "expired"
    );
    assert_eq!(second.removed, 0);
    assert_eq!(second.catalog_version, 2);
    let fetched = second.sources[0].fetched as usize;
    assert_eq!(
        fetched,
        m.new.len() + m.revised.len() + m.expired.len(),
        "only what changed is read"
    );
    assert_eq!(
        second.unchanged,
        catalog_records - (m.revised.len() + m.expired.len() + m.removed.len()) as u64
    );

    for id in &m.revised {
        let (state, rev): (String, i64) = {
            let c = rusqlite::Connection::open(site.db()).unwrap();
            c.query_row(
                "SELECT state, revision FROM updates WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
        };
        assert_eq!((state.as_str(), rev), ("active", 201), "{id}");
        let seen: i64 = site.sql(&format!(
            "SELECT COUNT(*) FROM revisions WHERE update_id = '{id}'"
        ));
        assert_eq!(seen, 2, "both revisions of {id} are recorded");
    }
    for id in m.expired.iter().chain(&m.removed) {
        let state: String = site.sql(&format!("SELECT state FROM updates WHERE id = '{id}'"));
        assert_eq!(state, "expired", "{id} is kept, marked expired");
    }
    for id in &m.new {
        let n: i64 = site.sql(&format!(
            "SELECT COUNT(*) FROM updates WHERE id = '{id}' AND state = 'active'"
        ));
        assert_eq!(n, 1, "{id} is new and active");
    }
    let after_digest = site.cli_json(&["status", "--json"])["content_digest"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(before_digest, after_digest);
    // Status reads the digest recorded after the sync; it is the one the catalog hashes to.
    let recorded: String = site.sql("SELECT value FROM meta WHERE key = 'content_digest'");
    assert_eq!(recorded, format!("2:{after_digest}"));
    assert_eq!(
        site.engine().store().content_digest().unwrap(),
        after_digest
    );

    // The same package again: nothing is read, nothing changes.
    let third = site.sync();
    assert_eq!(
        third.sources[0].outcome,
        patchsync::sync::SourceOutcome::Unchanged
    );
    assert_eq!(third.sources[0].fetched, 0);
    assert_eq!(third.catalog_version, 2);
    assert!(!third.changed());

    // A full sync reads everything again but changes nothing either.
    let full = site
        .engine()
        .sync(
            patchsync::SyncOptions {
                full: true,
                ..Default::default()
            },
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(
        full.new + full.revised + full.expired + full.removed,
        0,
        "{full:?}"
    );
    assert_eq!(full.catalog_version, 2);
    // A full sync of the same revisions keeps every verdict and writes no row again.
    let catalog: i64 = site.sql("SELECT COUNT(*) FROM updates WHERE selected_by = 'catalog'");
    assert_eq!(catalog as u64, full.categories + full.detectoids);
    let stray: i64 = site.sql(
        "SELECT COUNT(*) FROM updates WHERE selected_by NOT IN ('catalog', 'filter', 'bundle')",
    );
    assert_eq!(stray, 0);
    let rewritten: i64 = site.sql("SELECT COUNT(*) FROM updates WHERE changed_version > 2");
    assert_eq!(rewritten, 0);
    assert_eq!(
        site.cli_json(&["status", "--json"])["content_digest"]
            .as_str()
            .unwrap(),
        after_digest
    );

    // History has one row per run with its counts.
    let h = site.cli_json(&["history", "--json"]);
    let rows = h.as_array().unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[2]["new"].as_u64().unwrap() as usize, m.new.len());
    assert!(rows.iter().all(|r| r["status"] == "succeeded"));
}

#[test]
fn sync_log_reads_like_wsyncmgr() {
    let site = Site::new();
    let cab = generated(site.dir.path(), "c.cab", 300, 1);
    site.write_config(
        &[("gen", "wsus-export", &cab)],
        &["Windows 11"],
        &["*"],
        &["en"],
    );
    site.sync();
    let log = std::fs::read_to_string(site.path("data/sync.log")).unwrap();
    for needle in [
        "Performing delta sync of site TST",
        "processed",
        "out of",
        "items (100%)",
        "Synchronizing update ",
        "new catalog version is 1",
        "Sync time: 0d00h00m",
    ] {
        assert!(log.contains(needle), "sync.log lacks {needle:?}:\n{log}");
    }
}
