//! Alerts: a failed sync, or no successful sync for `stale_after_hours`, raises an alert
//! once per incident (a webhook gets JSON, a command gets it on stdin); the next success
//! clears it and says so. Delivery runs on its own thread with bounded retries, so a
//! webhook that is down never holds up a sync.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::messages;
use super::worker::Shared;

/// Open incidents.
#[derive(Debug, Default)]
pub struct Alerts {
    failure: bool,
    stale: bool,
}

impl Alerts {
    /// After a sync: a failure raises (once), a success clears what is open.
    pub fn after_sync(&mut self, shared: &Arc<Shared>, ok: bool, error: Option<String>) {
        if ok {
            if self.failure || self.stale {
                self.failure = false;
                self.stale = false;
                send(shared, "resolved", "a sync succeeded again".into());
            }
        } else if !self.failure {
            self.failure = true;
            send(
                shared,
                "sync-failed",
                error.unwrap_or_else(|| "the sync failed".into()),
            );
        }
    }

    /// On every tick: no success for longer than the configured time raises (once).
    pub fn check_stale(
        &mut self,
        shared: &Arc<Shared>,
        last_success: Option<DateTime<Utc>>,
        since: DateTime<Utc>,
    ) {
        let Some(limit) = shared.config.service.stale_after else {
            return;
        };
        let reference = last_success.unwrap_or(since);
        let age = (Utc::now() - reference).to_std().unwrap_or_default();
        if age > limit && !self.stale {
            self.stale = true;
            send(
                shared,
                "stale",
                format!(
                    "no successful sync for {:.1} hours (limit: [service] stale_after_hours = {:.1})",
                    age.as_secs_f64() / 3600.0,
                    limit.as_secs_f64() / 3600.0
                ),
            );
        }
    }
}

fn send(shared: &Arc<Shared>, kind: &'static str, message: String) {
    let svc = &shared.config.service;
    if svc.alert_webhook.is_none() && svc.alert_command.is_none() {
        return;
    }
    let body = json!({
        "site": shared.config.site_name,
        "alert": kind,
        "message": message,
        "time": Utc::now().to_rfc3339(),
    });
    shared.publish(messages::alert(kind, &message));
    let shared = shared.clone();
    std::thread::spawn(move || {
        let svc = &shared.config.service;
        if let Some(url) = &svc.alert_webhook {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(10)))
                .build()
                .into();
            let mut last = String::new();
            let mut delivered = false;
            for attempt in 0..3u32 {
                if attempt > 0 {
                    std::thread::sleep(Duration::from_secs(1 << attempt));
                }
                match agent
                    .post(url)
                    .header("Content-Type", "application/json")
                    .send(body.to_string())
                {
                    Ok(_) => {
                        delivered = true;
                        break;
                    }
                    Err(e) => last = e.to_string(),
                }
            }
            if !delivered {
                shared.publish(messages::alert_undelivered(url, &last));
            }
        }
        if let Some(cmd) = &svc.alert_command {
            let run = Command::new("sh")
                .args(["-c", cmd])
                .env("PATCHSYNC_ALERT", kind)
                .env("PATCHSYNC_SITE", &shared.config.site_name)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .and_then(|mut child| {
                    if let Some(mut stdin) = child.stdin.take() {
                        let _ = stdin.write_all(body.to_string().as_bytes());
                    }
                    child.wait()
                });
            match run {
                Ok(status) if status.success() => {}
                Ok(status) => shared.publish(messages::alert_undelivered(
                    cmd,
                    &format!("exited with {status}"),
                )),
                Err(e) => shared.publish(messages::alert_undelivered(cmd, &e.to_string())),
            }
        }
    });
}
