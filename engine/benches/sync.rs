//! Sync benchmarks: full sync, 1 % delta, unchanged re-sync and a raw baseline (the same
//! package parsed with quick-xml into the same rows, inserted with plain prepared statements
//! in one transaction, no engine around it), each in a child process for its peak RSS.
//!
//! `cargo bench -p patchsync --bench sync` (updates: `PATCHSYNC_BENCH_UPDATES`, default 500000).

mod common;

use std::io::BufReader;
use std::path::Path;
use std::time::Instant;

use patchsync::source::RecordReader;
use patchsync::store::Store;
use patchsync::xml::parse_update;
use patchsync::{Config, Engine, SyncOptions};
use rusqlite::params;

fn config(dir: &Path, cab: &Path) -> Config {
    let text = format!(
        "[site]\nname = \"BENCH\"\nstore = \"store.db\"\n[[source]]\nname = \"gen\"\nkind = \"wsus-export\"\npath = {:?}\n[filter]\nproducts = [\"*\"]\nclassifications = [\"*\"]\nlanguages = [\"en\", \"de\"]\n",
        cab.display().to_string()
    );
    Config::parse(&text, &dir.join("patchsync.toml"), dir).expect("bench config")
}

/// Runs in the child: one measured operation, then prints `seconds peak_rss_kb`.
fn child(mode: &str, dir: &Path, cab: &Path) {
    let t = Instant::now();
    match mode {
        "baseline" => baseline(&dir.join("baseline.db"), cab),
        _ => {
            let mut engine = Engine::open(config(dir, cab)).expect("open");
            let r = engine
                .sync(SyncOptions::default(), &mut |_| {})
                .expect("sync");
            eprintln!(
                "{mode}: {} new, {} revised, {} expired, {} unchanged; phases {:?}",
                r.new, r.revised, r.expired, r.unchanged, r.sources[0].phases
            );
        }
    }
    println!("{} {}", t.elapsed().as_secs_f64(), common::peak_rss_kb());
}

/// The raw baseline: CAB → quick-xml → rows → prepared statements, one transaction.
fn baseline(db: &Path, cab: &Path) {
    let _ = std::fs::remove_file(db);
    drop(Store::open(db).expect("schema"));
    let mut conn = rusqlite::Connection::open(db).expect("open");
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -131072;",
    )
    .unwrap();
    let tx = conn.transaction().unwrap();
    let mut cabinet = cab::Cabinet::new(std::fs::File::open(cab).unwrap()).unwrap();
    let mut records = RecordReader::new(BufReader::with_capacity(
        1 << 18,
        cabinet.read_file("metadata.txt").unwrap(),
    ));
    let mut zstd = zstd::bulk::Compressor::new(3).unwrap();
    {
        let mut up = tx.prepare("INSERT INTO updates (id, revision, source, update_type, publication_state, state, creation_date, default_language, title, msrc_severity, is_beta, is_bundle, selected_by, first_version, changed_version) VALUES (?1, ?2, 'gen', ?3, ?4, 'active', ?5, ?6, ?7, ?8, ?9, ?10, 'filter', 1, 1)").unwrap();
        let mut xml = tx
            .prepare("INSERT INTO update_xml (uid, xml) VALUES (?1, ?2)")
            .unwrap();
        let mut cat = tx
            .prepare("INSERT OR IGNORE INTO update_categories (uid, category_id) VALUES (?1, ?2)")
            .unwrap();
        let mut rel = tx.prepare("INSERT INTO relations (uid, kind, other_id, other_revision) VALUES (?1, ?2, ?3, ?4)").unwrap();
        let mut kb = tx
            .prepare("INSERT INTO kb_articles (uid, kb) VALUES (?1, ?2)")
            .unwrap();
        let mut cve = tx
            .prepare("INSERT INTO cves (uid, cve) VALUES (?1, ?2)")
            .unwrap();
        let mut bul = tx
            .prepare("INSERT INTO bulletins (uid, bulletin) VALUES (?1, ?2)")
            .unwrap();
        let mut loc = tx.prepare("INSERT OR REPLACE INTO localized (uid, language, title, description) VALUES (?1, ?2, ?3, ?4)").unwrap();
        let mut file = tx.prepare("INSERT INTO files (uid, name, size, digest, sha256, modified) VALUES (?1, ?2, ?3, ?4, ?5, ?6)").unwrap();
        let mut rev = tx.prepare("INSERT OR IGNORE INTO revisions (update_id, revision, source, seen_version) VALUES (?1, ?2, 'gen', 1)").unwrap();
        let mut item = tx.prepare("INSERT OR REPLACE INTO catalog_items (source, update_id, revision, verdict) VALUES ('gen', ?1, ?2, 'stored')").unwrap();
        let mut category = tx.prepare("INSERT OR REPLACE INTO categories (id, kind, parent_id, title) VALUES (?1, ?2, ?3, ?4)").unwrap();
        while let Some(r) = records.next_record().unwrap() {
            let u = parse_update(&r.xml).unwrap();
            let id = u.identity.id.to_string();
            let uid = {
                up.execute(params![
                    id,
                    u.identity.revision,
                    u.update_type.as_str(),
                    u.publication_state,
                    u.creation_date,
                    u.default_language,
                    u.title("en"),
                    u.msrc_severity,
                    u.is_beta,
                    u.is_bundle()
                ])
                .unwrap();
                tx.last_insert_rowid()
            };
            xml.execute(params![uid, zstd.compress(r.xml.as_bytes()).unwrap()])
                .unwrap();
            for c in &u.categories {
                cat.execute(params![uid, c.to_string()]).unwrap();
            }
            for (k, o) in &u.relations {
                rel.execute(params![uid, k.as_str(), o.id.to_string(), o.revision])
                    .unwrap();
            }
            for k in &u.kb_articles {
                kb.execute(params![uid, k]).unwrap();
            }
            for c in &u.cves {
                cve.execute(params![uid, c]).unwrap();
            }
            for b in &u.security_bulletins {
                bul.execute(params![uid, b]).unwrap();
            }
            for l in u
                .localized
                .iter()
                .filter(|l| l.language == "en" || l.language == "de")
            {
                loc.execute(params![uid, l.language, l.title, l.description])
                    .unwrap();
            }
            for f in &u.files {
                file.execute(params![
                    uid,
                    f.name,
                    f.size.map(|x| x as i64),
                    f.digest,
                    f.sha256,
                    f.modified
                ])
                .unwrap();
            }
            rev.execute(params![id, u.identity.revision]).unwrap();
            item.execute(params![id, u.identity.revision]).unwrap();
            if let Some(k) = u.category_kind {
                category
                    .execute(params![
                        id,
                        k.as_str(),
                        u.categories.first().map(|c| c.to_string()),
                        u.title("en")
                    ])
                    .unwrap();
            }
        }
    }
    tx.commit().unwrap();
}

