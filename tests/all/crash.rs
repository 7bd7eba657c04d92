//! Crash safety: a sync killed with SIGKILL at any moment leaves a consistent store, and the
//! next sync finishes the job with nothing lost and nothing duplicated. Readers keep working
//! while a sync writes.

use std::time::{Duration, Instant};

use patchsync::generate::{EvolveOptions, evolve};

use crate::common::{Site, bin, generated};

fn digest(site: &Site) -> (String, u64) {
    let s = site.cli_json(&["status", "--json"]);
    (
        s["content_digest"].as_str().unwrap().to_owned(),
        s["catalog_version"].as_u64().unwrap(),
    )
}

/// Every index of the store with its definition.
fn indexes(c: &rusqlite::Connection) -> Vec<(String, Option<String>)> {
    let mut s = c
        .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' ORDER BY name")
        .unwrap();
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Starts `patchsync sync` and kills it after `after`; returns whether it was still running.
fn kill_sync_after(site: &Site, after: Duration) -> bool {
    let mut child = bin()
        .arg("--config")
        .arg(site.config_path())
        .arg("sync")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while start.elapsed() < after {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    true
}

#[test]
fn killed_syncs_lose_nothing_and_duplicate_nothing() {
    let reference = Site::new();
    let cab1 = generated(reference.dir.path(), "m1.cab", 12_000, 21);
    let cab2 = reference.path("m2.cab");
    evolve(
        &cab1,
        &cab2,
        &EvolveOptions {
            seed: 4,
            change_percent: 3.0,
        },
    )
    .unwrap();
    let live_ref = reference.path("live.cab");
    std::fs::copy(&cab1, &live_ref).unwrap();
    reference.write_config(
        &[("gen", "wsus-export", &live_ref)],
        &["Windows", "Office"],
        &["*"],
        &["en", "de"],
    );

    // How long a clean sync takes, to spread the kills over it.
    let t = Instant::now();
    reference.sync();
    let full_time = t.elapsed();
    let after_month1 = digest(&reference);
    std::fs::copy(&cab2, &live_ref).unwrap();
    reference.sync();
    let after_month2 = digest(&reference);

    let site = Site::new();
    let live = site.path("live.cab");
    std::fs::copy(&cab1, &live).unwrap();
    site.write_config(
        &[("gen", "wsus-export", &live)],
        &["Windows", "Office"],
        &["*"],
        &["en", "de"],
    );
    let fresh_indexes = {
        let fresh = site.path("fresh.db");
        drop(patchsync::store::Store::open(&fresh).unwrap());
        indexes(&rusqlite::Connection::open(&fresh).unwrap())
    };
    let mut killed = 0;
    for frac in [0.05, 0.2, 0.45, 0.7, 0.9] {
        if kill_sync_after(
            &site,
            full_time.mul_f64(frac).max(Duration::from_millis(20)),
        ) {
            killed += 1;
        }
        if site.db().exists() {
            let c = rusqlite::Connection::open(site.db()).unwrap();
            let ok: String = c
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .unwrap();
            assert_eq!(ok, "ok");
            // Either nothing of the sync is visible, or all of it.
            let v: String = c
                .query_row(
                    "SELECT value FROM meta WHERE key = 'catalog_version'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            let n: i64 = c
                .query_row("SELECT COUNT(*) FROM updates", [], |r| r.get(0))
                .unwrap();
            assert!(
                (v == "0" && n == 0) || v == "1",
                "half a sync is visible: version {v}, {n} updates"
            );
            // A first sync builds its indexes after the inserts, in its transaction.
            assert_eq!(indexes(&c), fresh_indexes, "indexes after a kill");
        }
    }
    assert!(killed >= 2, "the kills came too late to test anything");
    let r = site.sync();
    assert_eq!(
        digest(&site),
        after_month1,
        "after recovery the store equals a clean sync"
    );
    assert_eq!(r.catalog_version, 1);
    let c = rusqlite::Connection::open(site.db()).unwrap();
    assert_eq!(indexes(&c), fresh_indexes, "indexes after the first sync");
    let dupes: i64 = site.sql("SELECT COUNT(*) FROM (SELECT uid, language FROM localized GROUP BY 1, 2 HAVING COUNT(*) > 1)");
    assert_eq!(dupes, 0);
    let history = site.cli_json(&["history", "--json"]);
    assert!(
        history
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["status"] == "interrupted"),
        "{history}"
    );

    // The same during a delta sync.
    std::fs::copy(&cab2, &live).unwrap();
    kill_sync_after(&site, Duration::from_millis(30));
    site.sync();
    assert_eq!(digest(&site), after_month2);
}

#[test]
fn readers_work_while_a_sync_writes() {
    let site = Site::new();
    let cab = generated(site.dir.path(), "c.cab", 15_000, 8);
    site.write_config(&[("gen", "wsus-export", &cab)], &["*"], &["*"], &["en"]);
    site.sync();
    let before = site
        .cli_json(&["updates", "--json", "--state", "all", "--leaves"])
        .as_array()
        .unwrap()
        .len();

    let mut child = bin()
        .arg("--config")
        .arg(site.config_path())
        .args(["sync", "--full"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut reads = 0;
    let mut saw_running = false;
    while child.try_wait().unwrap().is_none() {
        let s = site.cli_json(&["status", "--json"]);
        saw_running |= s["state"] == "running";
        let n = site
            .cli_json(&["updates", "--json", "--state", "all", "--leaves"])
            .as_array()
            .unwrap()
            .len();
        assert_eq!(n, before, "a reader sees the last committed catalog, whole");
        reads += 1;
    }
    assert!(child.wait().unwrap().success());
    assert!(reads > 0);
    assert!(
        saw_running || reads < 2,
        "status never said running during {reads} reads"
    );
    assert_eq!(site.cli_json(&["status", "--json"])["state"], "succeeded");
}
