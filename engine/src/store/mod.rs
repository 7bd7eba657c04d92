//! The SQLite store: schema, migrations, the sync's write path and the read queries.
//!
//! One file, WAL mode: readers keep working while a sync writes. Each source's changes are
//! applied in one `BEGIN IMMEDIATE` transaction, so a sync killed at any moment leaves the
//! store as it was before that source, and the next sync simply does the work again.

mod background;
mod query;
mod schema;
mod upstream;
pub(crate) mod write;
pub(crate) mod writeback;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

pub use query::{
    CategoryRow, HistoryRow, ShowFile, ShowLocalized, ShowRelation, ShowUpdate, UpdateQuery,
    UpdateRow, load_category_tree,
};
pub use upstream::{ListedRevision, RevisionList, ServedUpdate, UpdateSelection};
pub use write::{ItemVerdict, SyncWriter};

use crate::error::{Error, Result};
use crate::model::UpdateId;

/// Connection settings of every store: WAL (readers never wait for the writer), 4 KiB
/// pages (a delta touches index pages at random: 16 KiB pages wrote 2.7× the bytes to the
/// WAL for the same rows; the page size is fixed when a store is created, an older store
/// keeps its own), a 64 MiB page cache.
pub const PRAGMAS: &str = "PRAGMA page_size = 4096;
     PRAGMA journal_mode = WAL;
     PRAGMA synchronous = NORMAL;
     PRAGMA foreign_keys = OFF;
     PRAGMA cache_size = -65536;
     PRAGMA temp_store = MEMORY;";

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 128;

/// The update GUID in column `i` of a row, read without allocating a string.
pub(crate) fn id_column(r: &rusqlite::Row<'_>, i: usize) -> std::result::Result<UpdateId, String> {
    let text = r
        .get_ref(i)
        .and_then(|v| Ok(v.as_str()?))
        .map_err(|e| e.to_string())?;
    UpdateId::parse(text)
}

/// SQLite's default automatic checkpoint threshold (WAL pages).
const AUTO_CHECKPOINT_PAGES: i64 = 1000;

/// How long a reader waits for a writer's lock before giving up.
const BUSY_TIMEOUT_MS: u64 = 5_000;

/// An open store.
pub struct Store {
    /// A checkpoint or digest running on its own connection after a sync; waited for
    /// before the store's own connection closes (fields drop in order).
    background: background::Background,
    pub(crate) conn: Connection,
    path: PathBuf,
}

/// What the store remembers about one source between syncs.
#[derive(Debug, Clone, Default)]
pub struct SourceState {
    pub fingerprint: Option<String>,
    pub selection_hash: Option<String>,
    pub language_hash: Option<String>,
    /// What the source asked to keep between syncs (see `CatalogSource::cursor`).
    pub cursor: Option<String>,
}

