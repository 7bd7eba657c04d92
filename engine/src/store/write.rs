//! The sync's write path: one transaction per source, prepared statements, compressed raw XML.

use rusqlite::{OptionalExtension, Transaction, params};

use super::{SourceState, now_rfc3339};
use crate::error::{Error, Result};
use crate::filter::LanguageSelection;
use crate::model::{Update, UpdateId, UpdateType};

/// What became of one listed identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemVerdict {
    Stored,
    Excluded,
}

impl ItemVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemVerdict::Stored => "stored",
            ItemVerdict::Excluded => "excluded",
        }
    }
}

/// An update row as it was before this sync touched it.
#[derive(Debug, Clone)]
pub struct Previous {
    pub revision: u32,
    /// `state = 'active'` (not expired).
    pub active: bool,
}

/// Writes one source's changes inside one transaction.
pub struct SyncWriter<'c> {
    pub(crate) tx: Transaction<'c>,
    source: String,
    version: u64,
    path: std::path::PathBuf,
    /// The store had no updates when this transaction began (a first sync): nothing fetched
    /// can replace a stored row, so `previous` need not look.
    empty_at_start: bool,
    /// Secondary indexes dropped for a first sync's bulk insert, with the SQL that builds
    /// them again (see [`SyncWriter::defer_indexes`]).
    deferred_indexes: Vec<String>,
    /// Set by the host to stop the sync: checked per update, the transaction is then
    /// dropped (rolled back).
    pub(crate) cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// The tables that hang off an update by `uid`: deleted with it, and (with `updates`) the
/// tables a first sync fills.
const CHILD_TABLES: &[&str] = &[
    "update_xml",
    "update_categories",
    "relations",
    "kb_articles",
    "cves",
    "bulletins",
    "localized",
    "files",
];

/// The page cache (negative: KiB) while deferred indexes are built.
const INDEX_BUILD_CACHE_KIB: i64 = -16384;

/// Compresses raw update XML the way the store keeps it (zstd level 3).
pub fn compress_xml(
    compressor: &mut zstd::bulk::Compressor<'static>,
    xml: &str,
) -> std::io::Result<Vec<u8>> {
    compressor.compress(xml.as_bytes())
}

impl<'c> SyncWriter<'c> {
    /// `version` is the catalog version this sync's changes get.
    pub(crate) fn new(
        tx: Transaction<'c>,
        path: &std::path::Path,
        source: &str,
        version: u64,
    ) -> Result<Self> {
        let empty_at_start = tx
            .query_row("SELECT NOT EXISTS (SELECT 1 FROM updates)", [], |r| {
                r.get(0)
            })
            .map_err(|e| super::store_err(path, e))?;
        Ok(SyncWriter {
            tx,
            source: source.to_owned(),
            version,
            path: path.to_owned(),
            empty_at_start,
            deferred_indexes: Vec::new(),
            cancel: None,
        })
    }

    /// `Err(Cancelled)` once the host asked the sync to stop.
    pub(crate) fn check_cancel(&self) -> Result<()> {
        match &self.cancel {
            Some(c) if c.load(std::sync::atomic::Ordering::Relaxed) => Err(Error::Cancelled),
            _ => Ok(()),
        }
    }

