//! The sync driver: fingerprint → list → diff → fetch → select → expire → commit, per source.

mod decide;
mod import;
mod known;
mod plan;
mod report;
mod select;
mod supersede;

use std::collections::HashSet;
use std::time::Instant;

use rusqlite::TransactionBehavior;

pub(crate) use import::import_update;
pub use import::{ImportReport, ImportTarget, PinnedUpdate};
pub use plan::PlannedChange;
pub use report::{PhaseTimes, PluginRecord, ReadCounts, SourceOutcome, SourceReport, SyncReport};
pub(crate) use supersede::apply as apply_supersedence;

use crate::error::{Error, Result};
use crate::events::{Phase, SyncEvent};
use crate::filter::{FilterChain, LanguageSelection};
use crate::model::{IdMap, IdSet, Identity};
use crate::source::{CatalogSource, Fetched, Listing};
use crate::store::write::{Previous, compress_xml};
use crate::store::{ItemVerdict, SourceState, Store, SyncWriter};
use known::{ITEM_LOOKUP_LIMIT, Loading, active_count, listed_items, load_all};

/// How to run a sync.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncOptions {
    /// Re-read every listed update and re-evaluate the filter, whatever the fingerprints say.
    pub full: bool,
    /// Apply a change even if it removes more than `[filter] mass_removal_percent` of a
    /// source's active updates, or a rule set leaves nothing of a source.
    pub allow_mass_removal: bool,
}

/// Above this many fetched updates, the log gets progress lines instead of one line each.
const PER_UPDATE_LOG_LIMIT: usize = 10_000;

/// What the sync knows about one update it fetched in this run.
#[derive(Debug, Clone)]
pub(crate) struct FetchedInfo {
    /// The newest revision fetched in this run (the one stored).
    pub identity: Identity,
    /// The row as it was before this sync.
    pub previous: Option<Previous>,
    /// Its verdict is final and counted after the fetch (a category or detectoid, an update
    /// decided while streaming, a leaf its bundle confirmed); otherwise the selection stage
    /// decides and counts it.
    pub decided: bool,
    pub published: bool,
}

/// Everything one source's sync needs besides the source itself.
pub(crate) struct SourceContext<'a> {
    pub kind: &'a str,
    pub chain: &'a mut FilterChain,
    pub languages: &'a LanguageSelection,
    pub options: SyncOptions,
    /// The catalog version this sync's changes get.
    pub version: u64,
    pub emit: &'a mut dyn FnMut(SyncEvent),
    /// `[filter] mass_removal_percent`.
    pub mass_removal_percent: u32,
    /// `[filter] products` and `classifications` (for `CatalogSource::selection`).
    pub products: &'a crate::filter::Pick,
    pub classifications: &'a crate::filter::Pick,
    /// A dry run (`patchsync plan`): the changes are listed here and rolled back.
    pub plan: Option<&'a mut Vec<PlannedChange>>,
    /// Set by the host to stop the sync (see `Engine::cancel_handle`).
    pub cancel: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Syncs one source inside one transaction. On error nothing of this source is kept.
