//! The offline scan file `wsusscn2.cab` (`kind = "wsusscn2"`), from a path or a URL.
//!
//! Layout: the outer CAB holds `index.xml`, `package.cab` (→ `package.xml`, one entry per
//! revision with integer `RevisionId` cross-references) and `packageN.cab` files of
//! per-revision fragments: `c/<id>` core, `x/<id>` extended properties, `l/<lang>/<id>`
//! localized properties. A revision's fragments live in the cab with the largest
//! `RANGESTART` not above its RevisionId.
//!
//! Streaming: the outer CAB is read front to back once ([`super::cab_stream`]); one fragment
//! cab at a time is copied to a temporary file (CAB reading needs to seek) and deleted after
//! use. A fragment cab whose wanted core fragments fit in 64 MB is read once, each revision
//! handed on as soon as its last fragment arrives; a larger one is read twice, first for the
//! wanted revisions' small localized and extended fragments, then for their core fragments,
//! each of which completes a revision that is handed on at once, so no core fragment is held
//! beyond its own revision. Either way the store writes while the cab is still being read. Localized fragments of languages
//! the site does not keep are not read at all (the format keeps each language apart for
//! that), so an update's stored raw metadata holds the kept languages only.
//!
//! Each revision becomes one update XML document: `<Update>` in the update namespace
//! holding the core fragment, a `LocalizedPropertiesCollection` of the localized fragments,
//! the extended fragment, and the package.xml entry verbatim in an `OfflineSyncPackageEntry`
//! element, so the stored raw metadata has everything the file said about the revision.
//! A revision without a core fragment whose package.xml entry names its categories is
//! stored from package.xml and its other fragments, with a warning; without either it is
//! an error.

mod package;

use std::collections::HashSet;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use package::{Entry, PackageXml, capture_raw, read_package_xml};

use super::cab_stream::for_each_file;
use super::location::{CatalogFile, Location, Validators};
use super::{CatalogSource, Fetched, Listing};
use crate::error::{Error, Result};
use crate::filter::LanguageSelection;
use crate::model::{Identity, RelationKind, Update, UpdateId, UpdateRef};
use crate::xml::{UPDATE_NS, parse_update_owned};

/// The walk's own maps, keyed by RevisionId, cab or digest: hundreds of thousands of
/// lookups per fragment cab, so a fast hasher (foldhash, seeded per map).
type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type Set<K> = HashSet<K, foldhash::fast::RandomState>;

const OFFLINE_NS: &str = "http://schemas.microsoft.com/msus/2004/02/OfflineSync";
/// Prefixes core fragments use without declaring them (their declarations lived on the
/// document they were cut from); each is declared only when a fragment uses it.
/// (how an element with the prefix starts, its declaration).
const FRAGMENT_PREFIXES: &[(&str, &str)] = &[
    (
        "<bar:",
        " xmlns:bar=\"http://schemas.microsoft.com/msus/2002/12/BaseApplicabilityRules\"",
    ),
    (
        "<lar:",
        " xmlns:lar=\"http://schemas.microsoft.com/msus/2002/12/LogicalApplicabilityRules\"",
    ),
    (
        "<cat:",
        " xmlns:cat=\"http://schemas.microsoft.com/msus/2002/12/UpdateHandlers/Category\"",
    ),
    (
        "xsi:",
        " xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"",
    ),
];
/// Wanted core fragments one fragment cab may hold while it is read once; above this the
/// cab is read twice instead.
const ONE_PASS_CORE_BUDGET: u64 = 64 << 20;
/// Revisions without a core fragment named one by one in the report; the rest are counted.
const CORELESS_WARNINGS: u64 = 20;
/// Marks the early end of a listing pass (package.xml is all a listing needs).
const STOP: &str = "patchsync: listing complete";

/// What the source keeps between syncs: the server's validators for a URL.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Cursor {
    #[serde(default)]
    remote: Option<Validators>,
}

/// An offline scan file.
pub struct Wsusscn2Source {
    name: String,
    file: CatalogFile,
    /// Localized fragments (`l/<lang>/`) of other languages are not read.
    languages: Option<LanguageSelection>,
    /// package.xml as this sync first read it, so a later fetch only copies out the
    /// entries it wants.
    listed: Option<PackageXml>,
    /// Wanted core fragments a fragment cab may hold while it is read once.
    one_pass_budget: u64,
}

impl Wsusscn2Source {
    pub fn new(name: impl Into<String>, location: Location, sha256: Option<String>) -> Self {
        let name = name.into();
        Wsusscn2Source {
            name: name.clone(),
            file: CatalogFile::new(&name, location, sha256),
            languages: None,
            listed: None,
            one_pass_budget: ONE_PASS_CORE_BUDGET,
        }
    }

    /// Sets how many bytes of wanted core fragments a fragment cab may hold while it is read
    /// once (default 64 MB); a cab above it is read twice and holds none. 0 always reads
    /// twice.
    pub fn hold_at_most(mut self, bytes: u64) -> Self {
        self.one_pass_budget = bytes;
        self
    }

