//! The embeddable engine: open a site from its config, sync it, query its store.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::events::SyncEvent;
use crate::filter::{FilterChain, ProductClassificationFilter};
use crate::model::UpdateId;
use crate::package::{
    Counts, ExportOptions, ImportCursor, Manifest, OpenedPackage, PackageKind, PackageSource,
};
use crate::source::CatalogSource;
use crate::store::{CategoryRow, HistoryRow, ShowUpdate, Store, UpdateQuery, UpdateRow};
use crate::sync::PluginRecord;
use crate::sync::{
    PlannedChange, SourceContext, SourceOutcome, SourceReport, SyncOptions, SyncReport, sync_source,
};
use crate::synclog::SyncLog;

/// A site: its config, its store and its sources.
pub struct Engine {
    config: Config,
    store: Store,
    extra_sources: Vec<(String, Box<dyn CatalogSource>)>,
    extra_filters: Vec<Box<dyn crate::filter::UpdateFilter>>,
    cancel: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// What `patchsync status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub site: String,
    /// `idle` (never synced), `running`, `succeeded`, `failed` or `interrupted`.
    pub state: String,
    pub last_sync_started: Option<String>,
    pub last_sync_finished: Option<String>,
    pub last_success: Option<String>,
    pub last_error: Option<String>,
    /// `Error::code` of the last error: 1 config, 2 source, 3 store, 4 busy, 5 file,
    /// 6 not found, 7 package, 8 refused, 9 cancelled.
    pub last_error_code: Option<u32>,
    pub catalog_version: u64,
    pub updates_active: u64,
    pub updates_expired: u64,
    pub categories: u64,
    pub detectoids: u64,
    pub content_digest: String,
    /// For a site fed by `patchsync import`: whose catalog, up to which version (the
    /// `--since` of the next export there).
    pub imported: Option<ImportedFrom>,
    pub store: PathBuf,
    pub log: PathBuf,
}

/// What `patchsync plan` found: the report a sync would give, and each change.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub report: SyncReport,
    pub changes: Vec<PlannedChange>,
}

/// Whose catalog a disconnected site holds.
#[derive(Debug, Clone, Serialize)]
pub struct ImportedFrom {
    pub site_name: String,
    pub site_id: String,
    /// The exporting site's catalog version this site has imported up to.
    pub version: u64,
}

/// What `patchsync import` did.
#[derive(Debug, Clone, Serialize)]
pub struct PackageImport {
    pub file: PathBuf,
    /// The exporting site.
    pub site_name: String,
    pub site_id: String,
    pub kind: PackageKind,
    pub from_version: u64,
    pub to_version: u64,
    pub counts: Counts,
    /// `ed25519:...` of the key that signed it (`None`: unsigned, allowed by the config).
    pub signed_by: Option<String>,
    /// The site already had everything the package holds; nothing was changed.
    pub already_imported: bool,
    /// The sync the import ran (`None` when already imported).
    pub report: Option<SyncReport>,
}

/// Whether a package continues what the site imported before (`Ok(false)`: this site
/// already has all it holds); an error says what is wrong and which package would fit.
fn continues_lineage(path: &Path, m: &Manifest, cur: Option<&ImportCursor>) -> Result<bool> {
    let theirs = format!("site '{}' ({})", m.site_name, m.site_id);
    if let Some(c) = cur
        && c.site_id != m.site_id
    {
        return Err(Error::package(
            path,
            format!(
                "it comes from {theirs}, but this site imports from site '{}' ({}): import that \
                 site's packages, or start a new store to follow another site",
                c.site_name, c.site_id
            ),
        ));
    }
    match (m.kind, cur) {
        (PackageKind::Incremental, None) => Err(Error::package(
            path,
            format!(
                "it holds the changes of {theirs} after catalog version {}, but this site has \
                 imported nothing yet: import a full package first (`patchsync export --out FILE` \
                 on that site, without --since)",
                m.from_version
            ),
        )),
        (_, Some(c)) if m.to_version == c.version => Ok(false),
        (PackageKind::Incremental, Some(c)) if m.to_version < c.version => Ok(false),
        (PackageKind::Full, Some(c)) if m.to_version < c.version => Err(Error::package(
            path,
            format!(
                "it is catalog version {} of {theirs}, older than the version {} this site \
                 already imported: import a newer package",
                m.to_version, c.version
            ),
        )),
        (PackageKind::Incremental, Some(c)) if m.from_version > c.version => Err(Error::package(
            path,
            format!(
                "it holds the changes of {theirs} after catalog version {}, but this site has that \
                 catalog up to version {}: the changes of versions {}..={} are missing. Import the \
                 packages in order, or export the changes since {} (`patchsync export --since {}`)",
                m.from_version,
                c.version,
                c.version + 1,
                m.from_version,
                c.version,
                c.version
            ),
        )),
        _ => Ok(true),
    }
}

