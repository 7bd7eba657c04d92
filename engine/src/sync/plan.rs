//! `patchsync plan`: a sync run to the point of committing, then rolled back. What it would
//! have changed is read by comparing its transaction with the committed store.

use std::collections::HashMap;
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

struct Row {
    revision: u32,
    active: bool,
    title: Option<String>,
    decided_by: Option<String>,
    reason: Option<String>,
}

const KINDS: &str = "update_type IN ('Software', 'Driver')";

fn rows(
    conn: &rusqlite::Connection,
    name: &str,
    with_items: bool,
) -> rusqlite::Result<HashMap<String, Row>> {
    let sql = if with_items {
        format!(
            "SELECT u.id, u.revision, u.state = 'active', u.title, ci.decided_by, ci.reason
             FROM updates u LEFT JOIN catalog_items ci ON ci.source = u.source AND ci.update_id = u.id
             WHERE u.source = ?1 AND u.{KINDS}"
        )
    } else {
        format!(
            "SELECT id, revision, state = 'active', title, NULL, NULL FROM updates
             WHERE source = ?1 AND {KINDS}"
        )
    };
    let mut s = conn.prepare(&sql)?;
    let mut out = HashMap::new();
    let mut q = s.query([name])?;
    while let Some(r) = q.next()? {
        out.insert(
            r.get(0)?,
            Row {
                revision: r.get(1)?,
                active: r.get(2)?,
                title: r.get(3)?,
                decided_by: r.get(4)?,
                reason: r.get(5)?,
            },
        );
    }
    Ok(out)
}

/// The changes `writer`'s uncommitted transaction makes to source `name`'s updates.
pub(crate) fn changes(
    writer: &SyncWriter<'_>,
    store: &Path,
    name: &str,
) -> Result<Vec<PlannedChange>> {
    let committed = rusqlite::Connection::open_with_flags(
        store,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| writer.err(e))?;
    let before = rows(&committed, name, false).map_err(|e| writer.err(e))?;
    let after = rows(&writer.tx, name, true).map_err(|e| writer.err(e))?;
    let mut out = Vec::new();
    let change = |id: &str, row: &Row, kind: &str, prev: Option<u32>| PlannedChange {
        source: name.to_owned(),
        id: id.to_owned(),
        title: row.title.clone(),
        change: kind.to_owned(),
        revision: row.revision,
        previous_revision: prev,
        decided_by: row.decided_by.clone(),
        reason: row.reason.clone(),
    };
    for (id, a) in &after {
        match before.get(id) {
            None if a.active => out.push(change(id, a, "new", None)),
            Some(b) if b.revision != a.revision && a.active => {
                out.push(change(id, a, "revised", Some(b.revision)))
            }
            Some(b) if b.active && !a.active => {
                out.push(change(id, a, "expired", Some(b.revision)))
            }
            _ => {}
        }
    }
    let mut why = writer
        .tx
        .prepare(
            "SELECT decided_by, reason FROM catalog_items WHERE source = ?1 AND update_id = ?2",
        )
        .map_err(|e| writer.err(e))?;
    for (id, b) in &before {
        if !after.contains_key(id) {
            let (decided_by, reason) = why
                .query_row([name, id.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(|e| writer.err(e))?
                .unwrap_or((None, None));
            out.push(PlannedChange {
                source: name.to_owned(),
                id: id.clone(),
                title: b.title.clone(),
                change: "removed".into(),
                revision: b.revision,
                previous_revision: Some(b.revision),
                decided_by,
                reason,
            });
        }
    }
    out.sort_by(|a, b| (a.change.as_str(), &a.id).cmp(&(b.change.as_str(), &b.id)));
    Ok(out)
}
