//! The upstream source (`kind = "upstream"`): the client side of MS-WSUSSS. It
//! authenticates (GetAuthConfig → the auth plug-in's GetAuthorizationCookie → GetCookie),
//! reads the parent's configuration, lists categories then updates against anchors kept
//! in its cursor (committed with the data), and fetches metadata in batches with retries,
//! authenticating again when the parent rejects or forgets its cookie.

use std::collections::{BTreeSet, HashMap, HashSet};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::selection::ServerSelection;
use super::server::decompress_blob;
use super::session::Session;
use super::soap::{self, Node, text};
use crate::config::UpstreamAuth;
use crate::error::{Error, Result};
use crate::filter::{CategoryTree, LanguageSelection, Pick};
use crate::model::{CategoryKind, Identity, Update, UpdateId, UpdateType};
use crate::source::{CatalogSource, Fetched, Listing};

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
    /// The products and classifications the last update listing asked for (a site that
    /// selects asks for fewer than it knows; one asked for the first time gets
    /// `Delta = false`). `None` in cursors written before: everything known was asked.
    #[serde(default)]
    pub asked_products: Option<BTreeSet<String>>,
    #[serde(default)]
    pub asked_classifications: Option<BTreeSet<String>>,
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

/// A parent site (or a WSUS server) as a catalog source.
pub struct UpstreamSource {
    name: String,
    base: String,
    /// The calls to the parent: authentication, cookie, retries.
    pub session: Session,
    cursor: UpstreamCursor,
    next: Option<UpstreamCursor>,
    languages: Option<LanguageSelection>,
    batch: usize,
    /// Categories read while listing (their kinds decide the update filter).
    prefetched: HashMap<Identity, Box<Update>>,
    order: Vec<Identity>,
    /// A top-level site's source (`wsus-server`) asks for its selection only.
    selects: bool,
    selection: Option<ServerSelection>,
}

impl UpstreamSource {
    pub fn new(name: &str, url: &str, auth: UpstreamAuth) -> UpstreamSource {
        let base = url.trim_end_matches('/').to_owned();
        UpstreamSource {
            name: name.to_owned(),
            session: Session::new(name, &base, auth),
            base,
            cursor: UpstreamCursor::default(),
            next: None,
            languages: None,
            batch: 100,
            prefetched: HashMap::new(),
            order: Vec::new(),
            selects: false,
            selection: None,
        }
    }

    /// A WSUS server or Microsoft Update as a top-level site's source: the site's
    /// products and classifications are what it asks for, and its own mass-removal guard
    /// applies.
    pub fn selecting(mut self) -> UpstreamSource {
        self.selects = true;
        self
    }

    fn err(&self, item: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Source {
            source_name: self.name.clone(),
            item: item.into(),
            message: message.into(),
        }
    }

    fn config_data(&mut self) -> Result<()> {
        let r = self.session.call("GetConfigData", "")?;
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
        let r = self
            .session
            .call_read("GetRevisionIdList", &inner, super::revisions::read)?;
        if !r.has_result {
            return Err(self.err(
                "GetRevisionIdList",
                "the answer has no GetRevisionIdListResult",
            ));
        }
        if r.malformed_identity {
            return Err(self.err(
                "GetRevisionIdList",
                "an UpdateIdentity lacks a GUID or a revision number",
            ));
        }
        let mut out = Revisions {
            anchor: r.anchor,
            ids: r.ids,
            complete: anchor.is_none(),
            ..Default::default()
        };
        // patchsync's extension (absent from a WSUS server's answers).
        if let Some(x) = r.listing {
            out.expired = x.expired;
            out.removed = x.removed;
            out.complete |= x.complete;
            out.version = x.version;
        }
        Ok(out)
    }

