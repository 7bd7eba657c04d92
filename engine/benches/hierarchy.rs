//! Hierarchy benchmarks over loopback: a child's full sync of the generated catalog from
//! its parent (MS-WSUSSS, `patchsync serve`) against the same catalog synced from the
//! local export package in the same run; then the time from the end of a top-level sync
//! with a 1 % change until both children and the grandchild hold it.
//!
//! `cargo bench -p patchsync --bench hierarchy` (updates: `PATCHSYNC_BENCH_UPDATES`,
//! default 500000).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-token";

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes `dir/patchsync.toml` for site `name` with this source, filter and children.
fn site(
    dir: &Path,
    name: &str,
    listen: u16,
    source: &str,
    filter: &str,
    children: &[(&str, u16)],
) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let mut t = format!(
        "[site]\nname = \"{name}\"\nstore = \"store.db\"\n{source}\n{filter}\n[service]\nlisten = \"127.0.0.1:{listen}\"\ntoken = \"{TOKEN}\"\n"
    );
    for (c, p) in children {
        t.push_str(&format!(
            "[[child]]\nname = \"{c}\"\nsecret = \"{c}-secret\"\nurl = \"http://127.0.0.1:{p}\"\n"
        ));
    }
    let path = dir.join("patchsync.toml");
    std::fs::write(&path, t).unwrap();
    path
}

fn upstream(parent: u16, name: &str) -> String {
    format!(
        "[[source]]\nname = \"parent\"\nkind = \"upstream\"\npath = \"http://127.0.0.1:{parent}/\"\nsecret = \"{name}-secret\"\n"
    )
}

