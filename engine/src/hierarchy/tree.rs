//! The hierarchy's status: what each child last reported (its own status and its subtree),
//! how its link looks from here (contact, refused authentications, failed notifications),
//! kept in `sites.json` beside the store so `patchsync status --tree` reads it offline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::{Error, Result};

/// A link without contact for this long is degraded, for three times as long in error.
const QUIET_LINK_SECONDS: i64 = 26 * 3600;

/// One site of the hierarchy, with its subtree: what a child reports to its parent, and
/// what `status --tree` shows.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SiteView {
    pub site: String,
    /// The parent's URL (none for the top-level site).
    pub upstream: Option<String>,
    /// `idle`, `running`, `succeeded`, `failed`, `interrupted`; `unknown` for a child that
    /// never reported.
    pub state: String,
    /// When the state began (the last sync's end, or start while running).
    pub state_time: Option<String>,
    pub last_success: Option<String>,
    pub last_error: Option<String>,
    pub catalog_version: u64,
    /// The parent's catalog version this site's last sync reached.
    pub parent_version: Option<u64>,
    pub content_digest: String,
    /// The link to its parent, as the parent sees it.
    pub link: Option<Link>,
    pub children: Vec<SiteView>,
}

/// A parent's view of the link to one child.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Link {
    /// `healthy`, `degraded` or `error`.
    pub health: String,
    pub reason: Option<String>,
    pub last_contact: Option<String>,
    pub last_report: Option<String>,
}

/// What a parent remembers about one child.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChildRecord {
    pub report: Option<SiteView>,
    pub last_contact: Option<DateTime<Utc>>,
    pub last_report: Option<DateTime<Utc>>,
    /// The last refused authentication, and when.
    pub auth_error: Option<(DateTime<Utc>, String)>,
    /// The last failed sync notification, and when; consecutive failures.
    pub notify_error: Option<(DateTime<Utc>, String)>,
    pub notify_failures: u32,
}

/// Every child's record, by site name.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SiteTree {
    pub children: BTreeMap<String, ChildRecord>,
}

/// Where a site keeps its children's status.
pub fn tree_path(store: &Path) -> PathBuf {
    store
        .parent()
        .map(|d| d.join("sites.json"))
        .unwrap_or_else(|| PathBuf::from("sites.json"))
}

impl SiteTree {
    /// The saved tree; empty when there is none yet.
    pub fn load(path: &Path) -> Result<SiteTree> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| Error::Store {
                path: path.to_owned(),
                message: format!("the hierarchy status is unreadable ({e}); delete it, children report again after their next sync"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SiteTree::default()),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// Written to a temporary file, then renamed over the old one.
    pub fn save(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(self).expect("tree serializes");
        std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    }

    fn child(&mut self, site: &str) -> &mut ChildRecord {
        self.children.entry(site.to_owned()).or_default()
    }

    /// A child authenticated or used its cookie. Returns whether this is news worth
    /// saving (not only a later time).
    pub fn contact(&mut self, site: &str, now: DateTime<Utc>) -> bool {
        let c = self.child(site);
        let news =
            c.auth_error.is_some() || c.last_contact.is_none_or(|t| (now - t).num_seconds() >= 60);
        c.last_contact = Some(now);
        c.auth_error = None;
        news
    }

    pub fn auth_failed(&mut self, site: &str, message: &str, now: DateTime<Utc>) {
        self.child(site).auth_error = Some((now, message.to_owned()));
    }

    pub fn notified(
        &mut self,
        site: &str,
        result: std::result::Result<(), String>,
        now: DateTime<Utc>,
    ) {
        let c = self.child(site);
        match result {
            Ok(()) => {
                c.notify_error = None;
                c.notify_failures = 0;
            }
            Err(m) => {
                c.notify_error = Some((now, m));
                c.notify_failures += 1;
            }
        }
    }

    pub fn reported(&mut self, site: &str, view: SiteView, now: DateTime<Utc>) {
        let c = self.child(site);
        c.report = Some(view);
        c.last_report = Some(now);
        c.last_contact = Some(now);
        c.auth_error = None;
    }

    /// This site and everything below it: `own` is this site's status; every configured
    /// child appears (one that never reported as `unknown`), and so does a site that tried
    /// to authenticate without being configured.
    pub fn view(
        &self,
        mut own: SiteView,
        config: &Config,
        own_version: u64,
        now: DateTime<Utc>,
    ) -> SiteView {
        let mut names: Vec<String> = config.children.iter().map(|c| c.name.clone()).collect();
        for n in self.children.keys() {
            if !names.iter().any(|x| x.eq_ignore_ascii_case(n)) {
                names.push(n.clone());
            }
        }
        own.children = names
            .into_iter()
            .map(|name| {
                let rec = self
                    .children
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(&name))
                    .map(|(_, r)| r.clone())
                    .unwrap_or_default();
                let configured = config
                    .children
                    .iter()
                    .any(|c| c.name.eq_ignore_ascii_case(&name));
                let mut v = rec.report.clone().unwrap_or_else(|| SiteView {
                    site: name.clone(),
                    state: "unknown".into(),
                    ..Default::default()
                });
                v.link = Some(link(&rec, configured, own_version, &v, now));
                v
            })
            .collect();
        own
    }
}

