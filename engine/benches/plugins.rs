//! Plugin benchmarks: a full sync of the generated catalog with and without the
//! severity-filter WebAssembly plugin after the built-in selection, alternating, each in a
//! child process; what one update costs in a stage (built-in selection, the WebAssembly
//! plugin, the native example), in batches of 2,048 as the sync calls them; and loading a
//! component cold (compiled) and warm (from the site's compile cache, in a new process).
//!
//! `cargo bench -p patchsync --bench plugins` (updates: `PATCHSYNC_BENCH_UPDATES`, default
//! 500000; the catalogs are the sync bench's, kept in `target/bench/`). Builds the plugins
//! into `target/plugins` first (needs `rustup target add wasm32-wasip2`).

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use patchsync::Config;
use patchsync::filter::{
    CategoryTree, Pick, ProductClassificationFilter, UpdateFilter, UpdateView,
};
use patchsync::plugin::{Manifest, OnFailure, PluginUse};
use sha2::{Digest, Sha256};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn build_plugins() -> PathBuf {
    let dir = root().join("target/plugins");
    for args in [
        &[
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "-p",
            "severity-filter",
        ][..],
        &["build", "--release", "-p", "native-example"][..],
    ] {
        let ok = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
            .current_dir(root())
            .args(args)
            .arg("--target-dir")
            .arg(&dir)
            .status()
            .expect("cargo")
            .success();
        assert!(ok, "building the plugins failed");
    }
    dir
}