    fn local(&mut self) -> Result<PathBuf> {
        self.file.local().map(|l| l.path.clone())
    }
}

/// The fragments of one revision.
#[derive(Default)]
struct Fragments {
    localized: Vec<String>,
    extended: Option<String>,
}

/// What one pass over the outer CAB builds up.
struct Walk<'a, 's> {
    source: String,
    shown: String,
    wanted: Option<&'a HashSet<Identity>>,
    languages: Option<&'a LanguageSelection>,
    one_pass_budget: u64,
    sink: Option<&'a mut (dyn FnMut(Fetched) -> Result<()> + 's)>,
    spool: tempfile::TempDir,
    /// `index.xml`: (RANGESTART, cab name lowercased), sorted.
    ranges: Option<Vec<(u32, String)>>,
    package: Option<PackageXml>,
    by_rid: Map<u32, usize>,
    /// superseder RevisionId → the RevisionIds it supersedes; bundle → its leaves.
    supersedes: Map<u32, Vec<u32>>,
    bundles: Map<u32, Vec<u32>>,
    urls: Map<String, String>,
    /// cab name (lowercased) → wanted RevisionIds in it.
    plan: Option<Map<String, Vec<u32>>>,
    /// Fragment cabs copied before the plan existed.
    pending: Vec<(String, PathBuf)>,
    seen_cabs: Set<String>,
    failure: Option<Error>,
    /// package.xml already parsed by the listing pass.
    cached: Option<PackageXml>,
    /// Revisions stored without a core fragment (the first few are named in warnings).
    coreless: u64,
}

impl Walk<'_, '_> {
    fn err(&self, item: impl Into<String>, message: impl Into<String>) -> Error {
        Error::source(&self.source, item, message)
    }

    fn listing_only(&self) -> bool {
        self.sink.is_none()
    }

