//! Sync progress on the terminal: a bar with counts and ETA on a TTY, plain lines otherwise.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use patchsync::{Phase, SyncEvent};

/// Renders sync events on stderr.
pub struct Progress {
    bar: Option<ProgressBar>,
    tty: bool,
    quiet: bool,
    last_line: std::time::Instant,
}

impl Progress {
    /// `quiet` prints nothing but warnings (for `--json`).
    pub fn new(quiet: bool) -> Self {
        Progress {
            bar: None,
            tty: std::io::stderr().is_terminal(),
            quiet,
            last_line: std::time::Instant::now(),
        }
    }

    fn finish_bar(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }

    pub fn event(&mut self, ev: &SyncEvent) {
        match ev {
            SyncEvent::Warning { source, message } => {
                self.finish_bar();
                eprintln!(
                    "warning: {}{message}",
                    source
                        .as_ref()
                        .map(|s| format!("{s}: "))
                        .unwrap_or_default()
                );
            }
            _ if self.quiet => {}
            SyncEvent::Started {
                site,
                full,
                sources,
            } => {
                eprintln!(
                    "Syncing site {site} ({} sync, {sources} source(s))",
                    if *full { "full" } else { "delta" }
                )
            }
            SyncEvent::SourceUnchanged { source } => {
                eprintln!("{source}: unchanged since the last sync")
            }
            SyncEvent::PhaseStarted {
                source,
                phase: Phase::Fetching,
                total,
            } => {
                if self.tty && *total == 0 {
                    let b = ProgressBar::new_spinner();
                    b.set_style(
                        ProgressStyle::with_template("{prefix} {spinner} {pos} items ({elapsed})")
                            .expect("template"),
                    );
                    b.set_prefix(format!("{source}: synchronizing updates"));
                    self.bar = Some(b);
                } else if self.tty {
                    let b = ProgressBar::new(*total);
                    b.set_style(
                        ProgressStyle::with_template(
                            "{prefix} [{bar:30}] {pos}/{len} ({percent}%) ETA {eta}",
                        )
                        .expect("template")
                        .progress_chars("=> "),
                    );
                    b.set_prefix(format!("{source}: synchronizing updates"));
                    self.bar = Some(b);
                } else if *total > 0 {
                    eprintln!("{source}: synchronizing {total} updates");
                } else {
                    eprintln!("{source}: synchronizing changed updates");
                }
            }
            SyncEvent::Progress {
                source,
                done,
                total,
                ..
            } => {
                if let Some(b) = &self.bar {
                    b.set_position(*done);
                } else if done == total || self.last_line.elapsed().as_secs() >= 5 {
                    self.last_line = std::time::Instant::now();
                    if *total == 0 {
                        eprintln!("{source}: processed {done} items");
                    } else {
                        eprintln!(
                            "{source}: processed {done} out of {total} items ({}%)",
                            done * 100 / total
                        );
                    }
                }
            }
            SyncEvent::SourceFinished { report: r } => {
                self.finish_bar();
                match &r.error {
                    Some(e) => eprintln!("{}: FAILED: {e}", r.source),
                    None => eprintln!(
                        "{}: {} new, {} revised, {} expired, {} removed, {} unchanged, {} excluded",
                        r.source, r.new, r.revised, r.expired, r.removed, r.unchanged, r.excluded
                    ),
                }
            }
            SyncEvent::Finished { report } => {
                self.finish_bar();
                if report.expired_superseded + report.deleted > 0 {
                    eprintln!(
                        "Supersedence: {} superseded update(s) expired, {} long-expired update(s) deleted",
                        report.expired_superseded, report.deleted
                    );
                }
                eprintln!(
                    "Catalog version {} (was {}), {} ms",
                    report.catalog_version, report.previous_catalog_version, report.duration_ms
                );
            }
            _ => {}
        }
    }
}
