//! The upstream source (`kind = "upstream"`): the client side of MS-WSUSSS. It
//! authenticates (GetAuthConfig → the auth plug-in's GetAuthorizationCookie → GetCookie),
//! reads the parent's configuration, lists categories then updates against anchors kept
//! in its cursor (committed with the data), and fetches metadata in batches with retries,
//! authenticating again when the parent rejects or forgets its cookie.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::server::{AUTH_SERVICE_PATH, PLUGIN_ID, SYNC_SERVICE_PATH, decompress_blob};
use super::soap::{self, ErrorCode, Fault, NS_AUTH, NS_EXT, NS_SYNC, Node, text};
use crate::config::UpstreamAuth;
use crate::error::{Error, Result};
use crate::filter::LanguageSelection;
use crate::model::{CategoryKind, Identity, Update, UpdateId, UpdateType};
use crate::source::{CatalogSource, Fetched, Listing};

/// The protocol version this client asks for (as Microsoft's library does).
pub const CLIENT_PROTOCOL_VERSION: &str = "1.7";
/// A complete listing (every id, diffed against the store) at least this often, so what a
/// plain WSUS upstream removes without saying so still leaves this site.
const FULL_LISTING_EVERY: i64 = 7 * 24 * 3600;

/// What the source keeps between syncs (stored with the data, in the same transaction).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UpstreamCursor {
    /// The parent the anchors came from; another URL starts over.
    pub parent: Option<String>,
    pub category_anchor: Option<String>,
    pub update_anchor: Option<String>,
    /// Category ids by kind, so the update filter names every product and classification
    /// (and a new one is asked for with `Delta = false`).
    #[serde(default)]
    pub products: BTreeSet<String>,
    #[serde(default)]
    pub classifications: BTreeSet<String>,
    #[serde(default)]
    pub other_categories: BTreeSet<String>,
    /// When the last complete listing was taken (Unix seconds).
    pub last_full: Option<i64>,
    /// The parent's catalog version the last listing reached (patchsync parents say it).
    pub parent_version: Option<u64>,
}

impl UpstreamCursor {
    pub fn parse(text: Option<&str>) -> Option<UpstreamCursor> {
        text.and_then(|t| serde_json::from_str(t).ok())
    }
}

/// How calls are retried: transport errors and server faults that invite it, with a
/// doubling delay.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub attempts: u32,
    pub first_delay: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 8,
            first_delay: Duration::from_millis(250),
        }
    }
}

/// One revision list as the parent gave it.
#[derive(Debug, Default)]
struct Revisions {
    anchor: Option<String>,
    ids: Vec<Identity>,
    expired: Vec<UpdateId>,
    removed: Vec<UpdateId>,
    complete: bool,
    version: Option<u64>,
}

enum CallError {
    Fault(Fault),
    /// Worth a retry: the parent is down, restarting, or the connection broke.
    Transport(String),
    /// Not worth one: the parent's certificate is not trusted.
    Tls(String),
}

/// A parent site (or a WSUS server) as a catalog source.
pub struct UpstreamSource {
    name: String,
    base: String,
    auth: UpstreamAuth,
    agent: ureq::Agent,
    /// The session cookie (`Expiration`, `EncryptedData`) and when to renew it.
    session: Option<(String, String, DateTime<Utc>)>,
    cursor: UpstreamCursor,
    next: Option<UpstreamCursor>,
    languages: Option<LanguageSelection>,
    batch: usize,
    /// Categories read while listing (their kinds decide the update filter).
    prefetched: HashMap<Identity, Box<Update>>,
    order: Vec<Identity>,
    pub retry: Retry,
    agent_error: Option<String>,
}

impl UpstreamSource {
    pub fn new(name: &str, url: &str, auth: UpstreamAuth) -> UpstreamSource {
        // A certificate file that cannot be read fails the first call, naming the file.
        let (agent, agent_error) =
            match super::links::agent(auth.tls_ca.as_deref(), Duration::from_secs(300)) {
                Ok(a) => (a, None),
                Err(m) => (ureq::Agent::new_with_defaults(), Some(m)),
            };
        UpstreamSource {
            name: name.to_owned(),
            base: url.trim_end_matches('/').to_owned(),
            auth,
            agent,
            session: None,
            cursor: UpstreamCursor::default(),
            next: None,
            languages: None,
            batch: 100,
            prefetched: HashMap::new(),
            order: Vec::new(),
            retry: Retry::default(),
            agent_error,
        }
    }

