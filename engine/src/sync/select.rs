//! The selection stage: the filter chain decides top-level updates, bundles bring their
//! leaves (transitively, fetching leaves the store lacks), everything else leaves the store.

use std::collections::{HashMap, HashSet};

use rusqlite::OptionalExtension;

use super::{FetchedInfo, Request, count_change, fetch_into};
use crate::error::Result;
use crate::events::{Phase, SyncEvent};
use crate::filter::{FilterChain, LanguageSelection, UpdateView, Verdict};
use crate::model::{IdMap, Identity, UpdateId, UpdateType};
use crate::source::CatalogSource;
use crate::store::{ItemVerdict, SyncWriter};
use crate::sync::SourceReport;

const BATCH: usize = 2048;

/// Hands what the stages logged to the sync log (and their warnings to the report).
fn log_stage_messages(
    chain: &mut FilterChain,
    source: &str,
    warnings: &mut Vec<String>,
    emit: &mut dyn FnMut(SyncEvent),
) {
    for (stage, m) in chain.take_messages() {
        if m.warning {
            warnings.push(format!("{stage}: {}", m.message));
        }
        emit(SyncEvent::StageLog {
            source: source.to_owned(),
            stage,
            level: m.level.to_owned(),
            message: m.message,
        });
    }
}
const MAX_BUNDLE_DEPTH: usize = 16;

