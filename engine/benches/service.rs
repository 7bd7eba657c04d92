//! Service benchmarks: status and history latency (p50 / p99) under concurrent readers on
//! loopback, idle and while a full sync of the generated catalog runs; idle CPU and memory
//! of `patchsync serve`.
//!
//! `cargo bench -p patchsync --bench service` (updates: `PATCHSYNC_BENCH_UPDATES`, default
//! 500000; readers: `PATCHSYNC_BENCH_READERS`, default 8).

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-token";

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

fn proc_field(pid: u32, file: &str, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Readers hit status and history until `stop`; latencies in ms per path.
fn load(base: &str, readers: usize, stop: Arc<AtomicBool>) -> (Vec<f64>, Vec<f64>) {
    let handles: Vec<_> = (0..readers)
        .map(|i| {
            let (base, stop) = (base.to_owned(), stop.clone());
            std::thread::spawn(move || {
                let a = agent();
                let (mut st, mut hi) = (Vec::new(), Vec::new());
                let mut k = i;
                while !stop.load(Ordering::Relaxed) {
                    let path = if k % 2 == 0 {
                        "/api/v1/status"
                    } else {
                        "/api/v1/history?limit=20"
                    };
                    let t = Instant::now();
                    let ok = a
                        .get(&format!("{base}{path}"))
                        .call()
                        .map(|mut r| r.body_mut().read_to_string().is_ok())
                        .unwrap_or(false);
                    let ms = t.elapsed().as_secs_f64() * 1000.0;
                    if ok {
                        if k % 2 == 0 { st.push(ms) } else { hi.push(ms) }
                    }
                    k += 1;
                }
                (st, hi)
            })
        })
        .collect();
    let (mut st, mut hi) = (Vec::new(), Vec::new());
    for h in handles {
        let (a, b) = h.join().unwrap();
        st.extend(a);
        hi.extend(b);
    }
    (st, hi)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = common::updates();
    let readers: usize = std::env::var("PATCHSYNC_BENCH_READERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let (root, cab, _) = common::catalogs(n);
    let dir = common::fresh_dir(&root, &format!("service-{n}"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        dir.join("patchsync.toml"),
        format!(
            "[site]\nname = \"BENCH\"\nstore = \"store.db\"\n[[source]]\nname = \"gen\"\nkind = \"wsus-export\"\npath = {:?}\n[filter]\nproducts = [\"*\"]\nclassifications = [\"*\"]\nlanguages = [\"en\", \"de\"]\n[service]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"{TOKEN}\"\n",
            cab.display().to_string()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_patchsync"))
        .arg("--config")
        .arg(dir.join("patchsync.toml"))
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let base = format!("http://127.0.0.1:{port}");
    while agent()
        .get(&format!("{base}/api/v1/status"))
        .call()
        .is_err()
    {
        std::thread::sleep(Duration::from_millis(100));
    }

    // Idle: CPU over 10 s, memory.
    let ticks = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(10));
    let idle_cpu = (cpu_ticks(pid) - ticks) as f64 / 100.0 / 10.0 * 100.0;
    let idle_rss = proc_field(pid, "status", "VmRSS:") as f64 / 1024.0;

    // Readers while idle, 5 s.
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let b2 = base.clone();
    let idle_load = std::thread::spawn(move || load(&b2, readers, s2));
    std::thread::sleep(Duration::from_secs(5));
    stop.store(true, Ordering::Relaxed);
    let (mut idle_st, mut idle_hi) = idle_load.join().unwrap();

    // Readers during a full sync.
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let b2 = base.clone();
    let r = agent()
        .post(&format!("{base}/api/v1/sync"))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .send("{\"full\": true}")
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let t = Instant::now();
    let busy_load = std::thread::spawn(move || load(&b2, readers, s2));
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let text = agent()
            .get(&format!("{base}/api/v1/status"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        if v["service"]["running"] == false && t.elapsed() > Duration::from_secs(2) {
            assert_eq!(v["state"], "succeeded", "{v}");
            break;
        }
    }
    let sync_s = t.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let (mut busy_st, mut busy_hi) = busy_load.join().unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();

    let row = |name: &str, v: &mut Vec<f64>| {
        format!(
            "| {name} | {} | {:.1} ms | {:.1} ms |",
            v.len(),
            percentile(v, 0.5),
            percentile(v, 0.99)
        )
    };
    let lines = [
        format!("{n} updates, {readers} concurrent readers on loopback; full sync {sync_s:.1} s"),
        format!("idle: {idle_cpu:.2} % CPU over 10 s, {idle_rss:.0} MB resident"),
        "| requests | count | p50 | p99 |".into(),
        "|---|---|---|---|".into(),
        row("status, idle", &mut idle_st),
        row("history, idle", &mut idle_hi),
        row("status, during the sync", &mut busy_st),
        row("history, during the sync", &mut busy_hi),
    ];
    for l in &lines {
        println!("{l}");
    }
    std::fs::write(
        root.join(format!("service-results-{n}.md")),
        lines.join("\n") + "\n",
    )
    .unwrap();
}
