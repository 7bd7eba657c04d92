//! `patchsync serve` on loopback: the API's auth and errors, triggers that start, queue and
//! coalesce, `trigger --wait`, a schedule missed while down, SIGTERM and the maximum run
//! time (both roll the running source back), start-up errors.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Site, generated};
use crate::serving::{agent, free_port, get, start};

const TOKEN: &str = "correct-horse-battery";

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
    // "done" is published as the sync ends; the worker is idle a moment later.
    let s = wait_until(b, "the worker to be idle", idle);
    assert_eq!(s["catalog_version"], 1, "{s}");
    assert!(s["last_run"]["new"].as_u64().unwrap() > 3000, "{s}");
    assert!(s["last_run"]["duration_ms"].is_u64(), "{s}");
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
    let count = |q: &str| {
        get(b, &format!("/api/v1/updates?limit=10000{q}"))
            .1
            .as_array()
            .unwrap()
            .len()
    };
    assert!(count("&all_types=true") > count("") && count("&leaves=true") > count(""));
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
    assert_eq!(s["last_error_code"], 9, "{s}");
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

/// A webhook receiver on loopback: every request body it gets, in order.
struct Hook {
    url: String,
    bodies: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
}

fn hook() -> Hook {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let got = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut r = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; len];
            let _ = r.read_exact(&mut body);
            got.lock()
                .unwrap()
                .push(serde_json::from_slice(&body).unwrap_or_default());
            let _ = stream.write_all(
                b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    Hook { url, bodies }
}

#[test]
fn a_failure_alerts_once_and_the_next_success_clears_it() {
    let h = hook();
    let (site, port) = site(
        200,
        &format!(
            "retry_delay_minutes = 0\nretry_attempts = 2\nalert_webhook = \"{}\"\n",
            h.url
        ),
    );
    // The catalog is missing until later: every sync fails.
    let cab = site.path("catalog.cab");
    let kept = site.path("catalog.cab.away");
    std::fs::rename(&cab, &kept).unwrap();
    let svc = start(&site, port);
    assert_eq!(post(&svc.base, Some(TOKEN), "{}").1["state"], "started");
    // The request and two retries fail; one alert.
    wait_until(&svc.base, "three failed runs", |s| {
        idle(s) && s["service"]["failed_attempts"] == 3
    });
    let (_, hist) = get(&svc.base, "/api/v1/history");
    assert_eq!(hist.as_array().unwrap().len(), 3, "{hist}");
    std::thread::sleep(Duration::from_millis(500));
    {
        let got = h.bodies.lock().unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0]["alert"], "sync-failed");
        assert_eq!(got[0]["site"], "TST");
        assert!(
            got[0]["message"].as_str().unwrap().contains("catalog.cab"),
            "{got:?}"
        );
    }
    std::fs::rename(&kept, &cab).unwrap();
    assert_eq!(post(&svc.base, Some(TOKEN), "{}").1["state"], "started");
    wait_until(&svc.base, "the successful sync", |s| {
        idle(s) && s["state"] == "succeeded"
    });
    let end = Instant::now() + Duration::from_secs(10);
    while h.bodies.lock().unwrap().len() < 2 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    let got = h.bodies.lock().unwrap();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1]["alert"], "resolved");
}

#[test]
fn an_unreachable_webhook_does_not_hold_up_syncs() {
    let dead = format!("http://127.0.0.1:{}/hook", free_port());
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("alert.json");
    let (site, port) = site(
        200,
        &format!(
            "retry_attempts = 0\nalert_webhook = \"{dead}\"\nalert_command = \"cat > '{}'\"\n",
            out.display()
        ),
    );
    std::fs::remove_file(site.path("catalog.cab")).unwrap();
    let svc = start(&site, port);
    let t = Instant::now();
    assert_eq!(post(&svc.base, Some(TOKEN), "{}").1["state"], "started");
    wait_until(&svc.base, "the failed run", |s| {
        idle(s) && s["state"] == "failed"
    });
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "the failure waited for the webhook"
    );
    // The command got the alert as JSON on stdin, whatever the webhook did.
    let end = Instant::now() + Duration::from_secs(10);
    while !out.exists() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(100));
    let alert: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(alert["alert"], "sync-failed", "{alert}");
    // The service still answers while the webhook retries.
    assert_eq!(get(&svc.base, "/api/v1/status").0, 200);
}

