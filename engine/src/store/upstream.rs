//! Reads for the upstream server (MS-WSUSSS): revision lists since a catalog version and
//! update metadata by identity, each from one read snapshot.

use std::collections::{HashMap, HashSet};

use rusqlite::{OptionalExtension, params};

use super::Store;
use crate::error::Result;
use crate::filter::CategoryTree;
use crate::model::{CategoryKind, UpdateId};

/// One listed revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRevision {
    pub id: String,
    pub revision: u32,
    pub expired: bool,
}

/// A revision list: what changed since a catalog version (or everything), at the version
/// the snapshot was taken.
#[derive(Debug, Clone, Default)]
pub struct RevisionList {
    pub version: u64,
    pub revisions: Vec<ListedRevision>,
    /// Updates deleted from the catalog since the asked version.
    pub removed: Vec<String>,
    /// The list holds everything (no version asked, or removals since it are not tracked).
    pub complete: bool,
}

/// Which software and driver updates a child asks for: product-side categories and
/// classifications, each with its `Delta` flag (false: every revision, whatever the anchor).
#[derive(Debug, Clone, Default)]
pub struct UpdateSelection {
    pub categories: HashMap<UpdateId, bool>,
    pub classifications: HashMap<UpdateId, bool>,
}

/// One update's metadata as stored, for GetUpdateData.
#[derive(Debug, Clone)]
pub struct ServedUpdate {
    pub revision: u32,
    /// The raw metadata, decompressed.
    pub xml: String,
    /// Base64 SHA-1 digests of its files.
    pub digests: Vec<String>,
}

impl Store {
    /// Categories and detectoids (`GetConfig = true`) changed after `since`, or all.
    pub fn config_revisions(&self, since: Option<u64>) -> Result<RevisionList> {
        self.snapshot(|s| {
            let (since, complete) = s.effective_since(since)?;
            let mut stmt = s
                .conn
                .prepare_cached(
                    "SELECT id, revision, state FROM updates
                     WHERE update_type IN ('Category', 'Detectoid') AND changed_version > ?1
                     ORDER BY update_type = 'Detectoid', uid",
                )
                .map_err(|e| s.err(e))?;
            let revisions = stmt
                .query_map(params![since as i64], |r| {
                    Ok(ListedRevision {
                        id: r.get(0)?,
                        revision: r.get(1)?,
                        expired: r.get::<_, String>(2)? == "expired",
                    })
                })
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(|e| s.err(e))?;
            Ok(RevisionList {
                version: s.catalog_version()?,
                revisions,
                removed: s.removed_since(since, complete)?,
                complete,
            })
        })
    }