/// `patchsync sync` of a site: its duration in seconds, as its report says (the
/// notifications and the status report that follow are not part of it).
fn cli_sync(config: &Path) -> f64 {
    let _ = Command::new("sync").status();
    let out = Command::new(env!("CARGO_BIN_EXE_patchsync"))
        .arg("--config")
        .arg(config)
        .args(["sync", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = r["duration_ms"].as_f64().unwrap() / 1000.0;
    eprintln!("{}: {} new in {s:.1} s", config.display(), r["new"]);
    s
}

fn serve(config: &Path, listen: u16) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_patchsync"))
        .arg("--config")
        .arg(config)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while status(listen).is_null() {
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

fn status(listen: u16) -> serde_json::Value {
    agent()
        .get(&format!("http://127.0.0.1:{listen}/api/v1/status"))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null)
}

fn idle(s: &serde_json::Value) -> bool {
    s["service"]["running"] == false && s["service"]["queued"].is_null()
}

/// A site's newest run, as its history has it.
fn last_run(listen: u16) -> serde_json::Value {
    let text = agent()
        .get(&format!("http://127.0.0.1:{listen}/api/v1/history?limit=1"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let h: serde_json::Value = serde_json::from_str(&text).unwrap();
    h[0].clone()
}

/// When the newest run of a site finished.
fn last_finished(listen: u16) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(last_run(listen)["finished"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc)
}

fn stop(mut c: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &c.id().to_string()])
        .status();
    let _ = c.wait();
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = common::updates();
    let (root, cab, next) = common::catalogs(n);
    let dir = common::fresh_dir(&root, &format!("hierarchy-{n}"));
    // The top-level site reads a link, re-pointed at the evolved catalog later.
    let link = dir.join("catalog.cab");
    std::os::unix::fs::symlink(&cab, &link).unwrap();
    let (p_top, p1, p2, p3) = (port(), port(), port(), port());
    let filter =
        "[filter]\nproducts = [\"*\"]\nclassifications = [\"*\"]\nlanguages = [\"en\", \"de\"]\n";
    let export = |path: &Path| {
        format!(
            "[[source]]\nname = \"gen\"\nkind = \"wsus-export\"\npath = {:?}\n",
            path.display().to_string()
        )
    };
    let top = site(
        &dir.join("top"),
        "CAS",
        p_top,
        &export(&link),
        filter,
        &[("PR1", p1), ("PR2", p2)],
    );
    let local = site(
        &dir.join("local"),
        "LOCAL",
        port(),
        &export(&cab),
        filter,
        &[],
    );
    let child_filter = "[filter]\nlanguages = [\"en\", \"de\"]\n";
    let pr1 = site(
        &dir.join("pr1"),
        "PR1",
        p1,
        &upstream(p_top, "PR1"),
        child_filter,
        &[("SEC1", p3)],
    );
    let pr2 = site(
        &dir.join("pr2"),
        "PR2",
        p2,
        &upstream(p_top, "PR2"),
        child_filter,
        &[],
    );
    let sec1 = site(
        &dir.join("sec1"),
        "SEC1",
        p3,
        &upstream(p1, "SEC1"),
        child_filter,
        &[],
    );

    let top_s = cli_sync(&top);
    let top_svc = serve(&top, p_top);
    // Local file against the network, alternating; the second child and the grandchild
    // (from the first child's service) are further network samples.
    let local_1 = cli_sync(&local);
    let net_1 = cli_sync(&pr1);
    let net_2 = cli_sync(&pr2);
    let local_2 = {
        let _ = std::fs::remove_file(dir.join("local/store.db"));
        cli_sync(&local)
    };
    let pr1_svc = serve(&pr1, p1);
    let grand = cli_sync(&sec1);
    let pr2_svc = serve(&pr2, p2);
    let sec1_svc = serve(&sec1, p3);
    for p in [p_top, p1, p2, p3] {
        while !idle(&status(p)) {
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    // Propagation of the 1 % evolution.
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&next, &link).unwrap();
    let before = status(p_top)["catalog_version"].as_u64().unwrap();
    let r = agent()
        .post(&format!("http://127.0.0.1:{p_top}/api/v1/sync"))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .send_empty()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let t = Instant::now();
    let digest = loop {
        let s = status(p_top);
        if s["catalog_version"].as_u64() > Some(before) && idle(&s) {
            break s["content_digest"].clone();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for p in [p1, p2, p3] {
        loop {
            let s = status(p);
            if s["content_digest"] == digest && idle(&s) {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(1800), "no propagation");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let top_end = last_finished(p_top);
    let ends: Vec<f64> = [p1, p2, p3]
        .iter()
        .map(|p| (last_finished(*p) - top_end).num_milliseconds() as f64 / 1000.0)
        .collect();
    let top_delta = last_run(p_top)["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0;
    for c in [sec1_svc, pr2_svc, pr1_svc, top_svc] {
        stop(c);
    }

    let local = common::median(vec![local_1, local_2]);
    let net = common::median(vec![net_1, net_2]);
    let lines = [
        format!("{n} updates; the top-level site's own full sync {top_s:.1} s"),
        "| run | time | |".into(),
        "|---|---|---|".into(),
        format!(
            "| full sync from the local export package (baseline) | {local_1:.1} s, {local_2:.1} s | |"
        ),
        format!(
            "| child's full sync from its parent over loopback | {net_1:.1} s, {net_2:.1} s | {:.2}× the local file (medians) |",
            net / local
        ),
        format!("| grandchild's full sync from the child's service | {grand:.1} s | |"),
        format!("| top-level delta sync (1 % change) | {top_delta:.1} s | |"),
        format!(
            "| from its end until PR1 / PR2 / SEC1 hold it | {:.1} s / {:.1} s / {:.1} s | all three within {:.1} s |",
            ends[0],
            ends[1],
            ends[2],
            ends.iter().cloned().fold(0.0, f64::max)
        ),
    ];
    let report = lines.join("\n");
    println!("{report}");
    std::fs::write(
        root.join(format!("hierarchy-results-{n}.md")),
        report + "\n",
    )
    .unwrap();
}