pub(crate) fn sync_source(
    store: &mut Store,
    source: &mut dyn CatalogSource,
    cx: SourceContext<'_>,
) -> Result<SourceReport> {
    let started = Instant::now();
    let name = source.name().to_owned();
    let mut report = SourceReport {
        source: name.clone(),
        kind: cx.kind.to_owned(),
        ..Default::default()
    };
    (cx.emit)(SyncEvent::SourceStarted {
        source: name.clone(),
    });

    let previous_state = store.source_state(&name)?;
    source.resume(previous_state.cursor.as_deref());
    source.languages(cx.languages);
    if source.asks_for_selection() {
        let known = crate::store::load_category_tree(&store.conn).map_err(|e| store.err(e))?;
        source.selection(cx.products, cx.classifications, &known);
    }
    let fingerprint = source.fingerprint()?;
    let selection_hash = cx.chain.config_hash();
    let language_hash = cx.languages.config_hash();
    let selection_changed =
        previous_state.selection_hash.as_deref() != Some(selection_hash.as_str());
    let languages_changed = previous_state.language_hash.as_deref() != Some(language_hash.as_str());
    let mut new_state = SourceState {
        fingerprint: fingerprint.clone(),
        selection_hash: Some(selection_hash),
        language_hash: Some(language_hash),
        cursor: None,
    };

    if !cx.options.full
        && fingerprint.is_some()
        && previous_state.fingerprint == fingerprint
        && !selection_changed
        && !languages_changed
        && !store.has_pending(&name)?
    {
        report.outcome = SourceOutcome::Unchanged;
        report.unchanged = store
            .conn
            .query_row(
                "SELECT COUNT(*) FROM catalog_items WHERE source = ?1 AND verdict = 'stored'",
                [&name],
                |r| r.get::<_, i64>(0),
            )
            .map_err(|e| store.err(e))? as u64;
        (cx.emit)(SyncEvent::SourceUnchanged { source: name });
        report.duration_ms = started.elapsed().as_millis() as u64;
        return Ok(report);
    }

    // List and diff. A source that lists while it fetches (a package without an index) is
    // read once in a delta sync: the diff is decided record by record against the store.
    let has_items = store
        .conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM catalog_items WHERE source = ?1)",
            [&name],
            |r| r.get::<_, bool>(0),
        )
        .map_err(|e| store.err(e))?;
    let single_pass = source.lists_while_fetching() && has_items && !cx.options.full;
    if !single_pass {
        (cx.emit)(SyncEvent::PhaseStarted {
            source: name.clone(),
            phase: Phase::Listing,
            total: 0,
        });
    }
    let listing = if single_pass {
        None
    } else {
        Some(source.list()?)
    };
    // A short change list (an upstream's delta) is looked up id by id; anything else
    // loads the source's whole catalog once. In a single pass the source starts reading
    // while another thread loads the items; the first record it asks about waits for them.
    let loading = Loading::default();
    let mut active_before = 0;
    let loader = match &listing {
        None => loading.start(store, &name)?,
        Some(l) if !l.complete && l.entries.len() <= ITEM_LOOKUP_LIMIT => {
            active_before = active_count(&store.conn, &name).map_err(|e| store.err(e))?;
            loading.set(listed_items(store, &name, &l.entries)?, None);
            None
        }
        Some(_) => {
            let (items, active) = load_all(store, &name)?;
            loading.set(items, Some(active));
            None
        }
    };
    let refetch = |old: u32, rev: u32, verdict: ItemVerdict| {
        cx.options.full
            || old != rev
            || (verdict == ItemVerdict::Excluded && selection_changed)
            || (verdict == ItemVerdict::Stored && languages_changed)
    };
    let mut listed: IdMap<u32> = IdMap::default();
    let mut wanted: HashSet<Identity> = HashSet::new();
    let mut complete = true;
    let mut feed = (Vec::new(), Vec::new());
    if let Some(listing) = listing {
        listed.reserve(listing.entries.len());
        for e in &listing.entries {
            let r = listed.entry(e.id).or_insert(e.revision);
            *r = (*r).max(e.revision);
        }
        let items = loading.items(store.path())?;
        let mut refetch_ids = IdSet::default();
        for (id, rev) in &listed {
            match items.get(id) {
                Some((old, verdict)) if !refetch(*old, *rev, *verdict) => {
                    if *verdict == ItemVerdict::Stored {
                        report.unchanged += 1;
                    }
                }
                _ => {
                    refetch_ids.insert(*id);
                }
            }
        }
        // Older revisions listed beside the newest are read too, and recorded as seen.
        for e in &listing.entries {
            if refetch_ids.contains(&e.id) {
                wanted.insert(*e);
            }
        }
        complete = listing.complete;
        feed = (listing.expired, listing.removed);
    }
    let path = store.path().to_owned();

    report.phases.listing_ms = started.elapsed().as_millis() as u64;
    let mut clock = Instant::now();
    let tx = store
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| {
            if e.to_string().contains("locked") || e.to_string().contains("busy") {
                Error::Busy("another process holds the store's write lock".into())
            } else {
                crate::store::store_err(&path, e)
            }
        })?;
    let mut writer = SyncWriter::new(tx, &path, &name, cx.version)?;
    writer.cancel = Some(cx.cancel.clone());
    writer.defer_indexes()?;

    // Fetch.
    let mut fetched: IdMap<FetchedInfo> =
        IdMap::with_capacity_and_hasher(wanted.len(), Default::default());
    let mut log_budget = PER_UPDATE_LOG_LIMIT;
    let tree = crate::store::load_category_tree(&writer.tx).map_err(|e| writer.err(e))?;
    let mut decider = decide::StreamDecider::new(cx.chain, &name, tree, languages_changed);
    let want_new = |i: Identity| match loading.items(&path).map(|items| items.get(&i.id)) {
        // Without the items (their error is reported below) every record is read.
        Err(_) | Ok(None) => true,
        // Older revisions were recorded when they were first seen.
        Ok(Some((old, verdict))) => {
            i.revision > *old || (i.revision == *old && refetch(*old, i.revision, *verdict))
        }
    };
    let request = if single_pass {
        Request::Scan(&want_new)
    } else {
        Request::Set(&wanted)
    };
    let (delivered, scanned) = fetch_into(
        &mut writer,
        source,
        &request,
        &name,
        cx.languages,
        &mut fetched,
        &mut report,
        Some((&mut decider, &mut log_budget)),
        cx.emit,
    )?;
    writer.restore_indexes()?;
    if let Some(t) = loader {
        let _ = t.join();
    }
    let items = loading.items(&path)?;
    let active_before = loading
        .active(&path)?
        .map_or(active_before, |a| a.software_and_drivers);
    if let Some(listing) = scanned {
        listed.reserve(listing.entries.len());
        for e in &listing.entries {
            let r = listed.entry(e.id).or_insert(e.revision);
            *r = (*r).max(e.revision);
        }
        complete = listing.complete;
        feed = (listing.expired.clone(), listing.removed.clone());
        report.unchanged += listed
            .iter()
            .filter(|(id, rev)| {
                !fetched.contains_key(id)
                    && items
                        .get(id)
                        .is_some_and(|(old, v)| old == *rev && *v == ItemVerdict::Stored)
            })
            .count() as u64;
    }
    let missing: Vec<&Identity> = wanted.iter().filter(|i| !delivered.contains(i)).collect();
    if let Some(first) = missing.first() {
        return Err(Error::source(
            &name,
            format!("update {} revision {}", first.id, first.revision),
            format!(
                "the catalog lists {} update(s) whose metadata it does not contain (this is the first); \
                 the catalog is incomplete: export or download it again",
                missing.len()
            ),
        ));
    }
    let settled = decider.settle();

    report.phases.fetching_ms = clock.elapsed().as_millis() as u64;
    clock = Instant::now();
    for leaf in settled.confirmed {
        if let Some(info) = fetched.get_mut(&leaf) {
            writer.set_item(
                leaf,
                info.identity.revision,
                ItemVerdict::Stored,
                "bundle",
                Some("bundled in a selected update"),
            )?;
            info.decided = true;
        }
    }
    for leaf in settled.unconfirmed {
        writer.set_selected_by(leaf, "pending")?;
    }
    for info in fetched.values().filter(|f| f.decided) {
        count_change(
            &mut report,
            info.previous.as_ref(),
            info.identity.revision,
            info.published,
        );
    }

    // Select: filters, bundles, missing leaves.
    let warnings = select::run(
        &mut writer,
        source,
        &listed,
        &mut fetched,
        &mut report,
        cx.chain,
        cx.languages,
        selection_changed,
        settled.carried,
        log_budget > 0 && wanted.len() <= PER_UPDATE_LOG_LIMIT,
        cx.emit,
    )?;
    for w in warnings {
        (cx.emit)(SyncEvent::Warning {
            source: Some(name.clone()),
            message: w.clone(),
        });
        report.warnings.push(w);
    }

    report.phases.selecting_ms = clock.elapsed().as_millis() as u64;
    clock = Instant::now();

    // Expire what a full listing no longer has.
    (cx.emit)(SyncEvent::PhaseStarted {
        source: name.clone(),
        phase: Phase::Applying,
        total: 0,
    });
    if complete {
        let gone = loading.not_listed(&path, &listed)?;
        for id in gone.stored {
            if writer.expire(id)? {
                report.expired += 1;
            }
        }
        for id in gone.items {
            writer.delete_item(id)?;
        }
    }
    // What a change feed says expired or went away.
    let (feed_expired, feed_removed) = feed;
    for id in feed_expired {
        if writer.source_of(id)?.as_deref() == Some(name.as_str()) && writer.expire(id)? {
            report.expired += 1;
        }
    }
    for id in feed_removed {
        if cx.chain.pinned.contains(&id) {
            continue;
        }
        if writer.source_of(id)?.as_deref() == Some(name.as_str()) {
            writer.delete_update(id)?;
            report.removed += 1;
        }
        writer.delete_item(id)?;
    }
    if !source.removals_already_guarded()
        && let Some(problem) = mass_removal(
            &writer,
            &name,
            &report,
            active_before,
            cx.mass_removal_percent,
        )?
    {
        if cx.plan.is_some() {
            report.warnings.push(problem);
        } else if !cx.options.allow_mass_removal {
            return Err(Error::Refused(problem));
        }
    }
    writer.check_cancel()?;
    let changed = report.new + report.revised + report.expired + report.removed > 0;
    new_state.cursor = source.cursor();
    if let Some(plan) = cx.plan {
        // A dry run: list what changed against the committed store, then roll back.
        plan.extend(plan::changes(&writer, &path, &name)?);
        report.duration_ms = started.elapsed().as_millis() as u64;
        return Ok(report);
    }
    writer.commit(cx.kind, &new_state, changed)?;
    if changed {
        store.checkpoint_soon();
    }
    report.phases.applying_ms = clock.elapsed().as_millis() as u64;
    report.duration_ms = started.elapsed().as_millis() as u64;
    (cx.emit)(SyncEvent::SourceFinished {
        report: report.clone(),
    });
    Ok(report)
}

