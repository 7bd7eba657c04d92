//! The calls along a parent-child link outside MS-WSUSSS: a parent tells its children that
//! its catalog changed, and a child reports its status (with its subtree) to its parent.
//! Both authenticate with HTTP Basic: the child's site name and the secret the two share.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::config::{Config, Location};
use crate::store::Store;

/// Where a child is told to sync, below its service's base URL.
pub const NOTIFY_PATH: &str = "/api/v1/hierarchy/notify";
/// Where a parent takes its children's reports.
pub const REPORT_PATH: &str = "/api/v1/hierarchy/report";

/// An HTTP agent for one link: statuses as values, no redirects, an overall `timeout`
/// (`None`: a stream that may last), and (for https with a private certificate) only the
/// certificates in `ca` trusted.
pub fn agent(ca: Option<&Path>, timeout: Option<Duration>) -> Result<ureq::Agent, String> {
    let mut b = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_global(timeout)
        .max_redirects(0);
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).map_err(|e| format!("cannot read {}: {e}", ca.display()))?;
        let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if certs.is_empty() {
            return Err(format!("{} holds no PEM certificate", ca.display()));
        }
        b = b.tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(certs)))
                .build(),
        );
    }
    Ok(b.build().into())
}

fn basic(site: &str, secret: &str) -> String {
    format!("Basic {}", B64.encode(format!("{site}:{secret}")))
}

/// POSTs `body` up to `attempts` times; a 401 is not retried.
fn post(
    url: &str,
    ca: Option<&Path>,
    auth: &str,
    body: Option<&str>,
    attempts: u32,
) -> Result<(), String> {
    let agent = agent(ca, Some(Duration::from_secs(15)))?;
    let mut last = String::new();
    for attempt in 0..attempts.max(1) {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(500 << attempt.min(4)));
        }
        let req = agent.post(url).header("Authorization", auth);
        let resp = match body {
            Some(b) => req.header("Content-Type", "application/json").send(b),
            None => req.send_empty(),
        };
        match resp {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(mut r) => {
                last = format!(
                    "{url} answered HTTP {}: {}",
                    r.status(),
                    r.body_mut().read_to_string().unwrap_or_default()
                );
                if r.status().as_u16() == 401 {
                    break;
                }
            }
            Err(e) => last = format!("cannot reach {url}: {e}"),
        }
    }
    Err(last)
}

/// Tells every child with a `url` to sync, trying each up to `attempts` times; each
/// child's outcome, in config order.
pub fn notify_children(config: &Config, attempts: u32) -> Vec<(String, Result<(), String>)> {
    config
        .children
        .iter()
        .filter_map(|c| {
            let url = c.url.as_ref()?;
            let r = post(
                &format!("{url}{NOTIFY_PATH}"),
                c.tls_ca.as_deref(),
                &basic(&c.name, &c.secret),
                None,
                attempts,
            );
            Some((c.name.clone(), r))
        })
        .collect()
}

/// Records notification outcomes in `sites.json`.
pub fn record_notifications(
    config: &Config,
    outcomes: Vec<(String, Result<(), String>)>,
) -> crate::Result<()> {
    let path = super::tree_path(&config.store_path);
    let mut tree = super::SiteTree::load(&path)?;
    let now = chrono::Utc::now();
    for (site, r) in outcomes {
        tree.notified(&site, r, now);
    }
    tree.save(&path)
}

/// Sends this site's status and subtree to its parent (up to `attempts` tries); `Ok` when
/// there is no parent.
pub fn report_to_parent(config: &Config, attempts: u32) -> Result<(), String> {
    let Some(up) = config.upstream() else {
        return Ok(());
    };
    let (Some(auth), Location::Url(base)) = (&up.auth, &up.location) else {
        return Ok(());
    };
    let view = Store::open_read_only(&config.store_path)
        .and_then(|s| super::site_tree(&s, config))
        .map_err(|e| format!("cannot build the status report: {e}"))?;
    let body = serde_json::to_string(&view).map_err(|e| e.to_string())?;
    post(
        &format!("{}{REPORT_PATH}", base.trim_end_matches('/')),
        auth.tls_ca.as_deref(),
        &basic(&auth.site, &auth.secret),
        Some(&body),
        attempts,
    )
}
