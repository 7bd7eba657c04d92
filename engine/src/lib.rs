//! patchsync: synchronizes software update metadata from catalog sources into a SQLite store.
//!
//! # Core concepts
//!
//! - A **site** ([`Engine`]) has a [`Config`]: its store, its catalog sources, its filter.
//! - A **catalog source** ([`source::CatalogSource`]) lists what it holds (update ids and
//!   revisions, or a fingerprint meaning "unchanged") and fetches the metadata the engine
//!   asks for. Built in: WSUS export packages and directories of update XML.
//! - The **filter chain** ([`filter::FilterChain`]) decides which updates enter the store:
//!   built-in product / classification selection first, then the host's own stages.
//!   Categories and detectoids are always synced; bundles bring their leaves.
//! - The **store** ([`store::Store`]) is one SQLite file (WAL): readers keep working during a
//!   sync, and each source is applied in one transaction, so a killed sync loses nothing.
//! - Each sync that changes anything raises the **catalog version** by one.
//! - **Plugins** ([`plugin`]): filter stages and catalog sources as sandboxed WebAssembly
//!   components (the `patchsync:plugin` WIT contract in `sdk/wit/`), or trusted native
//!   libraries; a manifest beside each says what it is and may do.
//! - **Export packages** ([`package`]) carry a site's catalog, whole or the changes since a
//!   catalog version, signed, to a disconnected site, whose import is a sync of one source.
//!
//! # Embedding
//!
//! ```no_run
//! use patchsync::{Config, Engine, SyncOptions};
//! # fn main() -> patchsync::Result<()> {
//! let mut engine = Engine::open(Config::load("patchsync.toml".as_ref())?)?;
//! let report = engine.sync(SyncOptions::default(), &mut |event| println!("{event:?}"))?;
//! println!("catalog version {}: {} new", report.catalog_version, report.new);
//! for u in engine.updates(&Default::default())? {
//!     println!("{} {}", u.id, u.title.unwrap_or_default());
//! }
//! # Ok(()) }
//! ```

pub mod config;
mod engine;
pub mod error;
pub mod events;
pub mod explain;
pub mod export;
pub mod filter;
pub mod generate;
pub mod hierarchy;
pub mod model;
pub mod package;
pub mod plugin;
pub mod rules;
pub mod schedule;
pub mod source;
pub mod store;
pub mod sync;
mod synclog;
pub mod xml;

pub use config::Config;
pub use engine::{Engine, ImportedFrom, PackageImport, Plan, Status, status_of};
pub use error::{Error, Result};
pub use events::{Phase, SyncEvent};
pub use store::UpdateQuery;
pub use sync::{SyncOptions, SyncReport};