/// Writes a manifest for `code` in `dir`.
fn manifest(dir: &Path, name: &str, code: &Path, fields: &str, config: &str) -> PathBuf {
    let digest: String = Sha256::digest(std::fs::read(code).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let key = if code.extension().is_some_and(|e| e == "wasm") {
        "wasm"
    } else {
        "library"
    };
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(
        &p,
        format!(
            "name = {name:?}\nversion = \"0.1.0\"\nkind = \"filter\"\nwit = \"0.1.0\"\n{key} = {:?}\nsha256 = {digest:?}\n{fields}\n[limits]\ncall_seconds = 60\n[config]\n{config}\n",
            code.display().to_string()
        ),
    )
    .unwrap();
    p
}

fn config(dir: &Path, cab: &Path, store: &str, plugin: bool) -> Config {
    let plugin = if plugin {
        "[[plugin]]\nmanifest = \"severity.toml\"\n"
    } else {
        ""
    };
    let text = format!(
        "[site]\nname = \"BENCH\"\nstore = \"{store}\"\n[[source]]\nname = \"gen\"\nkind = \"wsus-export\"\npath = {:?}\n[filter]\nproducts = [\"*\"]\nclassifications = [\"*\"]\nlanguages = [\"en\", \"de\"]\n{plugin}",
        cab.display().to_string()
    );
    Config::parse(&text, &dir.join("patchsync.toml"), dir).expect("bench config")
}

/// ns per update for `stage` over `views`, in batches of 2,048 (best of 3 passes).
fn per_update(stage: &mut dyn UpdateFilter, tree: &CategoryTree, views: &[UpdateView]) -> f64 {
    stage.prepare(tree).expect("prepare");
    let mut best = f64::MAX;
    let mut out = Vec::with_capacity(2048);
    for _ in 0..3 {
        let t = Instant::now();
        for chunk in views.chunks(2048) {
            out.clear();
            stage.evaluate(tree, chunk, &mut out).expect("evaluate");
        }
        best = best.min(t.elapsed().as_nanos() as f64 / views.len() as f64);
    }
    best
}

fn load(dir: &Path, name: &str) -> PluginUse {
    PluginUse::new(
        Manifest::load(&dir.join(format!("{name}.toml"))).unwrap(),
        None,
        Some(OnFailure::Abort),
    )
}

fn child(mode: &str, dir: &Path, cab: &Path) {
    let t = Instant::now();
    match mode {
        "plain" | "plugin" => {
            common::fresh_sync(mode, dir, |store| config(dir, cab, store, mode == "plugin"))
        }
        "load" => {
            let u = load(dir, "severity");
            let t = Instant::now();
            patchsync::plugin::start_filter(&u, Some(&dir.join("plugin-cache"))).unwrap();
            println!("{} 0", t.elapsed().as_secs_f64() * 1000.0);
            return;
        }
        "eval-builtin" | "eval-wasm-all" | "eval-wasm" | "eval-native" => {
            let c = rusqlite::Connection::open(dir.join("plain.db")).unwrap();
            let tree = patchsync::store::load_category_tree(&c).unwrap();
            let views = common::views(cab, 200_000);
            let mut stage: Box<dyn UpdateFilter> = match mode {
                "eval-builtin" => Box::new(ProductClassificationFilter::new(Pick::All, Pick::All)),
                "eval-wasm-all" => {
                    patchsync::plugin::start_filter(&load(dir, "severity-all"), None).unwrap()
                }
                "eval-wasm" => {
                    patchsync::plugin::start_filter(&load(dir, "severity"), None).unwrap()
                }
                _ => patchsync::plugin::start_filter(&load(dir, "kb-block"), None).unwrap(),
            };
            let ns = per_update(stage.as_mut(), &tree, &views);
            eprintln!("{mode}: {} updates", views.len());
            println!("{ns} 0");
            return;
        }
        other => panic!("unknown mode {other}"),
    }
    println!("{} {}", t.elapsed().as_secs_f64(), common::peak_rss_kb());
}

fn main() {
    match common::role() {
        common::Role::Child(mode, p) => return child(&mode, &p[0], &p[1]),
        common::Role::List => return,
        common::Role::Parent => {}
    }
    let built = build_plugins();
    let n = common::updates();
    let (root, cab, _) = common::catalogs(n);
    let dir = common::fresh_dir(&root, &format!("plugins-{n}"));
    let severity =
        "minimum = \"Important\"\nper_classification = { \"Critical Updates\" = \"Critical\" }";
    let wasm = built.join("wasm32-wasip2/release/severity_filter.wasm");
    let fields = "fields = [\"categories\", \"msrc_severity\"]";
    manifest(&dir, "severity", &wasm, fields, severity);
    manifest(&dir, "severity-all", &wasm, "", severity);
    manifest(
        &dir,
        "kb-block",
        &built.join("release/libnative_example.so"),
        "fields = [\"kb_articles\"]",
        "blocked_kbs = [\"5034441\"]",
    );
    let (plain, plugged) = common::alternating("plain", "plugin", 2, &[&dir, &cab]);
    let rounds = plain.len();
    let _ = std::fs::remove_dir_all(dir.join("plugin-cache"));
    let (cold_ms, _) = common::run_child("load", &[&dir, &cab]);
    let (warm_ms, _) = common::run_child("load", &[&dir, &cab]);
    let (builtin_ns, _) = common::run_child("eval-builtin", &[&dir, &cab]);
    let (wasm_all_ns, _) = common::run_child("eval-wasm-all", &[&dir, &cab]);
    let (wasm_ns, _) = common::run_child("eval-wasm", &[&dir, &cab]);
    let (native_ns, _) = common::run_child("eval-native", &[&dir, &cab]);

    let (p, w) = (
        common::median(plain.clone()),
        common::median(plugged.clone()),
    );
    let lines = [
        format!(
            "{n} updates, severity-filter (WebAssembly) after the built-in selection; {rounds} alternating rounds"
        ),
        "| run | time | |".into(),
        "|---|---|---|".into(),
        format!("| full sync, built-in selection only | {p:.2} s (runs: {plain:.1?}) | |"),
        format!(
            "| full sync with the severity-filter plugin | {w:.2} s (runs: {plugged:.1?}) | {:+.1} % |",
            100.0 * (w - p) / p
        ),
        format!("| built-in selection alone, in memory | {builtin_ns:.0} ns per update | |"),
        format!(
            "| severity-filter (WebAssembly), every field, batches of 2,048 | {wasm_all_ns:.0} ns per update | {:.2} s for the catalog |",
            wasm_all_ns * n as f64 / 1e9
        ),
        format!(
            "| severity-filter (WebAssembly), the 2 fields it declares | {wasm_ns:.0} ns per update | {:.2} s for the catalog |",
            wasm_ns * n as f64 / 1e9
        ),
        format!(
            "| native example (C ABI, JSON batches of 2,048) | {native_ns:.0} ns per update | {:.2} s for the catalog |",
            native_ns * n as f64 / 1e9
        ),
        format!("| loading the component: compile (cold cache) | {cold_ms:.0} ms | |"),
        format!(
            "| loading the component: from the compile cache, new process | {warm_ms:.0} ms | {:.0}× faster |",
            cold_ms / warm_ms
        ),
    ];
    for l in &lines {
        println!("{l}");
    }
    std::fs::write(
        root.join(format!("plugins-results-{n}.md")),
        lines.join("\n") + "\n",
    )
    .unwrap();
}