    /// GetUpdateData for up to one batch; hands each parsed update and file URL to `sink`.
    fn update_data(
        &mut self,
        ids: &[Identity],
        sink: &mut dyn FnMut(Fetched) -> Result<()>,
    ) -> Result<HashSet<Identity>> {
        let r = self.session.call("GetUpdateData", &update_ids(ids))?;
        read_update_data(&r, &self.name, &self.base, &mut self.next, sink)
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
        let (ask_products, ask_classes) = match &self.selection {
            Some(sel) => sel.narrow(
                self.prefetched.values().map(|u| &**u),
                &next.products,
                &next.classifications,
            ),
            None => (next.products.clone(), next.classifications.clone()),
        };
        let flags = |set: &BTreeSet<String>, old: &BTreeSet<String>| -> Vec<(String, bool)> {
            set.iter()
                .map(|id| (id.clone(), !full && old.contains(id)))
                .collect()
        };
        let cur_asked = |asked: &Option<BTreeSet<String>>, known: &BTreeSet<String>| {
            asked.clone().unwrap_or_else(|| known.clone())
        };
        let products = flags(
            &ask_products,
            &cur_asked(&self.cursor.asked_products, &self.cursor.products),
        );
        let classes = flags(
            &ask_classes,
            &cur_asked(
                &self.cursor.asked_classifications,
                &self.cursor.classifications,
            ),
        );
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
        next.asked_products = Some(ask_products);
        next.asked_classifications = Some(ask_classes);
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

    /// A child has no selection of its own: what it removes, its parent removed (under
    /// the parent's guard, or with `--allow-mass-removal` there), and it follows. A
    /// top-level site reading a WSUS server has its own selection, and its own guard.
    fn removals_already_guarded(&self) -> bool {
        !self.selects
    }

    fn asks_for_selection(&self) -> bool {
        self.selects
    }

    fn selection(&mut self, products: &Pick, classifications: &Pick, known: &CategoryTree) {
        self.selection = Some(ServerSelection {
            products: products.clone(),
            classifications: classifications.clone(),
            known: known.clone(),
        });
    }

    fn cursor(&mut self) -> Option<String> {
        self.next
            .as_ref()
            .and_then(|c| serde_json::to_string(c).ok())
    }

    fn list(&mut self) -> Result<Listing> {
        self.session.usable()?;
        self.prefetched.clear();
        self.order.clear();
        self.config_data()?;
        let due = self
            .cursor
            .last_full
            .is_none_or(|t| Utc::now().timestamp() - t > FULL_LISTING_EVERY);
        let mut full = self.cursor.update_anchor.is_none() || due;
        let mut restarted = false;
        loop {
            let mut next = self.cursor.clone();
            next.parent = Some(self.base.clone());
            self.next = Some(next);
            match self.list_once(full) {
                Ok((listing, true)) => return Ok(listing),
                // The parent cannot answer from our anchor (it no longer remembers that
                // far): list everything.
                Ok((_, false)) => full = true,
                // The parent changed (MS-WSUSSS 2.2.9.3 ServerChanged): forget the anchors
                // and list everything, once.
                Err(_) if self.session.server_changed && !restarted => {
                    self.session.server_changed = false;
                    restarted = true;
                    self.cursor = UpstreamCursor::default();
                    full = true;
                }
                Err(e) => return Err(e),
            }
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
        let self_name = self.name.clone();
        let mut extra: Vec<Identity> = wanted
            .iter()
            .filter(|i| !listed.contains(i))
            .copied()
            .collect();
        extra.sort_by_key(|i| (i.id, i.revision));
        rest.extend(extra);
        // The next batch is asked for while this one is parsed and stored.
        let chunks: Vec<&[Identity]> = rest.chunks(self.batch.max(1)).collect();
        let UpstreamSource {
            session,
            next,
            base,
            ..
        } = self;
        std::thread::scope(|scope| -> Result<()> {
            let (tx, rx) = std::sync::mpsc::sync_channel::<(&[Identity], Result<Node>)>(2);
            let requests = &chunks;
            let caller = &mut *session;
            scope.spawn(move || {
                for c in requests {
                    let r = caller.call("GetUpdateData", &update_ids(c));
                    let failed = r.is_err();
                    if tx.send((c, r)).is_err() || failed {
                        break;
                    }
                }
            });
            for (chunk, r) in rx {
                let node = r?;
                let got = read_update_data(&node, &self_name, base, next, sink)?;
                if let Some(gone) = chunk.iter().find(|i| !got.contains(i)) {
                    return Err(Error::source(
                        &self_name,
                        format!("update {} revision {}", gone.id, gone.revision),
                        "the parent no longer offers this revision (it synced meanwhile); the \
                         next sync takes the newer one",
                    ));
                }
            }
            Ok(())
        })
    }
}

/// The `updateIds` of a GetUpdateData request.
fn update_ids(ids: &[Identity]) -> String {
    let mut inner = String::with_capacity(100 * ids.len() + 30);
    inner.push_str("<updateIds>");
    for i in ids {
        inner.push_str(&format!(
            "<UpdateIdentity><UpdateID>{}</UpdateID><RevisionNumber>{}</RevisionNumber></UpdateIdentity>",
            i.id, i.revision
        ));
    }
    inner.push_str("</updateIds>");
    inner
}

/// Reads one GetUpdateData answer: each update parsed and handed to `sink` (categories'
/// kinds noted in `next`), then each file URL; returns the identities it held.
fn read_update_data(
    r: &Node,
    name: &str,
    base: &str,
    next: &mut Option<UpstreamCursor>,
    sink: &mut dyn FnMut(Fetched) -> Result<()>,
) -> Result<HashSet<Identity>> {
    let result = r.child("GetUpdateDataResult").ok_or_else(|| {
        Error::source(
            name,
            "GetUpdateData",
            "the answer has no GetUpdateDataResult",
        )
    })?;
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
            return Err(Error::source(
                name,
                "GetUpdateData",
                "an update's Id is missing or malformed",
            ));
        };
        let item = format!("update {} revision {}", identity.id, identity.revision);
        let xml = match (
            d.child("XmlUpdateBlob"),
            d.text_of("XmlUpdateBlobCompressed"),
        ) {
            (Some(b), _) if !b.text.trim().is_empty() => b.text.clone(),
            (_, Some(c)) => {
                let raw = B64.decode(c.as_bytes()).map_err(|e| {
                    Error::source(
                        name,
                        &item,
                        format!("XmlUpdateBlobCompressed is not base64: {e}"),
                    )
                })?;
                decompress_blob(&raw).map_err(|m| {
                    Error::source(
                        name,
                        &item,
                        format!("XmlUpdateBlobCompressed cannot be read: {m}"),
                    )
                })?
            }
            _ => {
                return Err(Error::source(
                    name,
                    &item,
                    "the parent sent no metadata for it",
                ));
            }
        };
        let mut update = crate::source::parse_stored(&xml).map_err(|m| {
            Error::source(
                name,
                &item,
                format!("the metadata the parent sent is malformed: {m}"),
            )
        })?;
        update.identity = identity;
        if let Some(next) = next.as_mut() {
            let id = identity.id.to_string();
            match update.category_kind {
                Some(CategoryKind::Product) => next.products.insert(id),
                Some(CategoryKind::UpdateClassification) => next.classifications.insert(id),
                Some(_) => next.other_categories.insert(id),
                None if update.update_type == UpdateType::Detectoid => {
                    next.other_categories.insert(id)
                }
                None => false,
            };
        }
        got.insert(identity);
        sink(Fetched::Update {
            update: Box::new(update),
            origin: format!("{base} ({item})"),
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
