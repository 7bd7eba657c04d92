//! Progress events a sync emits, for progress bars, logs and host applications.

use serde::Serialize;

use crate::sync::{SourceReport, SyncReport};

/// A phase of one source's sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Listing what the catalog holds and diffing it against the store.
    Listing,
    /// Fetching and storing the metadata of what is new or changed.
    Fetching,
    /// Deciding which fetched updates stay (filters, bundles).
    Selecting,
    /// Marking expired and removed updates, committing.
    Applying,
}

impl Phase {
    pub fn label(self) -> &'static str {
        match self {
            Phase::Listing => "listing",
            Phase::Fetching => "synchronizing updates",
            Phase::Selecting => "selecting",
            Phase::Applying => "applying changes",
        }
    }
}

/// What a sync reports while it runs.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum SyncEvent {
    Started {
        site: String,
        full: bool,
        sources: usize,
    },
    SourceStarted {
        source: String,
    },
    /// The source's fingerprint is unchanged and the filter too: nothing to fetch.
    SourceUnchanged {
        source: String,
    },
    PhaseStarted {
        source: String,
        phase: Phase,
        total: u64,
    },
    Progress {
        source: String,
        phase: Phase,
        done: u64,
        total: u64,
    },
    /// An update was stored or replaced (new or revised).
    UpdateStored {
        source: String,
        id: String,
        title: String,
        kb: Option<String>,
    },
    Warning {
        source: Option<String>,
        message: String,
    },
    /// A line a filter stage logged (a plugin's log call, or what it printed).
    StageLog {
        source: String,
        stage: String,
        /// `trace`, `debug`, `info`, `warn`, `error`.
        level: String,
        message: String,
    },
    SourceFinished {
        report: SourceReport,
    },
    Finished {
        report: SyncReport,
    },
    Failed {
        message: String,
    },
}