impl Engine {
    /// Opens the site's store (creating it) for `config`.
    pub fn open(config: Config) -> Result<Engine> {
        let store = Store::open(&config.store_path)?;
        store.set_meta("site_name", &config.site_name)?;
        Ok(Engine {
            config,
            store,
            extra_sources: Vec::new(),
            extra_filters: Vec::new(),
            cancel: Default::default(),
        })
    }

    /// Loads the config file and opens the site.
    pub fn open_path(config_file: &std::path::Path) -> Result<Engine> {
        Self::open(Config::load(config_file)?)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A flag that stops the running sync when set: the source being synced is rolled back
    /// (the store stays as it was before it), the sync returns [`Error::Cancelled`]. The
    /// next sync clears it.
    pub fn cancel_handle(&self) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        self.cancel.clone()
    }

    /// Adds a catalog source of the host's own, synced after the configured ones.
    pub fn add_source(&mut self, kind: &str, source: Box<dyn CatalogSource>) {
        self.extra_sources.push((kind.to_owned(), source));
    }

    /// Adds a filter stage after the built-in selection.
    pub fn add_filter(&mut self, filter: Box<dyn crate::filter::UpdateFilter>) {
        self.extra_filters.push(filter);
    }

    fn lock(&self) -> Result<File> {
        let path = lock_path(&self.config.store_path);
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .read(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match f.try_lock() {
            Ok(()) => {
                use std::io::Write;
                let _ = f.set_len(0);
                let _ = (&f).write_all(std::process::id().to_string().as_bytes());
                Ok(f)
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let pid = std::fs::read_to_string(&path).unwrap_or_default();
                Err(Error::Busy(format!(
                    "process {} holds {}",
                    pid.trim(),
                    path.display()
                )))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
        }
    }

    /// Runs one sync of every source; `observer` sees progress as it happens. Every source
    /// is tried; a failed source keeps the store as it was for that source, and the sync
    /// then returns the first error (the run is recorded as failed).
    pub fn sync(
        &mut self,
        options: SyncOptions,
        observer: &mut dyn FnMut(&SyncEvent),
    ) -> Result<SyncReport> {
        self.sync_only(options, None, observer)
    }

    /// Like [`sync`](Self::sync), limited to the configured sources named in `only` (and
    /// the host's own sources) when given: what a service's per-source schedule runs.
    pub fn sync_only(
        &mut self,
        options: SyncOptions,
        only: Option<&[String]>,
        observer: &mut dyn FnMut(&SyncEvent),
    ) -> Result<SyncReport> {
        let _lock = self.lock()?;
        self.store.defer_checkpoints()?;
        // The WAL the sync fills goes to disk while it parses, not all at the checkpoint.
        let flush = crate::store::writeback::Flusher::start(vec![self.store.wal_path()]);
        let result = self.run_configured(only, options, None, observer);
        drop(flush);
        self.store.checkpoint_later();
        result
    }

    /// Runs the configured sources (those in `only`, if given) and then the host's own.
    fn run_configured(
        &mut self,
        only: Option<&[String]>,
        options: SyncOptions,
        plan: Option<&mut Vec<PlannedChange>>,
        observer: &mut dyn FnMut(&SyncEvent),
    ) -> Result<SyncReport> {
        let mut sources: Vec<(String, Box<dyn CatalogSource>)> = self
            .config
            .sources
            .iter()
            .filter(|s| only.is_none_or(|names| names.contains(&s.name)))
            .map(|s| {
                (
                    s.kind.as_str().to_owned(),
                    crate::source::open_configured(s),
                )
            })
            .collect();
        let configured = sources.len();
        let warning = (sources.is_empty() && self.extra_sources.is_empty()).then(|| {
            format!(
                "{} has no [[source]]; nothing to sync",
                self.config.file.display()
            )
        });
        sources.append(&mut self.extra_sources);
        let result = self.run(
            &mut sources,
            options,
            HashSet::new(),
            warning,
            plan,
            observer,
        );
        self.extra_sources = sources.split_off(configured);
        result
    }

    /// Imports an export package of a connected site (see [`crate::package`]): verifies it
    /// whole, checks it continues what this site imported before, then applies it as a sync
    /// of one source (the site's filter and languages apply), all or nothing.
    ///
    /// `options.allow_mass_removal` lets a package remove more than the guard allows (the
    /// exporting site's deliberate narrowing, say).
    pub fn import_package(
        &mut self,
        path: &Path,
        options: SyncOptions,
        observer: &mut dyn FnMut(&SyncEvent),
    ) -> Result<PackageImport> {
        let _lock = self.lock()?;
        let opened = OpenedPackage::open(path, &self.config.import)?;
        let cursor = ImportCursor::of(&self.store)?;
        let m = opened.manifest.clone();
        let mut outcome = PackageImport {
            file: path.to_owned(),
            site_name: m.site_name.clone(),
            site_id: m.site_id.clone(),
            kind: m.kind,
            from_version: m.from_version,
            to_version: m.to_version,
            counts: m.counts.clone(),
            signed_by: opened.signed_by.clone(),
            already_imported: false,
            report: None,
        };
        if !continues_lineage(path, &m, cursor.as_ref())? {
            outcome.already_imported = true;
            return Ok(outcome);
        }
        let source = PackageSource::new(opened)?;
        let pinned: HashSet<UpdateId> = source.pinned().collect();
        let mut sources: Vec<(String, Box<dyn CatalogSource>)> =
            vec![("package".to_owned(), Box::new(source))];
        let options = SyncOptions {
            full: false,
            ..options
        };
        outcome.report = Some(self.run(&mut sources, options, pinned, None, None, observer)?);
        Ok(outcome)
    }

    /// Writes an export package of this site's catalog (see [`crate::package`]). Reads a
    /// snapshot: a sync may run meanwhile.
    pub fn export_package(&self, out: &Path, options: &ExportOptions<'_>) -> Result<Manifest> {
        crate::package::export_package(&self.store, out, options)
    }

    /// The decision trail of one update under the current config (see [`crate::explain`]).
    pub fn explain(&self, id: UpdateId) -> Result<crate::explain::Explanation> {
        let mut chain = self.chain()?;
        crate::explain::explain(&self.store, &mut chain, id)
    }

    /// What a sync would change, without changing anything (`patchsync plan`): every source
    /// is synced up to the commit, compared with the store, and rolled back. The report's
    /// warnings include what the mass-removal guard would refuse.
    pub fn plan(
        &mut self,
        options: SyncOptions,
        observer: &mut dyn FnMut(&SyncEvent),
    ) -> Result<Plan> {
        let _lock = self.lock()?;
        let mut changes = Vec::new();
        let result = self.run_configured(None, options, Some(&mut changes), observer);
        Ok(Plan {
            report: result?,
            changes,
        })
    }

    /// The configured filter chain (without the host's own stages): pins, then the stages in
    /// `[filter] order`.
    fn chain(&self) -> Result<FilterChain> {
        let f = &self.config.filter;
        let mut stages: Vec<Box<dyn crate::filter::UpdateFilter>> = Vec::new();
        for stage in &f.order {
            match stage {
                crate::config::Stage::Rules => {
                    for set in &f.rule_sets {
                        stages.push(Box::new(set.clone()));
                    }
                }
                crate::config::Stage::BuiltIn => {
                    stages.push(Box::new(ProductClassificationFilter::new(
                        f.products.clone(),
                        f.classifications.clone(),
                    )));
                }
                crate::config::Stage::Plugins => {
                    for p in &f.plugins {
                        stages.push(crate::plugin::start_filter(p, Some(&f.plugin_cache))?);
                    }
                }
            }
        }
        let mut chain = FilterChain::new(stages);
        chain.pinned = self.store.pinned()?;
        let plugin_fields = f.plugins.iter().map(|p| p.manifest.fields);
        chain.needs_details =
            !f.rule_sets.is_empty() || plugin_fields.clone().any(|x| x.needs_details());
        chain.needs_supersedence = f.rule_sets.iter().any(|s| s.uses_supersedence())
            || plugin_fields.clone().any(|x| x.has("superseded"));
        if chain.needs_supersedence {
            chain.superseded = self.store.superseded_ids()?;
        }
        Ok(chain)
    }

    /// The plugins a run uses, for its record: code digest and config hash of each filter
    /// plugin, and of each plugin source among `sources`.
    fn plugin_records(&self, sources: &[(String, Box<dyn CatalogSource>)]) -> Vec<PluginRecord> {
        let record = |u: &crate::plugin::PluginUse| PluginRecord {
            name: u.manifest.name.clone(),
            version: u.manifest.version.clone(),
            kind: match u.manifest.kind {
                crate::plugin::PluginKind::Filter => "filter",
                crate::plugin::PluginKind::Source => "source",
            }
            .into(),
            native: matches!(u.manifest.code, crate::plugin::Code::Native(_)),
            sha256: u.manifest.sha256.clone(),
            config_hash: u.config_hash(),
        };
        let mut out: Vec<PluginRecord> = self.config.filter.plugins.iter().map(record).collect();
        for s in &self.config.sources {
            if let Some((u, _)) = &s.plugin
                && sources.iter().any(|(_, src)| src.name() == s.name)
            {
                out.push(record(u));
            }
        }
        out
    }

    /// Syncs `sources` in order as one run: one catalog version, one history row.
    fn run(
        &mut self,
        sources: &mut [(String, Box<dyn CatalogSource>)],
        options: SyncOptions,
        also_pinned: HashSet<UpdateId>,
        warning: Option<String>,
        mut plan: Option<&mut Vec<PlannedChange>>,
        observer: &mut dyn FnMut(&SyncEvent),
    ) -> Result<SyncReport> {
        let started = std::time::Instant::now();
        let dry = plan.is_some();
        self.cancel
            .store(false, std::sync::atomic::Ordering::Relaxed);
        // A dry run leaves no trace: no sync log, no history row.
        let mut log = (!dry).then(|| {
            SyncLog::open(
                &self.config.log_path,
                self.config.log_max_bytes,
                self.config.log_keep,
            )
        });
        let mut emit = |ev: SyncEvent| {
            if let Some(log) = log.as_mut() {
                log.event(&ev);
            }
            observer(&ev);
        };
        let run = if dry {
            None
        } else {
            Some(self.store.begin_run(options.full)?)
        };
        let previous_version = self.store.catalog_version()?;
        let mut report = SyncReport {
            site: self.config.site_name.clone(),
            full: options.full,
            previous_catalog_version: previous_version,
            ..Default::default()
        };
        emit(SyncEvent::Started {
            site: self.config.site_name.clone(),
            full: options.full,
            sources: sources.len(),
        });
        if let Some(message) = warning {
            emit(SyncEvent::Warning {
                source: None,
                message,
            });
        }
        report.plugins = self.plugin_records(sources);
        let mut first_error: Option<Error> = None;
        // A plugin that cannot start (a rejected config, a wrong digest) fails the run
        // before any source is touched, and the history records why.
        let mut chain = match self.chain() {
            Ok(c) => c,
            Err(e) => {
                first_error = Some(e);
                FilterChain::new(Vec::new())
            }
        };
        let configured_stages = chain.stages.len();
        chain.stages.append(&mut self.extra_filters);
        chain.pinned.extend(also_pinned);
        let version = previous_version + 1;
        for (kind, source) in sources.iter_mut() {
            if first_error.is_some() && report.sources.is_empty() {
                break;
            }
            if self.cancel.load(std::sync::atomic::Ordering::Relaxed) {
                first_error.get_or_insert(Error::Cancelled);
                break;
            }
            let cx = SourceContext {
                kind,
                chain: &mut chain,
                languages: &self.config.filter.languages,
                options,
                version,
                emit: &mut emit,
                mass_removal_percent: self.config.filter.mass_removal_percent,
                products: &self.config.filter.products,
                classifications: &self.config.filter.classifications,
                cancel: self.cancel.clone(),
                plan: plan.as_deref_mut(),
            };
            match sync_source(&mut self.store, source.as_mut(), cx) {
                Ok(r) => {
                    report.add(&r);
                    report.sources.push(r);
                }
                Err(e) => {
                    let r = SourceReport {
                        source: source.name().to_owned(),
                        kind: kind.clone(),
                        outcome: SourceOutcome::Failed,
                        error: Some(e.to_string()),
                        ..Default::default()
                    };
                    emit(SyncEvent::SourceFinished { report: r.clone() });
                    report.sources.push(r);
                    first_error.get_or_insert(e);
                }
            }
        }
        self.extra_filters = chain.stages.split_off(configured_stages);
        let Some(run) = run else {
            report.catalog_version = previous_version;
            report.duration_ms = started.elapsed().as_millis() as u64;
            return match first_error {
                None => Ok(report),
                Some(e) => Err(e),
            };
        };
        let cancelled = self.cancel.load(std::sync::atomic::Ordering::Relaxed);
        match if cancelled {
            Ok(Default::default())
        } else {
            crate::sync::apply_supersedence(
                &mut self.store,
                &self.config.supersedence,
                version,
                chrono::Utc::now(),
            )
        } {
            Ok(o) => {
                report.expired_superseded = o.expired;
                report.deleted = o.deleted;
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
        report.catalog_version = self.store.catalog_version()?;
        report.categories = self.store.category_count()?;
        report.detectoids = self.store.count("update_type = 'Detectoid'")?;
        report.updates = self
            .store
            .count("update_type IN ('Software', 'Driver') AND state = 'active'")?;
        report.duration_ms = started.elapsed().as_millis() as u64;
        let err = first_error.as_ref().map(|e| (e.to_string(), e.code()));
        self.store
            .finish_run(run, &report, err.as_ref().map(|(t, c)| (t.as_str(), *c)))?;
        if report.changed() {
            // Status reads this instead of hashing the whole catalog on every call. Hashed
            // beside the caller's next steps, once this sync's last write is committed.
            self.store.record_content_digest_later();
        }
        match first_error {
            None => {
                emit(SyncEvent::Finished {
                    report: report.clone(),
                });
                Ok(report)
            }
            Some(e) => {
                emit(SyncEvent::Failed {
                    message: e.to_string(),
                });
                Err(e)
            }
        }
    }

    /// Fetches one update (and its bundled leaves and categories) from the configured
    /// source `source` whatever the filter says, and pins it until [`unpin`](Self::unpin).
    pub fn import_update(
        &mut self,
        source: &str,
        target: &crate::sync::ImportTarget,
    ) -> Result<crate::sync::ImportReport> {
        let _lock = self.lock()?;
        let config = self
            .config
            .sources
            .iter()
            .find(|s| s.name == source)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "no source named '{source}' in {}; configured: {}",
                    self.config.file.display(),
                    self.config
                        .sources
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        let mut src = crate::source::open_configured(config);
        let state = self.store.source_state(source)?;
        src.resume(state.cursor.as_deref());
        crate::sync::import_update(
            &mut self.store,
            src.as_mut(),
            target,
            &self.config.filter.languages,
        )
    }

    /// Writes the active catalog as a `wsusutil export` package (see [`crate::export`]).
    /// Reads a snapshot: a sync may run meanwhile.
    pub fn export_wsus(&self, out: &std::path::Path) -> Result<crate::export::ExportSummary> {
        let server_id = crate::generate::xmlgen::guid_from(&format!(
            "patchsync-site:{}",
            self.config.site_name
        ));
        crate::export::export_wsus(&self.store, out, &server_id)
    }

    /// Removes the pin of `id`; the next sync decides it by the filter again. Returns
    /// whether it was pinned.
    pub fn unpin(&mut self, id: UpdateId) -> Result<bool> {
        let _lock = self.lock()?;
        self.store.unpin(id)
    }

    /// The site's state for monitoring.
    pub fn status(&self) -> Result<Status> {
        status_of(&self.store, &self.config)
    }

    pub fn categories(&self, kind: Option<crate::model::CategoryKind>) -> Result<Vec<CategoryRow>> {
        self.store.categories(kind)
    }

    pub fn updates(&self, q: &UpdateQuery) -> Result<Vec<UpdateRow>> {
        self.store.updates(q)
    }

    pub fn show(&self, id: UpdateId, with_xml: bool) -> Result<ShowUpdate> {
        self.store.show(id, with_xml)
    }

    pub fn history(&self, limit: usize) -> Result<Vec<HistoryRow>> {
        self.store.history(limit)
    }
}

fn lock_path(store: &std::path::Path) -> PathBuf {
    let mut p = store.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

/// Whether a sync process holds the site's lock right now.
fn sync_running(store: &std::path::Path) -> bool {
    match File::open(lock_path(store)) {
        Ok(f) => matches!(f.try_lock_shared(), Err(std::fs::TryLockError::WouldBlock)),
        Err(_) => false,
    }
}

/// Status from a store (read-only access is enough).
pub fn status_of(store: &Store, config: &Config) -> Result<Status> {
    let hist = store.history(50)?;
    let last = hist.first();
    let running = sync_running(&config.store_path);
    let state = match last {
        None => "idle".to_owned(),
        Some(r) if r.finished.is_none() => {
            if running { "running" } else { "interrupted" }.to_owned()
        }
        Some(r) => r.status.clone(),
    };
    let last_success = hist
        .iter()
        .find(|r| r.status == "succeeded")
        .and_then(|r| r.finished.clone());
    let last_failure = hist
        .iter()
        .find(|r| r.status != "succeeded" && r.status != "running")
        .filter(|r| !hist.iter().any(|s| s.status == "succeeded" && s.id > r.id));
    let last_error = last_failure.and_then(|r| r.error.clone());
    let last_error_code = last_failure.and_then(|r| r.error_code);
    Ok(Status {
        site: config.site_name.clone(),
        state,
        last_sync_started: last.map(|r| r.started.clone()),
        last_sync_finished: last.and_then(|r| r.finished.clone()),
        last_success,
        last_error,
        last_error_code,
        catalog_version: store.catalog_version()?,
        updates_active: store
            .count("update_type IN ('Software', 'Driver') AND state = 'active'")?,
        updates_expired: store
            .count("update_type IN ('Software', 'Driver') AND state = 'expired'")?,
        categories: store.category_count()?,
        detectoids: store.count("update_type = 'Detectoid'")?,
        content_digest: store.current_content_digest()?,
        imported: ImportCursor::of(store)?.map(|c| ImportedFrom {
            site_name: c.site_name,
            site_id: c.site_id,
            version: c.version,
        }),
        store: config.store_path.clone(),
        log: config.log_path.clone(),
    })
}
