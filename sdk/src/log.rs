//! Logging: inside patchsync the lines go to the site's sync log, tagged with the plugin's
//! name; on the host (plain `cargo test`) they go to stderr.

/// How important a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Writes one line to the sync log.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    {
        use crate::bindings::filter::patchsync::plugin::log as host;
        use crate::bindings::filter::patchsync::plugin::types::Level as L;
        let l = match level {
            Level::Trace => L::Trace,
            Level::Debug => L::Debug,
            Level::Info => L::Info,
            Level::Warn => L::Warn,
            Level::Error => L::Error,
        };
        host::log(l, message);
    }
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}

pub fn info(message: &str) {
    log(Level::Info, message)
}

pub fn warn(message: &str) {
    log(Level::Warn, message)
}

pub fn debug(message: &str) {
    log(Level::Debug, message)
}

pub fn error(message: &str) {
    log(Level::Error, message)
}