/// Debian's Chromium, headless, driven over WebDriver (chromedriver): the page's scripts
/// run as in any browser, and the test reads the live DOM.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Option<Browser> {
        let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())?;
        let chromedriver = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())?;
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let base = format!("http://127.0.0.1:{port}");
        let end = Instant::now() + Duration::from_secs(20);
        while get(&base, "/status").0 != 200 {
            assert!(Instant::now() < end, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = serde_json::json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     format!("--user-data-dir={}", profile.path().display())]
        }}}});
        let mut r = agent()
            .post(&format!("{base}/session"))
            .send(caps.to_string())
            .ok()?;
        let v: serde_json::Value =
            serde_json::from_str(&r.body_mut().read_to_string().ok()?).ok()?;
        let session = v["value"]["sessionId"].as_str()?.to_owned();
        Some(Browser {
            driver,
            base,
            session,
            _profile: profile,
        })
    }

    fn call(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let mut r = agent()
            .post(&format!("{}/session/{}/{path}", self.base, self.session))
            .send(body.to_string())
            .unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        v["value"].clone()
    }

    fn open(&self, url: &str) {
        self.call("url", serde_json::json!({ "url": url }));
    }

    fn eval(&self, script: &str) -> serde_json::Value {
        self.call(
            "execute/sync",
            serde_json::json!({ "script": script, "args": [] }),
        )
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = agent()
            .delete(&format!("{}/session/{}", self.base, self.session))
            .call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[test]
fn the_status_page_in_a_browser_shows_the_site_and_a_moving_progress_bar() {
    let Some(browser) = Browser::start() else {
        assert!(
            std::env::var("CI").is_err(),
            "chromium and chromedriver are missing; .ci/run installs them"
        );
        eprintln!(
            "skipped: no chromium / chromedriver here (apt-get install chromium chromium-driver)"
        );
        return;
    };
    let (site, port) = site(20_000, "");
    let svc = start(&site, port);
    browser.open(&format!("{}/", svc.base));
    assert_eq!(
        browser.eval("return document.getElementById('site').textContent"),
        "TST"
    );
    assert_eq!(browser.eval("return document.title"), "patchsync: TST");

    // The page stays open while a full sync runs: its bar follows the progress stream.
    assert_eq!(
        post(&svc.base, Some(TOKEN), "{\"full\": true}").1["state"],
        "started"
    );
    let mut seen: Vec<(f64, String)> = Vec::new();
    let end = Instant::now() + Duration::from_secs(60);
    let moved = |seen: &[(f64, String)]| {
        seen.windows(2).any(|w| w[1].0 > w[0].0 && w[0].0 > 0.0)
            && seen.iter().any(|(_, t)| t.contains("Fetching"))
    };
    while !moved(&seen) && Instant::now() < end {
        let v = browser.eval(
            "return [document.getElementById('progress').value, document.getElementById('progress-text').textContent]",
        );
        seen.push((
            v[0].as_f64().unwrap_or(0.0),
            v[1].as_str().unwrap_or("").to_owned(),
        ));
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(moved(&seen), "the bar did not move: {seen:?}");
    // At the end the script shows the outcome.
    wait_until(&svc.base, "the sync's end", |s| {
        idle(s) && s["state"] == "succeeded"
    });
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let state = browser.eval("return document.getElementById('state').textContent");
        if state == "done" || state == "succeeded" {
            break;
        }
        assert!(
            Instant::now() < end,
            "the page did not show the end: {state}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn https_with_the_configured_certificate() {
    let (site, port) = site(300, "");
    let (cert, key) = (site.path("tls/cert.pem"), site.path("tls/key.pem"));
    // A missing key file is named at start.
    let mut t = std::fs::read_to_string(site.config_path()).unwrap();
    t.push_str("tls_cert = \"tls/cert.pem\"\ntls_key = \"tls/key.pem\"\n");
    std::fs::write(site.config_path(), &t).unwrap();
    let out = site.cli(&["serve"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("[service] tls_cert") && err.contains("cert.pem"),
        "{err}"
    );

    if !crate::serving::self_signed(&cert, &key) {
        return;
    }
    let mut child = crate::serving::spawn(&site, Stdio::null());
    let curl = |path: &str| {
        Command::new("curl")
            .args(["-s", "--max-time", "5", "--cacert"])
            .arg(&cert)
            .arg(format!("https://127.0.0.1:{port}{path}"))
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let end = Instant::now() + Duration::from_secs(30);
    while !curl("/api/v1/status").contains("catalog_version") {
        assert!(Instant::now() < end, "no HTTPS answer");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Plain HTTP gets nothing useful; the CLI trusts the configured certificate.
    assert_ne!(
        get(&format!("http://127.0.0.1:{port}"), "/api/v1/status").0,
        200
    );
    let out = site.cli(&["trigger", "--wait", "--token", TOKEN]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("[6710] sync done"), "{text}");
    assert!(curl("/api/v1/status").contains("\"catalog_version\":1"));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

#[test]
fn a_scheduled_run_takes_only_the_sources_that_are_due() {
    let Some(dell) =
        crate::common::shared_data("third-party/0e6cf4ac-2853-48aa-825b-8fe28206575f.sdp")
    else {
        return;
    };
    let (site, port) = site(200, "schedule = \"daily at 03:30\"\n");
    // A vendor catalog beside the generated one: weekly by default.
    let t = std::fs::read_to_string(site.config_path())
        .unwrap()
        .replace(
            "[filter]",
            &format!(
                "[[source]]\nname = \"dell\"\nkind = \"sdp-catalog\"\npath = {:?}\n\n[filter]",
                dell.display().to_string()
            ),
        );
    std::fs::write(site.config_path(), t).unwrap();
    // Never synced: the run at start takes both.
    let svc = start(&site, port);
    wait_until(&svc.base, "the first run", |s| {
        idle(s) && s["state"] == "succeeded"
    });
    drop(svc);
    let sources = |site: &Site| -> Vec<String> {
        let report: String = site.sql("SELECT report FROM sync_runs ORDER BY id DESC LIMIT 1");
        let v: serde_json::Value = serde_json::from_str(&report).unwrap();
        v["sources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["source"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(sources(&site), ["gen", "dell"]);
    // Two days later (as the store tells it): the daily run is due, the weekly one is not.
    let c = rusqlite::Connection::open(site.db()).unwrap();
    let two_days_ago = (chrono::Utc::now() - chrono::Duration::days(2)).to_rfc3339();
    c.execute("UPDATE sources SET last_synced = ?1", [&two_days_ago])
        .unwrap();
    c.execute(
        "UPDATE sync_runs SET started = ?1, finished = ?1",
        [&two_days_ago],
    )
    .unwrap();
    drop(c);
    let svc = start(&site, port);
    wait_until(&svc.base, "the missed daily run", |s| {
        idle(s)
            && s["last_sync_started"]
                .as_str()
                .is_some_and(|t| t > two_days_ago.as_str())
    });
    assert_eq!(sources(&site), ["gen"]);
}
