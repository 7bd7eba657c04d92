//! Third-party vendor catalogs in the SDP schema (`kind = "sdp-catalog"`): one
//! `smc:SystemsManagementCatalog` document (plain, or inside a zip or CAB), an archive of
//! `<PackageID>.sdp` files with `update_manifest.json`, or a single `.sdp` file; from a path
//! or an http(s) URL.
//!
//! Mapping: PackageID → update id; VendorName → a Company category; ProductName → a Product
//! category under it; the classification name → Microsoft's well-known classification GUID
//! (an unknown name becomes a classification of its own, reported). Category ids are
//! derived from the names, so every site gets the same ones.
//!
//! Revision numbers: SDP has none, so one is derived and kept monotonic. A package's
//! revision is the number of minutes from 2000-01-01T00:00Z to its timestamp (the manifest's
//! last-modified time in a per-update archive, else its `CreationDate`). The source keeps,
//! in its cursor, each package's revision and a digest of its text (or its manifest time);
//! when the text changed but the timestamp did not move past the stored revision, the
//! revision is the stored one plus 1. So a changed package always shows up as revised.

mod package;
mod split;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

use super::container::Container;
use super::location::{CatalogFile, Location, Validators};
use super::{CatalogSource, Fetched, Listing};
use crate::error::{Error, Result};
use crate::generate::xmlgen;
use crate::model::{CategoryKind, Identity, UpdateId, well_known_classification};

const MANIFEST: &str = "update_manifest.json";

