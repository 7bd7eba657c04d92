//! The embeddable engine: open a site from its config, sync it, query its store.

use std::fs::File;
use std::path::PathBuf;

use serde::Serialize;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::events::SyncEvent;
use crate::filter::{FilterChain, ProductClassificationFilter};
use crate::model::UpdateId;
use crate::source::CatalogSource;
use crate::store::{CategoryRow, HistoryRow, ShowUpdate, Store, UpdateQuery, UpdateRow};
use crate::sync::{
    SourceContext, SourceOutcome, SourceReport, SyncOptions, SyncReport, sync_source,
};
use crate::synclog::SyncLog;

/// A site: its config, its store and its sources.
pub struct Engine {
    config: Config,
    store: Store,
    extra_sources: Vec<(String, Box<dyn CatalogSource>)>,
    extra_filters: Vec<Box<dyn crate::filter::UpdateFilter>>,
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
    pub catalog_version: u64,
    pub updates_active: u64,
    pub updates_expired: u64,
    pub categories: u64,
    pub detectoids: u64,
    pub content_digest: String,
    pub store: PathBuf,
    pub log: PathBuf,
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
        let _lock = self.lock()?;
        let started = std::time::Instant::now();
        let mut log = SyncLog::open(&self.config.log_path);
        let mut emit = |ev: SyncEvent| {
            log.event(&ev);
            observer(&ev);
        };
        let run = self.store.begin_run(options.full)?;
        let previous_version = self.store.catalog_version()?;
        let mut report = SyncReport {
            site: self.config.site_name.clone(),
            full: options.full,
            previous_catalog_version: previous_version,
            ..Default::default()
        };
        let mut configured: Vec<(String, Box<dyn CatalogSource>)> = self
            .config
            .sources
            .iter()
            .map(|s| {
                let src = crate::source::open_configured(s);
                (s.kind.as_str().to_owned(), src)
            })
            .collect();
        emit(SyncEvent::Started {
            site: self.config.site_name.clone(),
            full: options.full,
            sources: configured.len() + self.extra_sources.len(),
        });
        if configured.is_empty() && self.extra_sources.is_empty() {
            emit(SyncEvent::Warning {
                source: None,
                message: format!(
                    "{} has no [[source]]; nothing to sync",
                    self.config.file.display()
                ),
            });
        }
        let mut stages: Vec<Box<dyn crate::filter::UpdateFilter>> =
            vec![Box::new(ProductClassificationFilter::new(
                self.config.filter.products.clone(),
                self.config.filter.classifications.clone(),
            ))];
        stages.append(&mut self.extra_filters);
        let mut chain = FilterChain::new(stages);
        chain.pinned = self.store.pinned()?;
        let mut first_error: Option<Error> = None;
        let version = previous_version + 1;
        let mut extra = std::mem::take(&mut self.extra_sources);
        for (kind, source) in configured.iter_mut().chain(extra.iter_mut()) {
            let cx = SourceContext {
                kind,
                chain: &mut chain,
                languages: &self.config.filter.languages,
                options,
                version,
                emit: &mut emit,
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
        self.extra_sources = extra;
        self.extra_filters = chain.stages.split_off(1);
        match crate::sync::apply_supersedence(
            &mut self.store,
            &self.config.supersedence,
            version,
            chrono::Utc::now(),
        ) {
            Ok(o) => {
                report.expired_superseded = o.expired;
                report.deleted = o.deleted;
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
        report.catalog_version = self.store.catalog_version()?;
        if report.changed() {
            // Status reads this instead of hashing the whole catalog on every call.
            self.store.record_content_digest()?;
        }
        report.categories = self.store.category_count()?;
        report.detectoids = self.store.count("update_type = 'Detectoid'")?;
        report.updates = self
            .store
            .count("update_type IN ('Software', 'Driver') AND state = 'active'")?;
        report.duration_ms = started.elapsed().as_millis() as u64;
        let err_text = first_error.as_ref().map(|e| e.to_string());
        self.store.finish_run(run, &report, err_text.as_deref())?;
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
    let last_error = hist
        .iter()
        .find(|r| r.status != "succeeded" && r.status != "running")
        .and_then(|r| {
            let newer_success = hist.iter().any(|s| s.status == "succeeded" && s.id > r.id);
            (!newer_success).then(|| r.error.clone()).flatten()
        });
    Ok(Status {
        site: config.site_name.clone(),
        state,
        last_sync_started: last.map(|r| r.started.clone()),
        last_sync_finished: last.and_then(|r| r.finished.clone()),
        last_success,
        last_error,
        catalog_version: store.catalog_version()?,
        updates_active: store
            .count("update_type IN ('Software', 'Driver') AND state = 'active'")?,
        updates_expired: store
            .count("update_type IN ('Software', 'Driver') AND state = 'expired'")?,
        categories: store.category_count()?,
        detectoids: store.count("update_type = 'Detectoid'")?,
        content_digest: store.current_content_digest()?,
        store: config.store_path.clone(),
        log: config.log_path.clone(),
    })
}