    fn err(&self, item: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Source {
            source_name: self.name.clone(),
            item: item.into(),
            message: message.into(),
        }
    }

    /// One POST of a SOAP body; faults and transport failures apart.
    fn post(
        &self,
        url: &str,
        action: &str,
        body: &str,
        basic: bool,
    ) -> std::result::Result<Node, CallError> {
        let mut req = self
            .agent
            .post(url)
            .header("Content-Type", "text/xml; charset=utf-8")
            .header("SOAPAction", &format!("\"{action}\""))
            .header(
                "User-Agent",
                concat!("patchsync/", env!("CARGO_PKG_VERSION")),
            );
        if basic {
            let cred = B64.encode(format!("{}:{}", self.auth.site, self.auth.secret));
            req = req.header("Authorization", &format!("Basic {cred}"));
        }
        let resp = req.send(soap::envelope(body)).map_err(|e| {
            let m = e.to_string();
            if m.to_ascii_lowercase().contains("certificate") {
                CallError::Tls(format!(
                    "{url}: {m}; give the parent's certificate (or its CA) as tls_ca in the \
                         [[source]]"
                ))
            } else {
                CallError::Transport(format!("cannot reach {url}: {m}"))
            }
        })?;
        let status = resp.status().as_u16();
        let text = resp
            .into_body()
            .with_config()
            .limit(256 << 20)
            .read_to_string()
            .map_err(|e| CallError::Transport(format!("the answer from {url} broke off: {e}")))?;
        match soap::body(&text) {
            Ok(n) if status == 200 => Ok(n),
            Ok(_) => Err(CallError::Transport(format!(
                "{url} answered HTTP {status}"
            ))),
            // Not SOAP at all (a proxy's error page, a server starting up): worth a retry.
            Err(f) if f.code.is_none() && !text.contains("Fault") => Err(CallError::Transport(
                format!("{url} answered HTTP {status}: {}", f.message),
            )),
            Err(f) => Err(CallError::Fault(f)),
        }
    }

    /// GetAuthConfig → GetAuthorizationCookie → GetCookie.
    fn authenticate(&mut self) -> std::result::Result<(), CallError> {
        let sync_url = format!("{}/{SYNC_SERVICE_PATH}", self.base);
        let config = self.post(
            &sync_url,
            &format!("{NS_SYNC}/GetAuthConfig"),
            &format!("<GetAuthConfig xmlns=\"{NS_SYNC}\" />"),
            false,
        )?;
        let plugin = config
            .at(&["GetAuthConfigResult", "AuthInfo"])
            .and_then(|a| {
                a.all("AuthPlugInInfo")
                    .find(|p| p.text_of("PlugInID") == Some(PLUGIN_ID))
            })
            .and_then(|p| p.text_of("ServiceUrl").map(str::to_owned))
            .unwrap_or_else(|| AUTH_SERVICE_PATH.to_owned());
        let auth_url = if plugin.starts_with("http://") || plugin.starts_with("https://") {
            plugin
        } else {
            format!("{}/{}", self.base, plugin.trim_start_matches('/'))
        };
        // A stable GUID for the site, from its name.
        let account_guid = {
            use sha1::Digest;
            let h = sha1::Sha1::digest(self.auth.site.as_bytes());
            let mut b = [0u8; 16];
            b.copy_from_slice(&h[..16]);
            uuid::Uuid::from_bytes(b)
        };
        let auth = self.post(
            &auth_url,
            &format!("{NS_AUTH}/GetAuthorizationCookie"),
            &format!(
                "<GetAuthorizationCookie xmlns=\"{NS_AUTH}\"><accountName>{}</accountName>\
                 <accountGuid>{account_guid}</accountGuid></GetAuthorizationCookie>",
                text(&self.auth.site)
            ),
            true,
        )?;
        let result = auth.child("GetAuthorizationCookieResult");
        let plugin_id = result
            .and_then(|r| r.text_of("PlugInId"))
            .unwrap_or(PLUGIN_ID);
        let data = result
            .and_then(|r| r.text_of("CookieData"))
            .unwrap_or("")
            .to_owned();
        let old = match &self.session {
            Some((exp, data, _)) => format!(
                "<oldCookie><Expiration>{exp}</Expiration><EncryptedData>{data}</EncryptedData></oldCookie>"
            ),
            None => String::new(),
        };
        let cookie = self.post(
            &sync_url,
            &format!("{NS_SYNC}/GetCookie"),
            &format!(
                "<GetCookie xmlns=\"{NS_SYNC}\"><authCookies><AuthorizationCookie>\
                 <PlugInId>{}</PlugInId><CookieData>{}</CookieData></AuthorizationCookie></authCookies>\
                 {old}<protocolVersion>{CLIENT_PROTOCOL_VERSION}</protocolVersion></GetCookie>",
                text(plugin_id),
                text(&data)
            ),
            false,
        )?;
        let r = cookie.child("GetCookieResult");
        let expiration = r
            .and_then(|r| r.text_of("Expiration"))
            .unwrap_or("")
            .to_owned();
        let data = r
            .and_then(|r| r.text_of("EncryptedData"))
            .unwrap_or("")
            .to_owned();
        // Renewed a minute before it runs out (MS-WSUSSS 3.2.4.1: never use an expired one).
        let renew = DateTime::parse_from_rfc3339(&expiration)
            .map(|t| t.with_timezone(&Utc) - chrono::Duration::seconds(60))
            .unwrap_or_else(|_| Utc::now() + chrono::Duration::minutes(5));
        self.session = Some((expiration, data, renew));
        Ok(())
    }

