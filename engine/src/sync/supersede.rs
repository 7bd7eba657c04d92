//! Supersedence and expiry rules, as in Configuration Manager, and the cleanup of
//! long-expired updates. Runs once per sync after every source, in one transaction:
//! - an active software or driver update that an active update in the store supersedes
//!   expires immediately or N months after the superseding update's creation date (feature
//!   upgrades, classification Upgrades, by their own setting); an update whose superseder
//!   is not in the store never expires this way; pinned updates never do;
//! - updates expired for longer than the configured number of days are deleted with their
//!   metadata, pinned ones excepted.

use std::collections::HashSet;

use chrono::{DateTime, Months, NaiveDate, NaiveDateTime, Utc};
use rusqlite::{TransactionBehavior, params};

use crate::config::{ExpireAfter, SupersedencePolicy};
use crate::error::Result;
use crate::model::UpdateId;
use crate::store::{Store, SyncWriter};

/// Classification "Upgrades" (feature upgrades).
const UPGRADES: &str = "3689bdc8-b205-4af4-8d4a-a63924c5e9d5";

/// What the pass did.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Outcome {
    pub expired: u64,
    pub deleted: u64,
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|n| n.and_utc())
        })
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|n| n.and_utc())
        })
}

/// Whether a rule says "expire now", given the superseding update's creation date.
fn due(rule: ExpireAfter, superseder_created: Option<&str>, now: DateTime<Utc>) -> bool {
    match rule {
        ExpireAfter::Never => false,
        ExpireAfter::Immediately => true,
        ExpireAfter::Months(n) => superseder_created
            .and_then(parse_time)
            .and_then(|c| c.checked_add_months(Months::new(n)))
            .is_some_and(|at| at <= now),
    }
}

/// Applies `policy` at catalog version `version`.
pub(crate) fn apply(
    store: &mut Store,
    policy: &SupersedencePolicy,
    version: u64,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    let mut out = Outcome::default();
    let nothing_to_expire =
        policy.updates == ExpireAfter::Never && policy.feature_upgrades == ExpireAfter::Never;
    if nothing_to_expire && policy.delete_expired_after_days.is_none() {
        return Ok(out);
    }
    let path = store.path().to_owned();
    let tx = store
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| crate::store::store_err(&path, e))?;
    let writer = SyncWriter::new(tx, &path, "supersedence", version)?;
    let stamp = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);

    if !nothing_to_expire {
        let mut expire: Vec<i64> = Vec::new();
        {
            let mut s = writer
                .tx
                .prepare(
                    "SELECT old.uid, new.creation_date,
                            EXISTS (SELECT 1 FROM update_categories c
                                    WHERE c.uid = old.uid AND c.category_id = ?1)
                     FROM relations r
                     JOIN updates new ON new.uid = r.uid AND new.state = 'active'
                     JOIN updates old ON old.id = r.other_id AND old.state = 'active'
                     WHERE r.kind = 'superseded'
                       AND old.update_type IN ('Software', 'Driver')
                       AND old.uid != new.uid
                       AND NOT EXISTS (SELECT 1 FROM pins p WHERE p.update_id = old.id)",
                )
                .map_err(|e| writer.err(e))?;
            let mut rows = s.query([UPGRADES]).map_err(|e| writer.err(e))?;
            let mut seen: HashSet<i64> = HashSet::new();
            while let Some(r) = rows.next().map_err(|e| writer.err(e))? {
                let uid: i64 = r.get(0).map_err(|e| writer.err(e))?;
                let created: Option<String> = r.get(1).map_err(|e| writer.err(e))?;
                let upgrade: bool = r.get(2).map_err(|e| writer.err(e))?;
                let rule = if upgrade {
                    policy.feature_upgrades
                } else {
                    policy.updates
                };
                if !seen.contains(&uid) && due(rule, created.as_deref(), now) {
                    seen.insert(uid);
                    expire.push(uid);
                }
            }
        }
        let mut s = writer
            .tx
            .prepare(
                "UPDATE updates SET state = 'expired', expired_version = ?2, changed_version = ?2,
                    expired_at = ?3
                 WHERE uid = ?1 AND state = 'active'",
            )
            .map_err(|e| writer.err(e))?;
        for uid in expire {
            out.expired += s
                .execute(params![uid, version as i64, stamp])
                .map_err(|e| writer.err(e))? as u64;
        }
    }

    if let Some(days) = policy.delete_expired_after_days {
        let cutoff = (now - chrono::Duration::days(days as i64))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let ids: Vec<String> = {
            let mut s = writer
                .tx
                .prepare(
                    "SELECT id FROM updates
                     WHERE state = 'expired' AND expired_at IS NOT NULL AND expired_at <= ?1
                       AND update_type IN ('Software', 'Driver')
                       AND NOT EXISTS (SELECT 1 FROM pins p WHERE p.update_id = updates.id)",
                )
                .map_err(|e| writer.err(e))?;
            s.query_map([&cutoff], |r| r.get::<_, String>(0))
                .map_err(|e| writer.err(e))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(|e| writer.err(e))?
        };
        for id in ids {
            let id = UpdateId::parse(&id).map_err(|m| writer.err(m))?;
            writer.delete_update(id)?;
            out.deleted += 1;
        }
    }
    writer.commit_without_source_state(out.expired + out.deleted > 0)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_count_from_the_superseders_creation() {
        let now = parse_time("2026-11-27T12:00:00Z").unwrap();
        assert!(due(
            ExpireAfter::Months(3),
            Some("2026-08-27T11:00:00Z"),
            now
        ));
        assert!(!due(
            ExpireAfter::Months(3),
            Some("2026-08-28T00:00:00"),
            now
        ));
        assert!(!due(ExpireAfter::Months(3), None, now), "no date: not due");
        assert!(due(ExpireAfter::Immediately, None, now));
        assert!(!due(ExpireAfter::Never, Some("2000-01-01"), now));
    }
}