/// Delta syncs measured, from the same store; the median is reported.
const DELTA_ROUNDS: usize = 3;

fn main() {
    match common::role() {
        common::Role::Child(mode, p) => return child(&mode, &p[0], &p[1]),
        common::Role::List => return,
        common::Role::Parent => {}
    }
    let n = common::updates();
    let (root, cab, next) = common::catalogs(n);
    let dir = common::fresh_dir(&root, &format!("run-{n}"));
    let live = dir.join("live.cab");
    std::fs::copy(&cab, &live).unwrap();

    let (base_s, base_rss) = common::run_child("baseline", &[&dir, &live]);
    let (full_s, full_rss) = common::run_child("full", &[&dir, &live]);
    std::fs::copy(&next, &live).unwrap();
    // The delta is short and this machine's run-to-run noise is several percent of it:
    // three deltas from the same fully synced store, the median reported.
    let store = dir.join("store.db");
    let synced = dir.join("synced.db");
    std::fs::copy(&store, &synced).unwrap();
    let mut deltas = Vec::new();
    for round in 0..DELTA_ROUNDS {
        if round > 0 {
            std::fs::copy(&synced, &store).unwrap();
            for side in ["store.db-wal", "store.db-shm"] {
                let _ = std::fs::remove_file(dir.join(side));
            }
            // A catalog changed since the last sync, as far as its fingerprint can tell.
            std::fs::copy(&next, &live).unwrap();
        }
        deltas.push(common::run_child("delta", &[&dir, &live]));
    }
    let _ = std::fs::remove_file(&synced);
    let delta_runs: Vec<String> = deltas.iter().map(|(s, _)| format!("{s:.2}")).collect();
    let delta_s = common::median(deltas.iter().map(|d| d.0).collect());
    let delta_rss = deltas.iter().map(|d| d.1).max().unwrap_or(0);
    let (same_s, same_rss) = common::run_child("unchanged", &[&dir, &live]);
    let db_mb = std::fs::metadata(dir.join("store.db"))
        .map(|m| m.len())
        .unwrap_or(0) as f64
        / 1e6;

    let row = |name: &str, s: f64, rss: u64, note: String| {
        format!(
            "| {name} | {s:.2} s | {:.0} MB | {note} |",
            rss as f64 / 1024.0
        )
    };
    let lines = [
        format!(
            "{n} updates ({} MB package), store {db_mb:.0} MB",
            std::fs::metadata(&cab).unwrap().len() / 1_000_000
        ),
        "| run | time | peak RSS | vs. |".into(),
        "|---|---|---|---|".into(),
        row(
            "raw baseline (quick-xml + prepared inserts, one transaction)",
            base_s,
            base_rss,
            "1.00×".into(),
        ),
        row(
            "full sync",
            full_s,
            full_rss,
            format!("{:.2}× baseline", full_s / base_s),
        ),
        row(
            "delta sync after 1 % evolution (median of 3)",
            delta_s,
            delta_rss,
            format!(
                "{:.1} % of full (runs: {} s)",
                100.0 * delta_s / full_s,
                delta_runs.join(" / ")
            ),
        ),
        row(
            "unchanged re-sync",
            same_s,
            same_rss,
            format!("{:.1} % of full", 100.0 * same_s / full_s),
        ),
    ];
    for l in &lines {
        println!("{l}");
    }
    std::fs::write(
        root.join(format!("results-{n}.md")),
        lines.join("\n") + "\n",
    )
    .unwrap();
}
