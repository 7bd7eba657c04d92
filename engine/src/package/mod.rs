//! Export packages: a site's catalog, whole or the changes since a catalog version, as one
//! signed file a disconnected site imports (`patchsync export` / `patchsync import`).
//!
//! The format (version 1, `engine/docs/package.md`) is one file, written front to back:
//! a 16-byte magic, the parts, `manifest.json` (which names every part with its size and
//! SHA-256), an optional signature (ed25519 over the manifest's exact bytes), and a
//! 64-byte footer (the manifest's and signature's lengths, the manifest's SHA-256, an end
//! magic). Every byte is covered by a digest, the signature or a length check. Parts:
//!
//! - `updates.bin`: one record per update, its id (16 bytes), revision (u32 LE), length
//!   (u32 LE) and metadata XML as the store keeps it (zstd);
//! - `index.jsonl.zst`: one line per record, same order: id, revision, state, type, pinned;
//! - `removed.jsonl.zst`: updates deleted from the catalog (incremental packages);
//! - `file_urls.jsonl.zst`: download URLs of the records' files, by digest.
//!
//! Export streams from one read snapshot of the store while a writer thread hashes and
//! writes the parts; import verifies the manifest, its signature and every part's digest
//! before it touches the store, then applies the package as a sync of one source
//! ([`IMPORT_SOURCE`]) in one transaction.

mod keys;
mod pipe;
mod read;
mod source;
mod write;

use serde::{Deserialize, Serialize};

pub use keys::{
    GeneratedKey, PUBLIC_KEY_PREFIX, SigningKey, key_id, parse_public_key, public_key_text,
};
pub use read::OpenedPackage;
pub(crate) use source::{ImportCursor, PackageSource};
pub use write::{ExportOptions, export_package};

/// `manifest.json`'s `format`.
pub const FORMAT: &str = "patchsync-package";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The source name the updates `patchsync import` brings in are stored under.
pub const IMPORT_SOURCE: &str = "import";

/// The first 16 bytes of every package.
pub(crate) const MAGIC: &[u8; 16] = b"PATCHSYNC-PKG\r\n\x1a";
/// The last 8 bytes of every complete package.
pub(crate) const END_MAGIC: &[u8; 8] = b"PSPKGEND";
/// Manifest length (u64 LE), signature length (u64 LE), manifest SHA-256, [`END_MAGIC`].
pub(crate) const FOOTER_LEN: u64 = 8 + 8 + 32 + 8;
pub(crate) const MANIFEST: &str = "manifest.json";
pub(crate) const SIGNATURE: &str = "signature";
pub(crate) const INDEX: &str = "index.jsonl.zst";
pub(crate) const UPDATES: &str = "updates.bin";
pub(crate) const REMOVED: &str = "removed.jsonl.zst";
pub(crate) const FILE_URLS: &str = "file_urls.jsonl.zst";
/// Every part a version 1 package has, in the order they are written.
pub(crate) const PARTS: [&str; 4] = [UPDATES, INDEX, REMOVED, FILE_URLS];

/// Whole catalog, or the changes since a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageKind {
    Full,
    Incremental,
}

/// What a package holds, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Update records (categories and detectoids included).
    pub updates: u64,
    /// Of those: categories.
    pub categories: u64,
    /// Of those: expired.
    pub expired: u64,
    /// Of those: pinned on the exporting site.
    pub pinned: u64,
    /// Updates deleted from the catalog since `from_version`.
    pub removed: u64,
    pub file_urls: u64,
}

/// One part of the package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub name: String,
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
}

/// `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    /// The exporting site's id (`meta.site_id`): the package's lineage.
    pub site_id: String,
    pub site_name: String,
    pub kind: PackageKind,
    /// The catalog version the changes start after (0 for a full package).
    pub from_version: u64,
    /// The exporting site's catalog version the package brings the importer to.
    pub to_version: u64,
    pub created: String,
    /// The exporting site's `content_digest` at `to_version`.
    pub content_digest: String,
    pub counts: Counts,
    pub parts: Vec<Part>,
}

/// The signature: an ed25519 signature over the exact bytes of the manifest (JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Signature {
    pub algorithm: String,
    /// `ed25519:<base64>`.
    pub public_key: String,
    /// Base64.
    pub signature: String,
}

/// One line of `index.jsonl.zst`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct IndexLine {
    pub id: crate::model::UpdateId,
    pub revision: u32,
    /// `active` or `expired`.
    pub state: String,
    #[serde(rename = "type")]
    pub update_type: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pinned: bool,
}

/// One line of `removed.jsonl.zst`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RemovedLine {
    pub id: crate::model::UpdateId,
    /// The catalog version that deleted it.
    pub version: u64,
}

/// One line of `file_urls.jsonl.zst`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FileUrlLine {
    pub digest: String,
    pub url: String,
}
