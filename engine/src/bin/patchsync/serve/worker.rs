//! The sync worker: one thread that owns the site's engine, runs one sync at a time (on
//! schedule, on request, or as a retry), and publishes progress and state.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use patchsync::{Config, Engine, SyncEvent, SyncOptions};
use serde::Serialize;

use super::messages::{self, Message};

/// What asks the worker for a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Schedule,
    Request { full: bool },
    Retry,
}

/// What the service knows about its site beyond the store.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ServiceState {
    pub running: bool,
    /// A request arrived during the running sync: one more sync follows (requests coalesce).
    pub queued: Option<bool>,
    pub next_run: Option<DateTime<Utc>>,
    /// Failed attempts in a row; a retry is due at `next_retry`.
    pub failed_attempts: u32,
    pub next_retry: Option<DateTime<Utc>>,
    /// The running sync's latest progress: (phase, done, total).
    pub progress: Option<(String, u64, u64)>,
    pub last_message: Option<Message>,
    #[serde(skip)]
    pub cancel: Option<Arc<AtomicBool>>,
    pub stopping: bool,
}

/// Shared between the worker, the scheduler and the HTTP handlers.
pub struct Shared {
    pub config: Config,
    /// Answers children's MS-WSUSSS calls from the store.
    pub upstream: patchsync::hierarchy::UpstreamServer,
    /// The children's status (`sites.json`).
    pub tree: Mutex<patchsync::hierarchy::SiteTree>,
    pub token: Option<String>,
    pub state: Mutex<ServiceState>,
    pub events: tokio::sync::broadcast::Sender<String>,
    pub requests: Mutex<std::sync::mpsc::Sender<Trigger>>,
}

impl Shared {
    pub fn publish(&self, m: Message) {
        let line = serde_json::to_string(&m).unwrap_or_default();
        if let Ok(mut s) = self.state.lock() {
            s.last_message = Some(m);
        }
        let _ = self.events.send(line);
    }
}

/// The worker's loop; returns when `stop` is set (or every sender is gone).
pub fn run(shared: Arc<Shared>, requests: Receiver<Trigger>, stop: Arc<AtomicBool>) {
    let svc = shared.config.service.clone();
    // From the history: when the last run started (the schedule counts from it) and when
    // the last success ended (staleness counts from it).
    let history = patchsync::store::Store::open_read_only(&shared.config.store_path)
        .and_then(|s| s.history(50))
        .unwrap_or_default();
    let time = |t: &str| {
        DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    let mut last_start = history.first().and_then(|r| time(&r.started));
    let mut last_success = history
        .iter()
        .find(|r| r.status == "succeeded")
        .and_then(|r| r.finished.as_deref().and_then(time));
    let mut alerts = super::alerts::Alerts::default();
    let service_start = Utc::now();
    let mut next_scheduled = svc.schedule.as_ref().map(|s| {
        if s.missed(last_start, Utc::now()) {
            Utc::now()
        } else {
            s.next_after(Utc::now(), last_start)
        }
    });
    let mut synced = last_synced(&shared);
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        alerts.check_stale(&shared, last_success, service_start);
        let retry_at = shared.state.lock().map(|s| s.next_retry).unwrap_or(None);
        let own = next_own_schedule(&shared.config, &synced, Utc::now());
        let due = [next_scheduled, retry_at, own].into_iter().flatten().min();
        if let Ok(mut s) = shared.state.lock() {
            s.next_run = due;
        }
        let wait = due
            .map(|d| (d - Utc::now()).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(Duration::from_secs(3600))
            .min(Duration::from_millis(500));
        let mut only: Option<Vec<String>> = None;
        let trigger = match requests.recv_timeout(wait) {
            Ok(t) => t,
            Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {
                let now = Utc::now();
                if retry_at.is_some_and(|r| r <= now) {
                    Trigger::Retry
                } else {
                    let site_due = next_scheduled.is_some_and(|n| n <= now);
                    let list = due_sources(&shared.config, &synced, site_due, now);
                    if list.is_empty() {
                        if site_due {
                            // Every source has a schedule of its own: nothing follows the site's.
                            next_scheduled =
                                svc.schedule.as_ref().map(|s| s.next_after(now, Some(now)));
                        }
                        continue;
                    }
                    only = Some(list);
                    Trigger::Schedule
                }
            }
        };
        let mut next = Some(trigger);
        while let Some(t) = next.take() {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let started = Utc::now();
            last_start = Some(started);
            let (ok, error, raised) = sync_once(&shared, t, only.take());
            super::hierarchy::after_sync(&shared, raised);
            synced = last_synced(&shared);
            if ok {
                last_success = Some(Utc::now());
            }
            if !shared.state.lock().map(|s| s.stopping).unwrap_or(true) {
                alerts.after_sync(&shared, ok, error);
            }
            if t == Trigger::Schedule || ok {
                next_scheduled = svc
                    .schedule
                    .as_ref()
                    .map(|s| s.next_after(Utc::now(), last_start));
            }
            let mut s = shared.state.lock().expect("state");
            if ok {
                s.failed_attempts = 0;
                s.next_retry = None;
            } else if !s.stopping {
                s.failed_attempts += 1;
                if s.failed_attempts <= svc.retry_attempts {
                    let at = Utc::now()
                        + chrono::Duration::from_std(svc.retry_delay).unwrap_or_default();
                    s.next_retry = Some(at);
                    drop(s);
                    shared.publish(messages::retry_scheduled(at, svc.retry_delay));
                    s = shared.state.lock().expect("state");
                } else {
                    s.next_retry = None;
                }
            }
            // The worker stays `running` from one queued sync to the next: a status read in
            // between never shows it idle with a sync still to come.
            next = s.queued.take().map(|full| Trigger::Request { full });
            if next.is_none() {
                s.running = false;
            }
        }
    }
}

/// When each source last synced successfully.
fn last_synced(shared: &Shared) -> HashMap<String, DateTime<Utc>> {
    patchsync::store::Store::open_read_only(&shared.config.store_path)
        .and_then(|s| s.sources_last_synced())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(name, t)| {
            DateTime::parse_from_rfc3339(&t)
                .ok()
                .map(|t| (name, t.with_timezone(&Utc)))
        })
        .collect()
}

