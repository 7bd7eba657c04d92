//! What the child-process benches share: the generated catalogs, the child runner, peak RSS.
//! (Each bench uses some of it.)
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use patchsync::generate::{EvolveOptions, GenerateOptions, evolve, generate};

/// This process's peak resident set (`VmHWM`), in KiB.
pub fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// `target/bench/`, the generated catalog of `n` updates (seed 1) and its 1 % evolution
/// (seed 2), generated on first use and kept.
pub fn catalogs(n: usize) -> (PathBuf, PathBuf, PathBuf) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&root).unwrap();
    let cab = root.join(format!("catalog-{n}.cab"));
    let next = root.join(format!("catalog-{n}-next.cab"));
    if !cab.exists() || !next.exists() {
        let t = Instant::now();
        let options = GenerateOptions {
            updates: n,
            seed: 1,
            categories_from: None,
        };
        generate(&cab, &options).unwrap();
        let evolution = EvolveOptions {
            seed: 2,
            change_percent: 1.0,
        };
        evolve(&cab, &next, &evolution).unwrap();
        eprintln!(
            "generated {n}-update catalog and its 1 % evolution in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    (root, cab, next)
}

/// The number of updates: `PATCHSYNC_BENCH_UPDATES`, default 500,000.
pub fn updates() -> usize {
    std::env::var("PATCHSYNC_BENCH_UPDATES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500_000)
}

/// Runs this bench again as `--child MODE ARGS...` and reads back `seconds peak_rss_kb`.
pub fn run_child(mode: &str, args: &[&Path]) -> (f64, u64) {
    // Start each run with no dirty pages from the previous one (the runs write gigabytes;
    // the kernel's write-back would otherwise throttle whichever run comes next).
    let _ = Command::new("sync").status();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--child", mode])
        .args(args)
        .output()
        .expect("child");
    assert!(
        out.status.success(),
        "{mode} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace();
    (
        it.next().unwrap().parse().unwrap(),
        it.next().unwrap().parse().unwrap(),
    )
}

/// How this process was started: `Child(mode, paths)` when the bench runs itself as a
/// child (see [`run_child`]), `List` for `--list` (nothing to do), else `Parent`.
pub enum Role {
    Child(String, Vec<PathBuf>),
    List,
    Parent,
}

pub fn role() -> Role {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        return Role::Child(
            args[2].clone(),
            args[3..].iter().map(PathBuf::from).collect(),
        );
    }
    if args.iter().any(|a| a == "--list") {
        return Role::List;
    }
    Role::Parent
}

/// `root/name`, emptied.
pub fn fresh_dir(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The middle value.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs children `a` and `b` for `PATCHSYNC_BENCH_ROUNDS` rounds (default `default`),
/// alternating which goes first (this machine's run-to-run noise is ±15 %); their times.
pub fn alternating(a: &str, b: &str, default: usize, args: &[&Path]) -> (Vec<f64>, Vec<f64>) {
    let rounds: usize = std::env::var("PATCHSYNC_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let order = if round % 2 == 0 { [a, b] } else { [b, a] };
        for mode in order {
            let (s, _) = run_child(mode, args);
            if mode == a { ta.push(s) } else { tb.push(s) }
        }
    }
    (ta, tb)
}

/// What the filter stages see of the first `limit` software and driver updates of a
/// generated catalog (`metadata.txt` of its CAB).
pub fn views(cab: &Path, limit: usize) -> Vec<patchsync::filter::UpdateView> {
    use patchsync::model::UpdateType;
    let mut cabinet = cab::Cabinet::new(std::fs::File::open(cab).unwrap()).unwrap();
    let mut records = patchsync::source::RecordReader::new(std::io::BufReader::new(
        cabinet.read_file("metadata.txt").unwrap(),
    ));
    let mut out = Vec::new();
    while let Some(r) = records.next_record().unwrap() {
        let u = patchsync::xml::parse_update(&r.xml).unwrap();
        if matches!(u.update_type, UpdateType::Software | UpdateType::Driver) {
            out.push(patchsync::filter::UpdateView::of(&u, "gen"));
            if out.len() == limit {
                break;
            }
        }
    }
    out
}

/// A full sync into a new store `dir/MODE.db` with the config `config(store)` makes; prints
/// what it stored and excluded.
pub fn fresh_sync(mode: &str, dir: &Path, config: impl Fn(&str) -> patchsync::Config) {
    let store = format!("{mode}.db");
    let _ = std::fs::remove_file(dir.join(&store));
    let options = patchsync::SyncOptions {
        allow_mass_removal: true,
        ..Default::default()
    };
    let r = patchsync::Engine::open(config(&store))
        .unwrap()
        .sync(options, &mut |_| {})
        .expect("sync");
    eprintln!("{mode}: {} stored, {} excluded", r.new, r.excluded);
}