    fn read_index(&mut self, r: &mut dyn Read) -> Result<()> {
        let mut text = String::new();
        r.read_to_string(&mut text)
            .map_err(|e| self.err(format!("{}: index.xml", self.shown), e.to_string()))?;
        let mut reader = quick_xml::Reader::from_str(&text);
        let mut ranges = Vec::new();
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e))
                    if e.local_name().as_ref() == b"CAB" =>
                {
                    let mut name = None;
                    let mut start = None;
                    for a in e.attributes().flatten() {
                        let v = String::from_utf8_lossy(&a.value).into_owned();
                        match a.key.local_name().as_ref() {
                            b"NAME" => name = Some(v.to_ascii_lowercase()),
                            b"RANGESTART" => start = v.trim().parse::<u32>().ok(),
                            _ => {}
                        }
                    }
                    if let (Some(n), Some(s)) = (name, start) {
                        ranges.push((s, n));
                    }
                }
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(_) => {}
                Err(e) => {
                    return Err(self.err(
                        format!("{}: index.xml", self.shown),
                        format!("malformed: {e}"),
                    ));
                }
            }
        }
        if ranges.is_empty() {
            return Err(self.err(
                format!("{}: index.xml", self.shown),
                "lists no fragment cab with a RANGESTART",
            ));
        }
        ranges.sort();
        self.ranges = Some(ranges);
        Ok(())
    }

    fn spool(&self, name: &str, r: &mut dyn Read) -> Result<PathBuf> {
        let path = self.spool.path().join(name.replace(['/', '\\'], "_"));
        let mut f = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        std::io::copy(r, &mut f).map_err(|e| {
            self.err(
                format!("{}: {name}", self.shown),
                format!("cannot read it from the offline scan file: {e}"),
            )
        })?;
        Ok(path)
    }

    fn read_package(&mut self, cab: &Path) -> Result<()> {
        let item = format!("{}: package.cab", self.shown);
        let wanted = self.wanted;
        let keep = |i: Identity| wanted.is_some_and(|w| w.contains(&i));
        // package.xml is parsed once per sync (the listing's parse is reused); the entries a
        // fetch wants are then copied out by their spans, without parsing again.
        let mut found: Option<std::result::Result<PackageXml, String>> = self.cached.take().map(Ok);
        let fetching = !self.listing_only();
        let damaged = |w: &Self, e: std::io::Error| {
            w.err(&item, format!("{e}; download the offline scan file again"))
        };
        if found.is_none() {
            for_each_file(cab, |e, r| {
                if e.name.eq_ignore_ascii_case("package.xml") {
                    found = Some(read_package_xml(BufReader::new(r)));
                }
                Ok(())
            })
            .map_err(|e| damaged(self, e))?;
        }
        if fetching && let Some(Ok(p)) = found.as_mut() {
            let mut copied: std::result::Result<(), String> = Ok(());
            for_each_file(cab, |e, r| {
                if e.name.eq_ignore_ascii_case("package.xml") {
                    copied = capture_raw(BufReader::new(r), &mut p.entries, &keep);
                }
                Ok(())
            })
            .map_err(|e| damaged(self, e))?;
            if let Err(m) = copied {
                return Err(self.err(format!("{item}: package.xml"), m));
            }
        }
        let package = match found {
            None => return Err(self.err(&item, "holds no package.xml")),
            Some(Err(m)) => return Err(self.err(format!("{item}: package.xml"), m)),
            Some(Ok(p)) => p,
        };
        for (i, e) in package.entries.iter().enumerate() {
            self.by_rid.insert(e.revision_id, i);
            for s in &e.superseded_by {
                self.supersedes.entry(*s).or_default().push(e.revision_id);
            }
            for b in &e.bundled_by {
                self.bundles.entry(*b).or_default().push(e.revision_id);
            }
        }
        if !self.listing_only() {
            self.urls = package.file_locations.iter().cloned().collect();
        }
        self.package = Some(package);
        Ok(())
    }

    fn cab_of(&self, rid: u32) -> Option<&str> {
        let ranges = self.ranges.as_ref()?;
        let i = ranges.partition_point(|(s, _)| *s <= rid);
        i.checked_sub(1).map(|i| ranges[i].1.as_str())
    }

    /// Once index and package are both read: which cab to open for which revisions.
    fn make_plan(&mut self) -> Result<()> {
        if self.plan.is_some() || self.ranges.is_none() || self.package.is_none() {
            return Ok(());
        }
        let mut plan: Map<String, Vec<u32>> = Map::default();
        if let (Some(w), Some(p)) = (self.wanted, self.package.as_ref()) {
            for e in &p.entries {
                if w.contains(&e.identity) {
                    let cab = self.cab_of(e.revision_id).ok_or_else(|| {
                        self.err(
                            format!("{}: index.xml", self.shown),
                            format!(
                                "no cab's RANGESTART covers RevisionId {} (update {})",
                                e.revision_id, e.identity.id
                            ),
                        )
                    })?;
                    plan.entry(cab.to_owned()).or_default().push(e.revision_id);
                }
            }
        }
        self.plan = Some(plan);
        for (name, path) in std::mem::take(&mut self.pending) {
            self.fragment_cab(&name, &path)?;
            let _ = std::fs::remove_file(&path);
        }
        Ok(())
    }

    /// Reads the wanted revisions' fragments of one cab and hands out their updates.
    fn fragment_cab(&mut self, name: &str, cab: &Path) -> Result<()> {
        let Some(rids) = self.plan.as_ref().and_then(|p| p.get(name)).cloned() else {
            return Ok(());
        };
        let wanted: Set<u32> = rids.iter().copied().collect();
        let item = format!("{}: {name}", self.shown);
        let damaged = |w: &Self, e: std::io::Error| {
            w.err(&item, format!("{e}; download the offline scan file again"))
        };

        // A cab whose wanted core fragments are small is read once, holding them until
        // their revision is complete; a larger one is read twice so no core fragment is held.
        let table = super::cab_stream::entries(cab).map_err(|e| damaged(self, e))?;
        let core_bytes: u64 = table
            .iter()
            .filter_map(|e| match fragment_name(&e.name) {
                Some(('c', rid)) if wanted.contains(&rid) => Some(e.size as u64),
                _ => None,
            })
            .sum();
        if core_bytes <= self.one_pass_budget && self.one_pass_budget > 0 {
            return self.fragment_cab_once(name, cab, &wanted, &item);
        }

        // Pass 1: the small localized (kept languages) and extended fragments of the wanted
        // revisions.
        let languages = self.languages;
        let mut frags: Map<u32, Fragments> =
            Map::with_capacity_and_hasher(rids.len(), Default::default());
        let mut bad: Option<String> = None;
        for_each_file(cab, |e, r| {
            let Some((kind, rid)) = fragment_name(&e.name) else {
                return Ok(());
            };
            if kind == 'c' || !wanted.contains(&rid) {
                return Ok(());
            }
            if kind == 'l'
                && let (Some(keep), Some(lang)) = (languages, e.name.split('/').nth(1))
                && !keep.keeps(lang)
            {
                return Ok(());
            }
            match read_fragment(r, e.size) {
                Ok(text) => {
                    let f = frags.entry(rid).or_default();
                    if kind == 'l' {
                        f.localized.push(text)
                    } else {
                        f.extended = Some(text)
                    }
                }
                Err(m) => {
                    bad.get_or_insert(format!("{}: {m}", e.name));
                }
            }
            Ok(())
        })
        .map_err(|e| damaged(self, e))?;
        if let Some(m) = bad {
            return Err(self.err(&item, m));
        }

        // Pass 2: each core fragment completes its revision, handed on at once, so the
        // store writes while this thread reads on.
        let mut left = wanted.clone();
        let mut failure: Option<Error> = None;
        let outcome = for_each_file(cab, |e, r| {
            let Some(('c', rid)) = fragment_name(&e.name) else {
                return Ok(());
            };
            if !left.remove(&rid) {
                return Ok(());
            }
            let step = match read_fragment(r, e.size) {
                Ok(core) => {
                    let f = frags.remove(&rid).unwrap_or_default();
                    self.assemble(name, rid, Some(core), f)
                        .and_then(|u| self.deliver(u))
                }
                Err(m) => Err(self.err(&item, format!("{}: {m}", e.name))),
            };
            if let Err(err) = step {
                failure = Some(err);
                return Err(std::io::Error::other("failed"));
            }
            if left.is_empty() {
                return Err(std::io::Error::other(STOP));
            }
            Ok(())
        });
        if let Some(e) = failure {
            return Err(e);
        }
        if let Err(e) = outcome
            && e.to_string() != STOP
        {
            return Err(damaged(self, e));
        }
        // Wanted revisions without a core fragment.
        let mut rest: Vec<u32> = left.into_iter().collect();
        rest.sort_unstable();
        for rid in rest {
            let f = frags.remove(&rid).unwrap_or_default();
            let update = self.assemble(name, rid, None, f)?;
            self.deliver(update)?;
        }
        Ok(())
    }

    /// One pass: every fragment of the wanted revisions is collected, and a revision goes
    /// out as soon as it is complete (its extended fragment, which sorts after its core and
    /// localized ones, has arrived), the rest at the end of the cab.
    fn fragment_cab_once(
        &mut self,
        name: &str,
        cab: &Path,
        wanted: &Set<u32>,
        item: &str,
    ) -> Result<()> {
        let languages = self.languages;
        let mut frags: Map<u32, Fragments> =
            Map::with_capacity_and_hasher(wanted.len(), Default::default());
        let mut cores: Map<u32, String> =
            Map::with_capacity_and_hasher(wanted.len(), Default::default());
        let mut done: Set<u32> = Set::with_capacity_and_hasher(wanted.len(), Default::default());
        let mut failure: Option<Error> = None;
        let outcome = for_each_file(cab, |e, r| {
            let Some((kind, rid)) = fragment_name(&e.name) else {
                return Ok(());
            };
            if !wanted.contains(&rid) || done.contains(&rid) {
                return Ok(());
            }
            if kind == 'l'
                && let (Some(keep), Some(lang)) = (languages, e.name.split('/').nth(1))
                && !keep.keeps(lang)
            {
                return Ok(());
            }
            let text = match read_fragment(r, e.size) {
                Ok(t) => t,
                Err(m) => {
                    failure = Some(self.err(item, format!("{}: {m}", e.name)));
                    return Err(std::io::Error::other("failed"));
                }
            };
            match kind {
                'c' => {
                    cores.insert(rid, text);
                }
                'l' => frags.entry(rid).or_default().localized.push(text),
                _ => {
                    frags.entry(rid).or_default().extended = Some(text);
                    if let Some(core) = cores.remove(&rid) {
                        done.insert(rid);
                        let f = frags.remove(&rid).unwrap_or_default();
                        if let Err(err) = self
                            .assemble(name, rid, Some(core), f)
                            .and_then(|u| self.deliver(u))
                        {
                            failure = Some(err);
                            return Err(std::io::Error::other("failed"));
                        }
                    }
                }
            }
            Ok(())
        });
        if let Some(e) = failure {
            return Err(e);
        }
        outcome
            .map_err(|e| self.err(item, format!("{e}; download the offline scan file again")))?;
        let mut rest: Vec<u32> = wanted
            .iter()
            .copied()
            .filter(|r| !done.contains(r))
            .collect();
        rest.sort_unstable();
        for rid in rest {
            let f = frags.remove(&rid).unwrap_or_default();
            let core = cores.remove(&rid);
            let update = self.assemble(name, rid, core, f)?;
            self.deliver(update)?;
        }
        Ok(())
    }

    fn entry(&self, rid: u32) -> &Entry {
        let p = self
            .package
            .as_ref()
            .expect("package read before fragments");
        &p.entries[self.by_rid[&rid]]
    }

    fn assemble(
        &mut self,
        cab: &str,
        rid: u32,
        core: Option<String>,
        f: Fragments,
    ) -> Result<Update> {
        // Each revision is assembled once: its kept XML moves out instead of being copied.
        let raw = {
            let i = self.by_rid[&rid];
            self.package
                .as_mut()
                .expect("package read before fragments")
                .entries[i]
                .raw
                .take()
        };
        let id = self.entry(rid).identity;
        // Named only in errors: formatted when one happens.
        let item = |w: &Self| {
            format!(
                "{}: {cab}: update {} revision {} (RevisionId {rid})",
                w.shown, id.id, id.revision
            )
        };
        if core.is_none() {
            if self.entry(rid).categories.is_empty() {
                return Err(self.err(
                    item(self),
                    format!(
                        "its core fragment c/{rid} is missing from {cab} and package.xml names no \
                         categories for it: the offline scan file is damaged; download it again"
                    ),
                ));
            }
            self.coreless += 1;
            if self.coreless <= CORELESS_WARNINGS {
                self.warn(format!(
                    "update {} revision {}: no core fragment c/{rid} in {cab}; stored from package.xml \
                     and its other fragments",
                    id.id, id.revision
                ))?;
            }
        }
        let entry = self.entry(rid);
        // Sized for what goes in, so the document is not grown (and copied) on the way.
        let parts: usize = (core.iter().chain(f.extended.iter()).chain(raw.iter()))
            .chain(f.localized.iter())
            .map(String::len)
            .sum();
        let mut doc = String::with_capacity(parts + 1024);
        doc.push_str("<Update xmlns=\"");
        doc.push_str(std::str::from_utf8(UPDATE_NS).expect("ASCII"));
        doc.push('"');
        // Core and extended fragments are where applicability rules and handler data use
        // prefixes; a fragment that declares one itself needs nothing from the wrapper.
        let (mut used, mut declared) = (0u8, 0u8);
        for t in core.iter().chain(f.extended.iter()) {
            let (u, d) = prefixes_in(t);
            (used, declared) = (used | u, declared | d);
        }
        for (bit, (_, declaration)) in FRAGMENT_PREFIXES.iter().enumerate() {
            if used & !declared & (1 << bit) != 0 {
                doc.push_str(declaration);
            }
        }
        doc.push('>');
        match &core {
            Some(c) => doc.push_str(c),
            // Without a core fragment, the identity, categories and prerequisites package.xml
            // gives are written as update XML, so the stored metadata reads back the same.
            None => {
                doc.push_str(&format!(
                    "<UpdateIdentity UpdateID=\"{}\" RevisionNumber=\"{}\" /><Properties UpdateType=\"Software\" />",
                    id.id, id.revision
                ));
                let mut rel = String::from("<Relationships><Prerequisites>");
                for p in &entry.prerequisites {
                    rel.push_str(&format!("<UpdateIdentity UpdateID=\"{p}\" />"));
                }
                for (_, c) in &entry.categories {
                    rel.push_str(&format!(
                        "<AtLeastOne IsCategory=\"true\"><UpdateIdentity UpdateID=\"{c}\" /></AtLeastOne>"
                    ));
                }
                rel.push_str("</Prerequisites></Relationships>");
                doc.push_str(&rel);
            }
        }
        doc.push_str("<LocalizedPropertiesCollection>");
        for l in &f.localized {
            doc.push_str(l);
        }
        doc.push_str("</LocalizedPropertiesCollection>");
        if let Some(x) = &f.extended {
            doc.push_str(x);
        }
        if let Some(raw) = &raw {
            doc.push_str("<OfflineSyncPackageEntry xmlns=\"");
            doc.push_str(OFFLINE_NS);
            doc.push_str("\">");
            doc.push_str(raw);
            doc.push_str("</OfflineSyncPackageEntry>");
        }
        doc.push_str("</Update>");
        let mut u = parse_update_owned(doc).map_err(|e| self.err(item(self), e.to_string()))?;
        if u.identity != id {
            return Err(self.err(
                item(self),
                format!(
                    "its core fragment says update {} revision {}, package.xml says {} revision {}: \
                     the offline scan file is inconsistent",
                    u.identity.id, u.identity.revision, id.id, id.revision
                ),
            ));
        }
        let (cats, rels) = (u.categories.len(), u.relations.len());
        let (dated, with_language) = (u.creation_date.is_some(), u.default_language.is_some());
        self.merge(entry, &mut u);
        // What package.xml added goes into the stored XML too, so it reads back the same
        // (from this store, or from an export of it).
        let mut doc = std::mem::take(&mut u.raw_xml);
        if u.categories.len() > cats || u.relations.len() > rels {
            patch_relationships(&mut doc, &u.categories[cats..], &u.relations[rels..]);
        }
        for (had, name, value) in [
            (dated, "CreationDate", &u.creation_date),
            (
                with_language,
                "DefaultPropertiesLanguage",
                &u.default_language,
            ),
        ] {
            if let Some(v) = value.as_deref().filter(|_| !had) {
                patch_property(&mut doc, name, v);
            }
        }
        u.raw_xml = doc;
        Ok(u)
    }

    /// Adds what package.xml knows that the fragments may not say.
    fn merge(&self, e: &Entry, u: &mut Update) {
        if u.creation_date.is_none() {
            u.creation_date = e.creation_date.clone();
        }
        if u.default_language.is_none() {
            u.default_language = e.default_language.clone();
        }
        for (_, c) in &e.categories {
            if !u.categories.contains(c) {
                u.categories.push(*c);
            }
        }
        let has = |u: &Update, kind: RelationKind, id: UpdateId| {
            u.relations.iter().any(|(k, r)| *k == kind && r.id == id)
        };
        for p in &e.prerequisites {
            if !u.categories.contains(p) && !has(u, RelationKind::Prerequisite, *p) {
                u.relations.push((
                    RelationKind::Prerequisite,
                    UpdateRef {
                        id: *p,
                        revision: None,
                    },
                ));
            }
        }
        for p in &e.prerequisites_any {
            if !u.categories.contains(p) && !has(u, RelationKind::PrerequisiteAnyOf, *p) {
                u.relations.push((
                    RelationKind::PrerequisiteAnyOf,
                    UpdateRef {
                        id: *p,
                        revision: None,
                    },
                ));
            }
        }
        let resolve = |rid: &u32| {
            self.by_rid
                .get(rid)
                .map(|i| self.package.as_ref().expect("read").entries[*i].identity)
        };
        for old in self.supersedes.get(&e.revision_id).into_iter().flatten() {
            if let Some(o) = resolve(old)
                && !has(u, RelationKind::Superseded, o.id)
            {
                u.relations.push((
                    RelationKind::Superseded,
                    UpdateRef {
                        id: o.id,
                        revision: None,
                    },
                ));
            }
        }
        for leaf in self.bundles.get(&e.revision_id).into_iter().flatten() {
            if let Some(l) = resolve(leaf)
                && !has(u, RelationKind::Bundled, l.id)
            {
                u.relations.push((
                    RelationKind::Bundled,
                    UpdateRef {
                        id: l.id,
                        revision: Some(l.revision),
                    },
                ));
            }
        }
    }

    fn warn(&mut self, message: String) -> Result<()> {
        match self.sink.as_mut() {
            Some(s) => s(Fetched::Warning(message)),
            None => Ok(()),
        }
    }

    fn deliver(&mut self, u: Update) -> Result<()> {
        let urls: Vec<(String, String)> = u
            .files
            .iter()
            .filter_map(|f| {
                let d = f.digest.as_ref()?;
                Some((d.clone(), self.urls.get(d)?.clone()))
            })
            .collect();
        let origin = format!("update {} revision {}", u.identity.id, u.identity.revision);
        let Some(sink) = self.sink.as_mut() else {
            return Ok(());
        };
        sink(Fetched::Update {
            update: Box::new(u),
            origin,
        })?;
        for (digest, url) in urls {
            sink(Fetched::FileUrl { digest, url })?;
        }
        Ok(())
    }

    /// One file of the outer CAB.
    fn visit(&mut self, name: &str, r: &mut dyn Read) -> Result<bool> {
        let lower = name.to_ascii_lowercase();
        if lower == "index.xml" {
            self.read_index(r)?;
        } else if lower == "package.cab" {
            let p = self.spool(&lower, r)?;
            self.read_package(&p)?;
            let _ = std::fs::remove_file(&p);
            if self.listing_only() {
                return Ok(false);
            }
        } else if lower.ends_with(".cab") {
            if self.listing_only() {
                return Ok(true);
            }
            self.seen_cabs.insert(lower.clone());
            match &self.plan {
                Some(plan) if !plan.contains_key(&lower) => {}
                Some(_) => {
                    let p = self.spool(&lower, r)?;
                    self.fragment_cab(&lower, &p)?;
                    let _ = std::fs::remove_file(&p);
                }
                None => {
                    let p = self.spool(&lower, r)?;
                    self.pending.push((lower, p));
                }
            }
            return Ok(true);
        }
        self.make_plan()?;
        Ok(true)
    }
}