/// Fetches `wanted` into the store as pending rows, recording what each replaced.
#[allow(clippy::too_many_arguments)]
pub(crate) fn fetch_into(
    writer: &mut SyncWriter<'_>,
    source: &mut dyn CatalogSource,
    request: &Request<'_>,
    name: &str,
    languages: &LanguageSelection,
    fetched: &mut IdMap<FetchedInfo>,
    report: &mut SourceReport,
    mut decider: Option<(&mut decide::StreamDecider<'_>, &mut usize)>,
    emit: &mut dyn FnMut(SyncEvent),
) -> Result<(HashSet<Identity>, Option<Listing>)> {
    let mut delivered = HashSet::new();
    if let Request::Set(wanted) = request
        && wanted.is_empty()
    {
        return Ok((delivered, None));
    }
    // A scan does not know ahead how many records it will want: total 0 means "unknown".
    let total = match request {
        Request::Set(w) => w.len() as u64,
        Request::Scan(_) => 0,
    };
    emit(SyncEvent::PhaseStarted {
        source: name.to_owned(),
        phase: Phase::Fetching,
        total,
    });
    let mut done = 0u64;
    let mut last = Instant::now();
    // The source reads, parses and (here) compresses on a worker thread; this thread writes.
    // Items travel in batches (one wake-up per batch, not per update); room for a few
    // thousand lets the reader run ahead while the store is busy, and the store drain while
    // a source reads something it cannot hand out yet.
    let (items, received) = std::sync::mpsc::sync_channel::<Vec<Item>>(4096 / BATCH);
    let outcome = std::thread::scope(|scope| {
        // Named, so profilers and debuggers tell the reader from the store's thread.
        let reader = std::thread::Builder::new().name("patchsync-read".into());
        let worker = reader
            .spawn_scoped(scope, move || -> Result<Option<Listing>> {
                let mut compressor = zstd::bulk::Compressor::new(3)
                    .map_err(|e| Error::source(name, "zstd", e.to_string()))?;
                let mut batch: Vec<Item> = Vec::with_capacity(BATCH);
                let mut sink = |f: Fetched| {
                    let item = match f {
                        Fetched::Update { mut update, .. } => {
                            let raw =
                                compress_xml(&mut compressor, &update.raw_xml).map_err(|e| {
                                    Error::source(
                                        name,
                                        update.identity.id.to_string(),
                                        e.to_string(),
                                    )
                                })?;
                            update.raw_xml = String::new();
                            Item::Update(update, raw)
                        }
                        Fetched::Stored {
                            mut update,
                            raw_zstd,
                            ..
                        } => {
                            update.raw_xml = String::new();
                            Item::Update(update, raw_zstd)
                        }
                        Fetched::FileUrl { digest, url } => Item::Url(digest, url),
                        Fetched::Warning(w) => Item::Warning(w),
                        Fetched::Log { level, message } => Item::Log(level, message),
                    };
                    batch.push(item);
                    if batch.len() >= BATCH {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                        items.send(full).map_err(|_| Error::Cancelled)?;
                    }
                    Ok(())
                };
                let outcome = match request {
                    Request::Set(wanted) => source.fetch(wanted, &mut sink).map(|()| None),
                    Request::Scan(want) => source.list_and_fetch(*want, &mut sink),
                };
                if !batch.is_empty() {
                    items.send(batch).map_err(|_| Error::Cancelled)?;
                }
                outcome
            })
            .map_err(|e| {
                Error::source(
                    name,
                    "fetch",
                    format!("cannot start the reader thread: {e}"),
                )
            })?;
        // The updates of the batch being applied, so a stage that wants batches (a plugin)
        // decides them with one call rather than leaving them to the selection stage.
        let lookahead: std::cell::RefCell<Vec<crate::filter::UpdateView>> = Default::default();
        let batched = decider.as_ref().is_some_and(|(d, _)| d.batched());
        let mut apply = |item: Item| -> Result<()> {
            writer.check_cancel()?;
            match item {
                Item::Update(update, raw) => {
                    let id = update.identity.id;
                    if !request.wants(update.identity) || !delivered.insert(update.identity) {
                        return Ok(());
                    }
                    report.read.count(&update);
                    done += 1;
                    report.fetched += 1;
                    if done == total || last.elapsed().as_millis() >= 250 {
                        last = Instant::now();
                        emit(SyncEvent::Progress {
                            source: name.to_owned(),
                            phase: Phase::Fetching,
                            done,
                            total,
                        });
                    }
                    // Several revisions of one update: the newest is stored, every one is recorded.
                    if let Some(info) = fetched.get_mut(&id) {
                        if update.identity.revision <= info.identity.revision {
                            writer.record_revision(update.identity)?;
                            return Ok(());
                        }
                        writer.put_update(&update, &raw, true, languages, "pending")?;
                        info.identity = update.identity;
                        info.published = update.is_published();
                        info.decided = update.update_type.is_always_synced();
                        if let Some((d, _)) = decider.as_mut().filter(|_| info.decided) {
                            d.add_category(&update);
                        }
                    } else {
                        let previous = writer.previous(id)?;
                        if previous
                            .as_ref()
                            .is_some_and(|p| p.revision > update.identity.revision)
                        {
                            // Another source (or an earlier sync) stored a newer revision.
                            writer.record_revision(update.identity)?;
                            writer.set_item(
                                id,
                                update.identity.revision,
                                ItemVerdict::Stored,
                                "store",
                                Some("a newer revision is stored"),
                            )?;
                            return Ok(());
                        }
                        // The same revision already stored (a full sync) is not rewritten, unless
                        // the language selection changed; only its verdict is updated.
                        let rewrite = decider
                            .as_ref()
                            .is_none_or(|(d, _)| d.rewrite_same_revision);
                        let store_row = |writer: &mut SyncWriter<'_>,
                                         update: &crate::model::Update,
                                         raw: &[u8],
                                         previous: Option<&Previous>,
                                         selected_by: &str|
                         -> Result<()> {
                            let selected_by = if update.update_type.is_always_synced() {
                                "catalog"
                            } else {
                                selected_by
                            };
                            match previous {
                                Some(p) if p.revision == update.identity.revision && !rewrite => {
                                    writer.set_selected_by(update.identity.id, selected_by)
                                }
                                _ => writer.put_update(
                                    update,
                                    raw,
                                    previous.is_some(),
                                    languages,
                                    selected_by,
                                ),
                            }
                        };
                        let early = match decider.as_mut() {
                            _ if update.update_type.is_always_synced() => {
                                if let Some((d, _)) = decider.as_mut() {
                                    d.add_category(&update);
                                }
                                decide::Early::Keep("catalog".into(), None, false)
                            }
                            Some((d, _)) => d.decide(&update, &lookahead),
                            None => decide::Early::Pending,
                        };
                        let decided = match early {
                            decide::Early::Drop(stage, reason) => {
                                if previous.is_some() {
                                    writer.delete_update(id)?;
                                    report.removed += 1;
                                } else {
                                    report.excluded += 1;
                                }
                                writer.record_revision(update.identity)?;
                                writer.set_item(
                                    id,
                                    update.identity.revision,
                                    ItemVerdict::Excluded,
                                    &stage,
                                    reason.as_deref(),
                                )?;
                                return Ok(());
                            }
                            decide::Early::Keep(stage, reason, pin) => {
                                store_row(writer, &update, &raw, previous.as_ref(), "filter")?;
                                if pin {
                                    writer.pin(id)?;
                                }
                                writer.set_item(
                                    id,
                                    update.identity.revision,
                                    ItemVerdict::Stored,
                                    &stage,
                                    reason.as_deref(),
                                )?;
                                let budget = decider.as_mut().map(|(_, b)| &mut **b);
                                if let Some(b) = budget.filter(|b| **b > 0)
                                    && !update.update_type.is_always_synced()
                                    && previous
                                        .as_ref()
                                        .is_none_or(|p| p.revision != update.identity.revision)
                                {
                                    *b -= 1;
                                    emit(SyncEvent::UpdateStored {
                                        source: name.to_owned(),
                                        id: id.to_string(),
                                        title: update.title("en").unwrap_or_default().to_owned(),
                                        kb: update.kb_articles.first().cloned(),
                                    });
                                }
                                true
                            }
                            decide::Early::Tentative => {
                                store_row(writer, &update, &raw, previous.as_ref(), "bundle")?;
                                false
                            }
                            decide::Early::Pending => {
                                store_row(writer, &update, &raw, previous.as_ref(), "pending")?;
                                false
                            }
                        };
                        fetched.insert(
                            id,
                            FetchedInfo {
                                identity: update.identity,
                                previous,
                                decided,
                                published: update.is_published(),
                            },
                        );
                    }
                }
                Item::Url(digest, url) => writer.put_file_url(&digest, &url)?,
                Item::Log(level, message) => emit(SyncEvent::StageLog {
                    source: name.to_owned(),
                    stage: format!("source {name}"),
                    level: level.to_owned(),
                    message,
                }),
                Item::Warning(message) => {
                    emit(SyncEvent::Warning {
                        source: Some(name.to_owned()),
                        message: message.clone(),
                    });
                    report.warnings.push(message);
                }
            }
            Ok(())
        };
        let mut failed = None;
        'receive: for batch in received.iter() {
            if batched {
                *lookahead.borrow_mut() = batch
                    .iter()
                    .filter_map(|i| match i {
                        Item::Update(u, _) if !u.update_type.is_always_synced() => {
                            Some(crate::filter::UpdateView::of(u, name))
                        }
                        _ => None,
                    })
                    .collect();
            }
            for item in batch {
                if let Err(e) = apply(item) {
                    failed = Some(e);
                    break 'receive;
                }
            }
        }
        drop(received);
        let fetched_result = worker.join().unwrap_or_else(|_| {
            Err(Error::source(
                name,
                "fetch",
                "the source's reader thread panicked",
            ))
        });
        match failed {
            Some(e) => Err(e),
            None => fetched_result,
        }
    });
    let scanned = outcome?;
    if total == 0 {
        // A scan: now the total is known.
        emit(SyncEvent::Progress {
            source: name.to_owned(),
            phase: Phase::Fetching,
            done,
            total: done,
        });
    } else if done < total {
        emit(SyncEvent::Progress {
            source: name.to_owned(),
            phase: Phase::Fetching,
            done,
            total,
        });
    }
    Ok((delivered, scanned))
}