/// Why a candidate stays.
#[derive(Clone, Copy, PartialEq, Eq)]
enum KeptBy {
    Filter,
    Bundle,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    writer: &mut SyncWriter<'_>,
    source: &mut dyn CatalogSource,
    listed: &IdMap<u32>,
    fetched: &mut IdMap<FetchedInfo>,
    report: &mut SourceReport,
    chain: &mut FilterChain,
    languages: &LanguageSelection,
    reevaluate_all: bool,
    carried: HashMap<UpdateId, UpdateId>,
    log_each: bool,
    emit: &mut dyn FnMut(SyncEvent),
) -> Result<Vec<String>> {
    let name = source.name().to_owned();
    let tree = crate::store::load_category_tree(&writer.tx).map_err(|e| writer.err(e))?;
    let mut warnings = chain.prepare(&tree)?;
    log_stage_messages(chain, &name, &mut warnings, emit);
    let mut unresolved: Vec<(UpdateId, UpdateId)> = Vec::new();

    // Leaves of bundles kept while fetching that neither this sync nor the store has.
    let mut wanted: HashSet<Identity> = HashSet::new();
    for (leaf, bundle) in carried {
        if fetched.contains_key(&leaf) || exists(writer, leaf)? {
            continue;
        }
        match listed.get(&leaf) {
            Some(rev) => {
                wanted.insert(Identity {
                    id: leaf,
                    revision: *rev,
                });
            }
            None => unresolved.push((bundle, leaf)),
        }
    }
    if !wanted.is_empty() {
        let leaves = Leaves {
            source: &mut *source,
            name: &name,
            languages,
        };
        leaves.fetch(writer, &wanted, fetched, report, &mut unresolved, emit)?;
    }
    let mut all_mode = reevaluate_all;

    for _round in 0..MAX_BUNDLE_DEPTH {
        // Re-evaluating everything skips what this sync already decided while fetching.
        let all = format!(
            "u.source = ?1 AND u.update_type IN ('Software', 'Driver') AND (u.selected_by = 'pending' OR u.changed_version < {})",
            writer.version()
        );
        let cond = if all_mode {
            all.as_str()
        } else {
            "u.selected_by = 'pending' AND ?1 = ?1"
        };
        let mut candidates = load_candidates(writer, cond, &name, chain.needs_details)?;
        for c in &mut candidates {
            c.superseded = chain.superseded.contains(&c.id);
        }
        if candidates.is_empty() {
            break;
        }
        emit(SyncEvent::PhaseStarted {
            source: name.clone(),
            phase: Phase::Selecting,
            total: candidates.len() as u64,
        });
        let index: HashMap<UpdateId, usize> = candidates
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id, i))
            .collect();

        // 1. The filter chain decides updates that name categories.
        let mut decisions: Vec<Option<(String, Verdict, Option<String>)>> =
            vec![None; candidates.len()];
        let decided: Vec<usize> = (0..candidates.len())
            .filter(|i| {
                !candidates[*i].categories.is_empty() || chain.is_pinned(&candidates[*i].id)
            })
            .collect();
        for chunk in decided.chunks(BATCH) {
            let views: Vec<UpdateView> = chunk.iter().map(|i| candidates[*i].clone()).collect();
            let verdicts = chain.evaluate(&tree, &views);
            log_stage_messages(chain, &name, &mut warnings, emit);
            for (k, (stage, d)) in verdicts?.into_iter().enumerate() {
                decisions[chunk[k]] = Some((stage, d.verdict, d.reason));
            }
        }
        let mut kept: Vec<Option<KeptBy>> = decisions
            .iter()
            .map(|d| {
                matches!(d, Some((_, Verdict::Include | Verdict::Pin, _))).then_some(KeptBy::Filter)
            })
            .collect();

        // 2. Bundles bring their leaves, transitively.
        let parents = bundle_parents(writer, cond, &name)?;
        let mut outside: HashMap<UpdateId, bool> = HashMap::new();
        loop {
            let mut changed = false;
            for (i, c) in candidates.iter().enumerate() {
                if kept[i].is_some() {
                    continue;
                }
                let Some(ps) = parents.get(&c.id) else {
                    continue;
                };
                for p in ps {
                    let parent_kept = match index.get(p) {
                        Some(j) => kept[*j].is_some(),
                        None => match outside.get(p) {
                            Some(k) => *k,
                            None => {
                                let k = stored_and_selected(writer, *p)?;
                                outside.insert(*p, k);
                                k
                            }
                        },
                    };
                    if parent_kept {
                        kept[i] = Some(KeptBy::Bundle);
                        changed = true;
                        break;
                    }
                }
            }
            if !changed {
                break;
            }
        }

        // Read before applying: applying moves the candidates out of `pending`.
        let children = bundle_children(writer, cond, &name)?;

        // 3. Apply.
        for (i, c) in candidates.iter().enumerate() {
            let id = c.id;
            let info = fetched.get(&id);
            match kept[i] {
                Some(by) => {
                    let (stage, reason) = match (by, &decisions[i]) {
                        (KeptBy::Filter, Some((stage, _, reason))) => {
                            (stage.clone(), reason.clone())
                        }
                        _ => (
                            "bundle".to_owned(),
                            Some("bundled in a selected update".to_owned()),
                        ),
                    };
                    writer.set_selected_by(
                        id,
                        if by == KeptBy::Filter {
                            "filter"
                        } else {
                            "bundle"
                        },
                    )?;
                    writer.set_item(
                        id,
                        c.revision,
                        ItemVerdict::Stored,
                        &stage,
                        reason.as_deref(),
                    )?;
                    if matches!(decisions[i], Some((_, Verdict::Pin, _))) {
                        writer.pin(id)?;
                    }
                    if let Some(info) = info {
                        let published = !is_expired(writer, id)?;
                        count_change(
                            report,
                            info.previous.as_ref(),
                            info.identity.revision,
                            published,
                        );
                        if log_each
                            && info
                                .previous
                                .as_ref()
                                .is_none_or(|p| p.revision != info.identity.revision)
                        {
                            let kb = first_kb(writer, id)?;
                            emit(SyncEvent::UpdateStored {
                                source: name.clone(),
                                id: id.to_string(),
                                title: c.title.clone().unwrap_or_default(),
                                kb,
                            });
                        }
                    }
                }
                None => {
                    let (stage, reason) = match &decisions[i] {
                        Some((stage, _, reason)) => (stage.clone(), reason.clone()),
                        None if parents.contains_key(&id) => (
                            "bundle".to_owned(),
                            Some("no selected bundle carries it".to_owned()),
                        ),
                        None => (
                            "built-in selection".to_owned(),
                            Some("names no product or classification".to_owned()),
                        ),
                    };
                    writer.delete_update(id)?;
                    writer.set_item(
                        id,
                        c.revision,
                        ItemVerdict::Excluded,
                        &stage,
                        reason.as_deref(),
                    )?;
                    let was_stored = match info {
                        Some(info) => info.previous.is_some(),
                        None => true,
                    };
                    if was_stored {
                        report.removed += 1;
                    } else {
                        report.excluded += 1;
                    }
                }
            }
        }

        // 4. Leaves of kept bundles that the store does not have yet.
        let mut wanted: HashSet<Identity> = HashSet::new();
        for (bundle, leaf) in children {
            let Some(&bi) = index.get(&bundle) else {
                continue;
            };
            if kept[bi].is_none() || index.contains_key(&leaf) || exists(writer, leaf)? {
                continue;
            }
            match listed.get(&leaf) {
                Some(rev) if !fetched.contains_key(&leaf) => {
                    wanted.insert(Identity {
                        id: leaf,
                        revision: *rev,
                    });
                }
                Some(_) => {}
                None => unresolved.push((bundle, leaf)),
            }
        }
        if wanted.is_empty() {
            break;
        }
        let leaves = Leaves {
            source: &mut *source,
            name: &name,
            languages,
        };
        leaves.fetch(writer, &wanted, fetched, report, &mut unresolved, emit)?;
        all_mode = false;
    }

    if let Some((bundle, leaf)) = unresolved.first() {
        report.unresolved_bundle_leaves = unresolved.len() as u64;
        warnings.push(format!(
            "{} bundled update(s) named by selected bundles are not in the catalog (first: bundle {bundle} names {leaf}); \
             the catalog is incomplete",
            unresolved.len()
        ));
    }
    Ok(warnings)
}

