//! A verified package as a catalog source: `patchsync import` is a sync of this one source,
//! so the site's language selection, filter, delta semantics and catalog version apply.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};

use serde::{Deserialize, Serialize};

use super::read::damaged;
use super::{
    FILE_URLS, FileUrlLine, IMPORT_SOURCE, INDEX, IndexLine, OpenedPackage, PackageKind, REMOVED,
    RemovedLine, UPDATES,
};
use crate::error::{Error, Result};
use crate::model::{Identity, UpdateId};
use crate::source::{CatalogSource, Fetched, Listing};

/// What the import source remembers between imports: whose catalog, up to which version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ImportCursor {
    pub site_id: String,
    pub site_name: String,
    pub version: u64,
}

impl ImportCursor {
    /// What the store's `import` source remembers, if the site imported anything.
    pub fn of(store: &crate::store::Store) -> Result<Option<ImportCursor>> {
        Ok(store
            .source_state(IMPORT_SOURCE)?
            .cursor
            .and_then(|c| serde_json::from_str(&c).ok()))
    }
}

/// One record of the index, compact.
#[derive(Debug, Clone, Copy)]
struct Entry {
    identity: Identity,
    expired: bool,
    pinned: bool,
}

pub(crate) struct PackageSource {
    package: OpenedPackage,
    entries: Vec<Entry>,
}

fn lines<T: for<'de> Deserialize<'de>>(
    package: &OpenedPackage,
    part: &str,
    mut each: impl FnMut(T) -> Result<()>,
) -> Result<()> {
    let path = &package.path;
    let dec = zstd::Decoder::new(package.part(part)?).map_err(|e| damaged(path, part, e))?;
    for (n, line) in BufReader::new(dec).lines().enumerate() {
        let line = line.map_err(|e| damaged(path, part, e))?;
        if line.is_empty() {
            continue;
        }
        let row: T = serde_json::from_str(&line)
            .map_err(|e| damaged(path, part, format!("line {}: {e}", n + 1)))?;
        each(row)?;
    }
    Ok(())
}

impl PackageSource {
    /// Reads the package's index (a verified package: see [`OpenedPackage::open`]).
    pub fn new(package: OpenedPackage) -> Result<PackageSource> {
        let mut entries = Vec::with_capacity(package.manifest.counts.updates as usize);
        lines(&package, INDEX, |l: IndexLine| {
            entries.push(Entry {
                identity: Identity {
                    id: l.id,
                    revision: l.revision,
                },
                expired: l.state == "expired",
                pinned: l.pinned,
            });
            Ok(())
        })?;
        if entries.len() as u64 != package.manifest.counts.updates {
            return Err(damaged(
                &package.path,
                INDEX,
                format!(
                    "{} records, the manifest counts {}",
                    entries.len(),
                    package.manifest.counts.updates
                ),
            ));
        }
        Ok(PackageSource { package, entries })
    }

    /// Updates the exporting site had pinned: the import keeps them whatever the filter says.
    pub fn pinned(&self) -> impl Iterator<Item = UpdateId> + '_ {
        self.entries
            .iter()
            .filter(|e| e.pinned)
            .map(|e| e.identity.id)
    }

    fn err(&self, item: impl Into<String>, message: impl Into<String>) -> Error {
        Error::source(IMPORT_SOURCE, item, message)
    }
}

impl CatalogSource for PackageSource {
    fn name(&self) -> &str {
        IMPORT_SOURCE
    }

    fn cursor(&mut self) -> Option<String> {
        let m = &self.package.manifest;
        serde_json::to_string(&ImportCursor {
            site_id: m.site_id.clone(),
            site_name: m.site_name.clone(),
            version: m.to_version,
        })
        .ok()
    }

    fn list(&mut self) -> Result<Listing> {
        let mut removed = Vec::new();
        lines(&self.package, REMOVED, |l: RemovedLine| {
            removed.push(l.id);
            Ok(())
        })?;
        Ok(Listing {
            entries: self.entries.iter().map(|e| e.identity).collect(),
            complete: self.package.manifest.kind == PackageKind::Full,
            expired: self
                .entries
                .iter()
                .filter(|e| e.expired)
                .map(|e| e.identity.id)
                .collect(),
            removed,
        })
    }

    fn fetch(
        &mut self,
        wanted: &HashSet<Identity>,
        sink: &mut dyn FnMut(Fetched) -> Result<()>,
    ) -> Result<()> {
        let path = self.package.path.clone();
        let mut r = self.package.part(UPDATES)?;
        let mut header = [0u8; 24];
        let mut packed = Vec::new();
        let mut decompressor =
            zstd::bulk::Decompressor::new().map_err(|e| self.err(UPDATES, e.to_string()))?;
        for (n, expected) in self.entries.iter().enumerate() {
            r.read_exact(&mut header)
                .map_err(|e| damaged(&path, UPDATES, format!("record {}: {e}", n + 1)))?;
            let id = UpdateId(uuid::Uuid::from_bytes(header[..16].try_into().expect("16")));
            let revision = u32::from_le_bytes(header[16..20].try_into().expect("4"));
            let len = u32::from_le_bytes(header[20..24].try_into().expect("4")) as usize;
            let identity = Identity { id, revision };
            if identity != expected.identity {
                return Err(damaged(
                    &path,
                    UPDATES,
                    format!(
                        "record {} is {id} revision {revision}, the index says {} revision {}",
                        n + 1,
                        expected.identity.id,
                        expected.identity.revision
                    ),
                ));
            }
            packed.resize(len, 0);
            r.read_exact(&mut packed)
                .map_err(|e| damaged(&path, UPDATES, format!("record {}: {e}", n + 1)))?;
            if !wanted.contains(&identity) {
                continue;
            }
            let item = || format!("{} update {id} revision {revision}", path.display());
            let xml = decompressor
                .decompress(&packed, len.saturating_mul(64).max(1 << 20))
                .or_else(|_| zstd::decode_all(&packed[..]))
                .map_err(|e| self.err(item(), format!("metadata does not decompress: {e}")))?;
            let xml = String::from_utf8(xml)
                .map_err(|e| self.err(item(), format!("metadata is not UTF-8: {e}")))?;
            let mut update = crate::source::parse_stored(&xml).map_err(|m| self.err(item(), m))?;
            if update.identity.id != id {
                return Err(self.err(
                    item(),
                    format!(
                        "its metadata is update {}; the package is inconsistent",
                        update.identity.id
                    ),
                ));
            }
            update.identity.revision = revision;
            sink(Fetched::Stored {
                update: Box::new(update),
                origin: item(),
                raw_zstd: std::mem::take(&mut packed),
            })?;
        }
        drop(r);
        lines(&self.package, FILE_URLS, |l: FileUrlLine| {
            sink(Fetched::FileUrl {
                digest: l.digest,
                url: l.url,
            })
        })?;
        Ok(())
    }
}