/// What the source keeps between syncs.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Cursor {
    /// PackageID → what was derived for it.
    packages: BTreeMap<UpdateId, PackageMark>,
    /// Categories the packages named: id → (kind, title, parent).
    categories: BTreeMap<UpdateId, CategoryMark>,
    /// The server's validators for a catalog given by URL.
    #[serde(default)]
    remote: Option<Validators>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PackageMark {
    revision: u32,
    /// Digest of the package text, or its manifest time.
    mark: String,
    /// The product and classification categories it names.
    categories: Vec<UpdateId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CategoryMark {
    kind: CategoryKind,
    title: String,
    parent: Option<UpdateId>,
}

/// How the catalog file is laid out.
#[derive(Debug, Clone)]
enum Layout {
    /// One document holding every package: the entry to read (`None`: the file itself).
    Document(Option<String>),
    /// One `.sdp` per package; `manifest` maps PackageID → last-modified time.
    PerUpdate {
        entries: HashMap<UpdateId, String>,
        manifest: BTreeMap<UpdateId, String>,
    },
}

/// A vendor catalog.
pub struct SdpCatalogSource {
    name: String,
    file: CatalogFile,
    previous: Cursor,
    next: Cursor,
    warned: HashSet<String>,
}

impl SdpCatalogSource {
    pub fn new(name: impl Into<String>, location: Location, sha256: Option<String>) -> Self {
        let name = name.into();
        SdpCatalogSource {
            name: name.clone(),
            file: CatalogFile::new(&name, location, sha256),
            previous: Cursor::default(),
            next: Cursor::default(),
            warned: HashSet::new(),
        }
    }

    fn err(&self, item: impl Into<String>, message: impl Into<String>) -> Error {
        Error::source(&self.name, item, message)
    }

    fn open(&mut self) -> Result<(Container, Layout, String)> {
        let shown = self.file.location().display();
        let path = self.file.local()?.path.clone();
        let mut c = Container::open(&self.name, &path, &shown)?;
        let layout = self.layout(&mut c, &shown)?;
        Ok((c, layout, shown))
    }

    fn layout(&self, c: &mut Container, shown: &str) -> Result<Layout> {
        if !c.is_archive() {
            return Ok(Layout::Document(None));
        }
        let names = c.names();
        let base = |n: &str| n.rsplit(['/', '\\']).next().unwrap_or(n).to_owned();
        if let Some(m) = names
            .iter()
            .find(|n| base(n).eq_ignore_ascii_case(MANIFEST))
        {
            let mut text = String::new();
            c.open_entry(m)
                .and_then(|mut r| r.read_to_string(&mut text))
                .map_err(|e| self.err(format!("{shown}: {m}"), format!("cannot read: {e}")))?;
            let raw: BTreeMap<String, String> = serde_json::from_str(&text).map_err(|e| {
                self.err(
                    format!("{shown}: {m}"),
                    format!("not a JSON object of PackageID → time: {e}"),
                )
            })?;
            let mut manifest = BTreeMap::new();
            for (k, v) in raw {
                let id = UpdateId::parse(&k)
                    .map_err(|e| self.err(format!("{shown}: {m}"), format!("key {e}")))?;
                manifest.insert(id, v);
            }
            let mut entries = HashMap::new();
            for n in &names {
                let b = base(n);
                if let Some(stem) = b.strip_suffix(".sdp").or_else(|| b.strip_suffix(".SDP"))
                    && let Ok(id) = UpdateId::parse(stem)
                {
                    entries.insert(id, n.clone());
                }
            }
            return Ok(Layout::PerUpdate { entries, manifest });
        }
        let doc = names
            .iter()
            .find(|n| n.to_ascii_lowercase().ends_with(".xml"))
            .or_else(|| {
                names
                    .iter()
                    .find(|n| n.to_ascii_lowercase().ends_with(".sdp"))
            })
            .ok_or_else(|| {
                self.err(
                    shown,
                    format!(
                        "the archive holds neither {MANIFEST} nor an .xml catalog (entries: {})",
                        names.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
                    ),
                )
            })?;
        Ok(Layout::Document(Some(doc.clone())))
    }

    /// The revision of a package, from its timestamp and what the cursor remembers.
    fn revision(&self, id: UpdateId, timestamp: Option<&str>, mark: &str) -> u32 {
        let dated = timestamp.and_then(minutes_since_2000).unwrap_or(1);
        match self.previous.packages.get(&id) {
            Some(p) if p.mark == mark => p.revision,
            Some(p) => dated.max(p.revision + 1),
            None => dated,
        }
    }

    /// The category ids a package names, registering new categories in the next cursor.
    fn categories_of(&mut self, p: &package::SdpPackage) -> Vec<UpdateId> {
        let ids = package_categories(p);
        self.note_category(ids.company, CategoryKind::Company, &p.vendor, None);
        self.note_category(
            ids.product,
            CategoryKind::Product,
            &p.product,
            Some(ids.company),
        );
        let mut out = vec![ids.product];
        if let Some((id, c)) = ids.classification.zip(p.classification.as_ref()) {
            if well_known_classification(c).is_none() {
                self.note_category(id, CategoryKind::UpdateClassification, c, None);
            }
            out.push(id);
        }
        out
    }

    fn note_category(
        &mut self,
        id: UpdateId,
        kind: CategoryKind,
        title: &str,
        parent: Option<UpdateId>,
    ) {
        self.next
            .categories
            .entry(id)
            .or_insert_with(|| CategoryMark {
                kind,
                title: title.to_owned(),
                parent,
            });
    }

    /// Reads every package of a one-document catalog, calling `each` with its identity and
    /// the parsed package.
    fn scan_document(
        &mut self,
        c: &mut Container,
        entry: Option<&str>,
        shown: &str,
        each: &mut dyn FnMut(&mut Self, Identity, package::SdpPackage) -> Result<()>,
    ) -> Result<()> {
        let entry_name = entry
            .map(str::to_owned)
            .unwrap_or_else(|| c.names()[0].clone());
        let item = match entry {
            Some(e) => format!("{shown}: {e}"),
            None => shown.to_owned(),
        };
        let reader = c
            .open_entry(&entry_name)
            .map_err(|e| self.err(&item, format!("cannot read: {e}")))?;
        let mut failure: Option<Error> = None;
        let name = self.name.clone();
        let result = split::for_each_package(reader, |index, xml| {
            let step = (|| -> Result<()> {
                let p = package::parse_package(xml).map_err(|m| {
                    Error::source(&name, format!("{item}: package {}", index + 1), m)
                })?;
                let mark = text_digest(xml);
                let rev = self.revision(
                    p.update.identity.id,
                    p.update.creation_date.as_deref(),
                    &mark,
                );
                let identity = Identity {
                    id: p.update.identity.id,
                    revision: rev,
                };
                each(self, identity, p)?;
                if let Some(m) = self.next.packages.get_mut(&identity.id) {
                    m.mark = mark;
                }
                Ok(())
            })();
            step.map_err(|e| {
                let text = e.to_string();
                failure = Some(e);
                text
            })
        });
        match (result, failure) {
            (_, Some(e)) => Err(e),
            (Err(m), None) => Err(self.err(&item, m)),
            (Ok(_), None) => Ok(()),
        }
    }

    /// Records a package in the next cursor and returns its categories.
    fn admit(&mut self, identity: Identity, p: &package::SdpPackage) -> Vec<UpdateId> {
        let cats = self.categories_of(p);
        self.next.packages.insert(
            identity.id,
            PackageMark {
                revision: identity.revision,
                mark: String::new(),
                categories: cats.clone(),
            },
        );
        cats
    }

    fn category_entries(&self) -> Vec<Identity> {
        self.next
            .categories
            .keys()
            .map(|id| Identity {
                id: *id,
                revision: 1,
            })
            .collect()
    }

    fn category_update(&self, id: UpdateId) -> Result<Fetched> {
        let m = &self.next.categories[&id];
        let ids = id.to_string();
        let parent: Vec<String> = m.parent.iter().map(|p| p.to_string()).collect();
        let xml = xmlgen::render(&xmlgen::Entry {
            id: &ids,
            revision: 1,
            update_type: "Category",
            state: "Published",
            created: "2000-01-01T00:00:00Z",
            severity: None,
            kb: None,
            bulletin: None,
            cves: vec![],
            locs: vec![xmlgen::Loc {
                lang: "en",
                title: m.title.clone(),
                description: format!("{} from a vendor catalog", m.kind.as_str()),
            }],
            prerequisites: vec![],
            categories: parent,
            bundled: vec![],
            superseded: vec![],
            files: vec![],
            category_kind: Some(m.kind.as_str()),
        });
        let update = crate::xml::parse_update(&xml)
            .map_err(|e| self.err(format!("category {}", m.title), e.to_string()))?;
        Ok(Fetched::Update {
            update: Box::new(update),
            origin: format!("category {}", m.title),
        })
    }

    /// Lists (and with a sink, fetches what `want` accepts) in one pass over the catalog.
    fn pass(
        &mut self,
        want: &(dyn Fn(Identity) -> bool + Sync),
        mut sink: Option<&mut dyn FnMut(Fetched) -> Result<()>>,
    ) -> Result<Listing> {
        self.next = Cursor {
            packages: BTreeMap::new(),
            categories: self.previous.categories.clone(),
            remote: None,
        };
        let (mut c, layout, shown) = self.open()?;
        let mut entries: Vec<Identity> = Vec::new();
        let mut sent_categories: HashSet<UpdateId> = HashSet::new();
        let mut deliver = |me: &mut Self,
                           identity: Identity,
                           p: package::SdpPackage,
                           sink: &mut Option<&mut dyn FnMut(Fetched) -> Result<()>>|
         -> Result<()> {
            let cats = me.admit(identity, &p);
            let Some(sink) = sink.as_mut() else {
                return Ok(());
            };
            // An unknown classification is reported once per sync, naming its first package.
            if let Some(c) = &p.classification
                && well_known_classification(c).is_none()
                && me.warned.insert(c.to_lowercase())
            {
                sink(Fetched::Warning(format!(
                    "the catalog names the classification '{c}', which is not one of Microsoft's; \
                     its packages are kept under an unknown classification {} (first: package {})",
                    category_id("classification", &c.to_lowercase()),
                    identity.id
                )))?;
            }
            if !want(identity) {
                return Ok(());
            }
            for cat in cats {
                // The category and its parents, top first.
                let mut chain = vec![cat];
                while let Some(p) = me
                    .next
                    .categories
                    .get(chain.last().expect("non-empty"))
                    .and_then(|c| c.parent)
                {
                    chain.push(p);
                }
                for c in chain.into_iter().rev() {
                    let ci = Identity { id: c, revision: 1 };
                    if me.next.categories.contains_key(&c) && want(ci) && sent_categories.insert(c)
                    {
                        sink(me.category_update(c)?)?;
                    }
                }
            }
            let mut update = p.update;
            update.identity = identity;
            update.categories = me.next.packages[&identity.id].categories.clone();
            let urls: Vec<(String, String)> = update
                .files
                .iter()
                .filter_map(|f| Some((f.digest.clone()?, f.url.clone()?)))
                .collect();
            sink(Fetched::Update {
                update: Box::new(update),
                origin: format!("package {}", identity.id),
            })?;
            for (digest, url) in urls {
                sink(Fetched::FileUrl { digest, url })?;
            }
            Ok(())
        };
        match layout {
            Layout::Document(entry) => {
                self.scan_document(&mut c, entry.as_deref(), &shown, &mut |me, identity, p| {
                    entries.push(identity);
                    deliver(me, identity, p, &mut sink)
                })?;
            }
            Layout::PerUpdate {
                entries: files,
                manifest,
            } => {
                for (id, time) in &manifest {
                    let mark = format!("time:{time}");
                    let revision = self.revision(*id, Some(time), &mark);
                    let identity = Identity { id: *id, revision };
                    let remembered = self
                        .previous
                        .packages
                        .get(id)
                        .filter(|p| p.mark == mark && p.revision == revision)
                        .cloned();
                    let needs_read = remembered.is_none() || (sink.is_some() && want(identity));
                    if !needs_read {
                        let m = remembered.expect("checked");
                        self.next.packages.insert(*id, m);
                        entries.push(identity);
                        continue;
                    }
                    let file = files.get(id).ok_or_else(|| {
                        self.err(
                            format!("{shown}: package {id}"),
                            format!("{MANIFEST} lists it but the archive has no {id}.sdp; the archive is incomplete"),
                        )
                    })?;
                    let item = format!("{shown}: {file}");
                    let mut text = String::new();
                    c.open_entry(file)
                        .and_then(|mut r| r.read_to_string(&mut text))
                        .map_err(|e| self.err(&item, format!("cannot read: {e}")))?;
                    let p = package::parse_package(text.trim_start_matches('\u{feff}'))
                        .map_err(|m| self.err(&item, m))?;
                    if p.update.identity.id != *id {
                        return Err(self.err(
                            &item,
                            format!(
                                "its PackageID is {}, not the {id} its name and {MANIFEST} say",
                                p.update.identity.id
                            ),
                        ));
                    }
                    entries.push(identity);
                    deliver(self, identity, p, &mut sink)?;
                    if let Some(m) = self.next.packages.get_mut(id) {
                        m.mark = mark;
                    }
                }
            }
        }
        // Categories named by the catalog now (a category no package names any more is
        // dropped from the listing, and so expires).
        let named: HashSet<UpdateId> = self
            .next
            .packages
            .values()
            .flat_map(|p| p.categories.iter().copied())
            .collect();
        let mut parents: HashSet<UpdateId> = HashSet::new();
        for id in &named {
            if let Some(p) = self.next.categories.get(id).and_then(|c| c.parent) {
                parents.insert(p);
            }
        }
        self.next
            .categories
            .retain(|id, _| named.contains(id) || parents.contains(id));
        if let Some(sink) = sink.as_mut() {
            let rest: Vec<UpdateId> = self
                .next
                .categories
                .keys()
                .filter(|id| {
                    !sent_categories.contains(id)
                        && want(Identity {
                            id: **id,
                            revision: 1,
                        })
                })
                .copied()
                .collect();
            for id in rest {
                sink(self.category_update(id)?)?;
            }
        }
        entries.extend(self.category_entries());
        Ok(Listing {
            entries,
            complete: true,
            ..Default::default()
        })
    }
}

/// Minutes from 2000-01-01T00:00Z to an SDP timestamp (with or without an offset).
/// The categories of a vendor package, derived from its names alone.
struct PackageCategories {
    company: UpdateId,
    product: UpdateId,
    /// A well-known classification's GUID, or one derived from an unknown name.
    classification: Option<UpdateId>,
}

fn package_categories(p: &package::SdpPackage) -> PackageCategories {
    PackageCategories {
        company: category_id("company", &p.vendor),
        product: category_id("product", &format!("{}\n{}", p.vendor, p.product)),
        classification: p.classification.as_ref().map(|c| {
            well_known_classification(c)
                .unwrap_or_else(|| category_id("classification", &c.to_lowercase()))
        }),
    }
}

/// Reads a vendor package as this source stored it (its categories derived as a sync
/// derives them); the revision is the caller's to set.
pub(crate) fn parse_stored_package(xml: &str) -> std::result::Result<crate::model::Update, String> {
    let p = package::parse_package(xml)?;
    let ids = package_categories(&p);
    let mut u = p.update;
    u.categories = std::iter::once(ids.product)
        .chain(ids.classification)
        .collect();
    Ok(u)
}

fn minutes_since_2000(s: &str) -> Option<u32> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime};
    let s = s.trim();
    let t = DateTime::parse_from_rfc3339(s)
        .map(|d| d.naive_utc())
        .ok()
        .or_else(|| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok())
        .or_else(|| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").ok())
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })?;
    let epoch = NaiveDate::from_ymd_opt(2000, 1, 1)?.and_hms_opt(0, 0, 0)?;
    let m = (t - epoch).num_minutes();
    u32::try_from(m.max(1)).ok()
}