/// The sources a scheduled sync takes now: those with a schedule of their own that fell
/// due since they last synced, and (when the site's schedule is due) the others.
pub fn due_sources(
    config: &Config,
    synced: &HashMap<String, DateTime<Utc>>,
    site_due: bool,
    now: DateTime<Utc>,
) -> Vec<String> {
    config
        .sources
        .iter()
        .filter(|s| match &s.schedule {
            Some(own) => own.missed(synced.get(&s.name).copied(), now),
            None => site_due,
        })
        .map(|s| s.name.clone())
        .collect()
}

/// When the next source with its own schedule falls due.
fn next_own_schedule(
    config: &Config,
    synced: &HashMap<String, DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    config
        .sources
        .iter()
        .filter_map(|s| {
            let own = s.schedule.as_ref()?;
            let last = synced.get(&s.name).copied();
            Some(if own.missed(last, now) {
                now
            } else {
                own.next_after(now, last)
            })
        })
        .min()
}

/// One sync (of the sources in `only`, or all): whether it succeeded, its error, and
/// whether it raised the catalog version.
fn sync_once(
    shared: &Arc<Shared>,
    trigger: Trigger,
    only: Option<Vec<String>>,
) -> (bool, Option<String>, bool) {
    let mut engine = match Engine::open(shared.config.clone()) {
        Ok(e) => e,
        Err(e) => {
            shared.publish(messages::failed(&e.to_string()));
            return (false, Some(e.to_string()), false);
        }
    };
    let cancel = engine.cancel_handle();
    {
        let mut s = shared.state.lock().expect("state");
        s.running = true;
        s.progress = None;
        s.cancel = Some(cancel.clone());
        if s.stopping {
            cancel.store(true, Ordering::Relaxed);
        }
    }
    // The maximum run time: a watchdog that stops this run.
    let done = Arc::new(AtomicBool::new(false));
    if let Some(max) = shared.config.service.max_run {
        let (cancel, done, shared) = (cancel.clone(), done.clone(), shared.clone());
        std::thread::spawn(move || {
            let end = std::time::Instant::now() + max;
            while std::time::Instant::now() < end {
                if done.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if !done.load(Ordering::Relaxed) {
                cancel.store(true, Ordering::Relaxed);
                shared.publish(messages::timed_out(max));
            }
        });
    }
    let full = matches!(trigger, Trigger::Request { full: true });
    let options = SyncOptions {
        full,
        ..Default::default()
    };
    let sh = shared.clone();
    let result = engine.sync_only(options, only.as_deref(), &mut |ev: &SyncEvent| {
        if let SyncEvent::Progress {
            phase, done, total, ..
        } = ev
            && let Ok(mut s) = sh.state.lock()
        {
            s.progress = Some((format!("{phase:?}").to_lowercase(), *done, *total));
        }
        if let Some(m) = messages::from_event(ev, trigger) {
            sh.publish(m);
        }
    });
    done.store(true, Ordering::Relaxed);
    {
        let mut s = shared.state.lock().expect("state");
        s.progress = None;
        s.cancel = None;
    }
    match result {
        Ok(r) => (true, None, r.changed()),
        Err(e) => (false, Some(e.to_string()), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_catalogs_sync_weekly_and_the_rest_with_the_site() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[site]\nname = \"S\"\nstore = \"s.db\"\n\
            [[source]]\nname = \"wsus\"\nkind = \"wsus-export\"\npath = \"a.cab\"\n\
            [[source]]\nname = \"hp\"\nkind = \"sdp-catalog\"\npath = \"hp.zip\"\n\
            [[source]]\nname = \"hourly\"\nkind = \"directory\"\npath = \"d\"\nschedule = \"every 1 hour\"\n\
            [service]\nschedule = \"daily at 03:30\"\n";
        let config = Config::parse(text, &dir.path().join("p.toml"), dir.path()).unwrap();
        let now = Utc::now();
        let ago = |h: i64| now - chrono::Duration::hours(h);
        // Never synced: everything with its own schedule is due; the rest with the site.
        assert_eq!(
            due_sources(&config, &HashMap::new(), false, now),
            ["hp", "hourly"]
        );
        assert_eq!(
            due_sources(&config, &HashMap::new(), true, now),
            ["wsus", "hp", "hourly"]
        );
        // Two days after the last sync: the site's daily run takes wsus and the hourly
        // source, not the vendor catalog (weekly).
        let synced: HashMap<String, DateTime<Utc>> = ["wsus", "hp", "hourly"]
            .iter()
            .map(|n| (n.to_string(), ago(48)))
            .collect();
        assert_eq!(due_sources(&config, &synced, true, now), ["wsus", "hourly"]);
        let synced: HashMap<String, DateTime<Utc>> = [("wsus", 48), ("hp", 8 * 24), ("hourly", 0)]
            .iter()
            .map(|(n, h)| (n.to_string(), ago(*h)))
            .collect();
        assert_eq!(due_sources(&config, &synced, false, now), ["hp"]);
        assert!(next_own_schedule(&config, &synced, now).unwrap() <= now);
    }
}
