//! `patchsync export`: writes a package from one read snapshot of the store, streaming (one
//! update at a time), to a temporary file renamed into place only when complete.

use std::io::{BufWriter, Seek, Write};
use std::path::Path;

use base64::Engine as _;
use rusqlite::params;
use sha2::{Digest, Sha256};

use super::pipe::PartWriter;
use super::{
    Counts, END_MAGIC, FILE_URLS, FORMAT, FORMAT_VERSION, FileUrlLine, INDEX, IndexLine, MAGIC,
    Manifest, PackageKind, REMOVED, RemovedLine, Signature, SigningKey, UPDATES,
};
use crate::error::{Error, Result};
use crate::model::UpdateId;
use crate::store::Store;

/// What to export.
#[derive(Debug, Default)]
pub struct ExportOptions<'a> {
    /// Only the changes after this catalog version (an incremental package).
    pub since: Option<u64>,
    /// Sign the manifest with this key.
    pub sign: Option<&'a SigningKey>,
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A zstd-compressed JSON-lines part.
fn jsonl_part<T: serde::Serialize>(
    w: &mut PartWriter,
    name: &'static str,
    rows: impl IntoIterator<Item = Result<T>>,
    out: &Path,
) -> Result<()> {
    let io = |e: std::io::Error| Error::io(out, e);
    let mut enc = zstd::Encoder::new(&mut *w, 1).map_err(io)?;
    let mut line = Vec::with_capacity(256);
    for row in rows {
        line.clear();
        serde_json::to_writer(&mut line, &row?).map_err(|e| Error::package(out, e.to_string()))?;
        line.push(b'\n');
        enc.write_all(&line).map_err(io)?;
    }
    enc.finish().map_err(io)?;
    w.cut(name).map_err(io)
}

