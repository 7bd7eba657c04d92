//! Read queries behind the CLI, the host API and (later) the HTTP API.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::Store;
use crate::error::{Error, Result};
use crate::filter::{CategoryNode, CategoryTree};
use crate::model::{CategoryKind, UpdateId};

/// One category, as `patchsync categories` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CategoryRow {
    pub id: String,
    pub kind: String,
    pub title: String,
    pub parent: Option<String>,
}

/// Which updates to list.
#[derive(Debug, Clone, Default)]
pub struct UpdateQuery {
    /// KB number, with or without "KB".
    pub kb: Option<String>,
    /// Product title or GUID (a family or company includes the products below it).
    pub product: Option<String>,
    /// Classification title or GUID.
    pub classification: Option<String>,
    /// `active` (default), `expired` or `all`.
    pub state: Option<String>,
    /// Include categories and detectoids too.
    pub all_types: bool,
    /// Include bundled leaf updates (they carry files, not titles or categories).
    pub leaves: bool,
}

/// One update in a listing.
#[derive(Debug, Clone, Serialize)]
pub struct UpdateRow {
    pub id: String,
    pub revision: u32,
    pub update_type: String,
    pub title: Option<String>,
    pub kb: Option<String>,
    pub classification: Option<String>,
    pub products: Vec<String>,
    pub severity: Option<String>,
    pub state: String,
    pub selected_by: String,
    pub creation_date: Option<String>,
    /// Kept by `import-update` whatever the filter says, until `unpin`.
    pub pinned: bool,
}