/// Adds `name="value"` to the core fragment's `Properties` element; a document without one
/// is left as it is.
fn patch_property(doc: &mut String, name: &str, value: &str) {
    let core_end = doc
        .find("<LocalizedPropertiesCollection>")
        .unwrap_or(doc.len());
    let Some(i) = doc[..core_end]
        .match_indices("<Properties")
        .map(|(i, _)| i)
        .find(|i| {
            matches!(
                doc.as_bytes().get(i + 11),
                Some(b' ' | b'>' | b'/' | b'\t' | b'\n' | b'\r')
            )
        })
    else {
        return;
    };
    let attr = format!(" {name}=\"{}\"", quick_xml::escape::escape(value));
    doc.insert_str(i + 11, &attr);
}

/// Writes categories and relations into the `Relationships` of an assembled revision (the
/// part before its `LocalizedPropertiesCollection`), creating the containers it lacks in
/// schema order: `Prerequisites`, `BundledUpdates`, `SupersededUpdates`.
fn patch_relationships(doc: &mut String, cats: &[UpdateId], rels: &[(RelationKind, UpdateRef)]) {
    let mut prereq = String::new();
    let mut any = String::new();
    let mut bundled = String::new();
    let mut superseded = String::new();
    for (kind, r) in rels {
        match kind {
            RelationKind::Prerequisite => {
                prereq.push_str(&format!("<UpdateIdentity UpdateID=\"{}\" />", r.id))
            }
            RelationKind::PrerequisiteAnyOf => {
                any.push_str(&format!("<UpdateIdentity UpdateID=\"{}\" />", r.id))
            }
            RelationKind::Bundled => bundled.push_str(&match r.revision {
                Some(rev) => format!(
                    "<UpdateIdentity UpdateID=\"{}\" RevisionNumber=\"{rev}\" />",
                    r.id
                ),
                None => format!("<UpdateIdentity UpdateID=\"{}\" />", r.id),
            }),
            RelationKind::Superseded => {
                superseded.push_str(&format!("<UpdateIdentity UpdateID=\"{}\" />", r.id))
            }
        }
    }
    if !any.is_empty() {
        prereq.push_str(&format!("<AtLeastOne>{any}</AtLeastOne>"));
    }
    for c in cats {
        prereq.push_str(&format!(
            "<AtLeastOne IsCategory=\"true\"><UpdateIdentity UpdateID=\"{c}\" /></AtLeastOne>"
        ));
    }
    let core_end = |d: &String| d.find("<LocalizedPropertiesCollection>").unwrap_or(d.len());
    for empty in ["<Relationships/>", "<Relationships />"] {
        if let Some(i) = doc[..core_end(doc)].find(empty) {
            doc.replace_range(i..i + empty.len(), "<Relationships></Relationships>");
        }
    }
    if !doc[..core_end(doc)].contains("<Relationships>") {
        let at = core_end(doc);
        doc.insert_str(at, "<Relationships></Relationships>");
    }
    for (container, xml) in [
        ("Prerequisites", prereq),
        ("BundledUpdates", bundled),
        ("SupersededUpdates", superseded),
    ] {
        if xml.is_empty() {
            continue;
        }
        let region = &doc[..core_end(doc)];
        let close = format!("</{container}>");
        if let Some(i) = region.find(&close) {
            doc.insert_str(i, &xml);
            continue;
        }
        let wrapped = format!("<{container}>{xml}</{container}>");
        if let Some((i, len)) = [format!("<{container}/>"), format!("<{container} />")]
            .iter()
            .find_map(|e| region.find(e.as_str()).map(|i| (i, e.len())))
        {
            doc.replace_range(i..i + len, &wrapped);
            continue;
        }
        let at = match container {
            "Prerequisites" => region
                .find("<Relationships>")
                .map(|i| i + "<Relationships>".len()),
            "BundledUpdates" => region
                .find("<SupersededUpdates")
                .or_else(|| region.find("</Relationships>")),
            _ => region.find("</Relationships>"),
        };
        if let Some(at) = at {
            doc.insert_str(at, &wrapped);
        }
    }
}