/// Fetches bundle leaves the store lacks; the ones the source does not deliver are unresolved.
struct Leaves<'a> {
    source: &'a mut dyn CatalogSource,
    name: &'a str,
    languages: &'a LanguageSelection,
}

impl Leaves<'_> {
    fn fetch(
        self,
        writer: &mut SyncWriter<'_>,
        wanted: &HashSet<Identity>,
        fetched: &mut IdMap<FetchedInfo>,
        report: &mut SourceReport,
        unresolved: &mut Vec<(UpdateId, UpdateId)>,
        emit: &mut dyn FnMut(SyncEvent),
    ) -> Result<()> {
        let request = Request::Set(wanted);
        let (got, _) = fetch_into(
            writer,
            self.source,
            &request,
            self.name,
            self.languages,
            fetched,
            report,
            None,
            emit,
        )?;
        unresolved.extend(
            wanted
                .iter()
                .filter(|i| !got.contains(i))
                .map(|i| (i.id, i.id)),
        );
        Ok(())
    }
}

fn load_candidates(
    writer: &SyncWriter<'_>,
    cond: &str,
    source: &str,
    details: bool,
) -> Result<Vec<UpdateView>> {
    let mut cats: HashMap<UpdateId, Vec<UpdateId>> = HashMap::new();
    let sql = format!(
        "SELECT u.id, uc.category_id FROM update_categories uc JOIN updates u ON u.uid = uc.uid WHERE {cond}"
    );
    for (u, c) in pairs(writer, &sql, source)? {
        cats.entry(u).or_default().push(c);
    }
    // What rule sets may read besides: one grouped query per child table.
    let mut lists: [HashMap<UpdateId, Vec<String>>; 4] = Default::default();
    let mut sizes: HashMap<UpdateId, u64> = HashMap::new();
    if details {
        for (k, (table, col)) in [
            ("kb_articles", "kb"),
            ("cves", "cve"),
            ("bulletins", "bulletin"),
            ("localized", "language"),
        ]
        .into_iter()
        .enumerate()
        {
            let sql = format!(
                "SELECT u.id, t.{col} FROM {table} t JOIN updates u ON u.uid = t.uid WHERE {cond}"
            );
            for (id, v) in keyed::<String>(writer, &sql, source)? {
                lists[k].entry(id).or_default().push(v);
            }
        }
        let sql = format!(
            "SELECT u.id, SUM(f.size) FROM files f JOIN updates u ON u.uid = f.uid WHERE {cond} GROUP BY u.id"
        );
        for (id, n) in keyed::<Option<i64>>(writer, &sql, source)? {
            if let Some(n) = n {
                sizes.insert(id, n as u64);
            }
        }
    }
    let sql = format!(
        "SELECT u.id, u.revision, u.update_type, u.title, u.msrc_severity, u.is_bundle,
                u.creation_date, u.publication_state, u.max_download_size
         FROM updates u WHERE {cond}"
    );
    let mut stmt = writer.tx.prepare(&sql).map_err(|e| writer.err(e))?;
    let mut rows = stmt.query([source]).map_err(|e| writer.err(e))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(|e| writer.err(e))? {
        let get = |i| r.get_ref(i).map_err(|e| writer.err(e));
        let id = parse_id(writer, get(0)?.as_str().unwrap_or_default())?;
        let t: String = r.get(2).map_err(|e| writer.err(e))?;
        let state: String = r.get(7).map_err(|e| writer.err(e))?;
        let max: Option<i64> = r.get(8).map_err(|e| writer.err(e))?;
        let mut take = |k: usize| lists[k].remove(&id).unwrap_or_default();
        out.push(UpdateView {
            id,
            revision: r.get(1).map_err(|e| writer.err(e))?,
            update_type: UpdateType::parse(&t).unwrap_or(UpdateType::Software),
            title: r.get(3).map_err(|e| writer.err(e))?,
            categories: cats.remove(&id).unwrap_or_default(),
            msrc_severity: r.get(4).map_err(|e| writer.err(e))?,
            is_bundle: r.get(5).map_err(|e| writer.err(e))?,
            source: source.to_owned(),
            kb_articles: take(0),
            cves: take(1),
            bulletins: take(2),
            languages: take(3),
            creation_date: r.get(6).map_err(|e| writer.err(e))?,
            published: state.eq_ignore_ascii_case("Published"),
            superseded: false,
            size: max.map(|m| m as u64).or_else(|| sizes.get(&id).copied()),
        });
    }
    Ok(out)
}

