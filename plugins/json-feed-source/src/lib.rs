//! json-feed-source: a catalog source that reads a vendor's JSON feed over HTTP (through the
//! host's `fetch`, so only to the hosts its manifest allows) and turns it into updates.
//!
//! ```toml
//! [config]
//! url = "https://updates.contoso.com/feed.json"
//! ```
//!
//! The feed format is documented in this plugin's README.md. Categories (the vendor as a
//! company, each product under it, and the well-known classifications used) come first;
//! every update of the feed is listed with its `revision`; the listing is complete, so an
//! update the feed drops is expired by patchsync. `expired: true` marks one expired.

use std::collections::BTreeMap;

use patchsync_sdk::http;
use patchsync_sdk::prelude::*;
use patchsync_sdk::{classification_id, guid_from_name};
use serde::Deserialize;

/// The feed document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feed {
    pub vendor: String,
    #[serde(default)]
    pub generated: Option<String>,
    pub updates: Vec<FeedUpdate>,
}

/// One update of the feed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedUpdate {
    /// GUID; absent: derived from the vendor and `key`.
    #[serde(default)]
    pub id: Option<String>,
    /// The vendor's own identifier (used when `id` is absent).
    #[serde(default)]
    pub key: Option<String>,
    /// Raised by the vendor whenever the update's metadata changes.
    pub revision: u32,
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub product: String,
    /// A well-known classification title: "Security Updates", "Updates", "Drivers", ...
    pub classification: String,
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub kb: Option<String>,
    #[serde(default)]
    pub cves: Vec<String>,
    /// ISO 8601 date.
    pub released: String,
    /// Keys or GUIDs of the updates this one replaces.
    #[serde(default)]
    pub supersedes: Vec<String>,
    #[serde(default)]
    pub expired: bool,
    #[serde(default)]
    pub files: Vec<FeedFile>,
    #[serde(default)]
    pub more_info: Option<String>,
}

/// One file of an update.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedFile {
    pub name: String,
    pub size: u64,
    /// Base64 SHA-1, as WSUS gives file digests.
    pub sha1: String,
    pub url: String,
}

/// The source, configured.
#[derive(Debug)]
pub struct JsonFeed {
    url: String,
    cursor: Option<String>,
    /// GUID → (revision, document), from the last `list`.
    docs: BTreeMap<String, (u32, Document)>,
}

fn err_in(u: &FeedUpdate, m: String) -> String {
    format!(
        "feed update '{}': {m}",
        u.key.as_deref().or(u.id.as_deref()).unwrap_or(&u.title)
    )
}

impl JsonFeed {
    fn guid_of(vendor: &str, u: &FeedUpdate) -> Result<String, String> {
        match (&u.id, &u.key) {
            (Some(id), _) => Ok(id.to_ascii_lowercase()),
            (None, Some(k)) => Ok(guid_from_name(&format!("{vendor}/{k}"))),
            (None, None) => Err(err_in(u, "has neither `id` nor `key`".into())),
        }
    }

    /// Turns the feed into documents, categories first.
    pub fn documents(feed: &Feed) -> Result<BTreeMap<String, (u32, Document)>, String> {
        let mut out = BTreeMap::new();
        let doc = |xml: String| Document {
            xml,
            file_urls: Vec::new(),
        };
        let company = guid_from_name(&format!("vendor/{}", feed.vendor));
        out.insert(
            company.clone(),
            (1, doc(UpdateXml::company(&company, &feed.vendor).build())),
        );
        let keys: BTreeMap<String, String> = feed
            .updates
            .iter()
            .filter_map(|u| Some((u.key.clone()?, Self::guid_of(&feed.vendor, u).ok()?)))
            .collect();
        for u in &feed.updates {
            let id = Self::guid_of(&feed.vendor, u)?;
            let class = classification_id(&u.classification).ok_or_else(|| {
                err_in(u, format!("classification '{}' is not a well-known one (e.g. \"Security Updates\", \"Updates\", \"Drivers\")", u.classification))
            })?;
            out.entry(class.to_owned()).or_insert_with(|| {
                (
                    1,
                    doc(UpdateXml::classification(class, &u.classification).build()),
                )
            });
            let product = guid_from_name(&format!("product/{}/{}", feed.vendor, u.product));
            out.entry(product.clone()).or_insert_with(|| {
                (
                    1,
                    doc(UpdateXml::product(&product, &u.product, &company).build()),
                )
            });
            let mut x = UpdateXml::software(&id, u.revision)
                .title("en", &u.title, &u.description)
                .created(&u.released)
                .in_category(&product)
                .in_category(class);
            if u.expired {
                x = x.state("Expired");
            }
            if let Some(s) = &u.severity {
                if Severity::parse(s).is_none() {
                    return Err(err_in(u, format!("severity '{s}' is not an MSRC severity")));
                }
                x = x.severity(s);
            }
            if let Some(kb) = &u.kb {
                x = x.kb(kb);
            }
            for c in &u.cves {
                x = x.cve(c);
            }
            if let Some(m) = &u.more_info {
                x = x.more_info(m);
            }
            for s in &u.supersedes {
                let g = keys
                    .get(s)
                    .cloned()
                    .unwrap_or_else(|| s.to_ascii_lowercase());
                x = x.supersedes(&g);
            }
            let mut urls = Vec::new();
            for f in &u.files {
                x = x.file(&f.name, f.size, &f.sha1, Some(&u.released));
                urls.push((f.sha1.clone(), f.url.clone()));
            }
            if out
                .insert(
                    id.clone(),
                    (
                        u.revision,
                        Document {
                            xml: x.build(),
                            file_urls: urls,
                        },
                    ),
                )
                .is_some()
            {
                return Err(err_in(u, format!("GUID {id} appears twice in the feed")));
            }
        }
        Ok(out)
    }
}

