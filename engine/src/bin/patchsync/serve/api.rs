//! The HTTP API under `/api/v1`, `/metrics` and the status page (`engine/docs/service.md`).
//! Reads run on the blocking pool against a read-only store, so they never wait for a sync.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use patchsync::store::{Store, UpdateQuery};
use serde::Deserialize;
use serde_json::json;

use super::messages;
use super::worker::{Shared, Trigger};

/// Request bodies are small JSON objects.
const BODY_LIMIT: usize = 64 * 1024;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(super::page::page))
        .route("/metrics", get(metrics))
        .route("/api/v1/status", get(status))
        .route("/api/v1/history", get(history))
        .route("/api/v1/sync", post(trigger))
        .route("/api/v1/progress", get(progress))
        .route("/api/v1/updates", get(updates))
        .route("/api/v1/categories", get(categories))
        .route("/api/v1/log", get(log_tail))
        .route("/api/v1/hierarchy", get(super::hierarchy::tree))
        .route("/api/v1/hierarchy/notify", post(super::hierarchy::notify))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .merge(super::hierarchy::router())
        .fallback(super::hierarchy::any_case)
        .with_state(shared)
}

pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// Runs a store read on the blocking pool.
async fn read<T: serde::Serialize + Send + 'static>(
    shared: &Arc<Shared>,
    f: impl FnOnce(&Store, &Shared) -> patchsync::Result<T> + Send + 'static,
) -> Response {
    let shared = shared.clone();
    let result = tokio::task::spawn_blocking(move || {
        let store = Store::open_read_only(&shared.config.store_path)?;
        f(&store, &shared)
    })
    .await;
    match result {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    read(&shared, |store, shared| {
        let st = patchsync::status_of(store, &shared.config)?;
        let svc = shared.state.lock().map(|s| s.clone()).unwrap_or_default();
        let last_run = store.history(1)?.into_iter().next();
        let mut v = serde_json::to_value(st).unwrap_or_default();
        v["service"] = serde_json::to_value(&svc).unwrap_or_default();
        // The last run's counts and duration, as history has them.
        v["last_run"] = serde_json::to_value(&last_run).unwrap_or_default();
        Ok(v)
    })
    .await
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<usize>,
}

async fn history(State(shared): State<Arc<Shared>>, Query(q): Query<Limit>) -> Response {
    let limit = q.limit.unwrap_or(20).min(1000);
    read(&shared, move |store, _| store.history(limit)).await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TriggerBody {
    #[serde(default)]
    full: bool,
}

/// `Err` carries the refusal to send.
fn authorized(shared: &Shared, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let refuse = |status, message: String| Box::new(error(status, message));
    let Some(expected) = &shared.token else {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            format!(
                "this service has no token, so it takes no requests that change anything: set [service] token, or the {} variable",
                shared.config.service.token_env
            ),
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(t) if patchsync::hierarchy::server::same_secret(t.trim(), expected) => Ok(()),
        Some(_) => Err(refuse(StatusCode::UNAUTHORIZED, "wrong token".into())),
        None => Err(refuse(
            StatusCode::UNAUTHORIZED,
            "missing token: send `Authorization: Bearer <token>`".into(),
        )),
    }
}

async fn trigger(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(r) = authorized(&shared, &headers) {
        return *r;
    }
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            return error(
                e.status(),
                format!(
                    "{}; a request body is a small JSON object such as {{\"full\": true}}",
                    e.body_text()
                ),
            );
        }
    };
    let req: TriggerBody = if body.iter().all(u8::is_ascii_whitespace) {
        TriggerBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("the body is not valid: {e}; send {{\"full\": false}} or nothing"),
                );
            }
        }
    };
    let answer = match request_sync(&shared, req.full) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    (
        StatusCode::ACCEPTED,
        Json(json!({ "state": answer, "full": req.full })),
    )
        .into_response()
}

/// Starts a sync, or queues one behind the running sync (requests coalesce): `started`,
/// `queued` or `already-queued`.
pub fn request_sync(shared: &Shared, full: bool) -> Result<&'static str, Box<Response>> {
    let mut s = match shared.state.lock() {
        Ok(s) => s,
        Err(_) => {
            return Err(Box::new(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "state poisoned",
            )));
        }
    };
    if s.stopping {
        return Err(Box::new(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the service is stopping",
        )));
    }
    if s.running {
        let coalesced = s.queued.is_some();
        s.queued = Some(s.queued.unwrap_or(false) || full);
        drop(s);
        shared.publish(messages::queued(coalesced));
        Ok(if coalesced {
            "already-queued"
        } else {
            "queued"
        })
    } else {
        s.running = true;
        drop(s);
        let sent = shared
            .requests
            .lock()
            .map(|tx| tx.send(Trigger::Request { full }).is_ok())
            .unwrap_or(false);
        if !sent {
            return Err(Box::new(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the sync worker has stopped",
            )));
        }
        Ok("started")
    }
}

