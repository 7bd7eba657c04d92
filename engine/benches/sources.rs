//! Source benchmarks: HP's real vendor catalog (full sync, unchanged re-sync, and the raw
//! cost of inflating and tokenizing its XML as the floor), and a generated offline scan file
//! against the WSUS export the same generator writes (full sync, per update).
//!
//! `cargo bench -p patchsync --bench sources` (offline size: `PATCHSYNC_BENCH_OFFLINE`,
//! default 200000 update revisions).

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use patchsync::generate::{GenerateOptions, generate, generate_offline};
use patchsync::{Config, Engine, SyncOptions};

fn site(dir: &Path, kind: &str, path: &Path) -> Config {
    let text = format!(
        "[site]\nname = \"BENCH\"\nstore = \"store.db\"\n[[source]]\nname = \"src\"\nkind = {kind:?}\npath = {:?}\n[filter]\nproducts = [\"*\"]\nclassifications = [\"*\"]\nlanguages = [\"en\"]\n",
        path.display().to_string()
    );
    Config::parse(&text, &dir.join("patchsync.toml"), dir).expect("bench config")
}

fn sync(cfg: &Config) -> (f64, patchsync::SyncReport) {
    let t = Instant::now();
    let r = Engine::open(cfg.clone())
        .expect("open")
        .sync(SyncOptions::default(), &mut |_| {})
        .expect("sync");
    (t.elapsed().as_secs_f64(), r)
}

/// CPU seconds (user + system) this process has used so far, all threads.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15; after the ")" they are the 12th and 13th.
    (ticks(11) + ticks(12)) / 100.0
}

fn hp(zip: &Path) {
    // Floor: inflate the 15.7 MB document and walk every XML event, nothing else.
    let mut raw = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let mut z = zip::ZipArchive::new(std::fs::File::open(zip).unwrap()).unwrap();
        let mut text = Vec::new();
        z.by_index(0).unwrap().read_to_end(&mut text).unwrap();
        let mut reader = quick_xml::Reader::from_reader(&text[..]);
        let mut buf = Vec::new();
        let mut events = 0u64;
        loop {
            match reader.read_event_into(&mut buf).unwrap() {
                quick_xml::events::Event::Eof => break,
                _ => events += 1,
            }
            buf.clear();
        }
        assert!(events > 100_000);
        raw.push(t.elapsed().as_secs_f64());
    }
    let mut full = Vec::new();
    let mut unchanged = Vec::new();
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let cfg = site(dir.path(), "sdp-catalog", zip);
        let (t, r) = sync(&cfg);
        assert_eq!(r.updates, 1829);
        full.push(t);
        for _ in 0..4 {
            let (t, r) = sync(&cfg);
            assert_eq!(r.sources[0].fetched, 0);
            unchanged.push(t);
        }
    }
    println!(
        "hp: raw inflate + XML walk {:.3} s; full sync {:.3} s (median of 5; min {:.3}, max {:.3}); unchanged re-sync {:.1} ms (median of 20)",
        common::median(raw),
        common::median(full.clone()),
        full.iter().cloned().fold(f64::MAX, f64::min),
        full.iter().cloned().fold(0.0, f64::max),
        common::median(unchanged) * 1000.0
    );
}

fn offline(n: usize) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    let opts = GenerateOptions {
        updates: n,
        seed: 1,
        categories_from: None,
    };
    let export = dir.join(format!("sources-export-{n}.cab"));
    let scan = dir.join(format!("sources-wsusscn2-{n}.cab"));
    if !export.exists() {
        generate(&export, &opts).unwrap();
    }
    if !scan.exists() {
        generate_offline(&scan, &opts).unwrap();
    }
    let mb = |p: &Path| std::fs::metadata(p).unwrap().len() as f64 / 1e6;
    // The source alone: list, then fetch everything into a sink that only counts.
    for (kind, path) in [("wsus-export", &export), ("wsusscn2", &scan)] {
        let cfg = site(&dir, kind, path);
        let mut src = patchsync::source::open_configured(&cfg.sources[0]);
        let t = Instant::now();
        src.fingerprint().unwrap();
        let listing = src.list().unwrap();
        let listed = t.elapsed().as_secs_f64();
        let wanted: std::collections::HashSet<_> = listing.entries.iter().copied().collect();
        let mut n = 0u64;
        src.fetch(&wanted, &mut |f| {
            if let patchsync::source::Fetched::Update { update, .. } = f {
                n += 1;
                std::hint::black_box(update);
            }
            Ok(())
        })
        .unwrap();
        println!(
            "{kind}: source alone (no store): list {listed:.2} s, list + fetch {:.2} s for {n} updates",
            t.elapsed().as_secs_f64()
        );
    }
    // Full syncs, alternating which source goes first, five rounds: the machine's noise
    // is large, so compare medians measured in the same run.
    let mut times: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    let mut cpu: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    for round in 0..5 {
        let mut order = [("wsus-export", &export), ("wsusscn2", &scan)];
        if round % 2 == 1 {
            order.reverse();
        }
        for (kind, path) in order {
            let run = tempfile::tempdir_in(&dir).unwrap();
            let _ = std::process::Command::new("sync").status();
            let c0 = cpu_seconds();
            let (t, r) = sync(&site(run.path(), kind, path));
            let c = cpu_seconds() - c0;
            assert_eq!(r.new as usize, n + 53);
            println!(
                "{kind} (round {round}): {n} update revisions ({:.0} MB file): full sync {t:.2} s ({c:.1} s CPU), {:.1} µs per update; phases {:?}",
                mb(path),
                t * 1e6 / r.new as f64,
                r.sources[0].phases
            );
            times.entry(kind).or_default().push(t);
            cpu.entry(kind).or_default().push(c);
        }
    }
    let export_t = common::median(times["wsus-export"].clone());
    let scan_t = common::median(times["wsusscn2"].clone());
    println!(
        "median full sync: wsus-export {export_t:.2} s ({:.1} µs/update), wsusscn2 {scan_t:.2} s ({:.1} µs/update); wsusscn2 / wsus-export = {:.2}",
        export_t * 1e6 / n as f64,
        scan_t * 1e6 / n as f64,
        scan_t / export_t
    );
    let export_c = common::median(cpu["wsus-export"].clone());
    let scan_c = common::median(cpu["wsusscn2"].clone());
    println!(
        "median CPU (user + system, both threads): wsus-export {export_c:.1} s, wsusscn2 {scan_c:.1} s; wsusscn2 / wsus-export = {:.2}",
        scan_c / export_c
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let zip = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/third-party/HpCatalogForSms.zip");
    if zip.exists() {
        hp(&zip);
    } else {
        println!("hp: skipped ({} not found)", zip.display());
    }
    let n = std::env::var("PATCHSYNC_BENCH_OFFLINE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    offline(n);
}