fn text_digest(xml: &str) -> String {
    let h = Sha1::digest(xml.as_bytes());
    h.iter().take(10).map(|b| format!("{b:02x}")).collect()
}

/// A stable category id for a vendor-catalog name.
fn category_id(kind: &str, name: &str) -> UpdateId {
    UpdateId::parse(&xmlgen::guid_from(&format!("patchsync:sdp:{kind}:{name}")))
        .expect("a generated GUID")
}

impl CatalogSource for SdpCatalogSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn resume(&mut self, cursor: Option<&str>) {
        // A cursor this version cannot read only costs re-derived revisions.
        self.previous = cursor
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or_default();
        self.file.resume(self.previous.remote.clone());
    }

    fn cursor(&mut self) -> Option<String> {
        self.next.remote = self.file.validators();
        serde_json::to_string(&self.next).ok()
    }

    fn fingerprint(&mut self) -> Result<Option<String>> {
        self.file.fingerprint().map(Some)
    }

    fn list(&mut self) -> Result<Listing> {
        self.pass(&|_| false, None)
    }

    fn fetch(
        &mut self,
        wanted: &HashSet<Identity>,
        sink: &mut dyn FnMut(Fetched) -> Result<()>,
    ) -> Result<()> {
        let want = |i: Identity| wanted.contains(&i);
        self.pass(&want, Some(sink)).map(|_| ())
    }

    fn lists_while_fetching(&self) -> bool {
        true
    }

    fn list_and_fetch(
        &mut self,
        want: &(dyn Fn(Identity) -> bool + Sync),
        sink: &mut dyn FnMut(Fetched) -> Result<()>,
    ) -> Result<Option<Listing>> {
        self.pass(want, Some(sink)).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_come_from_time_and_move_on_change() {
        assert_eq!(minutes_since_2000("2000-01-01T01:00:00"), Some(60));
        assert_eq!(
            minutes_since_2000("2018-10-03T06:37:49+00:00"),
            minutes_since_2000("2018-10-03T06:37:00")
        );
        let id = UpdateId::parse("0e6cf4ac-2853-48aa-825b-8fe28206575f").unwrap();
        let mut s = SdpCatalogSource::new("t", Location::Url("https://x".into()), None);
        let dated = minutes_since_2000("2015-12-21T11:48:00").unwrap();
        assert_eq!(s.revision(id, Some("2015-12-21T11:48:00"), "a"), dated);
        s.previous.packages.insert(
            id,
            PackageMark {
                revision: dated,
                mark: "a".into(),
                categories: vec![],
            },
        );
        assert_eq!(s.revision(id, Some("2015-12-21T11:48:00"), "a"), dated);
        assert_eq!(s.revision(id, Some("2015-12-21T11:48:00"), "b"), dated + 1);
        assert_eq!(
            s.revision(id, Some("2016-01-01T00:00:00"), "b"),
            minutes_since_2000("2016-01-01T00:00:00").unwrap()
        );
    }
}
