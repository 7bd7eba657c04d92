//! Export package benchmarks: full export and import of a generated catalog, then an
//! incremental package after a 1 % evolution, against two baselines measured in the same run:
//! reading the store once (every update row and its stored XML), and a full sync of the same
//! catalog; as context, what copying the full package's bytes once costs (read, write,
//! flush). Each run is a child process, so its peak RSS is its own.
//!
//! `cargo bench -p patchsync --bench package` (updates: `PATCHSYNC_BENCH_UPDATES`, default
//! 500000; the catalogs are the sync bench's, kept in `target/bench/`).

mod common;

use std::path::Path;
use std::time::Instant;

use patchsync::package::{ExportOptions, SigningKey};
use patchsync::store::Store;
use patchsync::{Config, Engine, SyncOptions};

const FILTER: &str =
    "[filter]\nproducts = [\"*\"]\nclassifications = [\"*\"]\nlanguages = [\"en\", \"de\"]\n";

fn connected(dir: &Path) -> Config {
    let text = format!(
        "[site]\nname = \"CAS\"\nstore = \"connected.db\"\n[[source]]\nname = \"gen\"\nkind = \"wsus-export\"\npath = \"live.cab\"\n{FILTER}"
    );
    Config::parse(&text, &dir.join("connected.toml"), dir).expect("config")
}

fn disconnected(dir: &Path) -> Config {
    let text = format!(
        "[site]\nname = \"DIS\"\nstore = \"disconnected.db\"\n{FILTER}[import]\ntrusted_keys = [\"key.pub\"]\n"
    );
    Config::parse(&text, &dir.join("disconnected.toml"), dir).expect("config")
}

/// Runs in the child: one measured operation, then prints `seconds peak_rss_kb`.
fn child(mode: &str, dir: &Path) {
    let t = Instant::now();
    let key = || SigningKey::load(&dir.join("key.key")).expect("key");
    match mode {
        "sync" => {
            let r = Engine::open(connected(dir))
                .unwrap()
                .sync(SyncOptions::default(), &mut |_| {})
                .expect("sync");
            eprintln!(
                "sync: {} new, {} revised, {} expired",
                r.new, r.revised, r.expired
            );
        }
        "read-store" => {
            let store = Store::open_read_only(&dir.join("connected.db")).unwrap();
            let c = rusqlite::Connection::open(store.path()).unwrap();
            let mut s = c
                .prepare(
                    "SELECT u.id, u.revision, u.state, u.update_type, x.xml FROM updates u
                     JOIN update_xml x ON x.uid = u.uid ORDER BY u.uid",
                )
                .unwrap();
            let mut rows = s.query([]).unwrap();
            let (mut n, mut bytes) = (0u64, 0u64);
            while let Some(r) = rows.next().unwrap() {
                let id: String = r.get(0).unwrap();
                let blob = r.get_ref(4).unwrap().as_blob().unwrap();
                n += 1;
                bytes += (id.len() + blob.len()) as u64;
            }
            eprintln!("read-store: {n} rows, {:.0} MB of XML", bytes as f64 / 1e6);
        }
        "copy-package" => {
            // What writing the package's bytes costs on this machine: read the full package,
            // write it to a new file, flush it to disk (through user space, as the export
            // writes: `std::io::copy` would copy inside the kernel).
            use std::io::{Read, Write};
            let mut from = std::fs::File::open(dir.join("export-full.pkg")).unwrap();
            let to = dir.join("copy.pkg");
            let mut out = std::fs::File::create(&to).unwrap();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = from.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                out.write_all(&buf[..n]).unwrap();
            }
            out.sync_all().unwrap();
            drop(out);
            std::fs::remove_file(&to).unwrap();
        }
        "export-full" | "export-inc" => {
            let engine = Engine::open(connected(dir)).unwrap();
            let key = key();
            let since = (mode == "export-inc").then(|| {
                std::fs::read_to_string(dir.join("since"))
                    .unwrap()
                    .trim()
                    .parse()
                    .unwrap()
            });
            let out = dir.join(format!("{mode}.pkg"));
            let m = engine
                .export_package(
                    &out,
                    &ExportOptions {
                        since,
                        sign: Some(&key),
                    },
                )
                .expect("export");
            eprintln!("{mode}: {:?}", m.counts);
            if mode == "export-full" {
                std::fs::write(dir.join("since"), m.to_version.to_string()).unwrap();
            }
        }
        "import-full" | "import-inc" => {
            let pkg = dir.join(format!("export-{}.pkg", &mode[7..]));
            let r = Engine::open(disconnected(dir))
                .unwrap()
                .import_package(&pkg, SyncOptions::default(), &mut |_| {})
                .expect("import");
            let s = r.report.expect("applied");
            eprintln!(
                "{mode}: {} new, {} revised, {} expired, {} removed",
                s.new, s.revised, s.expired, s.removed
            );
        }
        other => panic!("unknown mode {other}"),
    }
    println!("{} {}", t.elapsed().as_secs_f64(), common::peak_rss_kb());
}

