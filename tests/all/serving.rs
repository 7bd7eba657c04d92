//! `patchsync serve` processes for tests: start one on a free loopback port, wait until it
//! answers, stop it when dropped; small JSON HTTP helpers.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Site, bin};

/// A `patchsync serve` process, stopped (SIGTERM, then kill) when dropped.
pub struct Service {
    pub child: Child,
    pub base: String,
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

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `patchsync serve` for the site, its stderr as given.
pub fn spawn(site: &Site, stderr: Stdio) -> Child {
    bin()
        .arg("--config")
        .arg(site.config_path())
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// Starts the site's service on `port` and waits until it answers.
pub fn start(site: &Site, port: u16) -> Service {
    let mut child = spawn(site, Stdio::piped());
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

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

pub fn get(base: &str, path: &str) -> (u16, serde_json::Value) {
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

/// Writes a self-signed certificate for 127.0.0.1 (openssl); `false` (test skipped) when
/// openssl is missing outside CI.
pub fn self_signed(cert: &std::path::Path, key: &std::path::Path) -> bool {
    std::fs::create_dir_all(cert.parent().unwrap()).unwrap();
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args([
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ])
        .arg("-keyout")
        .arg(key)
        .arg("-out")
        .arg(cert)
        .output();
    match made {
        Ok(o) if o.status.success() => true,
        _ => {
            assert!(
                std::env::var("CI").is_err(),
                "openssl is needed to make a test certificate"
            );
            eprintln!("skipped: no openssl to make a certificate");
            false
        }
    }
}
