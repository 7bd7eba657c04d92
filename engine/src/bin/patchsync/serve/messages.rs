//! Status messages: what the service publishes (progress stream, sync log, status), each
//! with a stable numeric id (the table is in `engine/docs/service.md`).

use chrono::{DateTime, Utc};
use patchsync::SyncEvent;
use serde::Serialize;

use super::worker::Trigger;

/// One status message.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub id: u32,
    pub kind: &'static str,
    pub time: String,
    pub text: String,
    /// The event's own fields (phase, counts, the report), as the engine gives them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

pub const STARTED: u32 = 6701;
pub const SOURCE_STARTED: u32 = 6702;
pub const PHASE: u32 = 6703;
pub const PROGRESS: u32 = 6704;
pub const SOURCE_DONE: u32 = 6705;
pub const WARNING: u32 = 6706;
pub const DONE: u32 = 6710;
pub const FAILED: u32 = 6711;
pub const RETRY: u32 = 6712;
pub const TIMED_OUT: u32 = 6713;
pub const QUEUED: u32 = 6714;
pub const ALERT: u32 = 6715;
pub const ALERT_UNDELIVERED: u32 = 6716;

fn msg(id: u32, kind: &'static str, text: String, detail: Option<serde_json::Value>) -> Message {
    Message {
        id,
        kind,
        time: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        text,
        detail,
    }
}

pub fn from_event(ev: &SyncEvent, trigger: Trigger) -> Option<Message> {
    let detail = serde_json::to_value(ev).ok();
    Some(match ev {
        SyncEvent::Started { site, full, .. } => msg(
            STARTED,
            "sync-started",
            format!(
                "sync of site {site} started ({}{})",
                match trigger {
                    Trigger::Schedule => "scheduled",
                    Trigger::Request { .. } => "requested",
                    Trigger::Retry => "retry",
                },
                if *full { ", full" } else { "" }
            ),
            detail,
        ),
        SyncEvent::SourceStarted { source } => msg(
            SOURCE_STARTED,
            "source-started",
            format!("source {source} started"),
            detail,
        ),
        SyncEvent::PhaseStarted { source, phase, .. } => msg(
            PHASE,
            "phase",
            format!("source {source}: {phase:?}"),
            detail,
        ),
        SyncEvent::Progress {
            source,
            phase,
            done,
            total,
        } => msg(
            PROGRESS,
            "progress",
            format!("source {source}: {phase:?} {done}/{total}"),
            detail,
        ),
        SyncEvent::SourceFinished { report } => msg(
            SOURCE_DONE,
            "source-done",
            format!("source {} {:?}", report.source, report.outcome),
            detail,
        ),
        SyncEvent::Warning { message, .. } => msg(WARNING, "warning", message.clone(), detail),
        SyncEvent::Finished { report } => msg(
            DONE,
            "done",
            format!(
                "sync done: catalog version {}, {} new, {} revised, {} expired, {} removed",
                report.catalog_version, report.new, report.revised, report.expired, report.removed
            ),
            detail,
        ),
        SyncEvent::Failed { message } => {
            msg(FAILED, "failed", format!("sync failed: {message}"), detail)
        }
        _ => return None,
    })
}

pub fn failed(text: &str) -> Message {
    msg(FAILED, "failed", format!("sync failed: {text}"), None)
}

pub fn retry_scheduled(at: DateTime<Utc>, delay: std::time::Duration) -> Message {
    msg(
        RETRY,
        "retry-scheduled",
        format!(
            "retry scheduled at {} (in {} minutes)",
            at.to_rfc3339(),
            delay.as_secs() / 60
        ),
        None,
    )
}

pub fn timed_out(max: std::time::Duration) -> Message {
    msg(
        TIMED_OUT,
        "timed-out",
        format!(
            "sync stopped: it ran longer than [service] max_run_minutes ({} s); its source was rolled back",
            max.as_secs()
        ),
        None,
    )
}

pub fn alert(kind: &str, message: &str) -> Message {
    msg(ALERT, "alert", format!("alert {kind}: {message}"), None)
}

pub fn alert_undelivered(target: &str, why: &str) -> Message {
    msg(
        ALERT_UNDELIVERED,
        "alert-undelivered",
        format!("the alert could not be delivered to {target} (3 attempts): {why}"),
        None,
    )
}

pub fn queued(coalesced: bool) -> Message {
    msg(
        QUEUED,
        "queued",
        if coalesced {
            "a sync is already queued; this request joins it".into()
        } else {
            "a sync is running; one more is queued to follow it".into()
        },
        None,
    )
}