    /// Software and driver updates (`GetConfig = false`) the selection matches, changed after
    /// `since` (all of them for ids asked with `Delta = false`, or when `since` is `None`);
    /// bundles bring their leaves, transitively. An update without a product-side category
    /// (or without a classification) is not filtered on that side.
    pub fn update_revisions(
        &self,
        since: Option<u64>,
        selection: &UpdateSelection,
    ) -> Result<RevisionList> {
        self.snapshot(|s| {
            let (since, complete) = s.effective_since(since)?;
            let tree = s.category_tree()?;
            let any_full = complete
                || selection.categories.values().any(|d| !d)
                || selection.classifications.values().any(|d| !d);
            let sql = format!(
                "SELECT u.uid, u.id, u.revision, u.state, u.changed_version, u.is_bundle,
                        (SELECT group_concat(c.category_id, ' ') FROM update_categories c WHERE c.uid = u.uid)
                 FROM updates u {}
                 WHERE u.update_type IN ('Software', 'Driver') {}
                 ORDER BY u.uid",
                if any_full {
                    ""
                } else {
                    "INDEXED BY updates_by_changed_version"
                },
                if any_full {
                    ""
                } else {
                    "AND u.changed_version > ?1"
                }
            );
            let mut stmt = s.conn.prepare(&sql).map_err(|e| s.err(e))?;
            let mut rows = if any_full {
                stmt.query([])
            } else {
                stmt.query(params![since as i64])
            }
            .map_err(|e| s.err(e))?;
            let mut out = Vec::new();
            let mut listed: HashSet<String> = HashSet::new();
            let mut bundles = Vec::new();
            while let Some(r) = rows.next().map_err(|e| s.err(e))? {
                let changed: i64 = r.get(4).map_err(|e| s.err(e))?;
                let cats: Option<String> = r.get(6).map_err(|e| s.err(e))?;
                let Some(full_match) = matches(&tree, selection, cats.as_deref()) else {
                    continue;
                };
                if !(full_match || complete || changed as u64 > since) {
                    continue;
                }
                let id: String = r.get(1).map_err(|e| s.err(e))?;
                if r.get::<_, bool>(5).map_err(|e| s.err(e))? {
                    bundles.push(r.get::<_, i64>(0).map_err(|e| s.err(e))?);
                }
                listed.insert(id.clone());
                out.push(ListedRevision {
                    id,
                    revision: r.get(2).map_err(|e| s.err(e))?,
                    expired: r.get::<_, String>(3).map_err(|e| s.err(e))? == "expired",
                });
            }
            // Leaves of listed bundles, transitively.
            let mut leaves = s
                .conn
                .prepare_cached(
                    "SELECT l.uid, l.id, l.revision, l.state, l.is_bundle
                     FROM relations r JOIN updates l ON l.id = r.other_id
                     WHERE r.uid = ?1 AND r.kind = 'bundled'",
                )
                .map_err(|e| s.err(e))?;
            while let Some(b) = bundles.pop() {
                let rows = leaves
                    .query_map(params![b], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, u32>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, bool>(4)?,
                        ))
                    })
                    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                    .map_err(|e| s.err(e))?;
                for (uid, id, revision, state, is_bundle) in rows {
                    if listed.insert(id.clone()) {
                        if is_bundle {
                            bundles.push(uid);
                        }
                        out.push(ListedRevision {
                            id,
                            revision,
                            expired: state == "expired",
                        });
                    }
                }
            }
            Ok(RevisionList {
                version: s.catalog_version()?,
                revisions: out,
                removed: s.removed_since(since, complete)?,
                complete,
            })
        })
    }

    /// The stored metadata of each (id, revision) the store holds at that revision (the
    /// store keeps only the newest: an older one is no longer served, `None`), from one
    /// read snapshot.
    pub fn served_updates(&self, ids: &[(String, u32)]) -> Result<Vec<Option<ServedUpdate>>> {
        self.snapshot(|s| {
            let mut dctx = zstd::bulk::Decompressor::new().map_err(|e| s.err(e))?;
            let mut row = s
                .conn
                .prepare_cached(
                    "SELECT u.uid, u.revision, x.xml FROM updates u JOIN update_xml x ON x.uid = u.uid
                     WHERE u.id = ?1",
                )
                .map_err(|e| s.err(e))?;
            let mut files = s
                .conn
                .prepare_cached("SELECT digest FROM files WHERE uid = ?1 AND digest IS NOT NULL")
                .map_err(|e| s.err(e))?;
            let mut out = Vec::with_capacity(ids.len());
            for (id, revision) in ids {
                let found: Option<(i64, u32, Vec<u8>)> = row
                    .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .optional()
                    .map_err(|e| s.err(e))?;
                let Some((uid, rev, packed)) = found.filter(|r| r.1 == *revision) else {
                    out.push(None);
                    continue;
                };
                let damaged = || s.err(format!("update {id}: its stored metadata is damaged"));
                let size = zstd::zstd_safe::get_frame_content_size(&packed)
                    .ok()
                    .flatten()
                    .ok_or_else(damaged)?;
                let xml = dctx
                    .decompress(&packed, size as usize)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(damaged)?;
                let digests = files
                    .query_map(params![uid], |r| r.get::<_, String>(0))
                    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                    .map_err(|e| s.err(e))?;
                out.push(Some(ServedUpdate {
                    revision: rev,
                    xml,
                    digests,
                }));
            }
            Ok(out)
        })
    }

    /// The download URL recorded for a file digest.
    pub fn file_url(&self, digest: &str) -> Result<Option<String>> {
        self.conn
            .prepare_cached("SELECT url FROM file_urls WHERE digest = ?1")
            .and_then(|mut s| s.query_row(params![digest], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))
    }

    /// The languages of the localized properties the store holds.
    pub fn stored_languages(&self) -> Result<Vec<String>> {
        self.conn
            .prepare_cached("SELECT DISTINCT language FROM localized ORDER BY 1")
            .and_then(|mut s| {
                s.query_map([], |r| r.get::<_, String>(0))
                    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            })
            .map_err(|e| self.err(e))
    }

    /// Runs `f` inside one read transaction, so every query sees the same catalog.
    fn snapshot<T>(&self, f: impl FnOnce(&Store) -> Result<T>) -> Result<T> {
        self.conn
            .execute_batch("BEGIN DEFERRED")
            .map_err(|e| self.err(e))?;
        let out = f(self);
        let _ = self.conn.execute_batch("COMMIT");
        out
    }

    /// The version to list changes after, and whether the list is complete: with no
    /// version, or one older than the removals this store remembers, everything is listed.
    fn effective_since(&self, since: Option<u64>) -> Result<(u64, bool)> {
        let tracked: u64 = self
            .meta("removals_since")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Ok(match since {
            Some(v) if v >= tracked && v <= self.catalog_version()? => (v, false),
            _ => (0, true),
        })
    }

    fn removed_since(&self, since: u64, complete: bool) -> Result<Vec<String>> {
        if complete {
            return Ok(Vec::new());
        }
        self.conn
            .prepare_cached("SELECT update_id FROM removed_updates WHERE removed_version > ?1")
            .and_then(|mut s| {
                s.query_map(params![since as i64], |r| r.get::<_, String>(0))
                    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            })
            .map_err(|e| self.err(e))
    }
}

/// Whether an update with these categories matches the selection: `None` no; `Some(true)`
/// through an id asked with `Delta = false` (every revision); `Some(false)` by delta only.
fn matches(tree: &CategoryTree, sel: &UpdateSelection, cats: Option<&str>) -> Option<bool> {
    let mut product_side = Vec::new();
    let mut classes = Vec::new();
    for c in cats.unwrap_or("").split(' ').filter(|c| !c.is_empty()) {
        let Ok(id) = UpdateId::parse(c) else { continue };
        match tree.kind(&id) {
            Some(CategoryKind::UpdateClassification) => classes.push(id),
            _ => product_side.push(id),
        }
    }
    // A category matches when it, or a category above it, was asked for.
    let side = |ids: &[UpdateId], asked: &HashMap<UpdateId, bool>| -> Option<bool> {
        if ids.is_empty() {
            return Some(false);
        }
        let mut hit = None;
        for id in ids {
            let mut cur = Some(*id);
            for _ in 0..16 {
                let Some(c) = cur else { break };
                if let Some(delta) = asked.get(&c) {
                    hit = Some(hit.unwrap_or(false) || !delta);
                }
                cur = tree.nodes.get(&c).and_then(|n| n.parent);
            }
        }
        hit
    };
    let p = side(&product_side, &sel.categories)?;
    let c = side(&classes, &sel.classifications)?;
    Some(p || c)
}