    /// A server-sync call carrying the session cookie, authenticating first when needed,
    /// retried on transport failures and rejected cookies.
    fn call(&mut self, op: &str, inner: &str) -> Result<Node> {
        let url = format!("{}/{SYNC_SERVICE_PATH}", self.base);
        let mut delay = self.retry.first_delay;
        let mut last = String::new();
        for attempt in 0..self.retry.attempts.max(1) {
            if attempt > 0 {
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            if self.session.as_ref().is_none_or(|s| s.2 <= Utc::now()) {
                match self.authenticate() {
                    Ok(()) => {}
                    Err(CallError::Transport(m)) => {
                        last = m;
                        continue;
                    }
                    Err(CallError::Fault(f)) => return Err(self.refused(op, &f)),
                    Err(CallError::Tls(m)) => return Err(self.err(op, m)),
                }
            }
            let (exp, data, _) = self.session.clone().expect("authenticated");
            let body = format!(
                "<{op} xmlns=\"{NS_SYNC}\"><cookie><Expiration>{exp}</Expiration>\
                 <EncryptedData>{data}</EncryptedData></cookie>{inner}</{op}>"
            );
            match self.post(&url, &format!("{NS_SYNC}/{op}"), &body, false) {
                Ok(n) => return Ok(n),
                Err(CallError::Transport(m)) => last = m,
                Err(CallError::Tls(m)) => return Err(self.err(op, m)),
                Err(CallError::Fault(f)) => match f.code {
                    Some(ErrorCode::InvalidCookie | ErrorCode::InvalidAuthorizationCookie) => {
                        self.session = None;
                        last = f.message;
                    }
                    Some(ErrorCode::ServerBusy) => last = f.message,
                    Some(ErrorCode::ServerChanged) => {
                        self.cursor = UpstreamCursor::default();
                        return Err(self.err(
                            op,
                            "the parent says it changed (ServerChanged): the anchors were reset; \
                             the next sync lists everything again",
                        ));
                    }
                    _ => return Err(self.refused(op, &f)),
                },
            }
        }
        Err(self.err(
            op,
            format!(
                "gave up after {} attempts: {last}; check that the parent's service runs at {}",
                self.retry.attempts, self.base
            ),
        ))
    }

    fn refused(&self, op: &str, f: &Fault) -> Error {
        let hint = match f.code {
            Some(ErrorCode::InvalidAuthorizationCookie) => format!(
                "; the parent does not accept site '{}' with this secret: the [[source]] secret \
                 here must equal the secret of the [[child]] entry named '{}' on the parent",
                self.auth.site, self.auth.site
            ),
            Some(ErrorCode::IncompatibleProtocolVersion) => {
                "; the parent speaks another protocol version".into()
            }
            _ => String::new(),
        };
        self.err(op, format!("the parent refused: {}{hint}", f.message))
    }

    fn config_data(&mut self) -> Result<()> {
        let r = self.call("GetConfigData", "")?;
        let cfg = r
            .child("GetConfigDataResult")
            .ok_or_else(|| self.err("GetConfigData", "the answer has no GetConfigDataResult"))?;
        if let Some(n) = cfg
            .text_of("MaxNumberOfUpdatesPerRequest")
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n > 0)
        {
            self.batch = n;
        }
        // A child keeps a subset of its parent's languages.
        let offered: Vec<String> = cfg
            .child("LanguageUpdateList")
            .map(|l| {
                l.all("ServerSyncLanguageData")
                    .filter(|d| d.text_of("Enabled").and_then(soap::boolean) != Some(false))
                    .filter_map(|d| d.text_of("ShortLanguage").map(|s| s.to_ascii_lowercase()))
                    .collect()
            })
            .unwrap_or_default();
        if let (Some(keep), false) = (&self.languages, offered.is_empty()) {
            let missing: Vec<&String> = match keep.tags() {
                Some(tags) => tags
                    .iter()
                    .filter(|t| {
                        !offered
                            .iter()
                            .any(|o| o == *t || o.split('-').next() == Some(t.as_str()))
                    })
                    .collect(),
                None => Vec::new(),
            };
            if !missing.is_empty() {
                return Err(self.err(
                    "GetConfigData",
                    format!(
                        "[filter] languages asks for {} but the parent keeps only {}; a child may \
                         choose a subset of its parent's languages",
                        missing
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        offered.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    fn revision_list(
        &mut self,
        config: bool,
        anchor: Option<&str>,
        products: &[(String, bool)],
        classifications: &[(String, bool)],
    ) -> Result<Revisions> {
        let ids = |name: &str, list: &[(String, bool)]| {
            if config {
                return String::new();
            }
            let mut s = format!("<{name}>");
            for (id, delta) in list {
                s.push_str(&format!(
                    "<IdAndDelta><Id>{id}</Id><Delta>{delta}</Delta></IdAndDelta>"
                ));
            }
            s.push_str(&format!("</{name}>"));
            s
        };
        let inner = format!(
            "<filter>{}<GetConfig>{config}</GetConfig><Get63LanguageOnly>false</Get63LanguageOnly>{}{}</filter>",
            anchor
                .map(|a| format!("<Anchor>{}</Anchor>", text(a)))
                .unwrap_or_default(),
            ids("Categories", products),
            ids("Classifications", classifications),
        );
        let r = self.call("GetRevisionIdList", &inner)?;
        let result = r.child("GetRevisionIdListResult").ok_or_else(|| {
            self.err(
                "GetRevisionIdList",
                "the answer has no GetRevisionIdListResult",
            )
        })?;
        let mut out = Revisions {
            anchor: result.text_of("Anchor").map(str::to_owned),
            complete: anchor.is_none(),
            ..Default::default()
        };
        for u in result
            .child("NewRevisions")
            .map(|n| n.all("UpdateIdentity").collect::<Vec<_>>())
            .unwrap_or_default()
        {
            let id = u.text_of("UpdateID").and_then(|s| UpdateId::parse(s).ok());
            let rev = u.text_of("RevisionNumber").and_then(|s| s.parse().ok());
            match (id, rev) {
                (Some(id), Some(revision)) => out.ids.push(Identity { id, revision }),
                _ => {
                    return Err(self.err(
                        "GetRevisionIdList",
                        "an UpdateIdentity lacks a GUID or a revision number",
                    ));
                }
            }
        }
        // patchsync's extension (absent from a WSUS server's answers).
        if let Some(x) = result.all("Listing").find(|n| n.ns == NS_EXT) {
            let ids = |name: &str| -> Vec<UpdateId> {
                x.all(name)
                    .filter_map(|n| UpdateId::parse(n.text.trim()).ok())
                    .collect()
            };
            out.expired = ids("Expired");
            out.removed = ids("Removed");
            out.complete |= x.text_of("Complete").and_then(soap::boolean) == Some(true);
            out.version = x.text_of("Version").and_then(|v| v.parse().ok());
        }
        Ok(out)
    }

    /// GetUpdateData for up to one batch; hands each parsed update and file URL to `sink`.
    fn update_data(
        &mut self,
        ids: &[Identity],
        sink: &mut dyn FnMut(Fetched) -> Result<()>,
    ) -> Result<HashSet<Identity>> {
        let mut inner = String::from("<updateIds>");
        for i in ids {
            inner.push_str(&format!(
                "<UpdateIdentity><UpdateID>{}</UpdateID><RevisionNumber>{}</RevisionNumber></UpdateIdentity>",
                i.id, i.revision
            ));
        }
        inner.push_str("</updateIds>");
        let r = self.call("GetUpdateData", &inner)?;
        let result = r
            .child("GetUpdateDataResult")
            .ok_or_else(|| self.err("GetUpdateData", "the answer has no GetUpdateDataResult"))?;
        let mut got = HashSet::new();
        for d in result
            .child("updates")
            .map(|u| u.all("ServerSyncUpdateData").collect::<Vec<_>>())
            .unwrap_or_default()
        {
            let identity = d.child("Id").and_then(|i| {
                Some(Identity {
                    id: UpdateId::parse(i.text_of("UpdateID")?).ok()?,
                    revision: i.text_of("RevisionNumber")?.parse().ok()?,
                })
            });
            let Some(identity) = identity else {
                return Err(self.err("GetUpdateData", "an update's Id is missing or malformed"));
            };
            let item = format!("update {} revision {}", identity.id, identity.revision);
            let xml = match (
                d.child("XmlUpdateBlob"),
                d.text_of("XmlUpdateBlobCompressed"),
            ) {
                (Some(b), _) if !b.text.trim().is_empty() => b.text.clone(),
                (_, Some(c)) => {
                    let raw = B64.decode(c.as_bytes()).map_err(|e| {
                        self.err(&item, format!("XmlUpdateBlobCompressed is not base64: {e}"))
                    })?;
                    decompress_blob(&raw).map_err(|m| {
                        self.err(
                            &item,
                            format!("XmlUpdateBlobCompressed cannot be read: {m}"),
                        )
                    })?
                }
                _ => return Err(self.err(&item, "the parent sent no metadata for it")),
            };
            let mut update = crate::source::parse_stored(&xml).map_err(|m| {
                self.err(
                    &item,
                    format!("the metadata the parent sent is malformed: {m}"),
                )
            })?;
            update.identity = identity;
            if let Some(kind) = update.category_kind {
                self.classify(identity.id, Some(kind));
            } else if update.update_type == UpdateType::Detectoid {
                self.classify(identity.id, None);
            }
            got.insert(identity);
            sink(Fetched::Update {
                update: Box::new(update),
                origin: format!("{} ({item})", self.base),
            })?;
        }
        for u in result
            .child("fileUrls")
            .map(|u| u.all("ServerSyncUrlData").collect::<Vec<_>>())
            .unwrap_or_default()
        {
            let url = u
                .text_of("MUUrl")
                .filter(|s| !s.is_empty())
                .or(u.text_of("UssUrl").filter(|s| !s.is_empty()));
            if let (Some(digest), Some(url)) = (u.text_of("FileDigest"), url) {
                sink(Fetched::FileUrl {
                    digest: digest.to_owned(),
                    url: url.to_owned(),
                })?;
            }
        }
        Ok(got)
    }

    /// Records what kind of category an id is, in the cursor being built.
    fn classify(&mut self, id: UpdateId, kind: Option<CategoryKind>) {
        let Some(next) = self.next.as_mut() else {
            return;
        };
        let id = id.to_string();
        match kind {
            Some(CategoryKind::Product) => next.products.insert(id),
            Some(CategoryKind::UpdateClassification) => next.classifications.insert(id),
            _ => next.other_categories.insert(id),
        };
    }

    fn list_once(&mut self, full: bool) -> Result<(Listing, bool)> {
        let cur = self.next.clone().expect("listing");
        let cats = self.revision_list(
            true,
            if full {
                None
            } else {
                cur.category_anchor.as_deref()
            },
            &[],
            &[],
        )?;
        if cats.complete && !full {
            return Ok((Listing::default(), false));
        }
        // Categories not seen before are read now: their kinds make the update filter.
        let known = |c: &UpstreamCursor, id: &str| {
            c.products.contains(id)
                || c.classifications.contains(id)
                || c.other_categories.contains(id)
        };
        let unknown: Vec<Identity> = cats
            .ids
            .iter()
            .filter(|i| !known(&cur, &i.id.to_string()))
            .copied()
            .collect();
        for chunk in unknown.chunks(self.batch.max(1)) {
            let mut got = Vec::new();
            self.update_data(chunk, &mut |f| {
                if let Fetched::Update { update, .. } = f {
                    got.push(update);
                }
                Ok(())
            })?;
            for u in got {
                self.prefetched.insert(u.identity, u);
            }
        }
        let next = self.next.clone().expect("listing");
        let flags = |set: &BTreeSet<String>, old: &BTreeSet<String>| -> Vec<(String, bool)> {
            set.iter()
                .map(|id| (id.clone(), !full && old.contains(id)))
                .collect()
        };
        let products = flags(&next.products, &self.cursor.products);
        let classes = flags(&next.classifications, &self.cursor.classifications);
        let updates = if products.is_empty() || classes.is_empty() {
            Revisions {
                anchor: cur.update_anchor.clone(),
                complete: full,
                ..Default::default()
            }
        } else {
            self.revision_list(
                false,
                if full {
                    None
                } else {
                    cur.update_anchor.as_deref()
                },
                &products,
                &classes,
            )?
        };
        if updates.complete && !full {
            return Ok((Listing::default(), false));
        }
        let next = self.next.as_mut().expect("listing");
        next.category_anchor = cats.anchor.clone();
        next.update_anchor = updates.anchor.clone();
        next.parent_version = updates.version.or(cats.version).or(next.parent_version);
        if full {
            next.last_full = Some(Utc::now().timestamp());
        }
        let mut seen = HashSet::new();
        self.order = cats
            .ids
            .iter()
            .chain(updates.ids.iter())
            .filter(|i| seen.insert(**i))
            .copied()
            .collect();
        Ok((
            Listing {
                entries: self.order.clone(),
                complete: full,
                expired: cats.expired.into_iter().chain(updates.expired).collect(),
                removed: cats.removed.into_iter().chain(updates.removed).collect(),
            },
            true,
        ))
    }
}

impl CatalogSource for UpstreamSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn resume(&mut self, cursor: Option<&str>) {
        self.cursor = UpstreamCursor::parse(cursor)
            .filter(|c| c.parent.as_deref() == Some(self.base.as_str()))
            .unwrap_or_default();
    }

    fn languages(&mut self, keep: &LanguageSelection) {
        self.languages = Some(keep.clone());
    }

    fn cursor(&mut self) -> Option<String> {
        self.next
            .as_ref()
            .and_then(|c| serde_json::to_string(c).ok())
    }

    fn list(&mut self) -> Result<Listing> {
        if let Some(m) = &self.agent_error {
            return Err(self.err("[[source]] tls_ca", m.clone()));
        }
        self.prefetched.clear();
        self.order.clear();
        self.config_data()?;
        let due = self
            .cursor
            .last_full
            .is_none_or(|t| Utc::now().timestamp() - t > FULL_LISTING_EVERY);
        let mut full = self.cursor.update_anchor.is_none() || due;
        loop {
            let mut next = self.cursor.clone();
            next.parent = Some(self.base.clone());
            self.next = Some(next);
            let (listing, done) = self.list_once(full)?;
            if done {
                return Ok(listing);
            }
            // The parent cannot answer from our anchor (it no longer remembers that far):
            // list everything.
            full = true;
        }
    }

    fn fetch(
        &mut self,
        wanted: &HashSet<Identity>,
        sink: &mut dyn FnMut(Fetched) -> Result<()>,
    ) -> Result<()> {
        let mut rest = Vec::new();
        for i in self.order.clone() {
            if !wanted.contains(&i) {
                continue;
            }
            match self.prefetched.remove(&i) {
                Some(u) => sink(Fetched::Update {
                    update: u,
                    origin: format!("{} (category {} revision {})", self.base, i.id, i.revision),
                })?,
                None => rest.push(i),
            }
        }
        let listed: HashSet<Identity> = self.order.iter().copied().collect();
        let mut extra: Vec<Identity> = wanted
            .iter()
            .filter(|i| !listed.contains(i))
            .copied()
            .collect();
        extra.sort_by_key(|i| (i.id, i.revision));
        rest.extend(extra);
        for chunk in rest.chunks(self.batch.max(1)) {
            let got = self.update_data(chunk, sink)?;
            if let Some(gone) = chunk.iter().find(|i| !got.contains(i)) {
                return Err(self.err(
                    format!("update {} revision {}", gone.id, gone.revision),
                    "the parent no longer offers this revision (it synced meanwhile); the \
                     next sync takes the newer one",
                ));
            }
        }
        Ok(())
    }
}
