//! `patchsync`: the command-line program for administrators.

/// `println!` that ends the program quietly when stdout is closed (`patchsync updates | head`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            panic!("cannot write to stdout: {e}");
        }
    }};
}

mod commands;
mod progress;
mod serve;
mod table;
mod trigger;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Synchronizes software update metadata from catalog sources into a SQLite store.
#[derive(Parser, Debug)]
#[command(name = "patchsync", version, about, long_about = None)]
pub struct Cli {
    /// The site config file.
    #[arg(
        long,
        global = true,
        default_value = "patchsync.toml",
        env = "PATCHSYNC_CONFIG"
    )]
    pub config: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a commented starter config (to --config).
    Init {
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Sync every source into the store.
    Sync {
        /// Re-read every update and re-apply the filter, whatever changed.
        #[arg(long)]
        full: bool,
        /// Apply a change that removes more than `[filter] mass_removal_percent` of a
        /// source's active updates, or leaves none of them.
        #[arg(long)]
        allow_mass_removal: bool,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// What a sync would add, revise, expire and remove, and which rule decides each,
    /// without changing anything.
    Plan {
        /// Re-read every update, as `sync --full` would.
        #[arg(long)]
        full: bool,
        /// List at most this many changes per kind (the counts are always complete).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// The decision trail of one update: each stage, each rule tried, the verdict.
    Explain {
        /// The update's GUID.
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Run as a service: sync on the [service] schedule and on request, serve the HTTP
    /// API (/api/v1), /metrics and a status page; stop with Ctrl-C or SIGTERM.
    Serve,
    /// Ask a running service (`patchsync serve`) to sync.
    Trigger {
        /// A full sync.
        #[arg(long)]
        full: bool,
        /// Follow the sync's progress until it ends; the exit status says how it ended.
        #[arg(long)]
        wait: bool,
        /// The service's address; default: [service] listen of the config.
        #[arg(long)]
        url: Option<String>,
        /// The bearer token; default: [service] token, or the variable its token_env names.
        #[arg(long, env = "PATCHSYNC_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Rule files.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Plugins (WebAssembly components and native libraries).
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// List categories (companies, product families, products, classifications).
    Categories {
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
        #[arg(long)]
        json: bool,
    },
    /// List updates in the store.
    Updates {
        /// KB article number (with or without "KB").
        #[arg(long)]
        kb: Option<String>,
        /// Product, product family or company: title or GUID.
        #[arg(long)]
        product: Option<String>,
        /// Classification: title or GUID.
        #[arg(long)]
        classification: Option<String>,
        #[arg(long, value_enum, default_value = "active")]
        state: StateArg,
        /// Also list bundled leaf updates (the packages inside bundles).
        #[arg(long)]
        leaves: bool,
        #[arg(long)]
        json: bool,
    },
    /// Fetch one update (with its bundled leaves) from a configured source even though the
    /// filter would not select it, and pin it: later syncs keep it until `unpin`.
    ImportUpdate {
        /// The configured source to fetch from.
        #[arg(long)]
        source: String,
        /// The update's GUID.
        #[arg(long, conflicts_with = "kb", required_unless_present = "kb")]
        id: Option<String>,
        /// A KB number (with or without "KB"): every update of the source naming it.
        #[arg(long)]
        kb: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Write the site's catalog to a file: a package a disconnected site imports, or a
    /// WSUS export.
    Export {
        /// `patchsync` (default): a package for `patchsync import` (engine/docs/package.md).
        /// `wsus`: a `wsusutil export` CAB (package.xml + metadata.txt) of the active
        /// catalog, for a WSUS server or another site's wsus-export source.
        #[arg(long, value_enum, default_value = "patchsync")]
        format: ExportFormat,
        #[arg(long)]
        out: PathBuf,
        /// Only the changes after this catalog version (the version the importing site last
        /// imported: `patchsync status` there shows it).
        #[arg(long)]
        since: Option<u64>,
        /// Sign the package with this secret key (NAME.key from `patchsync keygen`).
        #[arg(long, value_name = "KEY")]
        sign: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Import a package written by `patchsync export` on a connected site: verified whole,
    /// then applied in one transaction as if this site had synced.
    Import {
        file: PathBuf,
        /// Apply a package that removes more than `[filter] mass_removal_percent` of the
        /// site's updates (the exporting site narrowed its selection on purpose).
        #[arg(long)]
        allow_mass_removal: bool,
        #[arg(long)]
        json: bool,
    },
    /// Make an ed25519 key pair for signing packages: NAME.key (secret) and NAME.pub.
    Keygen {
        /// Where the keys go, without extension, e.g. `keys/cas`.
        #[arg(long)]
        out: PathBuf,
    },
    /// Remove the pin `import-update` set; the next sync decides the update by the filter.
    Unpin {
        /// The update's GUID.
        id: String,
    },
    /// Show one update: every field, relations, files.
    Show {
        /// The update's GUID.
        id: String,
        #[arg(long)]
        json: bool,
        /// Print the raw metadata XML as the source gave it.
        #[arg(long)]
        xml: bool,
    },
    /// The site's sync status (`--tree`: with every site below it).
    Status {
        #[arg(long)]
        json: bool,
        /// Every site of the hierarchy below this one, as their reports and links say.
        #[arg(long)]
        tree: bool,
    },
    /// One row per sync run, newest first.
    History {
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Write a synthetic WSUS export package (or offline scan file) shaped like Microsoft's
    /// catalog.
    GenerateCatalog {
        /// Update records to write (bundles, leaves and standalone updates).
        #[arg(long, default_value_t = 1000)]
        updates: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
        /// Write "next month" of this package instead (new, revised, expired, removed
        /// updates), plus OUT.changes.json listing exactly what changed.
        #[arg(long)]
        evolve_from: Option<PathBuf>,
        /// Share of top-level updates an evolution touches, in percent.
        #[arg(long, default_value_t = 1.0)]
        change_percent: f64,
        /// Take categories and detectoids from this WSUS export (e.g. a real one).
        #[arg(long)]
        categories_from: Option<PathBuf>,
        /// Write an offline scan file (wsusscn2.cab layout) instead of a WSUS export.
        #[arg(long, conflicts_with = "evolve_from")]
        offline: bool,
    },
    /// Generate a catalog, sync it, evolve it, sync the delta, print the status (in DIR).
    Demo {
        #[arg(long, default_value = "patchsync-demo")]
        dir: PathBuf,
        #[arg(long, default_value_t = 20000)]
        updates: usize,
    },
}

#[derive(Subcommand, Debug)]
pub enum RulesCommand {
    /// Check a rule file alone: every rule compiled, every mistake named with its line.
    Check { file: PathBuf },
}

#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// Load a plugin from its manifest as a sync would: digest, contract version, compile,
    /// instantiate, init with its config.
    Check {
        manifest: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum ExportFormat {
    Patchsync,
    Wsus,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum KindArg {
    Company,
    ProductFamily,
    Product,
    Classification,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum StateArg {
    Active,
    Expired,
    All,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", message(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, `: `-separated, each said once: an engine error's message
/// already carries the I/O error under it.
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::message;

    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device");
        let e = anyhow::Error::new(patchsync::Error::Io {
            path: "out/x.pkg".into(),
            source: io,
        });
        assert_eq!(message(&e), "out/x.pkg: No space left on device");
        let e = anyhow::anyhow!("disk gone").context("writing out/x.pkg");
        assert_eq!(message(&e), "writing out/x.pkg: disk gone");
    }
}
