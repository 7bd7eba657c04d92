//! The engine's error type: every variant says what failed, where, and what to do.

use std::path::PathBuf;

/// A failure of the engine, written for the person who has to act on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration file is invalid.
    #[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Config {
        file: PathBuf,
        line: Option<usize>,
        message: String,
    },

    /// A catalog source could not be read; `item` names the file, record or update.
    #[error("source '{source_name}': {item}: {message}")]
    Source {
        source_name: String,
        item: String,
        message: String,
    },

    /// The SQLite store failed.
    #[error("store {path}: {message}")]
    Store { path: PathBuf, message: String },

    /// Another sync of this site holds the store.
    #[error("another sync of this site is running ({0}); wait for it to finish or stop it")]
    Busy(String),

    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    /// An export package (or a signing key) is unusable; the store was not touched.
    #[error("package {path}: {message}")]
    Package { path: PathBuf, message: String },

    /// An update or category asked for does not exist.
    #[error("{0}")]
    NotFound(String),

    /// A sync would do what the config guards against (remove a large share of the
    /// catalog, or keep nothing of a source); nothing was changed.
    #[error("{0}")]
    Refused(String),

    /// A plugin failed to load, rejected its config, trapped, ran out of time or memory,
    /// or answered wrongly; `call` names what the host asked of it.
    #[error("plugin '{plugin}' ({call}): {message}")]
    Plugin {
        plugin: String,
        call: String,
        message: String,
    },

    /// The sync was cancelled by the host.
    #[error("sync cancelled; the store is unchanged and the next sync starts again")]
    Cancelled,
}

impl Error {
    /// A stable number for the kind of failure, for monitoring (`status`, the API, history):
    /// 1 config, 2 source, 3 store, 4 busy, 5 file, 6 not found, 7 package, 8 refused by the
    /// mass-removal guard, 9 cancelled, 10 plugin.
    pub fn code(&self) -> u32 {
        match self {
            Error::Config { .. } => 1,
            Error::Source { .. } => 2,
            Error::Store { .. } => 3,
            Error::Busy(_) => 4,
            Error::Io { .. } => 5,
            Error::NotFound(_) => 6,
            Error::Package { .. } => 7,
            Error::Refused(_) => 8,
            Error::Cancelled => 9,
            Error::Plugin { .. } => 10,
        }
    }

    pub(crate) fn source(name: &str, item: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Source {
            source_name: name.to_owned(),
            item: item.into(),
            message: message.into(),
        }
    }

    pub(crate) fn plugin(
        plugin: &str,
        call: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Plugin {
            plugin: plugin.to_owned(),
            call: call.into(),
            message: message.into(),
        }
    }

    pub(crate) fn package(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Package {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