/// Everything the store has about one update.
#[derive(Debug, Clone, Serialize)]
pub struct ShowUpdate {
    #[serde(flatten)]
    pub row: UpdateRow,
    pub source: String,
    pub publication_state: String,
    pub kb_articles: Vec<String>,
    pub cves: Vec<String>,
    pub security_bulletins: Vec<String>,
    pub localized: Vec<ShowLocalized>,
    pub relations: Vec<ShowRelation>,
    pub bundled_by: Vec<String>,
    pub files: Vec<ShowFile>,
    pub is_bundle: bool,
    pub first_version: u64,
    pub changed_version: u64,
    pub revisions_seen: Vec<u32>,
    pub decided_by: Option<String>,
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_xml: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShowLocalized {
    pub language: String,
    pub title: String,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShowRelation {
    pub kind: String,
    pub id: String,
    pub revision: Option<u32>,
    pub title: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShowFile {
    pub name: String,
    pub size: Option<u64>,
    pub digest: Option<String>,
    pub sha256: Option<String>,
    pub url: Option<String>,
}

/// One sync run.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryRow {
    pub id: i64,
    pub started: String,
    pub finished: Option<String>,
    pub status: String,
    pub full: bool,
    pub catalog_version: Option<u64>,
    pub new: Option<u64>,
    pub revised: Option<u64>,
    pub expired: Option<u64>,
    pub removed: Option<u64>,
    pub unchanged: Option<u64>,
    pub categories: Option<u64>,
    pub detectoids: Option<u64>,
    pub duration_ms: Option<u64>,
    pub error: Option<String>,
    /// `Error::code` of the failure.
    pub error_code: Option<u32>,
}

/// Loads every category into a tree (used by the selection stage and queries).
pub fn load_category_tree(conn: &Connection) -> rusqlite::Result<CategoryTree> {
    let mut stmt = conn.prepare("SELECT id, kind, parent_id, title FROM categories")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    let mut nodes = HashMap::new();
    for row in rows {
        let (id, kind, parent, title) = row?;
        let (Ok(id), Some(kind)) = (UpdateId::parse(&id), CategoryKind::parse(&kind)) else {
            continue;
        };
        let parent = parent.and_then(|p| UpdateId::parse(&p).ok());
        nodes.insert(
            id,
            CategoryNode {
                kind,
                parent,
                title,
            },
        );
    }
    Ok(CategoryTree::new(nodes))
}

impl Store {
    pub fn category_tree(&self) -> Result<CategoryTree> {
        load_category_tree(&self.conn).map_err(|e| self.err(e))
    }

    /// Categories, optionally of one kind, ordered by kind and title.
    pub fn categories(&self, kind: Option<CategoryKind>) -> Result<Vec<CategoryRow>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, kind, title, parent_id FROM categories WHERE (?1 IS NULL OR kind = ?1)
                 ORDER BY CASE kind WHEN 'Company' THEN 0 WHEN 'ProductFamily' THEN 1 WHEN 'Product' THEN 2 ELSE 3 END,
                          title COLLATE NOCASE, id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([kind.map(|k| k.as_str())], |r| {
                Ok(CategoryRow {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    title: r.get(2)?,
                    parent: r.get(3)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// Counts updates matching a WHERE fragment written by the engine itself (never user input).
    pub(crate) fn count(&self, sql_where: &str) -> Result<u64> {
        self.conn
            .query_row(
                &format!("SELECT COUNT(*) FROM updates WHERE {sql_where}"),
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// The JSON report of the newest sync run, failed ones included.
    pub fn last_report(&self) -> Result<Option<serde_json::Value>> {
        let text: Option<Option<String>> = self
            .conn
            .query_row(
                "SELECT report FROM sync_runs ORDER BY id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(text.flatten().and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// Whether updates of `source` wait for the selection stage (after an `unpin`).
    pub fn has_pending(&self, source: &str) -> Result<bool> {
        self.conn
            .query_row(
                // `+source`: the partial index of pending updates (almost always empty)
                // answers; through the source's index it was a read of every update.
                "SELECT EXISTS (SELECT 1 FROM updates WHERE selected_by = 'pending' AND +source = ?1)",
                [source],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Every pinned update id.
    pub fn pinned(&self) -> Result<std::collections::HashSet<UpdateId>> {
        let mut s = self
            .conn
            .prepare("SELECT update_id FROM pins")
            .map_err(|e| self.err(e))?;
        let ids = s
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?
            .collect::<rusqlite::Result<Vec<String>>>()
            .map_err(|e| self.err(e))?;
        Ok(ids.iter().filter_map(|i| UpdateId::parse(i).ok()).collect())
    }

    /// Removes a pin; the next sync decides the update by the filter again. Returns whether
    /// it was pinned.
    pub fn unpin(&mut self, id: UpdateId) -> Result<bool> {
        let ids = id.to_string();
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction()
            .map_err(|e| super::store_err(&path, e))?;
        let n = tx
            .execute("DELETE FROM pins WHERE update_id = ?1", [&ids])
            .map_err(|e| super::store_err(&path, e))?;
        if n > 0 {
            tx.execute(
                "UPDATE updates SET selected_by = 'pending' WHERE id = ?1",
                [&ids],
            )
            .map_err(|e| super::store_err(&path, e))?;
        }
        tx.commit().map_err(|e| super::store_err(&path, e))?;
        Ok(n > 0)
    }

    pub fn category_count(&self) -> Result<u64> {
        self.conn
            .query_row("SELECT COUNT(*) FROM categories", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    fn resolve_categories(&self, wanted: &str, kinds: &[CategoryKind]) -> Result<Vec<String>> {
        let tree = self.category_tree()?;
        let roots: Vec<UpdateId> = match UpdateId::parse(wanted) {
            Ok(id) => vec![id],
            Err(_) => tree
                .nodes
                .iter()
                .filter(|(_, n)| {
                    kinds.contains(&n.kind) && n.title.eq_ignore_ascii_case(wanted.trim())
                })
                .map(|(id, _)| *id)
                .collect(),
        };
        if roots.is_empty() {
            return Err(Error::NotFound(format!(
                "no {} named '{wanted}'; see `patchsync categories`",
                kinds
                    .iter()
                    .map(|k| k.cli_name())
                    .collect::<Vec<_>>()
                    .join(" or ")
            )));
        }
        Ok(roots
            .into_iter()
            .flat_map(|r| tree.subtree(r))
            .map(|i| i.to_string())
            .collect())
    }

    /// Updates matching `q`, newest first.
    pub fn updates(&self, q: &UpdateQuery) -> Result<Vec<UpdateRow>> {
        let mut sql = String::from("SELECT u.id FROM updates u WHERE 1 = 1");
        let mut args: Vec<String> = Vec::new();
        match q.state.as_deref().unwrap_or("active") {
            "all" => {}
            s @ ("active" | "expired") => {
                args.push(s.to_owned());
                sql.push_str(&format!(" AND u.state = ?{}", args.len()));
            }
            other => {
                return Err(Error::NotFound(format!(
                    "state '{other}' is not one of active, expired, all"
                )));
            }
        }
        if !q.all_types {
            sql.push_str(" AND u.update_type IN ('Software', 'Driver')");
        }
        if !q.leaves {
            sql.push_str(" AND u.selected_by <> 'bundle'");
        }
        if let Some(kb) = &q.kb {
            let kb = kb
                .trim()
                .trim_start_matches("KB")
                .trim_start_matches("kb")
                .to_owned();
            args.push(kb);
            sql.push_str(&format!(
                " AND u.uid IN (SELECT uid FROM kb_articles WHERE kb = ?{})",
                args.len()
            ));
        }
        for (wanted, kinds) in [
            (
                &q.product,
                &[
                    CategoryKind::Company,
                    CategoryKind::ProductFamily,
                    CategoryKind::Product,
                ][..],
            ),
            (&q.classification, &[CategoryKind::UpdateClassification][..]),
        ] {
            if let Some(w) = wanted {
                let ids = self.resolve_categories(w, kinds)?;
                let placeholders: Vec<String> = ids
                    .into_iter()
                    .map(|id| {
                        args.push(id);
                        format!("?{}", args.len())
                    })
                    .collect();
                sql.push_str(&format!(
                    " AND u.uid IN (SELECT uid FROM update_categories WHERE category_id IN ({}))",
                    placeholders.join(",")
                ));
            }
        }
        sql.push_str(" ORDER BY u.creation_date DESC, u.id");
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let ids = stmt
            .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                r.get::<_, String>(0)
            })
            .map_err(|e| self.err(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))?;
        ids.iter().map(|id| self.update_row(id)).collect()
    }

    fn update_row(&self, id: &str) -> Result<UpdateRow> {
        let mut row = self
            .conn
            .prepare_cached(
                "SELECT id, revision, update_type, title, msrc_severity, state, selected_by, creation_date,
                        EXISTS (SELECT 1 FROM pins p WHERE p.update_id = updates.id)
                 FROM updates WHERE id = ?1",
            )
            .and_then(|mut s| {
                s.query_row([id], |r| {
                    Ok(UpdateRow {
                        id: r.get(0)?,
                        revision: r.get(1)?,
                        update_type: r.get(2)?,
                        title: r.get(3)?,
                        kb: None,
                        classification: None,
                        products: Vec::new(),
                        severity: r.get(4)?,
                        state: r.get(5)?,
                        selected_by: r.get(6)?,
                        creation_date: r.get(7)?,
                        pinned: r.get(8)?,
                    })
                })
            })
            .map_err(|e| self.err(e))?;
        row.kb = self
            .conn
            .prepare_cached(
                "SELECT k.kb FROM kb_articles k JOIN updates u ON u.uid = k.uid WHERE u.id = ?1 ORDER BY k.rowid LIMIT 1",
            )
            .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT c.kind, c.title FROM updates u JOIN update_categories uc ON uc.uid = u.uid
                 JOIN categories c ON c.id = uc.category_id WHERE u.id = ?1 ORDER BY c.title",
            )
            .map_err(|e| self.err(e))?;
        let cats = stmt
            .query_map([id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(|e| self.err(e))?;
        for c in cats {
            let (kind, title) = c.map_err(|e| self.err(e))?;
            if kind == "UpdateClassification" {
                row.classification = Some(title);
            } else {
                row.products.push(title);
            }
        }
        Ok(row)
    }

    /// Everything about one update; `with_xml` adds the raw metadata as it came.
    pub fn show(&self, id: UpdateId, with_xml: bool) -> Result<ShowUpdate> {
        let ids = id.to_string();
        let exists = self
            .conn
            .query_row("SELECT 1 FROM updates WHERE id = ?1", [&ids], |_| Ok(()))
            .optional()
            .map_err(|e| self.err(e))?;
        if exists.is_none() {
            let item: Option<(String, Option<String>, Option<String>)> = self
                .conn
                .query_row(
                    "SELECT verdict, decided_by, reason FROM catalog_items WHERE update_id = ?1 LIMIT 1",
                    [&ids],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(|e| self.err(e))?;
            return Err(Error::NotFound(match item {
                Some((_, by, reason)) => format!(
                    "update {id} is in the catalog but not in the store: {} decided '{}'",
                    by.unwrap_or_default(),
                    reason.unwrap_or_default()
                ),
                None => format!("update {id} is not in the store"),
            }));
        }
        let row = self.update_row(&ids)?;
        let strings = |sql: &str| -> Result<Vec<String>> {
            let mut s = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
            let v = s.query_map([&ids], |r| r.get(0)).map_err(|e| self.err(e))?;
            v.collect::<rusqlite::Result<Vec<String>>>()
                .map_err(|e| self.err(e))
        };
        let (source, publication_state, is_bundle, first_version, changed_version, raw): (String, String, bool, i64, i64, Vec<u8>) =
            self.conn
                .query_row(
                    "SELECT u.source, u.publication_state, u.is_bundle, u.first_version, u.changed_version, x.xml
                     FROM updates u JOIN update_xml x ON x.uid = u.uid WHERE u.id = ?1",
                    [&ids],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
                )
                .map_err(|e| self.err(e))?;
        let mut localized = Vec::new();
        {
            let mut s = self
                .conn
                .prepare("SELECT l.language, l.title, l.description FROM localized l JOIN updates u ON u.uid = l.uid WHERE u.id = ?1 ORDER BY l.language")
                .map_err(|e| self.err(e))?;
            let rows = s
                .query_map([&ids], |r| {
                    Ok(ShowLocalized {
                        language: r.get(0)?,
                        title: r.get(1)?,
                        description: r.get(2)?,
                    })
                })
                .map_err(|e| self.err(e))?;
            for r in rows {
                localized.push(r.map_err(|e| self.err(e))?);
            }
        }
        let mut relations = Vec::new();
        {
            let mut s = self
                .conn
                .prepare(
                    "SELECT r.kind, r.other_id, r.other_revision, o.title FROM updates u JOIN relations r ON r.uid = u.uid
                     LEFT JOIN updates o ON o.id = r.other_id WHERE u.id = ?1 ORDER BY r.rowid",
                )
                .map_err(|e| self.err(e))?;
            let rows = s
                .query_map([&ids], |r| {
                    Ok(ShowRelation {
                        kind: r.get(0)?,
                        id: r.get(1)?,
                        revision: r.get(2)?,
                        title: r.get(3)?,
                    })
                })
                .map_err(|e| self.err(e))?;
            for r in rows {
                relations.push(r.map_err(|e| self.err(e))?);
            }
        }
        let mut files = Vec::new();
        {
            let mut s = self
                .conn
                .prepare(
                    "SELECT f.name, f.size, f.digest, f.sha256, fu.url FROM updates u JOIN files f ON f.uid = u.uid
                     LEFT JOIN file_urls fu ON fu.digest = f.digest WHERE u.id = ?1 ORDER BY f.rowid",
                )
                .map_err(|e| self.err(e))?;
            let rows = s
                .query_map([&ids], |r| {
                    Ok(ShowFile {
                        name: r.get(0)?,
                        size: r.get(1)?,
                        digest: r.get(2)?,
                        sha256: r.get(3)?,
                        url: r.get(4)?,
                    })
                })
                .map_err(|e| self.err(e))?;
            for r in rows {
                files.push(r.map_err(|e| self.err(e))?);
            }
        }
        let (decided_by, reason): (Option<String>, Option<String>) = self
            .conn
            .query_row(
                "SELECT decided_by, reason FROM catalog_items WHERE update_id = ?1 AND source = ?2",
                params![ids, source],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?
            .unwrap_or((None, None));
        let mut revisions_seen: Vec<u32> = {
            let mut s = self
                .conn
                .prepare("SELECT revision FROM revisions WHERE update_id = ?1")
                .map_err(|e| self.err(e))?;
            let v = s.query_map([&ids], |r| r.get(0)).map_err(|e| self.err(e))?;
            v.collect::<rusqlite::Result<Vec<u32>>>()
                .map_err(|e| self.err(e))?
        };
        revisions_seen.sort();
        let raw_xml = if with_xml {
            let bytes = zstd::decode_all(&raw[..])
                .map_err(|e| self.err(format!("raw XML of {id} is damaged: {e}")))?;
            Some(String::from_utf8_lossy(&bytes).into_owned())
        } else {
            None
        };
        Ok(ShowUpdate {
            row,
            source,
            publication_state,
            kb_articles: strings(
                "SELECT k.kb FROM updates u JOIN kb_articles k ON k.uid = u.uid WHERE u.id = ?1 ORDER BY k.rowid",
            )?,
            cves: strings(
                "SELECT c.cve FROM updates u JOIN cves c ON c.uid = u.uid WHERE u.id = ?1 ORDER BY c.rowid",
            )?,
            security_bulletins: strings(
                "SELECT b.bulletin FROM updates u JOIN bulletins b ON b.uid = u.uid WHERE u.id = ?1 ORDER BY b.rowid",
            )?,
            localized,
            relations,
            bundled_by: strings(
                "SELECT b.id FROM relations r JOIN updates b ON b.uid = r.uid WHERE r.other_id = ?1 AND r.kind = 'bundled' ORDER BY b.id",
            )?,
            files,
            is_bundle,
            first_version: first_version as u64,
            changed_version: changed_version as u64,
            revisions_seen,
            decided_by,
            reason,
            raw_xml,
        })
    }

    /// Sync runs, newest first.
    pub fn history(&self, limit: usize) -> Result<Vec<HistoryRow>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, started, finished, status, full, catalog_version, new, revised, expired, removed, unchanged,
                        categories, detectoids, duration_ms, error, error_code
                 FROM sync_runs ORDER BY id DESC LIMIT ?1",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([limit as i64], |r| {
                Ok(HistoryRow {
                    id: r.get(0)?,
                    started: r.get(1)?,
                    finished: r.get(2)?,
                    status: r.get(3)?,
                    full: r.get(4)?,
                    catalog_version: r.get(5)?,
                    new: r.get(6)?,
                    revised: r.get(7)?,
                    expired: r.get(8)?,
                    removed: r.get(9)?,
                    unchanged: r.get(10)?,
                    categories: r.get(11)?,
                    detectoids: r.get(12)?,
                    duration_ms: r.get(13)?,
                    error: r.get(14)?,
                    error_code: r.get(15)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// The content digest, from the value recorded after the last sync that changed the
    /// catalog when it belongs to the current catalog version, else computed.
    pub fn current_content_digest(&self) -> Result<String> {
        // The digest of the last sync may be being recorded right now.
        self.background.join(Some("digest"));
        let version = self.catalog_version()?;
        if let Some(v) = self.meta("content_digest")?
            && let Some((at, digest)) = v.split_once(':')
            && at == version.to_string()
        {
            return Ok(digest.to_owned());
        }
        self.content_digest()
    }

    /// Sync runs by status (`succeeded`, `failed`, ...).
    pub fn run_counts(&self) -> Result<HashMap<String, u64>> {
        let mut s = self
            .conn
            .prepare("SELECT status, COUNT(*) FROM sync_runs GROUP BY status")
            .map_err(|e| self.err(e))?;
        let rows = s
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })
            .map_err(|e| self.err(e))?
            .collect::<rusqlite::Result<HashMap<_, _>>>()
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// When each source last synced successfully (RFC 3339), by name.
    pub fn sources_last_synced(&self) -> Result<HashMap<String, String>> {
        let mut s = self
            .conn
            .prepare("SELECT name, last_synced FROM sources WHERE last_synced IS NOT NULL")
            .map_err(|e| self.err(e))?;
        let rows = s
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| self.err(e))?
            .collect::<rusqlite::Result<HashMap<_, _>>>()
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Updates an active update in the store supersedes.
    pub fn superseded_ids(&self) -> Result<std::collections::HashSet<UpdateId>> {
        let mut s = self
            .conn
            .prepare(
                "SELECT DISTINCT r.other_id FROM relations r JOIN updates u ON u.uid = r.uid
                 WHERE r.kind = 'superseded' AND u.state = 'active'",
            )
            .map_err(|e| self.err(e))?;
        let ids = s
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?
            .filter_map(|r| r.ok().and_then(|s| UpdateId::parse(&s).ok()))
            .collect();
        Ok(ids)
    }

    /// Computes the digest and records it with the catalog version it describes.
    pub fn record_content_digest(&self) -> Result<()> {
        let version = self.catalog_version()?;
        let digest = self.content_digest()?;
        self.set_meta("content_digest", &format!("{version}:{digest}"))
    }

    /// A digest over the active catalog's (id, revision) pairs: equal digests, equal catalogs.
    pub fn content_digest(&self) -> Result<String> {
        use sha1::{Digest, Sha1};
        // One pass over the covering index `updates_by_source` (a third of the table's
        // pages), sorted in memory: ordering by id through its own index would visit the
        // rows at random (seconds on a large catalog). GUIDs sort as their lowercase
        // hyphenated text does, so the order is the text's.
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, revision FROM updates INDEXED BY updates_by_source WHERE state = 'active'",
            )
            .map_err(|e| self.err(e))?;
        let mut active: Vec<(UpdateId, u32)> = Vec::new();
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let id = super::id_column(r, 0).map_err(|m| self.err(format!("updates: {m}")))?;
            active.push((id, r.get(1).map_err(|e| self.err(e))?));
        }
        active.sort_unstable();
        let mut h = Sha1::new();
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        for (id, rev) in &active {
            h.update(id.0.hyphenated().encode_lower(&mut text).as_bytes());
            h.update(rev.to_be_bytes());
        }
        Ok(format!("{:x}", h.finalize()))
    }
}