    pub(crate) fn err(&self, e: impl std::fmt::Display) -> Error {
        super::store_err(&self.path, e)
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// In a first sync (the store had no updates), drops the secondary indexes of the
    /// tables a sync fills, so the bulk insert does not update them row by row at random
    /// places; [`SyncWriter::restore_indexes`] builds them again, sorted, in the same
    /// transaction. Nothing outside this transaction ever sees the store without them:
    /// other connections read the last commit, and a sync that fails or is killed rolls
    /// the drop back with everything else. The lookups a sync makes while fetching use
    /// primary keys and unique constraints only, which stay.
    pub(crate) fn defer_indexes(&mut self) -> Result<()> {
        if !self.empty_at_start || !self.deferred_indexes.is_empty() {
            return Ok(());
        }
        let e = |x: rusqlite::Error| super::store_err(&self.path, x);
        let tables = std::iter::once("updates")
            .chain(CHILD_TABLES.iter().copied())
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let indexes: Vec<(String, String)> = {
            let mut s = self
                .tx
                .prepare(&format!(
                    "SELECT name, sql FROM sqlite_master
                     WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN ({tables})"
                ))
                .map_err(e)?;
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(|rows| rows.collect())
                .map_err(e)?
        };
        for (name, sql) in indexes {
            self.tx
                .execute_batch(&format!("DROP INDEX \"{name}\""))
                .map_err(e)?;
            self.deferred_indexes.push(sql);
        }
        Ok(())
    }

    /// Builds the indexes [`SyncWriter::defer_indexes`] dropped. Called before anything
    /// reads through them, and at the latest by the commit.
    pub(crate) fn restore_indexes(&mut self) -> Result<()> {
        if self.deferred_indexes.is_empty() {
            return Ok(());
        }
        let e = |x: rusqlite::Error| super::store_err(&self.path, x);
        // The sorter that builds an index buffers as much as the page cache holds before it
        // spills; a smaller cache while building keeps the sync's peak memory where the
        // row-by-row inserts had it.
        let cache: i64 = self
            .tx
            .query_row("PRAGMA cache_size", [], |r| r.get(0))
            .map_err(e)?;
        self.tx
            .execute_batch(&format!("PRAGMA cache_size = {INDEX_BUILD_CACHE_KIB}"))
            .map_err(e)?;
        let built = std::mem::take(&mut self.deferred_indexes)
            .iter()
            .try_for_each(|sql| self.tx.execute_batch(sql));
        let restored = self
            .tx
            .execute_batch(&format!("PRAGMA cache_size = {cache}"));
        built.and(restored).map_err(e)
    }

    /// The row `id` had before this sync, if any. Rows this sync wrote itself are the
    /// caller's to track.
    pub fn previous(&self, id: UpdateId) -> Result<Option<Previous>> {
        if self.empty_at_start {
            return Ok(None);
        }
        self.tx
            .prepare_cached("SELECT revision, state = 'active' FROM updates WHERE id = ?1")
            .and_then(|mut s| {
                s.query_row([id.to_string()], |r| {
                    Ok(Previous {
                        revision: r.get(0)?,
                        active: r.get(1)?,
                    })
                })
                .optional()
            })
            .map_err(|e| self.err(e))
    }

    fn delete_children(&self, uid: i64) -> Result<()> {
        for t in CHILD_TABLES {
            self.tx
                .prepare_cached(&format!("DELETE FROM {t} WHERE uid = ?1"))
                .and_then(|mut s| s.execute([uid]))
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Deletes an update and everything hanging off it.
    pub fn delete_update(&self, id: UpdateId) -> Result<()> {
        let id = id.to_string();
        let row: Option<(i64, u64)> = self
            .tx
            .prepare_cached("SELECT uid, first_version FROM updates WHERE id = ?1")
            .and_then(|mut s| {
                s.query_row([&id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(|e| self.err(e))?;
        if let Some((uid, first_version)) = row {
            self.delete_children(uid)?;
            // Was in a committed catalog: incremental exports carry the removal.
            if first_version < self.version {
                self.tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO removed_updates (update_id, removed_version) VALUES (?1, ?2)",
                    )
                    .and_then(|mut s| s.execute(params![id, self.version as i64]))
                    .map_err(|e| self.err(e))?;
            }
        }
        self.tx
            .prepare_cached("DELETE FROM categories WHERE id = ?1")
            .and_then(|mut s| s.execute([&id]))
            .map_err(|e| self.err(e))?;
        self.tx
            .prepare_cached("DELETE FROM updates WHERE id = ?1")
            .and_then(|mut s| s.execute([&id]))
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Inserts or replaces one update revision. Categories and detectoids are selected by the
    /// catalog itself; other updates get `selected_by` (`filter`, `bundle`, or `pending`
    /// until the selection stage decides).
    /// `raw_zstd` is the update's raw XML, zstd-compressed (see [`compress_xml`]).
    pub fn put_update(
        &mut self,
        u: &Update,
        raw_zstd: &[u8],
        had_previous: bool,
        langs: &LanguageSelection,
        selected_by: &str,
    ) -> Result<()> {
        let id = u.identity.id.to_string();
        let title = u.title("en").map(str::to_owned);
        let state = if u.is_published() {
            "active"
        } else {
            "expired"
        };
        let expired_version = (state == "expired").then_some(self.version as i64);
        let selected_by = if u.update_type.is_always_synced() {
            "catalog"
        } else {
            selected_by
        };
        let v = self.version as i64;
        let uid: i64 = self
            .tx
            .prepare_cached(
                "INSERT INTO updates (id, revision, source, update_type, publication_state, state, creation_date,
                    default_language, title, msrc_severity, is_beta, max_download_size, more_info_url, support_url,
                    is_bundle, selected_by, first_version, changed_version, expired_version, expired_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?17, ?18, ?19)
                 ON CONFLICT(id) DO UPDATE SET revision = ?2, source = ?3, update_type = ?4, publication_state = ?5,
                    state = ?6, creation_date = ?7, default_language = ?8, title = ?9, msrc_severity = ?10,
                    is_beta = ?11, max_download_size = ?12, more_info_url = ?13, support_url = ?14, is_bundle = ?15,
                    selected_by = ?16, changed_version = ?17, expired_version = ?18, expired_at = ?19
                 RETURNING uid",
            )
            .and_then(|mut s| {
                s.query_row(params![
                    id,
                    u.identity.revision,
                    self.source,
                    u.update_type.as_str(),
                    u.publication_state,
                    state,
                    u.creation_date,
                    u.default_language,
                    title,
                    u.msrc_severity,
                    u.is_beta,
                    u.max_download_size.map(|x| x as i64),
                    u.more_info_url,
                    u.support_url,
                    u.is_bundle(),
                    selected_by,
                    v,
                    expired_version,
                    expired_version.map(|_| now_rfc3339())
                ], |r| r.get::<_, i64>(0))
            })
            .map_err(|e| self.err(e))?;
        if had_previous {
            self.delete_children(uid)?;
        }

        let tx = &self.tx;
        let e = |x: rusqlite::Error| super::store_err(&self.path, x);
        tx.prepare_cached("INSERT INTO update_xml (uid, xml) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(params![uid, raw_zstd]))
            .map_err(e)?;
        {
            let mut s = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO update_categories (uid, category_id) VALUES (?1, ?2)",
                )
                .map_err(e)?;
            for c in &u.categories {
                s.execute(params![uid, c.to_string()]).map_err(e)?;
            }
        }
        {
            let mut s = tx
                .prepare_cached("INSERT INTO relations (uid, kind, other_id, other_revision) VALUES (?1, ?2, ?3, ?4)")
                .map_err(e)?;
            for (k, r) in &u.relations {
                s.execute(params![uid, k.as_str(), r.id.to_string(), r.revision])
                    .map_err(e)?;
            }
        }
        for (table, col, values) in [
            ("kb_articles", "kb", &u.kb_articles),
            ("cves", "cve", &u.cves),
            ("bulletins", "bulletin", &u.security_bulletins),
        ] {
            if values.is_empty() {
                continue;
            }
            let mut s = tx
                .prepare_cached(&format!("INSERT INTO {table} (uid, {col}) VALUES (?1, ?2)"))
                .map_err(e)?;
            for v in values {
                s.execute(params![uid, v]).map_err(e)?;
            }
        }
        {
            let mut s = tx
                .prepare_cached("INSERT OR REPLACE INTO localized (uid, language, title, description) VALUES (?1, ?2, ?3, ?4)")
                .map_err(e)?;
            for l in u.localized.iter().filter(|l| langs.keeps(&l.language)) {
                s.execute(params![uid, l.language, l.title, l.description])
                    .map_err(e)?;
            }
        }
        if !u.files.is_empty() {
            let mut s = tx
                .prepare_cached("INSERT INTO files (uid, name, size, digest, sha256, modified) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
                .map_err(e)?;
            for f in &u.files {
                s.execute(params![
                    uid,
                    f.name,
                    f.size.map(|x| x as i64),
                    f.digest,
                    f.sha256,
                    f.modified
                ])
                .map_err(e)?;
                if let (Some(d), Some(url)) = (&f.digest, &f.url) {
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO file_urls (digest, url) VALUES (?1, ?2)",
                    )
                    .and_then(|mut s| s.execute(params![d, url]))
                    .map_err(e)?;
                }
            }
        }
        if u.update_type == UpdateType::Category {
            let kind = u.category_kind.map(|k| k.as_str()).unwrap_or("Product");
            let parent = u.categories.first().map(|p| p.to_string());
            tx.prepare_cached(
                "INSERT OR REPLACE INTO categories (id, kind, parent_id, title, display_order) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut s| s.execute(params![id, kind, parent, u.title("en").unwrap_or(""), u.display_order]))
            .map_err(e)?;
        }
        tx.prepare_cached("INSERT OR IGNORE INTO revisions (update_id, revision, source, seen_version) VALUES (?1, ?2, ?3, ?4)")
            .and_then(|mut s| s.execute(params![id, u.identity.revision, self.source, v]))
            .map_err(e)?;
        Ok(())
    }

    /// Records that a revision was seen without storing it (an older one than stored).
    pub fn record_revision(&self, identity: crate::model::Identity) -> Result<()> {
        self.tx
            .prepare_cached("INSERT OR IGNORE INTO revisions (update_id, revision, source, seen_version) VALUES (?1, ?2, ?3, ?4)")
            .and_then(|mut s| s.execute(params![identity.id.to_string(), identity.revision, self.source, self.version as i64]))
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    pub fn put_file_url(&self, digest: &str, url: &str) -> Result<()> {
        self.tx
            .prepare_cached("INSERT OR REPLACE INTO file_urls (digest, url) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(params![digest, url]))
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Records what became of a listed identity, and which stage decided it and why.
    pub fn set_item(
        &self,
        id: UpdateId,
        revision: u32,
        verdict: ItemVerdict,
        decided_by: &str,
        reason: Option<&str>,
    ) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO catalog_items (source, update_id, revision, verdict, decided_by, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(source, update_id) DO UPDATE SET revision = ?3, verdict = ?4, decided_by = ?5, reason = ?6",
            )
            .and_then(|mut s| s.execute(params![self.source, id.to_string(), revision, verdict.as_str(), decided_by, reason]))
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    pub fn delete_item(&self, id: UpdateId) -> Result<()> {
        self.tx
            .prepare_cached("DELETE FROM catalog_items WHERE source = ?1 AND update_id = ?2")
            .and_then(|mut s| s.execute(params![self.source, id.to_string()]))
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    pub fn set_selected_by(&self, id: UpdateId, by: &str) -> Result<()> {
        self.tx
            .prepare_cached("UPDATE updates SET selected_by = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![id.to_string(), by]))
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The source an update in the store came from.
    pub fn source_of(&self, id: UpdateId) -> Result<Option<String>> {
        self.tx
            .prepare_cached("SELECT source FROM updates WHERE id = ?1")
            .and_then(|mut s| s.query_row([id.to_string()], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))
    }

    /// Marks an update expired (kept, not deleted). Returns `true` if it was active.
    pub fn expire(&self, id: UpdateId) -> Result<bool> {
        self.tx
            .prepare_cached(
                "UPDATE updates SET state = 'expired', expired_version = ?2, changed_version = ?2,
                    expired_at = ?3
                 WHERE id = ?1 AND state = 'active'",
            )
            .and_then(|mut s| {
                s.execute(params![id.to_string(), self.version as i64, now_rfc3339()])
            })
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    /// Pins `id` (kept whatever the filter says, until `unpin`).
    pub fn pin(&self, id: UpdateId) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO pins (update_id, source, pinned_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(update_id) DO UPDATE SET source = ?2",
            )
            .and_then(|mut s| s.execute(params![id.to_string(), self.source, now_rfc3339()]))
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Commits changes made outside a sync of the source (an import): the source's
    /// fingerprint and cursor stay as the last sync left them.
    pub fn commit_without_source_state(mut self, changed: bool) -> Result<()> {
        self.restore_indexes()?;
        let e = |x: rusqlite::Error| super::store_err(&self.path, x);
        if changed {
            self.tx
                .execute(
                    "UPDATE meta SET value = ?1 WHERE key = 'catalog_version'",
                    [self.version.to_string()],
                )
                .map_err(e)?;
        }
        self.tx.commit().map_err(e)
    }

    /// Commits the source's changes, its new state, and (if `changed`) the new catalog version.
    pub fn commit(self, kind: &str, state: &SourceState, changed: bool) -> Result<()> {
        let e = |x: rusqlite::Error| super::store_err(&self.path, x);
        self.tx
            .execute(
                "INSERT INTO sources (name, kind, fingerprint, selection_hash, language_hash, last_synced, cursor)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(name) DO UPDATE SET kind = ?2, fingerprint = ?3, selection_hash = ?4, language_hash = ?5,
                    last_synced = ?6, cursor = ?7",
                params![self.source, kind, state.fingerprint, state.selection_hash, state.language_hash, now_rfc3339(), state.cursor],
            )
            .map_err(e)?;
        self.commit_without_source_state(changed)
    }
}
