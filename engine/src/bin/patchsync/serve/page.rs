//! The status page: one server-rendered HTML page (no build step, no external assets); a
//! few lines of script follow the progress stream to move the progress bar and reload the
//! page when a sync ends.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use patchsync::store::Store;

use super::worker::Shared;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One table row per site of the hierarchy, children indented under their parent.
fn site_rows(v: &patchsync::hierarchy::SiteView, depth: usize, out: &mut String) {
    let opt = |o: &Option<String>| esc(o.as_deref().unwrap_or(""));
    let (health, reason) = match &v.link {
        Some(l) => (l.health.as_str(), l.reason.clone()),
        None => ("", None),
    };
    out.push_str(&format!(
        "<tr data-site=\"{site}\"><td style=\"padding-left:{pad}em\">{site}</td><td>{up}</td>\
         <td class=\"s-{state}\">{state} {time}</td><td>{success}</td><td>{version}{parent}</td>\
         <td class=\"link-{health}\" title=\"{reason}\">{health}{reason_text}</td><td class=\"error\">{error}</td></tr>\n",
        site = esc(&v.site),
        pad = 0.8 + 1.5 * depth as f64,
        up = opt(&v.upstream),
        state = esc(&v.state),
        time = opt(&v.state_time),
        success = opt(&v.last_success),
        version = v.catalog_version,
        parent = v.parent_version.map(|p| format!(" ({p})")).unwrap_or_default(),
        health = esc(health),
        reason = opt(&reason),
        reason_text = reason.as_deref().map(|r| format!(": {}", esc(r))).unwrap_or_default(),
        error = opt(&v.last_error),
    ));
    for c in &v.children {
        site_rows(c, depth + 1, out);
    }
}

pub async fn page(State(shared): State<Arc<Shared>>) -> Response {
    let sh = shared.clone();
    let body = tokio::task::spawn_blocking(move || -> patchsync::Result<String> {
        let store = Store::open_read_only(&sh.config.store_path)?;
        let st = patchsync::status_of(&store, &sh.config)?;
        let hist = store.history(20)?;
        let tree = patchsync::hierarchy::site_tree(&store, &sh.config)?;
        let sites = if tree.children.is_empty() && tree.upstream.is_none() {
            String::new()
        } else {
            let mut rows = String::new();
            site_rows(&tree, 0, &mut rows);
            format!(
                "<h2>Hierarchy</h2>\n<table id=\"hierarchy\"><tr><th>Site</th><th>Upstream</th><th>State</th>\
                 <th>Last success</th><th>Version (parent's)</th><th>Link</th><th>Last error</th></tr>\n{rows}</table>"
            )
        };
        let svc = sh.state.lock().map(|s| s.clone()).unwrap_or_default();
        let state = if svc.running { "running".to_owned() } else { st.state.clone() };
        let (done, total) = svc.progress.as_ref().map(|p| (p.1, p.2)).unwrap_or((0, 0));
        let pct = (100 * done).checked_div(total).unwrap_or(0);
        let mut rows = String::new();
        for r in &hist {
            rows.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td class=\"s-{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                r.id,
                esc(&r.started),
                esc(&r.status),
                esc(&r.status),
                r.catalog_version.map(|v| v.to_string()).unwrap_or_default(),
                r.new.unwrap_or(0),
                r.revised.unwrap_or(0),
                r.expired.unwrap_or(0),
                r.removed.unwrap_or(0),
                r.duration_ms.map(|d| format!("{:.1} s", d as f64 / 1000.0)).unwrap_or_default(),
            ));
        }
        Ok(format!(
            r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>patchsync: {site}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }} td, th {{ padding: .2em .8em; border-bottom: 1px solid #ddd; text-align: left; }}
.state {{ font-weight: bold; }} .s-succeeded {{ color: #17692b; }} .s-failed, .s-interrupted {{ color: #a11; }} .s-running {{ color: #05a; }}
progress {{ width: 30em; }} .error {{ color: #a11; }}
.link-healthy {{ color: #17692b; }} .link-degraded {{ color: #a60; }} .link-error {{ color: #a11; }}
</style></head><body>
<h1>Site <span id="site">{site}</span></h1>
<p>State: <span id="state" class="state s-{state}">{state}</span></p>
<p><progress id="progress" max="100" value="{pct}"></progress> <span id="progress-text">{progress_text}</span></p>
<table>
<tr><th>Catalog version</th><td id="catalog-version">{version}</td></tr>
<tr><th>Active updates</th><td>{active}</td></tr>
<tr><th>Last sync</th><td>{last_start} → {last_end}</td></tr>
<tr><th>Last success</th><td>{last_success}</td></tr>
<tr><th>Next scheduled sync</th><td>{next}</td></tr>
<tr><th>Last error</th><td class="error">{error}</td></tr>
</table>
<h2>History</h2>
<table><tr><th>#</th><th>Started</th><th>Status</th><th>Version</th><th>New</th><th>Revised</th><th>Expired</th><th>Removed</th><th>Duration</th></tr>
{rows}</table>
{sites}
<script>
const bar = document.getElementById('progress'), text = document.getElementById('progress-text');
const es = new EventSource('/api/v1/progress');
es.onmessage = (e) => {{
  const m = JSON.parse(e.data);
  document.getElementById('state').textContent = (m.kind === 'done' || m.kind === 'failed') ? m.kind : 'running';
  if (m.kind === 'progress' && m.detail && m.detail.total > 0) {{
    bar.value = Math.floor(100 * m.detail.done / m.detail.total);
    text.textContent = m.text;
  }}
  if (m.kind === 'done' || m.kind === 'failed') {{ bar.value = 100; text.textContent = m.text; setTimeout(() => location.reload(), 1000); }}
}};
</script>
</body></html>
"#,
            site = esc(&st.site),
            state = esc(&state),
            pct = pct,
            progress_text = if svc.running { format!("{done} / {total}") } else { String::new() },
            version = st.catalog_version,
            active = st.updates_active,
            last_start = esc(st.last_sync_started.as_deref().unwrap_or("never")),
            last_end = esc(st.last_sync_finished.as_deref().unwrap_or("")),
            last_success = esc(st.last_success.as_deref().unwrap_or("never")),
            next = svc.next_run.map(|t| t.to_rfc3339()).unwrap_or_else(|| "on request".into()),
            error = esc(st.last_error.as_deref().unwrap_or("")),
            sites = sites,
        ))
    })
    .await;
    match body {
        Ok(Ok(b)) => Html(b).into_response(),
        Ok(Err(e)) => {
            super::api::error(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
        Err(e) => super::api::error(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
