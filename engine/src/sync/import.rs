//! Importing one update from a configured source whatever the filter says (the "import from
//! the catalog" feature): the update, its bundled leaves and the categories it names are
//! fetched and stored, and the update is pinned until `unpin`.

use std::collections::{HashMap, HashSet};

use rusqlite::TransactionBehavior;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::filter::LanguageSelection;
use crate::model::{Identity, Update, UpdateId};
use crate::source::{CatalogSource, Fetched};
use crate::store::write::compress_xml;
use crate::store::{ItemVerdict, Store, SyncWriter};

/// Rounds of "fetch what the fetched updates name" (bundle leaves, categories, parents).
const MAX_ROUNDS: usize = 16;

/// What to import.
#[derive(Debug, Clone)]
pub enum ImportTarget {
    Id(UpdateId),
    /// A KB number, with or without "KB": every update of the catalog naming it.
    Kb(String),
}

/// What an import stored.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    pub source: String,
    /// The updates now pinned: (id, revision, title).
    pub pinned: Vec<PinnedUpdate>,
    /// Bundled leaves and categories stored with them.
    pub leaves: u64,
    pub categories: u64,
    /// Rows written (new or revised); 0 when everything was already stored.
    pub written: u64,
    pub catalog_version: u64,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PinnedUpdate {
    pub id: String,
    pub revision: u32,
    pub title: Option<String>,
}

/// Says whether a fetched update is one the import asked for.
type Matcher = dyn Fn(&Update) -> bool;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Target,
    Leaf,
    Category,
}