impl Source for JsonFeed {
    fn init(config: &Config, cursor: Option<String>) -> Result<Self, String> {
        config.only(&["url"])?;
        let url: String = config.require("url")?;
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(format!("'url': '{url}' is not an http(s) URL"));
        }
        Ok(JsonFeed {
            url,
            cursor,
            docs: BTreeMap::new(),
        })
    }

    fn fingerprint(&mut self) -> Result<Option<String>, String> {
        let r = http::fetch("HEAD", &self.url, &[])?;
        if !(200..300).contains(&r.status) {
            return Ok(None);
        }
        Ok(r.header("etag")
            .or(r.header("last-modified"))
            .map(str::to_owned))
    }

    fn list(&mut self) -> Result<Listing, String> {
        let r = http::get(&self.url)?;
        let feed: Feed = serde_json::from_slice(&r.body)
            .map_err(|e| format!("{} is not a feed in the documented format: {e}", self.url))?;
        self.docs = Self::documents(&feed)?;
        patchsync_sdk::progress(self.docs.len() as u64, self.docs.len() as u64);
        info(&format!(
            "{}: {} updates from {}",
            self.url,
            feed.updates.len(),
            feed.vendor
        ));
        self.cursor = feed
            .generated
            .or_else(|| r.header("etag").map(str::to_owned));
        Ok(Listing {
            entries: self
                .docs
                .iter()
                .map(|(id, (rev, _))| Identity {
                    id: id.clone(),
                    revision: *rev,
                })
                .collect(),
            complete: true,
            ..Default::default()
        })
    }

    fn fetch(&mut self, page: &[Identity]) -> Result<Vec<Document>, String> {
        Ok(page
            .iter()
            .filter_map(|i| {
                self.docs
                    .get(&i.id)
                    .filter(|(r, _)| *r == i.revision)
                    .map(|(_, d)| d.clone())
            })
            .collect())
    }

    fn cursor(&mut self) -> Option<String> {
        self.cursor.clone()
    }
}

patchsync_sdk::export_source!(JsonFeed);

#[cfg(test)]
mod tests {
    use super::*;
    use patchsync_sdk::testing::{ok, respond_with};

    const FEED: &str = r#"{"vendor": "Contoso", "generated": "2024-05-02T00:00:00Z", "updates": [
      {"key": "CW-1", "revision": 1, "title": "Widget 1.1", "product": "Widget", "classification": "Updates", "released": "2024-04-01"},
      {"key": "CW-2", "revision": 3, "title": "Widget 1.2 security fix", "product": "Widget", "classification": "Security Updates",
       "severity": "Critical", "kb": "KB100", "cves": ["CVE-2024-0001"], "released": "2024-05-01", "supersedes": ["CW-1"],
       "files": [{"name": "widget-1.2.msi", "size": 1024, "sha1": "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=", "url": "https://dl.contoso.com/widget-1.2.msi"}]}
    ]}"#;

    #[test]
    fn the_feed_lists_categories_and_updates_and_fetches_xml() {
        respond_with(|_, url| {
            assert_eq!(url, "https://feeds.contoso.com/feed.json");
            Ok(ok(FEED))
        });
        let mut s = JsonFeed::init(
            &Config::parse(r#"{"url": "https://feeds.contoso.com/feed.json"}"#).unwrap(),
            None,
        )
        .unwrap();
        let l = s.list().unwrap();
        // Company, product, two classifications, two updates.
        assert_eq!(l.entries.len(), 6);
        assert!(l.complete);
        assert_eq!(s.cursor().as_deref(), Some("2024-05-02T00:00:00Z"));
        let fix = guid_from_name("Contoso/CW-2");
        let docs = s
            .fetch(&[Identity {
                id: fix.clone(),
                revision: 3,
            }])
            .unwrap();
        assert_eq!(docs.len(), 1);
        let x = &docs[0].xml;
        assert!(
            x.contains(&format!("UpdateID=\"{fix}\" RevisionNumber=\"3\"")),
            "{x}"
        );
        assert!(x.contains("MsrcSeverity=\"Critical\"") && x.contains("<upd:KBArticleID>100<"));
        assert!(
            x.contains(&guid_from_name("Contoso/CW-1")),
            "supersedes by key"
        );
        assert_eq!(
            docs[0].file_urls,
            vec![(
                "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=".to_owned(),
                "https://dl.contoso.com/widget-1.2.msi".to_owned()
            )]
        );
        // A stale revision is not served.
        assert!(
            s.fetch(&[Identity {
                id: fix,
                revision: 2
            }])
            .unwrap()
            .is_empty()
        );
    }

    #[test]
    fn a_bad_feed_is_named() {
        respond_with(|_, _| {
            Ok(ok(
                r#"{"vendor": "Contoso", "updates": [{"key": "K", "revision": 1, "title": "t", "product": "p", "classification": "Hotfixes", "released": "2024-01-01"}]}"#,
            ))
        });
        let mut s = JsonFeed::init(
            &Config::parse(r#"{"url": "https://x/feed.json"}"#).unwrap(),
            None,
        )
        .unwrap();
        let e = s.list().unwrap_err();
        assert!(
            e.contains("feed update 'K'") && e.contains("Hotfixes"),
            "{e}"
        );
        assert!(JsonFeed::init(&Config::parse(r#"{"url": "ftp://x"}"#).unwrap(), None).is_err());
    }
}