/// Writes the store's catalog (or its changes since `opts.since`) to `out`.
pub fn export_package(store: &Store, out: &Path, opts: &ExportOptions<'_>) -> Result<Manifest> {
    let e = |x: rusqlite::Error| store.err(x);
    let io = |x: std::io::Error| Error::io(out, x);
    // One snapshot for everything read below: a sync may commit meanwhile.
    let snapshot = store.conn.unchecked_transaction().map_err(e)?;
    let to_version = store.catalog_version()?;
    let site_id = store.meta("site_id")?.ok_or_else(|| {
        store.err("meta.site_id is missing; open the store with this patchsync to migrate it")
    })?;
    let site_name = store.meta("site_name")?.unwrap_or_default();
    let (kind, from_version) = match opts.since {
        None => (PackageKind::Full, 0),
        Some(v) if v > to_version => {
            return Err(Error::package(
                out,
                format!(
                    "--since {v} is ahead of this site's catalog version {to_version}; \
                     give the version the importing site last imported"
                ),
            ));
        }
        Some(v) => {
            let tracked: u64 = store
                .meta("removals_since")?
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            if v < tracked {
                return Err(Error::package(
                    out,
                    format!(
                        "this store records removals from catalog version {tracked} on; \
                         changes since {v} cannot be complete: export a full package (no --since)"
                    ),
                ));
            }
            (PackageKind::Incremental, v)
        }
    };
    let content_digest = store.current_content_digest()?;

    let dir = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // Like every file patchsync writes, the package's folder is made if missing.
    std::fs::create_dir_all(dir).map_err(|x| Error::io(dir, x))?;
    let tmp = tempfile::Builder::new()
        .prefix(".patchsync-export-")
        .tempfile_in(dir)
        .map_err(|x| Error::io(dir, x))?;
    let mut file = tmp.reopen().map_err(io)?;
    file.write_all(MAGIC).map_err(io)?;
    // The parts are hashed and written on a thread of their own while this one reads.
    let mut w = PartWriter::start(file).map_err(io)?;
    let mut counts = Counts::default();

    // updates.bin, with the index spooled beside it (one pass over the records).
    let index_spool = tempfile::tempfile_in(dir).map_err(|x| Error::io(dir, x))?;
    let mut index = zstd::Encoder::new(BufWriter::new(index_spool), 1).map_err(io)?;
    {
        // Categories and detectoids first (an importer then knows the category tree before
        // the updates that name it), each group in store order: no sort of the blobs.
        let select = |categories: bool| {
            format!(
                "SELECT u.id, u.revision, u.state, u.update_type, x.xml,
                        EXISTS (SELECT 1 FROM pins p WHERE p.update_id = u.id)
                 FROM updates u {} JOIN update_xml x ON x.uid = u.uid
                 WHERE u.update_type {} IN ('Category', 'Detectoid') {}
                 ORDER BY u.uid",
                // A change is a small share of the catalog: find it by its version.
                if kind == PackageKind::Full {
                    ""
                } else {
                    "INDEXED BY updates_by_changed_version"
                },
                if categories { "" } else { "NOT" },
                if kind == PackageKind::Full {
                    ""
                } else {
                    "AND u.changed_version > ?1"
                },
            )
        };
        let mut text = Vec::with_capacity(256);
        for categories in [true, false] {
            let mut s = store.conn.prepare(&select(categories)).map_err(e)?;
            let mut rows = if kind == PackageKind::Full {
                s.query([])
            } else {
                s.query(params![from_version as i64])
            }
            .map_err(e)?;
            while let Some(r) = rows.next().map_err(e)? {
                let id: String = r.get(0).map_err(e)?;
                let id = UpdateId::parse(&id).map_err(|m| store.err(m))?;
                let line = IndexLine {
                    id,
                    revision: r.get(1).map_err(e)?,
                    state: r.get(2).map_err(e)?,
                    update_type: r.get(3).map_err(e)?,
                    pinned: r.get(5).map_err(e)?,
                };
                let xml = r
                    .get_ref(4)
                    .map_err(e)?
                    .as_blob()
                    .map_err(|x| store.err(x))?;
                let len = u32::try_from(xml.len())
                    .map_err(|_| store.err(format!("update {id}: metadata over 4 GiB")))?;
                w.write_all(id.0.as_bytes()).map_err(io)?;
                w.write_all(&line.revision.to_le_bytes()).map_err(io)?;
                w.write_all(&len.to_le_bytes()).map_err(io)?;
                w.write_all(xml).map_err(io)?;
                counts.updates += 1;
                counts.categories += u64::from(line.update_type == "Category");
                counts.expired += u64::from(line.state == "expired");
                counts.pinned += u64::from(line.pinned);
                text.clear();
                serde_json::to_writer(&mut text, &line)
                    .map_err(|x| Error::package(out, x.to_string()))?;
                text.push(b'\n');
                index.write_all(&text).map_err(io)?;
            }
        }
        w.cut(UPDATES).map_err(io)?;
    }
    let mut spool = index
        .finish()
        .map_err(io)?
        .into_inner()
        .map_err(|x| io(x.into_error()))?;
    spool.rewind().map_err(io)?;
    std::io::copy(&mut spool, &mut w).map_err(io)?;
    w.cut(INDEX).map_err(io)?;

    let removed: Vec<Result<RemovedLine>> = if kind == PackageKind::Incremental {
        let mut s = store
            .conn
            .prepare(
                "SELECT r.update_id, r.removed_version FROM removed_updates r
                 WHERE r.removed_version > ?1
                   AND NOT EXISTS (SELECT 1 FROM updates u WHERE u.id = r.update_id)
                 ORDER BY r.update_id",
            )
            .map_err(e)?;
        s.query_map(params![from_version as i64], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })
        .map_err(e)?
        .map(|row| {
            let (id, version) = row.map_err(e)?;
            Ok(RemovedLine {
                id: UpdateId::parse(&id).map_err(|m| store.err(m))?,
                version: version as u64,
            })
        })
        .collect()
    } else {
        Vec::new()
    };
    counts.removed = removed.len() as u64;
    jsonl_part(&mut w, REMOVED, removed, out)?;

    {
        // A full package carries every URL the site knows; an incremental one those of the
        // files of the updates it carries.
        let mut s = store
            .conn
            .prepare(if kind == PackageKind::Full {
                "SELECT digest, url FROM file_urls WHERE ?1 = 0"
            } else {
                "SELECT DISTINCT fu.digest, fu.url
                 FROM updates u INDEXED BY updates_by_changed_version
                 CROSS JOIN files f ON f.uid = u.uid
                 JOIN file_urls fu ON fu.digest = f.digest
                 WHERE u.changed_version > ?1"
            })
            .map_err(e)?;
        let rows = s
            .query_map(params![from_version as i64], |r| {
                Ok(FileUrlLine {
                    digest: r.get(0)?,
                    url: r.get(1)?,
                })
            })
            .map_err(e)?
            .map(|r| r.map_err(e));
        let mut n = 0u64;
        jsonl_part(&mut w, FILE_URLS, rows.inspect(|_| n += 1), out)?;
        counts.file_urls = n;
    }
    drop(snapshot);
    let (file, parts) = w.finish().map_err(io)?;
    let mut file = BufWriter::new(file);

    let manifest = Manifest {
        format: FORMAT.to_owned(),
        format_version: FORMAT_VERSION,
        site_id,
        site_name,
        kind,
        from_version,
        to_version,
        created: crate::store::now_rfc3339(),
        content_digest,
        counts,
        parts,
    };
    let bytes =
        serde_json::to_vec_pretty(&manifest).map_err(|x| Error::package(out, x.to_string()))?;
    let signature = match opts.sign {
        Some(key) => serde_json::to_vec_pretty(&Signature {
            algorithm: "ed25519".into(),
            public_key: key.public_text(),
            signature: base64::engine::general_purpose::STANDARD.encode(key.sign(&bytes)),
        })
        .map_err(|x| Error::package(out, x.to_string()))?,
        None => Vec::new(),
    };
    file.write_all(&bytes).map_err(io)?;
    file.write_all(&signature).map_err(io)?;
    file.write_all(&(bytes.len() as u64).to_le_bytes())
        .map_err(io)?;
    file.write_all(&(signature.len() as u64).to_le_bytes())
        .map_err(io)?;
    file.write_all(&Sha256::digest(&bytes)).map_err(io)?;
    file.write_all(END_MAGIC).map_err(io)?;
    file.flush().map_err(io)?;
    file.get_ref().sync_all().map_err(io)?;
    drop(file);
    tmp.persist(out).map_err(|x| io(x.error))?;
    Ok(manifest)
}
