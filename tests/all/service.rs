//! `patchsync serve` on loopback: the API's auth and errors, triggers that start, queue and
//! coalesce, `trigger --wait`, a schedule missed while down, SIGTERM and the maximum run
//! time (both roll the running source back), start-up errors.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Site, bin, generated};

const TOKEN: &str = "correct-horse-battery";

struct Service {
    child: Child,
    base: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A site over a generated catalog of `updates`, with `[service]` and `extra` lines.
fn site(updates: usize, extra: &str) -> (Site, u16) {
    let site = Site::new();
    let cab = generated(site.dir.path(), "catalog.cab", updates, 5);
    site.write_config(&[("gen", "wsus-export", &cab)], &["*"], &["*"], &["en"]);
    let port = free_port();
    let mut t = std::fs::read_to_string(site.config_path()).unwrap();
    t.push_str(&format!(
        "\n[service]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"{TOKEN}\"\n{extra}"
    ));
    std::fs::write(site.config_path(), t).unwrap();
    (site, port)
}

fn start(site: &Site, port: u16) -> Service {
    let mut child = bin()
        .arg("--config")
        .arg(site.config_path())
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("serve exited with {status}: {err}");
        }
        if get(&base, "/api/v1/status").0 == 200 {
            return Service { child, base };
        }
        assert!(Instant::now() < end, "serve did not answer");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

fn get(base: &str, path: &str) -> (u16, serde_json::Value) {
    match agent().get(&format!("{base}{path}")).call() {
        Ok(mut r) => {
            let code = r.status().as_u16();
            let text = r.body_mut().read_to_string().unwrap_or_default();
            (
                code,
                serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
            )
        }
        Err(_) => (0, serde_json::Value::Null),
    }
}

fn post(base: &str, token: Option<&str>, body: &str) -> (u16, serde_json::Value) {
    let mut req = agent()
        .post(&format!("{base}/api/v1/sync"))
        .header("Content-Type", "application/json");
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    let mut r = req.send(body.to_owned()).unwrap();
    let code = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    (code, serde_json::from_str(&text).unwrap_or_default())
}

/// Polls the status until `done` says so.
fn wait_until(
    base: &str,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let end = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, s) = get(base, "/api/v1/status");
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}: {s}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn idle(s: &serde_json::Value) -> bool {
    s["service"]["running"] == false && s["service"]["queued"].is_null()
}

