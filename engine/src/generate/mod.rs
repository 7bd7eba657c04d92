//! Synthetic catalogs shaped like Microsoft's, for benchmarks, demos and tests:
//! `generate` writes a WSUS export package, `evolve` writes "next month" plus a manifest
//! of exactly what changed.

mod catalog;
mod evolve;
mod offline;
mod wsus_writer;
pub(crate) mod xmlgen;

pub use catalog::{GenerateOptions, GenerateSummary, generate};
pub use evolve::{EvolveManifest, EvolveOptions, changes_path, evolve};
pub use offline::generate_offline;
pub use wsus_writer::{PackageEntry, WsusExportWriter, xml_escape};
