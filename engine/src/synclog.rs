//! The sync log, in the spirit of `wsyncmgr.log`: one timestamped line per step.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::events::SyncEvent;

/// Appends human-readable lines for sync events to a file.
pub struct SyncLog {
    file: Option<File>,
    last_progress: std::time::Instant,
}

impl SyncLog {
    /// Opens (creating) the log. A log that cannot be opened is reported once and skipped:
    /// it must never fail a sync.
    pub fn open(path: &Path) -> SyncLog {
        if let Some(d) = path.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        let file = OpenOptions::new().create(true).append(true).open(path).ok();
        SyncLog {
            file,
            last_progress: std::time::Instant::now(),
        }
    }

    /// Writes one line with a timestamp.
    pub fn line(&mut self, text: &str) {
        if let Some(f) = self.file.as_mut() {
            let ts = chrono::Local::now().format("%Y-%m-%d %H:%M:%S%.3f");
            let _ = writeln!(f, "{ts}  {text}");
        }
    }

    /// Logs an event; progress lines at most every two seconds (and always at 100 %).
    pub fn event(&mut self, ev: &SyncEvent) {
        match ev {
            SyncEvent::Started { site, full, sources } => self.line(&format!(
                "Performing {} sync of site {site} ({sources} source(s))",
                if *full { "full" } else { "delta" }
            )),
            SyncEvent::SourceStarted { source } => self.line(&format!("Synchronizing source {source}")),
            SyncEvent::SourceUnchanged { source } => {
                self.line(&format!("Source {source} is unchanged since the last sync and the filter is the same; nothing to do"))
            }
            SyncEvent::PhaseStarted { source, phase, total } => {
                self.line(&format!("sync: {source} {}, {total} items", phase.label()))
            }
            SyncEvent::Progress { source, phase, done, total } => {
                if *total == 0 && self.last_progress.elapsed().as_secs() >= 2 {
                    self.last_progress = std::time::Instant::now();
                    self.line(&format!("sync: {source} {}, processed {done} items", phase.label()));
                } else if *total > 0 && (done == total || self.last_progress.elapsed().as_secs() >= 2) {
                    self.last_progress = std::time::Instant::now();
                    let pct = done * 100 / total;
                    self.line(&format!("sync: {source} {}, processed {done} out of {total} items ({pct}%)", phase.label()));
                }
            }
            SyncEvent::UpdateStored { id, title, kb, .. } => self.line(&format!(
                "Synchronizing update {id} - {title}{}",
                kb.as_ref().map(|k| format!(" - KB{k}")).unwrap_or_default()
            )),
            SyncEvent::Warning { source, message } => {
                self.line(&format!("WARNING: {}{message}", source.as_ref().map(|s| format!("{s}: ")).unwrap_or_default()))
            }
            SyncEvent::SourceFinished { report: r } => self.line(&format!(
                "Source {}: {} new, {} revised, {} expired, {} removed, {} unchanged, {} excluded by the filter",
                r.source, r.new, r.revised, r.expired, r.removed, r.unchanged, r.excluded
            )),
            SyncEvent::Finished { report: r } => {
                if r.expired_superseded + r.deleted > 0 {
                    self.line(&format!(
                        "Supersedence rules expired {} superseded update(s); cleanup deleted {} update(s) expired too long",
                        r.expired_superseded, r.deleted
                    ));
                }
                let changed =
                    r.new + r.revised + r.expired + r.removed + r.expired_superseded + r.deleted;
                if changed > 0 {
                    self.line(&format!(
                        "Updated {changed} items in the store, new catalog version is {}",
                        r.catalog_version
                    ));
                } else {
                    self.line(&format!("No changes; catalog version stays {}", r.catalog_version));
                }
                let s = r.duration_ms / 1000;
                self.line(&format!(
                    "Sync time: {}d{:02}h{:02}m{:02}s",
                    s / 86400,
                    (s / 3600) % 24,
                    (s / 60) % 60,
                    s % 60
                ));
            }
            SyncEvent::Failed { message } => self.line(&format!("Sync failed: {message}")),
        }
    }
}