fn parse_id(writer: &SyncWriter<'_>, s: &str) -> Result<UpdateId> {
    UpdateId::parse(s).map_err(|m| writer.err(m))
}

/// leaf → bundles that carry it, for the candidates.
fn bundle_parents(
    writer: &SyncWriter<'_>,
    cond: &str,
    source: &str,
) -> Result<HashMap<UpdateId, Vec<UpdateId>>> {
    let sql = format!(
        "SELECT r.other_id, b.id FROM updates u JOIN relations r ON r.other_id = u.id AND r.kind = 'bundled'
         JOIN updates b ON b.uid = r.uid WHERE {cond}"
    );
    pairs(writer, &sql, source).map(|v| {
        let mut m: HashMap<UpdateId, Vec<UpdateId>> = HashMap::new();
        for (leaf, bundle) in v {
            m.entry(leaf).or_default().push(bundle);
        }
        m
    })
}

/// (bundle, leaf) for the candidates that are bundles.
fn bundle_children(
    writer: &SyncWriter<'_>,
    cond: &str,
    source: &str,
) -> Result<Vec<(UpdateId, UpdateId)>> {
    let sql = format!(
        "SELECT u.id, r.other_id FROM updates u JOIN relations r ON r.uid = u.uid AND r.kind = 'bundled' WHERE {cond}"
    );
    pairs(writer, &sql, source)
}

/// `(update id, value)` rows of `sql` (first column an update id, bound to `source`).
fn keyed<T: rusqlite::types::FromSql>(
    writer: &SyncWriter<'_>,
    sql: &str,
    source: &str,
) -> Result<Vec<(UpdateId, T)>> {
    let mut stmt = writer.tx.prepare(sql).map_err(|e| writer.err(e))?;
    let mut rows = stmt.query([source]).map_err(|e| writer.err(e))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(|e| writer.err(e))? {
        let id: String = r.get(0).map_err(|e| writer.err(e))?;
        out.push((parse_id(writer, &id)?, r.get(1).map_err(|e| writer.err(e))?));
    }
    Ok(out)
}

/// `(update id, update id)` rows of `sql`.
fn pairs(writer: &SyncWriter<'_>, sql: &str, source: &str) -> Result<Vec<(UpdateId, UpdateId)>> {
    keyed::<String>(writer, sql, source)?
        .into_iter()
        .map(|(a, b)| Ok((a, parse_id(writer, &b)?)))
        .collect()
}

fn stored_and_selected(writer: &SyncWriter<'_>, id: UpdateId) -> Result<bool> {
    let by: Option<String> = writer
        .tx
        .prepare_cached("SELECT selected_by FROM updates WHERE id = ?1")
        .and_then(|mut s| s.query_row([id.to_string()], |r| r.get(0)).optional())
        .map_err(|e| writer.err(e))?;
    Ok(matches!(by.as_deref(), Some("filter") | Some("bundle")))
}

fn exists(writer: &SyncWriter<'_>, id: UpdateId) -> Result<bool> {
    writer
        .tx
        .prepare_cached("SELECT 1 FROM updates WHERE id = ?1")
        .and_then(|mut s| s.exists([id.to_string()]))
        .map_err(|e| writer.err(e))
}

fn is_expired(writer: &SyncWriter<'_>, id: UpdateId) -> Result<bool> {
    writer
        .tx
        .prepare_cached("SELECT 1 FROM updates WHERE id = ?1 AND state = 'expired'")
        .and_then(|mut s| s.exists([id.to_string()]))
        .map_err(|e| writer.err(e))
}

fn first_kb(writer: &SyncWriter<'_>, id: UpdateId) -> Result<Option<String>> {
    writer
        .tx
        .prepare_cached("SELECT k.kb FROM kb_articles k JOIN updates u ON u.uid = k.uid WHERE u.id = ?1 LIMIT 1")
        .and_then(|mut s| s.query_row([id.to_string()], |r| r.get(0)).optional())
        .map_err(|e| writer.err(e))
}
