//! What the store holds for a source as its sync begins: its catalog items (revision and
//! verdict by id) and its active updates, loaded once, beside the reading when it can be.

use std::sync::{Arc, OnceLock};

use rusqlite::{OptionalExtension, params};

use crate::error::{Error, Result};
use crate::model::{IdMap, Identity, UpdateId};
use crate::store::{ItemVerdict, Store};

/// What `catalog_items` holds for a source: revision and verdict by update id.
pub(super) type Items = IdMap<(u32, ItemVerdict)>;

/// A source's active updates.
#[derive(Default)]
pub(super) struct Active {
    pub ids: Vec<UpdateId>,
    /// How many of them are software updates or drivers (the mass-removal guard's base).
    pub software_and_drivers: u64,
}

type Cell<T> = Arc<OnceLock<std::result::Result<T, String>>>;

/// The source's catalog items and active updates, loaded on the sync's thread, or (for a
/// single pass) on one beside it while the source starts reading. The items come first:
/// the reading waits for them at its first record, and only the expiry at the end needs
/// the active updates (`None` after looking up the ids of a short change list only).
#[derive(Default)]
pub(super) struct Loading {
    items: Cell<Items>,
    active: Cell<Option<Active>>,
}

impl Loading {
    pub fn set(&self, items: Items, active: Option<Active>) {
        let _ = self.items.set(Ok(items));
        let _ = self.active.set(Ok(active));
    }

    /// Loads on a thread of its own with a read-only connection, in one read transaction.
    /// The sync's transaction commits only after [`active`](Self::active), so that
    /// connection sees the store as the sync found it.
    pub fn start(
        &self,
        store: &Store,
        source: &str,
    ) -> Result<Option<std::thread::JoinHandle<()>>> {
        /// Says why, should the thread end without a result.
        struct Settle(Cell<Items>, Cell<Option<Active>>);
        impl Drop for Settle {
            fn drop(&mut self) {
                let stopped = "the thread loading the catalog items stopped";
                let _ = self.0.set(Err(stopped.into()));
                let _ = self.1.set(Err(stopped.into()));
            }
        }
        let settle = Settle(self.items.clone(), self.active.clone());
        let (path, name) = (store.path().to_owned(), source.to_owned());
        let spawned = std::thread::Builder::new()
            .name("patchsync-items".into())
            .spawn(move || {
                let message = |e: Error| match e {
                    Error::Store { message, .. } => message,
                    other => other.to_string(),
                };
                let store = match Store::open_read_only(&path) {
                    Ok(s) => s,
                    Err(e) => return drop(settle.0.set(Err(message(e)))),
                };
                let tx = match store.conn.unchecked_transaction() {
                    Ok(tx) => tx,
                    Err(e) => return drop(settle.0.set(Err(message(store.err(e))))),
                };
                let items = load_items(&tx, &store, &name).map_err(message);
                let failed = items.is_err();
                let _ = settle.0.set(items);
                if !failed {
                    let _ = settle
                        .1
                        .set(load_active(&tx, &store, &name).map(Some).map_err(message));
                }
            });
        match spawned {
            Ok(t) => Ok(Some(t)),
            Err(_) => {
                let (items, active) = load_all(store, source)?;
                self.set(items, Some(active));
                Ok(None)
            }
        }
    }

    pub fn items(&self, path: &std::path::Path) -> Result<&Items> {
        wait(&self.items, path)
    }

    pub fn active(&self, path: &std::path::Path) -> Result<Option<&Active>> {
        wait(&self.active, path).map(Option::as_ref)
    }

    /// What a complete listing no longer has: the active updates to expire and the
    /// excluded items to forget, from the store as the sync found it (the sync writes only
    /// listed ids, so the store inside its transaction answers the same). Nothing without
    /// the whole catalog: only a short change list is looked up id by id, and a change list
    /// is never complete, so nothing expires by its absence from it.
    pub fn not_listed(&self, path: &std::path::Path, listed: &IdMap<u32>) -> Result<NotListed> {
        let Some(active) = self.active(path)? else {
            return Ok(NotListed::default());
        };
        Ok(NotListed {
            stored: (active.ids.iter())
                .filter(|id| !listed.contains_key(id))
                .copied()
                .collect(),
            items: (self.items(path)?.iter())
                .filter(|(id, (_, v))| *v == ItemVerdict::Excluded && !listed.contains_key(id))
                .map(|(id, _)| *id)
                .collect(),
        })
    }
}

