//! The sync log, in the spirit of `wsyncmgr.log`: one timestamped line per step.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::events::SyncEvent;

/// Appends human-readable lines for sync events to a file, rotated by size: `sync.log`
/// becomes `sync.log.1` (and `.1` `.2`, ...) when it outgrows the limit; `keep` old files
/// are kept.
pub struct SyncLog {
    file: Option<File>,
    path: std::path::PathBuf,
    max_bytes: u64,
    keep: u32,
    written: u64,
    last_progress: std::time::Instant,
}

/// Moves `path` to `path.1`, `path.1` to `path.2`, ..., dropping what is past `keep`.
fn rotate(path: &Path, keep: u32) {
    let name = |i: u32| {
        let mut p = path.as_os_str().to_owned();
        p.push(format!(".{i}"));
        std::path::PathBuf::from(p)
    };
    if keep == 0 {
        let _ = std::fs::remove_file(path);
        return;
    }
    let _ = std::fs::remove_file(name(keep));
    for i in (1..keep).rev() {
        let _ = std::fs::rename(name(i), name(i + 1));
    }
    let _ = std::fs::rename(path, name(1));
}

impl SyncLog {
    /// Opens (creating) the log. A log that cannot be opened is reported once and skipped:
    /// it must never fail a sync.
    pub fn open(path: &Path, max_bytes: u64, keep: u32) -> SyncLog {
        if let Some(d) = path.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        let mut log = SyncLog {
            file: None,
            path: path.to_owned(),
            max_bytes,
            keep,
            written: 0,
            last_progress: std::time::Instant::now(),
        };
        log.reopen();
        log
    }

    fn reopen(&mut self) {
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .ok();
        self.written = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
    }

    /// Writes one line with a timestamp.
    pub fn line(&mut self, text: &str) {
        if self.written >= self.max_bytes {
            self.file = None;
            rotate(&self.path, self.keep);
            self.reopen();
        }
        if let Some(f) = self.file.as_mut() {
            let ts = chrono::Local::now().format("%Y-%m-%d %H:%M:%S%.3f");
            let line = format!("{ts}  {text}\n");
            if f.write_all(line.as_bytes()).is_ok() {
                self.written += line.len() as u64;
            }
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
            SyncEvent::StageLog { source, stage, level, message } => {
                self.line(&format!("{stage} [{level}] ({source}): {message}"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_rotates_by_size_and_keeps_n_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sync.log");
        let mut log = SyncLog::open(&path, 1000, 2);
        for i in 0..200 {
            log.line(&format!("line {i:04} with some text to fill the log"));
        }
        let size = |p: &str| std::fs::metadata(dir.path().join(p)).map(|m| m.len()).ok();
        assert!(size("sync.log").unwrap() <= 1100);
        assert!(size("sync.log.1").unwrap() >= 1000 && size("sync.log.2").unwrap() >= 1000);
        assert_eq!(size("sync.log.3"), None);
        let newest = std::fs::read_to_string(&path).unwrap();
        assert!(newest.ends_with("line 0199 with some text to fill the log\n"));
    }
}
