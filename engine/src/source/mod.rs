//! Catalog sources: where update metadata comes from, behind one small trait.
//!
//! A sync asks a source three things, cheapest first:
//! 1. [`CatalogSource::fingerprint`]: a short string that changes whenever the catalog may
//!    have changed (file size and time, an ETag, an anchor). Equal to the stored one → nothing
//!    to do.
//! 2. [`CatalogSource::list`]: every identity (update id + revision) the catalog holds.
//!    The engine diffs this against the store.
//! 3. [`CatalogSource::fetch`]: the full metadata of just the identities the engine asks for,
//!    handed to a sink one by one. A network source pages this request itself.

mod directory;
mod records;
mod wsus_export;

use std::collections::HashSet;

pub use directory::DirectorySource;
pub use records::{MetadataRecord, RecordReader};
pub use wsus_export::WsusExportSource;

use crate::error::Result;
use crate::model::{Identity, Update};

/// What a catalog holds now.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub entries: Vec<Identity>,
    /// `true` when the listing names everything the catalog has, so that an update missing
    /// from it was removed upstream (and is marked expired). `false` for change feeds.
    pub complete: bool,
}

/// One thing a fetch hands back.
#[derive(Debug)]
pub enum Fetched {
    /// One update revision, parsed; `origin` names where it came from (file, record).
    Update { update: Box<Update>, origin: String },
    /// The download URL of a file, joined to update files by digest.
    FileUrl { digest: String, url: String },
}

/// A catalog of update metadata. Implementations: [`WsusExportSource`], [`DirectorySource`];
/// later, offline scan files, vendor catalogs, parent sites and plugins.
pub trait CatalogSource: Send {
    /// The name given in the site config; used in errors and reports.
    fn name(&self) -> &str;

    /// A string that changes whenever the catalog may have changed; `None` if the source
    /// cannot tell cheaply.
    fn fingerprint(&mut self) -> Result<Option<String>> {
        Ok(None)
    }

    /// Every identity the catalog holds.
    fn list(&mut self) -> Result<Listing>;

    /// Hands the metadata of each identity in `wanted` to `sink`, in the source's order.
    /// Identities not in `wanted` are skipped without being parsed. The engine calls this on
    /// a worker thread and writes to the store on its own, so reading and parsing overlap
    /// with writing; when `sink` returns an error, stop and return it.
    fn fetch(
        &mut self,
        wanted: &HashSet<Identity>,
        sink: &mut dyn FnMut(Fetched) -> Result<()>,
    ) -> Result<()>;

    /// Whether [`list_and_fetch`](Self::list_and_fetch) does the work of `list` and `fetch`
    /// in one pass (a package without an index, which would otherwise be read twice).
    fn lists_while_fetching(&self) -> bool {
        false
    }

    /// Lists the catalog and fetches what `want` accepts in one pass, returning the listing.
    /// Only called when [`lists_while_fetching`](Self::lists_while_fetching) says so.
    fn list_and_fetch(
        &mut self,
        want: &(dyn Fn(Identity) -> bool + Sync),
        sink: &mut dyn FnMut(Fetched) -> Result<()>,
    ) -> Result<Option<Listing>> {
        let _ = (want, sink);
        Ok(None)
    }
}