/// Which [`FRAGMENT_PREFIXES`] a fragment uses (as `<p:`, or `xsi:` anywhere) and which it
/// declares itself (`xmlns:p`), as bit masks in that list's order: one pass over its colons.
fn prefixes_in(text: &str) -> (u8, u8) {
    let b = text.as_bytes();
    let (mut used, mut declared) = (0u8, 0u8);
    for (i, _) in text.match_indices(':') {
        let before = &b[..i];
        for (bit, (usage, _)) in FRAGMENT_PREFIXES.iter().enumerate() {
            // `usage` is `<p:` or `xsi:`; the prefix is what lies between `<` and `:`.
            let usage = &usage.as_bytes()[..usage.len() - 1];
            if before.ends_with(usage) {
                used |= 1 << bit;
            }
            let prefix = usage.strip_prefix(b"<").unwrap_or(usage);
            if before.ends_with(b"xmlns") && b[i + 1..].starts_with(prefix) {
                declared |= 1 << bit;
            }
        }
    }
    (used, declared)
}

/// `c/123`, `x/123`, `l/en/123` → (kind, RevisionId); anything else (EULAs) → `None`.
fn fragment_name(name: &str) -> Option<(char, u32)> {
    let kind = match name.as_bytes().first()? {
        b'c' | b'C' => 'c',
        b'l' | b'L' => 'l',
        b'x' | b'X' => 'x',
        _ => return None,
    };
    if name.as_bytes().get(1) != Some(&b'/') {
        return None;
    }
    let rid = name.rsplit('/').next()?.parse().ok()?;
    Some((kind, rid))
}