/// Healthy, degraded or error, and why.
fn link(
    rec: &ChildRecord,
    configured: bool,
    own_version: u64,
    v: &SiteView,
    now: DateTime<Utc>,
) -> Link {
    let time =
        |t: &Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let mut l = Link {
        health: "healthy".into(),
        reason: None,
        last_contact: time(&rec.last_contact),
        last_report: time(&rec.last_report),
    };
    let mut set = |health: &str, reason: String| {
        let rank = |h: &str| match h {
            "error" => 2,
            "degraded" => 1,
            _ => 0,
        };
        if rank(health) > rank(&l.health) {
            l.health = health.into();
            l.reason = Some(reason);
        }
    };
    if !configured {
        set(
            "error",
            "not a configured child: add a [[child]] entry for it, or remove its upstream source"
                .into(),
        );
    }
    if let Some((at, m)) = &rec.auth_error {
        set(
            "error",
            format!(
                "authentication refused at {}: {m}",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        );
    }
    match rec.last_contact {
        None => set("degraded", "no contact yet".into()),
        Some(t) => {
            let quiet = (now - t).num_seconds();
            if quiet > 3 * QUIET_LINK_SECONDS {
                set("error", format!("no contact for {} hours", quiet / 3600));
            } else if quiet > QUIET_LINK_SECONDS {
                set("degraded", format!("no contact for {} hours", quiet / 3600));
            }
        }
    }
    // A failed notification matters until the child is heard from again.
    if let Some((at, m)) = &rec.notify_error
        && rec.last_contact.is_none_or(|c| c < *at)
    {
        let h = if rec.notify_failures >= 3 {
            "error"
        } else {
            "degraded"
        };
        set(
            h,
            format!("{} notification(s) failed: {m}", rec.notify_failures),
        );
    }
    if v.state == "failed" {
        let e = v.last_error.clone().unwrap_or_default();
        if v.last_success.is_none() {
            set("error", format!("its syncs fail: {e}"));
        } else {
            set("degraded", format!("its last sync failed: {e}"));
        }
    }
    if let Some(p) = v.parent_version
        && p < own_version
        && v.state != "running"
    {
        set(
            "degraded",
            format!("behind: at parent version {p} of {own_version}"),
        );
    }
    l
}

/// This site's own status, as it reports it to its parent.
pub fn own_view(store: &crate::store::Store, config: &Config) -> Result<SiteView> {
    let st = crate::status_of(store, config)?;
    let up = config.upstream();
    let parent_version = match up {
        Some(s) => super::UpstreamCursor::parse(store.source_state(&s.name)?.cursor.as_deref())
            .and_then(|c| c.parent_version),
        None => None,
    };
    let state_time = match st.state.as_str() {
        "running" => st.last_sync_started.clone(),
        _ => st.last_sync_finished.clone(),
    };
    Ok(SiteView {
        site: st.site,
        upstream: up.map(|s| match &s.location {
            crate::config::Location::Url(u) => u.clone(),
            crate::config::Location::Path(p) => p.display().to_string(),
        }),
        state: st.state,
        state_time,
        last_success: st.last_success,
        last_error: st.last_error,
        catalog_version: st.catalog_version,
        parent_version,
        content_digest: st.content_digest,
        link: None,
        children: Vec::new(),
    })
}

/// This site and its subtree, from the store and `sites.json`.
pub fn site_tree(store: &crate::store::Store, config: &Config) -> Result<SiteView> {
    let own = own_view(store, config)?;
    let version = own.catalog_version;
    let tree = SiteTree::load(&tree_path(&config.store_path))?;
    Ok(tree.view(own, config, version, Utc::now()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(children: &[&str]) -> Config {
        let mut text = String::from("[site]\nname = \"CAS\"\nstore = \"s.db\"\n");
        for c in children {
            text.push_str(&format!("[[child]]\nname = \"{c}\"\nsecret = \"s\"\n"));
        }
        Config::parse(&text, Path::new("p.toml"), Path::new(".")).unwrap()
    }

    #[test]
    fn links_are_judged_by_contact_errors_and_progress() {
        let now = Utc::now();
        let cfg = config(&["PR1", "PR2", "PR3"]);
        let mut t = SiteTree::default();
        let report = |v: u64, state: &str| SiteView {
            site: "x".into(),
            state: state.into(),
            parent_version: Some(v),
            last_success: Some("2026-01-01T00:00:00Z".into()),
            ..Default::default()
        };
        t.reported("PR1", report(5, "succeeded"), now);
        t.reported("PR2", report(4, "succeeded"), now);
        t.auth_failed("PR3", "wrong secret", now);
        t.auth_failed("ROGUE", "not a child", now);
        let v = t.view(SiteView::default(), &cfg, 5, now);
        let health: Vec<(&str, &str)> = v
            .children
            .iter()
            .map(|c| {
                let l = c.link.as_ref().unwrap();
                (c.site.as_str(), l.health.as_str())
            })
            .collect();
        assert_eq!(health[0].1, "healthy");
        assert_eq!(health[1].1, "degraded", "PR2 is behind");
        assert_eq!(health[2].1, "error", "PR3's secret is wrong");
        assert_eq!(v.children[3].site, "ROGUE");
        assert_eq!(health[3].1, "error");
        assert!(
            v.children[2]
                .link
                .as_ref()
                .unwrap()
                .reason
                .as_ref()
                .unwrap()
                .contains("wrong secret")
        );
        // A contact clears the refused authentication.
        t.contact("PR3", now);
        let v = t.view(SiteView::default(), &cfg, 5, now);
        assert_ne!(v.children[2].link.as_ref().unwrap().health, "error");
    }
}
