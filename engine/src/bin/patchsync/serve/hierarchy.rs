//! The hierarchy in service mode (`engine/docs/hierarchy.md`): the MS-WSUSSS endpoints a
//! child syncs from, the status children report, the notifications a parent sends after a
//! sync that changed its catalog, and this site's own report to its parent.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::Utc;
use patchsync::hierarchy::server::{basic_credentials, same_secret};
use patchsync::hierarchy::{LinkEvent, Service, SiteView};
use patchsync::store::Store;
use serde_json::json;

use super::api::error;
use super::worker::Shared;

/// A GetRevisionIdList names every product; a report carries a subtree.
const SOAP_BODY_LIMIT: usize = 16 << 20;

pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            &format!("/{}", patchsync::hierarchy::server::SYNC_SERVICE_PATH),
            post(server_sync),
        )
        .route(
            &format!("/{}", patchsync::hierarchy::server::AUTH_SERVICE_PATH),
            post(dss_auth),
        )
        .route("/api/v1/hierarchy/report", post(report))
        .layer(DefaultBodyLimit::max(SOAP_BODY_LIMIT))
}

/// IIS matches paths in any case; so does this (the specification's samples vary).
pub async fn any_case(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().trim_start_matches('/').to_ascii_lowercase();
    let sync = patchsync::hierarchy::server::SYNC_SERVICE_PATH.to_ascii_lowercase();
    let auth = patchsync::hierarchy::server::AUTH_SERVICE_PATH.to_ascii_lowercase();
    if path == sync {
        soap(shared, Service::ServerSync, headers, body).await
    } else if path == auth {
        soap(shared, Service::DssAuth, headers, body).await
    } else {
        error(
            StatusCode::NOT_FOUND,
            format!("no such page: {}", uri.path()),
        )
    }
}

async fn server_sync(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    soap(shared, Service::ServerSync, headers, body).await
}

async fn dss_auth(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    soap(shared, Service::DssAuth, headers, body).await
}

async fn soap(shared: Arc<Shared>, service: Service, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let action = header("soapaction");
    let authorization = header("authorization");
    let reply = tokio::task::spawn_blocking(move || {
        let text = String::from_utf8_lossy(&body);
        let reply =
            shared
                .upstream
                .handle(service, action.as_deref(), &text, authorization.as_deref());
        if let Some(ev) = &reply.event {
            record(&shared, ev);
        }
        reply
    })
    .await;
    match reply {
        Ok(r) => (
            StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
            r.body,
        )
            .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// A child's contact or refused authentication, into `sites.json`.
fn record(shared: &Shared, ev: &LinkEvent) {
    let Ok(mut tree) = shared.tree.lock() else {
        return;
    };
    let now = Utc::now();
    let save = match ev {
        LinkEvent::Contact { site } => tree.contact(site, now),
        LinkEvent::AuthFailed { site, message } => {
            eprintln!("patchsync serve: child site '{site}' refused: {message}");
            tree.auth_failed(site, message, now);
            true
        }
    };
    if save {
        save_tree(shared, &tree);
    }
}

fn save_tree(shared: &Shared, tree: &patchsync::hierarchy::SiteTree) {
    let path = patchsync::hierarchy::tree_path(&shared.config.store_path);
    if let Err(e) = tree.save(&path) {
        eprintln!("patchsync serve: cannot save the hierarchy status: {e}");
    }
}

/// The site and secret of the request's `Authorization: Basic` header.
fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    basic_credentials(
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    )
}

/// A child's status and subtree, after each of its syncs.
async fn report(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some((site, secret)) = basic(&headers) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "a report authenticates with HTTP Basic: the child's site name and secret",
        );
    };
    let known = shared
        .config
        .children
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case(&site));
    let ok = known.is_some_and(|c| same_secret(&secret, &c.secret));
    if !ok {
        let message = match known {
            None => format!(
                "site '{site}' is not a [[child]] of {}",
                shared.config.site_name
            ),
            Some(_) => format!("site '{site}' gave a wrong secret"),
        };
        record(
            &shared,
            &LinkEvent::AuthFailed {
                site: site.clone(),
                message: message.clone(),
            },
        );
        return error(StatusCode::UNAUTHORIZED, message);
    }
    let view: SiteView = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the report is not valid: {e}"),
            );
        }
    };
    let name = known.map(|c| c.name.clone()).unwrap_or(site);
    if let Ok(mut tree) = shared.tree.lock() {
        tree.reported(&name, view, Utc::now());
        save_tree(&shared, &tree);
    }
    // The subtree's news goes on up.
    let sh = shared.clone();
    std::thread::spawn(move || report_to_parent(&sh));
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({ "state": "recorded" })),
    )
        .into_response()
}

/// The parent says its catalog changed: sync from it (coalescing with a running sync).
pub async fn notify(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let Some(up) = shared.config.upstream().and_then(|s| s.auth.clone()) else {
        return error(
            StatusCode::CONFLICT,
            "this site has no upstream source; it is not anyone's child",
        );
    };
    match basic(&headers) {
        Some((_, secret)) if same_secret(&secret, &up.secret) => {}
        _ => {
            return error(
                StatusCode::UNAUTHORIZED,
                "a notification authenticates with HTTP Basic and the secret shared with the parent",
            );
        }
    }
    match super::api::request_sync(&shared, false) {
        Ok(state) => (StatusCode::ACCEPTED, axum::Json(json!({ "state": state }))).into_response(),
        Err(r) => *r,
    }
}

/// This site and its subtree.
pub async fn tree(State(shared): State<Arc<Shared>>) -> Response {
    let r = tokio::task::spawn_blocking(move || {
        let store = Store::open_read_only(&shared.config.store_path)?;
        patchsync::hierarchy::site_tree(&store, &shared.config)
    })
    .await;
    match r {
        Ok(Ok(v)) => axum::Json(v).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// After a sync (on the worker's side): children hear of a raised catalog version, and
/// the parent gets this site's status.
pub fn after_sync(shared: &Arc<Shared>, raised: bool) {
    if raised && shared.config.children.iter().any(|c| c.url.is_some()) {
        let sh = shared.clone();
        std::thread::spawn(move || {
            let outcomes = patchsync::hierarchy::links::notify_children(&sh.config, 3);
            if let Ok(mut tree) = sh.tree.lock() {
                for (site, r) in outcomes {
                    if let Err(m) = &r {
                        eprintln!(
                            "patchsync serve: child '{site}' was not notified ({m}); it catches up \
                             at its next start or schedule"
                        );
                    }
                    tree.notified(&site, r, Utc::now());
                }
                save_tree(&sh, &tree);
            }
        });
    }
    if shared.config.upstream().is_some() {
        let sh = shared.clone();
        std::thread::spawn(move || report_to_parent(&sh));
    }
}

fn report_to_parent(shared: &Shared) {
    if let Err(m) = patchsync::hierarchy::links::report_to_parent(&shared.config, 3) {
        eprintln!("patchsync serve: the status report to the parent failed: {m}");
    }
}