#[test]
fn the_api_refuses_without_the_token_and_says_why() {
    let (site, port) = site(300, "");
    let svc = start(&site, port);
    let b = &svc.base;
    let (code, body) = post(b, None, "{}");
    assert_eq!(code, 401);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer"),
        "{body}"
    );
    assert_eq!(post(b, Some("wrong"), "{}").0, 401);
    let (code, body) = post(b, Some(TOKEN), "{\"full\": tru");
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("not valid"),
        "{body}"
    );
    assert_eq!(post(b, Some(TOKEN), "{\"fulll\": true}").0, 400);
    let big = format!("{{\"full\": true, \"pad\": \"{}\"}}", "x".repeat(100_000));
    let (code, body) = post(b, Some(TOKEN), &big);
    assert_eq!(code, 413, "{body}");
    assert!(body["error"].is_string(), "{body}");
    // Nothing of that started a sync.
    let (_, h) = get(b, "/api/v1/history");
    assert_eq!(h.as_array().unwrap().len(), 0, "{h}");
    let (code, body) = get(b, "/api/v1/categories?kind=Bogus");
    assert_eq!(code, 400, "{body}");
    // The page and the metrics answer without a token.
    let page = agent()
        .get(&format!("{b}/"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(
        page.contains("Site <span id=\"site\">TST</span>") && page.contains("<progress"),
        "{page}"
    );
    let metrics = agent()
        .get(&format!("{b}/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(
        metrics.contains("patchsync_catalog_version{site=\"TST\"} 0"),
        "{metrics}"
    );
}

#[test]
fn triggers_start_queue_and_coalesce_and_wait_follows_to_the_end() {
    let (site, port) = site(3000, "");
    let svc = start(&site, port);
    let b = &svc.base;
    let out = site.cli(&["trigger", "--wait", "--token", TOKEN]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("sync started")
            && text.contains("[6701]")
            && text.contains("[6710] sync done: catalog version 1"),
        "{text}"
    );
    let (_, s) = get(b, "/api/v1/status");
    assert_eq!(s["catalog_version"], 1, "{s}");
    assert_eq!(s["state"], "succeeded", "{s}");

    // A full sync, then two more requests while it runs: one queued, one joining it.
    assert_eq!(
        post(b, Some(TOKEN), "{\"full\": true}").1["state"],
        "started"
    );
    assert_eq!(post(b, Some(TOKEN), "").1["state"], "queued");
    assert_eq!(post(b, Some(TOKEN), "{}").1["state"], "already-queued");
    wait_until(b, "the queued sync", |s| {
        idle(s) && s["last_sync_finished"].is_string()
    });
    let (_, h) = get(b, "/api/v1/history?limit=10");
    let runs = h.as_array().unwrap();
    assert_eq!(runs.len(), 3, "{h}");
    assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{h}");
    let (_, u) = get(
        b,
        "/api/v1/updates?limit=5&classification=Security%20Updates",
    );
    assert_eq!(u.as_array().unwrap().len(), 5, "{u}");
    let (_, log) = get(b, "/api/v1/log?lines=5");
    assert_eq!(log["lines"].as_array().unwrap().len(), 5, "{log}");
}

#[test]
fn a_schedule_missed_while_down_runs_at_start() {
    let (site, port) = site(
        300,
        "schedule = \"weekly on Sunday at 02:00\"\ntimezone = \"Europe/Berlin\"\n",
    );
    let svc = start(&site, port);
    let s = wait_until(&svc.base, "the missed sync", |s| s["state"] == "succeeded");
    assert_eq!(s["catalog_version"], 1);
    let next = s["service"]["next_run"].as_str().unwrap();
    let next = chrono::DateTime::parse_from_rfc3339(next).unwrap();
    use chrono::{Datelike, Timelike};
    let berlin = next.with_timezone(&chrono_tz::Europe::Berlin);
    assert_eq!(
        (berlin.weekday(), berlin.hour(), berlin.minute()),
        (chrono::Weekday::Sun, 2, 0),
        "{s}"
    );
}

#[test]
fn sigterm_and_the_maximum_run_time_stop_a_sync_and_roll_it_back() {
    // The maximum run time: 0.3 s, far less than a full sync of this catalog takes.
    let (site, port) = site(20_000, "max_run_minutes = 0.005\n");
    let svc = start(&site, port);
    let before = site.snapshot();
    assert_eq!(post(&svc.base, Some(TOKEN), "{}").1["state"], "started");
    let s = wait_until(&svc.base, "the stopped sync", |s| {
        idle(s) && s["state"] != "idle" && s["state"] != "running"
    });
    assert_eq!(s["state"], "failed", "{s}");
    assert!(
        s["last_error"].as_str().unwrap().contains("cancelled"),
        "{s}"
    );
    assert_eq!(
        s["service"]["last_message"]["id"]
            .as_u64()
            .map(|i| i == 6711 || i == 6712 || i == 6713),
        Some(true),
        "{s}"
    );
    assert_eq!(site.snapshot(), before, "a stopped sync changed the store");
    drop(svc);

    // SIGTERM during a sync: the process ends, the source is rolled back.
    let t = std::fs::read_to_string(site.config_path())
        .unwrap()
        .replace("max_run_minutes = 0.005\n", "");
    std::fs::write(site.config_path(), t).unwrap();
    let mut svc = start(&site, port);
    assert_eq!(
        post(&svc.base, Some(TOKEN), "{\"full\": true}").1["state"],
        "started"
    );
    // Well inside the sync: it is fetching.
    wait_until(&svc.base, "the sync's progress", |s| {
        !s["service"]["progress"].is_null()
    });
    Command::new("kill")
        .args(["-TERM", &svc.child.id().to_string()])
        .status()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = svc.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < end, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    assert_eq!(
        site.snapshot(),
        before,
        "SIGTERM left part of a sync behind"
    );
    site.engine().store().integrity_check().unwrap();
}

#[test]
fn start_up_errors_name_the_problem() {
    let (site, port) = site(10, "schedule = \"weekly on Funday at 02:00\"\n");
    let out = site.cli(&["serve"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("patchsync.toml:")
            && err.contains("[service] schedule")
            && err.contains("daily at 03:30"),
        "{err}"
    );
    let t = std::fs::read_to_string(site.config_path())
        .unwrap()
        .replace(
            "schedule = \"weekly on Funday at 02:00\"\n",
            "schedule = \"daily at 03:30\"\ntimezone = \"Mars/Olympus\"\n",
        );
    std::fs::write(site.config_path(), &t).unwrap();
    let err = String::from_utf8_lossy(&site.cli(&["serve"]).stderr).to_string();
    assert!(
        err.contains("[service] timezone") && err.contains("IANA"),
        "{err}"
    );
    // The port is taken.
    let t = t.replace("timezone = \"Mars/Olympus\"\n", "");
    std::fs::write(site.config_path(), &t).unwrap();
    let _taken = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let out = site.cli(&["serve"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
}