impl Store {
    /// Opens (creating if needed) the store at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let conn = Connection::open(path).map_err(|e| store_err(path, e))?;
        let mut store = Store {
            conn,
            path: path.to_owned(),
            background: Default::default(),
        };
        store.configure()?;
        store.migrate()?;
        Ok(store)
    }

    /// Opens an existing store for reading only.
    pub fn open_read_only(path: &Path) -> Result<Store> {
        if !path.exists() {
            return Err(Error::Store {
                path: path.to_owned(),
                message: "no store here yet; run `patchsync sync` first".into(),
            });
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| store_err(path, e))?;
        conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))
            .map_err(|e| store_err(path, e))?;
        let store = Store {
            conn,
            path: path.to_owned(),
            background: Default::default(),
        };
        let v: i64 = store
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| store.err(e))?;
        if v as usize > schema::MIGRATIONS.len() {
            return Err(store.newer_schema(v));
        }
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The store's write-ahead log (`<store>-wal`).
    pub(crate) fn wal_path(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push("-wal");
        PathBuf::from(p)
    }

    /// A store on a connection opened elsewhere (a background thread's), as it is.
    fn from_connection(conn: Connection, path: PathBuf) -> Store {
        Store {
            conn,
            path,
            background: Default::default(),
        }
    }

    /// Stops commits from copying the WAL back into the database file (SQLite's automatic
    /// checkpoint) until `checkpoint_later`; waits for the work of the last sync still
    /// running (checkpoint, digest).
    pub(crate) fn defer_checkpoints(&mut self) -> Result<()> {
        self.background.join(None);
        self.conn
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(|e| self.err(e))
    }

    /// Starts copying what is committed so far into the database file on a thread of its
    /// own (a source's changes, while the sync goes on with the next).
    pub(crate) fn checkpoint_soon(&self) {
        self.background.checkpoint(&self.path);
    }

    /// Checkpoints the WAL on a thread of its own, so a sync's caller (which tells child
    /// sites, reports to its parent) does not wait for the copy; automatic checkpoints
    /// resume. Dropping the store waits for it.
    pub(crate) fn checkpoint_later(&mut self) {
        let _ = self
            .conn
            .pragma_update(None, "wal_autocheckpoint", AUTO_CHECKPOINT_PAGES);
        self.background.checkpoint(&self.path);
    }

    /// Records the content digest of the committed catalog on a thread of its own (see
    /// [`current_content_digest`](Self::current_content_digest)).
    pub(crate) fn record_content_digest_later(&self) {
        self.background.record_digest(&self.path);
    }

    pub(crate) fn err(&self, e: impl std::fmt::Display) -> Error {
        store_err(&self.path, e)
    }

    fn newer_schema(&self, v: i64) -> Error {
        self.err(format!(
            "schema version {v} is newer than this patchsync understands ({}); upgrade patchsync",
            schema::MIGRATIONS.len()
        ))
    }

    fn configure(&mut self) -> Result<()> {
        // The sync's write path uses a few dozen statements per update; the default cache of
        // 16 would prepare some of them again for every update.
        self.conn
            .set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        self.conn
            .busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))
            .map_err(|e| store_err(&self.path, e))?;
        self.conn
            .execute_batch(PRAGMAS)
            .map_err(|e| store_err(&self.path, e))
    }

    fn migrate(&mut self) -> Result<()> {
        let path = self.path.clone();
        let v: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| store_err(&path, e))?;
        let v = v as usize;
        if v > schema::MIGRATIONS.len() {
            return Err(self.newer_schema(v as i64));
        }
        for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(v) {
            let tx = self.conn.transaction().map_err(|e| store_err(&path, e))?;
            tx.execute_batch(sql)
                .map_err(|e| store_err(&path, format!("migration {}: {e}", i + 1)))?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(|e| store_err(&path, e))?;
            if i == 0 {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('catalog_version', '0')",
                    [],
                )
                .map_err(|e| store_err(&path, e))?;
            }
            tx.commit().map_err(|e| store_err(&path, e))?;
        }
        Ok(())
    }

    /// The catalog version: rises by one with every sync that changed anything.
    pub fn catalog_version(&self) -> Result<u64> {
        let v: String = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'catalog_version'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        v.parse()
            .map_err(|_| self.err(format!("meta.catalog_version '{v}' is not a number")))
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = ?2 WHERE value != ?2",
                params![key, value],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    pub fn source_state(&self, name: &str) -> Result<SourceState> {
        self.conn
            .query_row(
                "SELECT fingerprint, selection_hash, language_hash, cursor FROM sources WHERE name = ?1",
                [name],
                |r| {
                    Ok(SourceState {
                        fingerprint: r.get(0)?,
                        selection_hash: r.get(1)?,
                        language_hash: r.get(2)?,
                        cursor: r.get(3)?,
                    })
                },
            )
            .optional()
            .map(Option::unwrap_or_default)
            .map_err(|e| self.err(e))
    }

    /// Records that a sync run started; committed at once so `status` can see it.
    pub fn begin_run(&self, full: bool) -> Result<i64> {
        let now = now_rfc3339();
        self.conn
            .execute(
                "UPDATE sync_runs SET status = 'interrupted', finished = ?1,
                     error = 'the sync process stopped before it finished; nothing of it was kept'
                 WHERE finished IS NULL",
                [&now],
            )
            .map_err(|e| self.err(e))?;
        self.conn
            .execute(
                "INSERT INTO sync_runs (started, status, full, pid) VALUES (?1, 'running', ?2, ?3)",
                params![now, full, std::process::id()],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records how a run ended.
    pub fn finish_run(
        &self,
        id: i64,
        report: &crate::sync::SyncReport,
        error: Option<(&str, u32)>,
    ) -> Result<()> {
        let status = if error.is_some() {
            "failed"
        } else {
            "succeeded"
        };
        let json = serde_json::to_string(report).unwrap_or_default();
        self.conn
            .execute(
                "UPDATE sync_runs SET finished = ?2, status = ?3, catalog_version = ?4, new = ?5, revised = ?6,
                     expired = ?7, removed = ?8, unchanged = ?9, categories = ?10, detectoids = ?11,
                     duration_ms = ?12, error = ?13, report = ?14, error_code = ?15
                 WHERE id = ?1",
                params![
                    id,
                    now_rfc3339(),
                    status,
                    report.catalog_version as i64,
                    report.new as i64,
                    report.revised as i64,
                    report.expired as i64,
                    report.removed as i64,
                    report.unchanged as i64,
                    report.categories as i64,
                    report.detectoids as i64,
                    report.duration_ms as i64,
                    error.map(|e| e.0),
                    json,
                    error.map(|e| e.1)
                ],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Runs SQLite's integrity check; `Ok(())` if the file is sound.
    pub fn integrity_check(&self) -> Result<()> {
        let r: String = self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if r == "ok" {
            Ok(())
        } else {
            Err(self.err(format!("integrity check failed: {r}")))
        }
    }
}

pub(crate) fn store_err(path: &Path, e: impl std::fmt::Display) -> Error {
    let msg = e.to_string();
    let hint = if msg.contains("database is locked") || msg.contains("database is busy") {
        " (another patchsync process is writing; try again when it has finished)"
    } else if msg.contains("not a database") || msg.contains("malformed") {
        " (the file is not a patchsync store, or it is damaged; restore it or point [site] store at a new path)"
    } else {
        ""
    };
    Error::Store {
        path: path.to_owned(),
        message: format!("{msg}{hint}"),
    }
}

pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