fn main() {
    match common::role() {
        common::Role::Child(mode, p) => return child(&mode, &p[0]),
        common::Role::List => return,
        common::Role::Parent => {}
    }
    let n = common::updates();
    let (root, cab, next) = common::catalogs(n);
    let dir = common::fresh_dir(&root, &format!("package-{n}"));
    std::fs::copy(&cab, dir.join("live.cab")).unwrap();
    let key = SigningKey::generate(&dir.join("key")).unwrap();
    drop(key);

    let (sync_s, sync_rss) = common::run_child("sync", &[&dir]);
    let (read_s, read_rss) = common::run_child("read-store", &[&dir]);
    let (exp_s, exp_rss) = common::run_child("export-full", &[&dir]);
    let (copy_s, copy_rss) = common::run_child("copy-package", &[&dir]);
    let (imp_s, imp_rss) = common::run_child("import-full", &[&dir]);
    std::fs::copy(&next, dir.join("live.cab")).unwrap();
    let (delta_s, delta_rss) = common::run_child("sync", &[&dir]);
    let (iexp_s, iexp_rss) = common::run_child("export-inc", &[&dir]);
    let (iimp_s, iimp_rss) = common::run_child("import-inc", &[&dir]);

    let digest = |db: &str| {
        Store::open_read_only(&dir.join(db))
            .unwrap()
            .content_digest()
            .unwrap()
    };
    assert_eq!(
        digest("connected.db"),
        digest("disconnected.db"),
        "the sites differ"
    );
    let size = |f: &str| std::fs::metadata(dir.join(f)).unwrap().len() as f64 / 1e6;
    let (full_mb, inc_mb) = (size("export-full.pkg"), size("export-inc.pkg"));

    let row = |name: &str, s: f64, rss: u64, extra: String| {
        format!(
            "| {name} | {s:.2} s | {:.0} MB | {extra} |",
            rss as f64 / 1024.0
        )
    };
    let lines = [
        format!("{n} updates; store {:.0} MB", size("connected.db")),
        "| run | time | peak RSS | |".into(),
        "|---|---|---|---|".into(),
        row(
            "full sync of the catalog (baseline for import)",
            sync_s,
            sync_rss,
            String::new(),
        ),
        row(
            "reading the store once (baseline for export)",
            read_s,
            read_rss,
            String::new(),
        ),
        row(
            "full export, signed",
            exp_s,
            exp_rss,
            format!("{full_mb:.0} MB; {:.2}× reading the store", exp_s / read_s),
        ),
        row(
            "copying the full package once (read, write, flush; context)",
            copy_s,
            copy_rss,
            format!(
                "{:.2}× reading the store; export / (read + copy) = {:.2}",
                copy_s / read_s,
                exp_s / (read_s + copy_s)
            ),
        ),
        row(
            "full import into an empty site",
            imp_s,
            imp_rss,
            format!("{:.2}× the full sync", imp_s / sync_s),
        ),
        row(
            "delta sync after 1 % evolution",
            delta_s,
            delta_rss,
            String::new(),
        ),
        row(
            "incremental export",
            iexp_s,
            iexp_rss,
            format!(
                "{inc_mb:.1} MB = {:.2} % of the full package",
                100.0 * inc_mb / full_mb
            ),
        ),
        row(
            "incremental import",
            iimp_s,
            iimp_rss,
            format!("{:.1} % of the full import", 100.0 * iimp_s / imp_s),
        ),
    ];
    for l in &lines {
        println!("{l}");
    }
    std::fs::write(
        root.join(format!("package-results-{n}.md")),
        lines.join("\n") + "\n",
    )
    .unwrap();
}