fn read_fragment(r: &mut dyn Read, size: u32) -> std::result::Result<String, String> {
    let mut bytes = Vec::with_capacity(size as usize);
    r.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    fragment_text(bytes)
}

/// A fragment's text: UTF-8 (with or without BOM) or UTF-16 with BOM.
fn fragment_text(mut b: Vec<u8>) -> std::result::Result<String, String> {
    if b.starts_with(&[0xEF, 0xBB, 0xBF]) {
        b.drain(..3);
    }
    if let Some(rest) = b.strip_prefix(&[0xFF, 0xFE]) {
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        return String::from_utf16(&units).map_err(|e| format!("not UTF-16: {e}"));
    }
    String::from_utf8(b).map_err(|e| format!("not UTF-8: {e}"))
}

impl Wsusscn2Source {
    fn walk<'a, 's>(
        &mut self,
        wanted: Option<&'a HashSet<Identity>>,
        sink: Option<&'a mut (dyn FnMut(Fetched) -> Result<()> + 's)>,
    ) -> Result<Listing> {
        let path = self.local()?;
        let shown = self.file.location().display();
        let spool = tempfile::Builder::new()
            .prefix("patchsync-wsusscn2-")
            .tempdir()
            .map_err(|e| {
                Error::source(
                    &self.name,
                    &shown,
                    format!("cannot make a temporary folder: {e}"),
                )
            })?;
        let mut walk = Walk {
            source: self.name.clone(),
            shown: shown.clone(),
            wanted,
            languages: self.languages.as_ref(),
            one_pass_budget: self.one_pass_budget,
            sink,
            spool,
            ranges: None,
            package: None,
            by_rid: Map::default(),
            supersedes: Map::default(),
            bundles: Map::default(),
            urls: Map::default(),
            plan: None,
            pending: Vec::new(),
            seen_cabs: Set::default(),
            failure: None,
            cached: self.listed.take(),
            coreless: 0,
        };
        let outer = for_each_file(&path, |e, r| match walk.visit(&e.name, r) {
            Ok(true) => Ok(()),
            Ok(false) => Err(std::io::Error::other(STOP)),
            Err(err) => {
                walk.failure = Some(err);
                Err(std::io::Error::other("failed"))
            }
        });
        if let Some(e) = walk.failure.take() {
            return Err(e);
        }
        if let Err(e) = outer
            && e.to_string() != STOP
        {
            return Err(walk.err(
                &shown,
                format!("{e}; the offline scan file is damaged or truncated: download it again"),
            ));
        }
        if walk.ranges.is_none() {
            return Err(walk.err(
                &shown,
                "no index.xml: this is not an offline scan file (wsusscn2.cab)",
            ));
        }
        if walk.package.is_none() {
            return Err(walk.err(
                &shown,
                "no package.cab: this is not an offline scan file (wsusscn2.cab)",
            ));
        }
        walk.make_plan()?;
        if walk.coreless > CORELESS_WARNINGS {
            let more = walk.coreless - CORELESS_WARNINGS;
            walk.warn(format!(
                "{more} more revision(s) without a core fragment were stored from package.xml \
                 ({} in all)",
                walk.coreless
            ))?;
        }
        if !walk.listing_only() {
            let plan = walk.plan.clone().unwrap_or_default();
            for (cab, rids) in plan {
                if !walk.seen_cabs.contains(&cab) {
                    let e = walk.entry(rids[0]).identity;
                    return Err(walk.err(
                        format!("{shown}: index.xml"),
                        format!(
                            "places RevisionId {} (update {} revision {}) and {} other(s) in {cab}, \
                             which the offline scan file does not contain: it is incomplete; download it again",
                            rids[0],
                            e.id,
                            e.revision,
                            rids.len() - 1
                        ),
                    ));
                }
            }
        }
        let package = walk.package.take().expect("checked");
        let listing = Listing {
            entries: package.entries.iter().map(|e| e.identity).collect(),
            complete: true,
            ..Default::default()
        };
        // Kept for the next fetch of this sync (an import fetches in several rounds).
        self.listed = Some(package);
        Ok(listing)
    }
}

