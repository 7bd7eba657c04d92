//! `patchsync plan`: a sync run to the point of committing, then rolled back. What it would
//! have changed is read from its transaction: the rows it gave this sync's catalog version,
//! and the removals it recorded, each compared with the committed store. The work is
//! proportional to the change, not to the catalog.

use std::path::Path;

use rusqlite::OptionalExtension;
use serde::Serialize;

use crate::error::Result;
use crate::store::SyncWriter;

/// One update a sync would add, revise, expire or remove.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedChange {
    pub source: String,
    pub id: String,
    pub title: Option<String>,
    /// `new`, `revised`, `expired` or `removed`.
    pub change: String,
    pub revision: u32,
    pub previous_revision: Option<u32>,
    /// The stage that decided (a rule set: `rules NAME`) and why (which rule).
    pub decided_by: Option<String>,
    pub reason: Option<String>,
}

/// The changes `writer`'s uncommitted transaction makes to source `name`'s updates.
pub(crate) fn changes(
    writer: &SyncWriter<'_>,
    store: &Path,
    name: &str,
) -> Result<Vec<PlannedChange>> {
    let e = |x: rusqlite::Error| writer.err(x);
    let committed = rusqlite::Connection::open_with_flags(
        store,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(e)?;
    let mut before = committed
        .prepare("SELECT revision, state = 'active', title, source FROM updates WHERE id = ?1")
        .map_err(e)?;
    let mut out = Vec::new();
    let version = writer.version() as i64;
    {
        let mut s = writer
            .tx
            .prepare(
                "SELECT u.id, u.revision, u.state = 'active', u.title, ci.decided_by, ci.reason
                 FROM updates u LEFT JOIN catalog_items ci ON ci.source = u.source AND ci.update_id = u.id
                 WHERE u.changed_version = ?1 AND u.source = ?2
                   AND u.update_type IN ('Software', 'Driver')",
            )
            .map_err(e)?;
        let mut rows = s.query(rusqlite::params![version, name]).map_err(e)?;
        while let Some(r) = rows.next().map_err(e)? {
            let id: String = r.get(0).map_err(e)?;
            let revision: u32 = r.get(1).map_err(e)?;
            let active: bool = r.get(2).map_err(e)?;
            let prev: Option<(u32, bool)> = before
                .query_row([&id], |p| Ok((p.get(0)?, p.get(1)?)))
                .optional()
                .map_err(e)?;
            let change = match prev {
                None if active => "new",
                Some((rev, _)) if rev != revision && active => "revised",
                Some((_, true)) if !active => "expired",
                _ => continue,
            };
            out.push(PlannedChange {
                source: name.to_owned(),
                id,
                title: r.get(3).map_err(e)?,
                change: change.into(),
                revision,
                previous_revision: prev.map(|p| p.0),
                decided_by: r.get(4).map_err(e)?,
                reason: r.get(5).map_err(e)?,
            });
        }
    }
    let mut s = writer
        .tx
        .prepare(
            "SELECT r.update_id, ci.decided_by, ci.reason FROM removed_updates r
             LEFT JOIN catalog_items ci ON ci.source = ?2 AND ci.update_id = r.update_id
             WHERE r.removed_version = ?1",
        )
        .map_err(e)?;
    let mut rows = s.query(rusqlite::params![version, name]).map_err(e)?;
    while let Some(r) = rows.next().map_err(e)? {
        let id: String = r.get(0).map_err(e)?;
        let Some((revision, _, title, source)) = before
            .query_row([&id], |p| {
                Ok((
                    p.get::<_, u32>(0)?,
                    p.get::<_, bool>(1)?,
                    p.get(2)?,
                    p.get::<_, String>(3)?,
                ))
            })
            .optional()
            .map_err(e)?
        else {
            continue;
        };
        if source != name {
            continue;
        }
        out.push(PlannedChange {
            source: name.to_owned(),
            id,
            title,
            change: "removed".into(),
            revision,
            previous_revision: Some(revision),
            decided_by: r.get(1).map_err(e)?,
            reason: r.get(2).map_err(e)?,
        });
    }
    out.sort_by(|a, b| (a.change.as_str(), &a.id).cmp(&(b.change.as_str(), &b.id)));
    Ok(out)
}
