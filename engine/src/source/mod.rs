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

mod cab_stream;
mod container;
mod directory;
pub mod location;
mod mszip;
mod prefetch;
mod records;
mod sdp;
mod wsus_export;
mod wsusscn2;

use std::collections::HashSet;

pub use directory::DirectorySource;
pub use records::{MetadataRecord, RecordReader};
pub use sdp::SdpCatalogSource;
pub use wsus_export::WsusExportSource;
pub use wsusscn2::Wsusscn2Source;

use crate::error::Result;
use crate::model::{Identity, Update, UpdateId};

/// What a catalog holds now.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub entries: Vec<Identity>,
    /// `true` when the listing names everything the catalog has, so that an update missing
    /// from it was removed upstream (and is marked expired). `false` for change feeds.
    pub complete: bool,
    /// A change feed's expirations: updates to mark expired (kept, like a complete
    /// listing's missing ones), whether or not they are listed.
    pub expired: Vec<UpdateId>,
    /// A change feed's removals: updates deleted from the catalog upstream, deleted here
    /// too (pinned ones are kept) and counted as removed.
    pub removed: Vec<UpdateId>,
}

/// One thing a fetch hands back.
#[derive(Debug)]
pub enum Fetched {
    /// One update revision, parsed; `origin` names where it came from (file, record).
    Update { update: Box<Update>, origin: String },
    /// An update whose metadata comes already compressed as the store keeps it (zstd, see
    /// `store::write::compress_xml`): stored as given, not compressed again.
    /// `update.raw_xml` holds the same text.
    Stored {
        update: Box<Update>,
        origin: String,
        raw_zstd: Vec<u8>,
    },
    /// The download URL of a file, joined to update files by digest.
    FileUrl { digest: String, url: String },
    /// A line the source logged (a plugin's log call or output), for the sync log.
    Log {
        level: &'static str,
        message: String,
    },
    /// Something the admin should know that does not stop the sync (an unknown
    /// classification, an update stored without one of its fragments); goes to the report.
    Warning(String),
}

/// A catalog of update metadata. Implementations: [`WsusExportSource`], [`DirectorySource`];
/// later, offline scan files, vendor catalogs, parent sites and plugins.
pub trait CatalogSource: Send {
    /// The name given in the site config; used in errors and reports.
    fn name(&self) -> &str;

    /// Hands the source the cursor it returned at the end of its last successful sync
    /// (`None` on the first sync). Called before anything else.
    fn resume(&mut self, cursor: Option<&str>) {
        let _ = cursor;
    }

    /// The languages the site keeps. A source whose catalog stores each language apart (the
    /// offline scan file) may skip the others; the rest ignore this.
    fn languages(&mut self, keep: &crate::filter::LanguageSelection) {
        let _ = keep;
    }

    /// An opaque cursor the engine stores with this sync's data, in the same transaction,
    /// and hands back through [`resume`](Self::resume) next time (an anchor, the revisions
    /// a source derived). Called after the fetch.
    fn cursor(&mut self) -> Option<String> {
        None
    }

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

    /// Whether the removals this source announces were already checked against the
    /// mass-removal guard where they were decided (a parent site's, which this site
    /// follows); such a source is not guarded again.
    fn removals_already_guarded(&self) -> bool {
        false
    }

    /// Whether the source wants the site's selection (`selection` is called only then).
    fn asks_for_selection(&self) -> bool {
        false
    }

    /// The site's products and classifications, with the categories the store knows, for
    /// a source whose server can be asked for that selection only (a WSUS server or
    /// Microsoft Update). The engine's own filter still decides what is kept.
    fn selection(
        &mut self,
        _products: &crate::filter::Pick,
        _classifications: &crate::filter::Pick,
        _known: &crate::filter::CategoryTree,
    ) {
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

/// Reads metadata as the store keeps it (update XML, or a vendor package in the SDP schema)
/// back into an update; the revision of a vendor package is the caller's to set.
pub(crate) fn parse_stored(xml: &str) -> std::result::Result<Update, String> {
    if crate::export::is_update_xml(xml) {
        crate::xml::parse_update(xml).map_err(|e| e.to_string())
    } else {
        sdp::parse_stored_package(xml)
    }
}

/// The source a `[[source]]` entry of the site config describes.
pub fn open_configured(s: &crate::config::SourceConfig) -> Box<dyn CatalogSource> {
    use crate::config::SourceKind;
    use location::Location;
    let path = match &s.location {
        Location::Path(p) => p.clone(),
        Location::Url(u) => std::path::PathBuf::from(u),
    };
    match s.kind {
        SourceKind::WsusExport => Box::new(WsusExportSource::new(&s.name, path)),
        SourceKind::Directory => Box::new(DirectorySource::new(&s.name, path)),
        SourceKind::SdpCatalog => Box::new(SdpCatalogSource::new(
            &s.name,
            s.location.clone(),
            s.sha256.clone(),
        )),
        SourceKind::Wsusscn2 => Box::new(Wsusscn2Source::new(
            &s.name,
            s.location.clone(),
            s.sha256.clone(),
        )),
        SourceKind::Upstream => Box::new(crate::hierarchy::UpstreamSource::new(
            &s.name,
            &path.to_string_lossy(),
            s.auth
                .clone()
                .expect("an upstream source has its credentials"),
        )),
        SourceKind::WsusServer => Box::new(
            crate::hierarchy::UpstreamSource::new(
                &s.name,
                &path.to_string_lossy(),
                s.auth
                    .clone()
                    .expect("a wsus-server source has its credentials"),
            )
            .selecting(),
        ),
        SourceKind::Plugin => {
            let (plugin, cache) = s.plugin.clone().expect("a plugin source has its plugin");
            Box::new(crate::plugin::WasmSource::new(&s.name, plugin, Some(cache)))
        }
    }
}