async fn progress(State(shared): State<Arc<Shared>>) -> Response {
    let rx = shared.events.subscribe();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(line) => {
                    return Some((
                        Ok::<_, std::convert::Infallible>(Event::default().data(line)),
                        rx,
                    ));
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[derive(Deserialize)]
struct UpdatesQuery {
    kb: Option<String>,
    product: Option<String>,
    classification: Option<String>,
    state: Option<String>,
    /// Categories and detectoids too (`patchsync updates --all-types`).
    #[serde(default)]
    all_types: bool,
    /// Bundled leaf updates too (`--leaves`).
    #[serde(default)]
    leaves: bool,
    limit: Option<usize>,
}

async fn updates(State(shared): State<Arc<Shared>>, Query(q): Query<UpdatesQuery>) -> Response {
    let limit = q.limit.unwrap_or(100).min(10_000);
    read(&shared, move |store, _| {
        let query = UpdateQuery {
            kb: q.kb,
            product: q.product,
            classification: q.classification,
            state: q.state,
            all_types: q.all_types,
            leaves: q.leaves,
        };
        let mut rows = store.updates(&query)?;
        rows.truncate(limit);
        Ok(rows)
    })
    .await
}

#[derive(Deserialize)]
struct KindQuery {
    kind: Option<String>,
}

async fn categories(State(shared): State<Arc<Shared>>, Query(q): Query<KindQuery>) -> Response {
    let kind = match q.kind.as_deref() {
        None => None,
        Some(k) => match patchsync::model::CategoryKind::parse(k) {
            Some(k) => Some(k),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "kind '{k}' is not Company, ProductFamily, Product or UpdateClassification"
                    ),
                );
            }
        },
    };
    read(&shared, move |store, _| store.categories(kind)).await
}

#[derive(Deserialize)]
struct LinesQuery {
    lines: Option<usize>,
}

async fn log_tail(State(shared): State<Arc<Shared>>, Query(q): Query<LinesQuery>) -> Response {
    let n = q.lines.unwrap_or(100).min(10_000);
    let path = shared.config.log_path.clone();
    let text =
        tokio::task::spawn_blocking(move || std::fs::read_to_string(path).unwrap_or_default())
            .await
            .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(n)..].to_vec();
    Json(json!({ "lines": tail })).into_response()
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let sh = shared.clone();
    let text = tokio::task::spawn_blocking(move || -> patchsync::Result<String> {
        let store = Store::open_read_only(&sh.config.store_path)?;
        let st = patchsync::status_of(&store, &sh.config)?;
        // Counted by the store; only the latest runs are read.
        let counts = store.run_counts()?;
        let hist = store.history(50)?;
        let site = sh.config.site_name.replace('"', "'");
        let mut out = String::new();
        out.push_str("# HELP patchsync_sync_runs_total Sync runs by outcome.\n# TYPE patchsync_sync_runs_total counter\n");
        for status in ["succeeded", "failed", "interrupted"] {
            let n = counts.get(status).copied().unwrap_or(0);
            out.push_str(&format!("patchsync_sync_runs_total{{site=\"{site}\",status=\"{status}\"}} {n}\n"));
        }
        let last = hist.iter().find(|r| r.finished.is_some());
        out.push_str("# TYPE patchsync_last_sync_duration_seconds gauge\n");
        out.push_str(&format!(
            "patchsync_last_sync_duration_seconds{{site=\"{site}\"}} {}\n",
            last.and_then(|r| r.duration_ms).unwrap_or(0) as f64 / 1000.0
        ));
        let ts = |t: &Option<String>| {
            t.as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.timestamp())
                .unwrap_or(0)
        };
        out.push_str("# TYPE patchsync_last_success_timestamp_seconds gauge\n");
        out.push_str(&format!("patchsync_last_success_timestamp_seconds{{site=\"{site}\"}} {}\n", ts(&st.last_success)));
        out.push_str("# TYPE patchsync_catalog_version gauge\n");
        out.push_str(&format!("patchsync_catalog_version{{site=\"{site}\"}} {}\n", st.catalog_version));
        out.push_str("# TYPE patchsync_updates_active gauge\n");
        out.push_str(&format!("patchsync_updates_active{{site=\"{site}\"}} {}\n", st.updates_active));
        let size = std::fs::metadata(&sh.config.store_path).map(|m| m.len()).unwrap_or(0);
        out.push_str("# TYPE patchsync_store_bytes gauge\n");
        out.push_str(&format!("patchsync_store_bytes{{site=\"{site}\"}} {size}\n"));
        let running = sh.state.lock().map(|s| s.running).unwrap_or(false);
        out.push_str("# TYPE patchsync_sync_running gauge\n");
        out.push_str(&format!("patchsync_sync_running{{site=\"{site}\"}} {}\n", u8::from(running)));
        Ok(out)
    })
    .await;
    match text {
        Ok(Ok(t)) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], t).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