/// Runs one import against `source` (already resumed with its cursor).
pub(crate) fn import_update(
    store: &mut Store,
    source: &mut dyn CatalogSource,
    target: &ImportTarget,
    languages: &LanguageSelection,
) -> Result<ImportReport> {
    let name = source.name().to_owned();
    source.languages(languages);
    source.fingerprint()?;
    let listing = source.list()?;
    let mut newest: HashMap<UpdateId, u32> = HashMap::new();
    for e in &listing.entries {
        let r = newest.entry(e.id).or_insert(e.revision);
        *r = (*r).max(e.revision);
    }
    let mut report = ImportReport {
        source: name.clone(),
        ..Default::default()
    };

    // Round 1: the target(s).
    let (first, matches): (HashSet<Identity>, Box<Matcher>) = match target {
        ImportTarget::Id(id) => {
            let rev = *newest.get(id).ok_or_else(|| {
                Error::NotFound(format!(
                    "update {id} is not in source '{name}''s catalog; check the GUID, or import it from another source"
                ))
            })?;
            let id = *id;
            (
                HashSet::from([Identity { id, revision: rev }]),
                Box::new(move |u: &Update| u.identity.id == id),
            )
        }
        ImportTarget::Kb(kb) => {
            let kb = kb
                .trim()
                .trim_start_matches(['K', 'k'])
                .trim_start_matches(['B', 'b'])
                .to_owned();
            let all = newest
                .iter()
                .map(|(id, rev)| Identity {
                    id: *id,
                    revision: *rev,
                })
                .collect();
            (
                all,
                Box::new(move |u: &Update| {
                    !u.update_type.is_always_synced()
                        && u.kb_articles.iter().any(|k| {
                            k.trim()
                                .trim_start_matches(['K', 'k'])
                                .trim_start_matches(['B', 'b'])
                                == kb
                        })
                }),
            )
        }
    };
    let mut got: Vec<(Update, Role)> = Vec::new();
    let mut seen: HashSet<UpdateId> = HashSet::new();
    let mut urls: Vec<(String, String)> = Vec::new();
    source.fetch(&first, &mut |f| {
        match f {
            Fetched::Update { update, .. } | Fetched::Stored { update, .. }
                if matches(&update) && seen.insert(update.identity.id) =>
            {
                got.push((*update, Role::Target));
            }
            Fetched::FileUrl { digest, url } => urls.push((digest, url)),
            _ => {}
        }
        Ok(())
    })?;
    if got.is_empty() {
        return Err(Error::NotFound(match target {
            ImportTarget::Id(id) => {
                format!("source '{name}' lists update {id} but did not deliver it")
            }
            ImportTarget::Kb(kb) => format!(
                "no update in source '{name}''s catalog names KB{}",
                kb.trim()
                    .trim_start_matches(['K', 'k'])
                    .trim_start_matches(['B', 'b'])
            ),
        }));
    }

    // Further rounds: what the fetched updates name (leaves, categories, parents).
    let known_categories: HashSet<UpdateId> = crate::store::load_category_tree(&store.conn)
        .map_err(|e| store.err(e))?
        .nodes
        .keys()
        .copied()
        .collect();
    let mut frontier: Vec<(UpdateId, Role)> = Vec::new();
    let name_more = |u: &Update, frontier: &mut Vec<(UpdateId, Role)>| {
        frontier.extend(u.bundled().map(|b| (b, Role::Leaf)));
        frontier.extend(
            u.categories
                .iter()
                .filter(|c| !known_categories.contains(c))
                .map(|c| (*c, Role::Category)),
        );
    };
    for (u, _) in &got {
        name_more(u, &mut frontier);
    }
    for _ in 0..MAX_ROUNDS {
        let mut roles: HashMap<UpdateId, Role> = HashMap::new();
        let mut wanted: HashSet<Identity> = HashSet::new();
        for (id, role) in frontier.drain(..) {
            if seen.contains(&id) {
                continue;
            }
            match newest.get(&id) {
                Some(rev) => {
                    wanted.insert(Identity { id, revision: *rev });
                    roles.entry(id).or_insert(role);
                }
                None if role == Role::Leaf => report.warnings.push(format!(
                    "bundled update {id} is not in source '{name}''s catalog; the bundle is stored without it"
                )),
                None => {}
            }
        }
        if wanted.is_empty() {
            break;
        }
        let mut batch: Vec<Update> = Vec::new();
        source.fetch(&wanted, &mut |f| {
            match f {
                Fetched::Update { update, .. } | Fetched::Stored { update, .. }
                    if wanted.contains(&update.identity) && seen.insert(update.identity.id) =>
                {
                    batch.push(*update);
                }
                Fetched::FileUrl { digest, url } => urls.push((digest, url)),
                _ => {}
            }
            Ok(())
        })?;
        for u in batch {
            name_more(&u, &mut frontier);
            let role = roles.get(&u.identity.id).copied().unwrap_or(Role::Leaf);
            got.push((u, role));
        }
    }

    // Write, in one transaction.
    let version = store.catalog_version()? + 1;
    let path = store.path().to_owned();
    let tx = store
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| crate::store::store_err(&path, e))?;
    let mut writer = SyncWriter::new(tx, &path, &name, version)?;
    let mut compressor =
        zstd::bulk::Compressor::new(3).map_err(|e| Error::source(&name, "zstd", e.to_string()))?;
    for (u, role) in &got {
        let id = u.identity.id;
        writer.record_revision(u.identity)?;
        let previous = writer.previous(id)?;
        let selected_by = match role {
            Role::Target => "pin",
            Role::Leaf => "bundle",
            Role::Category => "catalog",
        };
        let write = previous
            .as_ref()
            .is_none_or(|p| p.revision < u.identity.revision);
        if write {
            let raw = compress_xml(&mut compressor, &u.raw_xml)
                .map_err(|e| Error::source(&name, id.to_string(), e.to_string()))?;
            writer.put_update(u, &raw, previous.is_some(), languages, selected_by)?;
            report.written += 1;
        } else if *role == Role::Target {
            writer.set_selected_by(id, selected_by)?;
        }
        let (stage, reason) = match role {
            Role::Target => ("pin", "pinned by import-update"),
            Role::Leaf => ("bundle", "bundled in a pinned update"),
            Role::Category => ("catalog", "named by a pinned update"),
        };
        writer.set_item(
            id,
            u.identity.revision,
            ItemVerdict::Stored,
            stage,
            Some(reason),
        )?;
        match role {
            Role::Target => {
                writer.pin(id)?;
                report.pinned.push(PinnedUpdate {
                    id: id.to_string(),
                    revision: u.identity.revision,
                    title: u.title("en").map(str::to_owned),
                });
            }
            Role::Leaf => report.leaves += 1,
            Role::Category => report.categories += 1,
        }
    }
    for (digest, url) in &urls {
        writer.put_file_url(digest, url)?;
    }
    let changed = report.written > 0;
    writer.commit_without_source_state(changed)?;
    if changed {
        store.record_content_digest()?;
    }
    report.catalog_version = store.catalog_version()?;
    Ok(report)
}