/// What the engine asks a source for.
pub(crate) enum Request<'a> {
    /// These identities (after `list`).
    Set(&'a HashSet<Identity>),
    /// Whatever this accepts, listing everything on the way (`list_and_fetch`).
    Scan(&'a (dyn Fn(Identity) -> bool + Sync)),
}

impl Request<'_> {
    fn wants(&self, i: Identity) -> bool {
        match self {
            Request::Set(w) => w.contains(&i),
            Request::Scan(f) => f(i),
        }
    }
}

/// What the reader thread hands the writer.
/// Items per hand-over from the reader thread to the store's.
const BATCH: usize = 64;

enum Item {
    Update(Box<crate::model::Update>, Vec<u8>),
    Url(String, String),
    Warning(String),
    Log(&'static str, String),
}

/// Counts a kept entry as new, revised, expired or unchanged.
pub(crate) fn count_change(
    report: &mut SourceReport,
    previous: Option<&Previous>,
    revision: u32,
    published: bool,
) {
    match previous {
        None => report.new += 1,
        Some(p) if p.revision != revision => {
            if !published && p.active {
                report.expired += 1
            } else {
                report.revised += 1
            }
        }
        Some(p) => {
            if !published && p.active {
                report.expired += 1
            } else {
                report.unchanged += 1
            }
        }
    }
}

/// Fewer removals than this are never a mass removal, whatever the share.
const MASS_REMOVAL_FLOOR: u64 = 10;

/// What is wrong with applying this source's changes, if the guard objects: they remove
/// more than `percent` % of its active updates, or a rule set leaves none of them.
fn mass_removal(
    writer: &SyncWriter<'_>,
    name: &str,
    report: &SourceReport,
    active_before: u64,
    percent: u32,
) -> Result<Option<String>> {
    if report.removed >= MASS_REMOVAL_FLOOR
        && report.removed * 100 > u64::from(percent) * active_before
    {
        return Ok(Some(format!(
            "source '{name}': this change would remove {} of its {active_before} active updates ({:.0} %), \
             more than [filter] mass_removal_percent = {percent}; check the rules and filter with \
             `patchsync plan`, then run the command again with --allow-mass-removal if it is meant",
            report.removed,
            100.0 * report.removed as f64 / active_before.max(1) as f64
        )));
    }
    let any_active: bool = writer
        .tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM updates WHERE source = ?1 AND state = 'active'
               AND update_type IN ('Software', 'Driver'))",
            [name],
            |r| r.get(0),
        )
        .map_err(|e| writer.err(e))?;
    if any_active {
        return Ok(None);
    }
    let (by_rules, rule): (i64, Option<String>) = writer
        .tx
        .query_row(
            "SELECT COUNT(*), MIN(decided_by || ': ' || COALESCE(reason, '')) FROM catalog_items
             WHERE source = ?1 AND verdict = 'excluded' AND decided_by LIKE 'rules %'",
            [name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(|e| writer.err(e))?;
    Ok((by_rules > 0).then(|| {
        format!(
            "source '{name}': the rule sets exclude every update it has ({by_rules} excluded by rules, \
             e.g. {}), so the store would keep none; check the rule order and defaults with \
             `patchsync plan` / `patchsync explain ID`, or run the command again with \
             --allow-mass-removal if that is meant",
            rule.unwrap_or_default()
        )
    }))
}