impl CatalogSource for Wsusscn2Source {
    fn name(&self) -> &str {
        &self.name
    }

    fn languages(&mut self, keep: &LanguageSelection) {
        self.languages = Some(keep.clone());
    }

    fn resume(&mut self, cursor: Option<&str>) {
        let remote = cursor.and_then(|c| serde_json::from_str::<Cursor>(c).ok());
        self.file.resume(remote.and_then(|c| c.remote));
    }

    fn cursor(&mut self) -> Option<String> {
        let c = Cursor {
            remote: self.file.validators(),
        };
        c.remote.as_ref()?;
        serde_json::to_string(&c).ok()
    }

    fn fingerprint(&mut self) -> Result<Option<String>> {
        self.file.fingerprint().map(Some)
    }

    fn list(&mut self) -> Result<Listing> {
        self.walk(None, None)
    }

    fn fetch(
        &mut self,
        wanted: &HashSet<Identity>,
        sink: &mut dyn FnMut(Fetched) -> Result<()>,
    ) -> Result<()> {
        self.walk(Some(wanted), Some(sink)).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `prefixes_in` answers, by substring search: `usage`, and `xmlns:p` undeclared.
    fn naive(text: &str) -> (u8, u8) {
        let (mut used, mut declared) = (0, 0);
        for (bit, (usage, declaration)) in FRAGMENT_PREFIXES.iter().enumerate() {
            let name = &declaration[1..declaration.find('=').unwrap()];
            used |= u8::from(text.contains(usage)) << bit;
            declared |= u8::from(text.contains(name)) << bit;
        }
        (used, declared)
    }

    #[test]
    fn prefixes_are_found_in_one_pass_as_by_search() {
        for text in [
            "",
            ":",
            "bar:",
            "<bar:WindowsVersion Comparison=\"EqualTo\" />",
            "<lar:And><bar:RegKeyExists Key=\"HKLM\" /></lar:And>",
            "<cat:Installed xmlns:cat=\"urn:x\" /><b xsi:nil=\"true\" />",
            "<Props xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" Time=\"17:00:00\" />",
            "<lar:Or xmlns:lar=\"urn:lar\" xmlns:bar=\"urn:bar\"><bar:Processor /></lar:Or>",
            "xmlns:barx <cat:",
        ] {
            assert_eq!(prefixes_in(text), naive(text), "{text}");
        }
    }
}