fn wait<'a, T>(cell: &'a Cell<T>, path: &std::path::Path) -> Result<&'a T> {
    cell.wait().as_ref().map_err(|m| Error::Store {
        path: path.to_owned(),
        message: format!("cannot read the source's catalog items: {m}"),
    })
}

/// A change list at most this long is looked up in `catalog_items` id by id.
pub(super) const ITEM_LOOKUP_LIMIT: usize = 20_000;

/// What `catalog_items` says about the listed ids only.
pub(super) fn listed_items(store: &Store, source: &str, entries: &[Identity]) -> Result<Items> {
    let mut out = IdMap::with_capacity_and_hasher(entries.len(), Default::default());
    let mut stmt = store
        .conn
        .prepare(
            "SELECT revision, verdict = 'stored' FROM catalog_items WHERE source = ?1 AND update_id = ?2",
        )
        .map_err(|e| store.err(e))?;
    for e in entries {
        if out.contains_key(&e.id) {
            continue;
        }
        let row = stmt
            .query_row(params![source, e.id.to_string()], |r| {
                Ok((r.get::<_, u32>(0)?, r.get::<_, bool>(1)?))
            })
            .optional()
            .map_err(|e| store.err(e))?;
        if let Some((rev, stored)) = row {
            let v = if stored {
                ItemVerdict::Stored
            } else {
                ItemVerdict::Excluded
            };
            out.insert(e.id, (rev, v));
        }
    }
    Ok(out)
}

/// The source's whole catalog: items and active updates, read in one transaction.
pub(super) fn load_all(store: &Store, source: &str) -> Result<(Items, Active)> {
    let tx = store
        .conn
        .unchecked_transaction()
        .map_err(|e| store.err(e))?;
    Ok((
        load_items(&tx, store, source)?,
        load_active(&tx, store, source)?,
    ))
}

fn load_active(conn: &rusqlite::Connection, store: &Store, source: &str) -> Result<Active> {
    let mut active = Active::default();
    let mut stmt = conn
        .prepare(
            "SELECT id, update_type IN ('Software', 'Driver') FROM updates
             WHERE source = ?1 AND state = 'active'",
        )
        .map_err(|e| store.err(e))?;
    let mut rows = stmt.query([source]).map_err(|e| store.err(e))?;
    while let Some(r) = rows.next().map_err(|e| store.err(e))? {
        let id = crate::store::id_column(r, 0).map_err(|m| store.err(format!("updates: {m}")))?;
        active.ids.push(id);
        if r.get::<_, bool>(1).map_err(|e| store.err(e))? {
            active.software_and_drivers += 1;
        }
    }
    Ok(active)
}

fn load_items(conn: &rusqlite::Connection, store: &Store, source: &str) -> Result<Items> {
    // Gathered in order first, so the map is sized once rather than grown (and rehashed)
    // five or six times over half a million rows.
    let mut rows_read: Vec<(UpdateId, (u32, ItemVerdict))> = Vec::new();
    let mut stmt = conn
        .prepare(
            "SELECT update_id, revision, verdict = 'stored' FROM catalog_items WHERE source = ?1",
        )
        .map_err(|e| store.err(e))?;
    let mut rows = stmt.query([source]).map_err(|e| store.err(e))?;
    while let Some(r) = rows.next().map_err(|e| store.err(e))? {
        let id =
            crate::store::id_column(r, 0).map_err(|m| store.err(format!("catalog_items: {m}")))?;
        let rev: u32 = r.get(1).map_err(|e| store.err(e))?;
        let v = if r.get::<_, bool>(2).map_err(|e| store.err(e))? {
            ItemVerdict::Stored
        } else {
            ItemVerdict::Excluded
        };
        rows_read.push((id, (rev, v)));
    }
    let mut out = IdMap::with_capacity_and_hasher(rows_read.len(), Default::default());
    out.extend(rows_read);
    Ok(out)
}

#[derive(Default)]
pub(super) struct NotListed {
    pub stored: Vec<UpdateId>,
    pub items: Vec<UpdateId>,
}

/// Active software and driver updates of a source.
pub(super) fn active_count(conn: &rusqlite::Connection, source: &str) -> rusqlite::Result<u64> {
    conn.query_row(
        "SELECT COUNT(*) FROM updates WHERE source = ?1 AND state = 'active'
           AND update_type IN ('Software', 'Driver')",
        [source],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n as u64)
}
