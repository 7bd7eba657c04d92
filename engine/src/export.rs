//! Exports of the store. `export_wsus` writes the active catalog as a `wsusutil export`
//! package (`package.xml` + `metadata.txt` in a CAB) that a WSUS server, or patchsync's
//! `wsus-export` source, reads back to the same catalog. Streaming: one update at a time.

use std::path::Path;

use rusqlite::params;
use serde::Serialize;

use crate::error::Result;
use crate::generate::{PackageEntry, WsusExportWriter};
use crate::model::LANGUAGES;
use crate::store::Store;

/// What an export wrote.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExportSummary {
    /// Update revisions written (categories and detectoids included).
    pub records: u64,
    /// Files listed in `package.xml` with their download URL.
    pub files: u64,
    /// Active updates whose metadata is not update XML (vendor packages in the SDP schema):
    /// WSUS takes those through a publishing tool, not an export package.
    pub skipped_vendor_packages: u64,
}

/// Whether a stored document is update XML (root element `Update`, any prefix).
pub(crate) fn is_update_xml(xml: &str) -> bool {
    let mut rest = xml.trim_start_matches('\u{feff}');
    loop {
        let Some(i) = rest.find('<') else {
            return false;
        };
        rest = &rest[i + 1..];
        if rest.starts_with('?') || rest.starts_with('!') {
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '>' && *c != '/')
            .collect();
        return name.rsplit(':').next() == Some("Update");
    }
}

/// Writes the store's active catalog to `out` as a WSUS export package; `server_id` is the
/// GUID `package.xml` names as its source server.
pub fn export_wsus(store: &Store, out: &Path, server_id: &str) -> Result<ExportSummary> {
    let conn = &store.conn;
    let e = |x: rusqlite::Error| store.err(x);
    let mut summary = ExportSummary::default();

    let mut langs: Vec<(u32, String, String)> = Vec::new();
    {
        let mut s = conn
            .prepare("SELECT DISTINCT language FROM localized ORDER BY 1")
            .map_err(e)?;
        let kept = s
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(e)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(e)?;
        for l in kept {
            let (id, long) = LANGUAGES
                .iter()
                .find(|(s, _, _)| s.eq_ignore_ascii_case(&l))
                .map(|(_, id, long)| (*id, (*long).to_owned()))
                .unwrap_or((0, l.clone()));
            langs.push((id, l, long));
        }
    }
    let mut w = WsusExportWriter::create(out, langs)?;

    {
        let mut s = conn
            .prepare(
                "SELECT DISTINCT f.digest, fu.url, f.name FROM files f
                 JOIN updates u ON u.uid = f.uid
                 JOIN file_urls fu ON fu.digest = f.digest
                 WHERE u.state = 'active' AND f.digest IS NOT NULL",
            )
            .map_err(e)?;
        let mut rows = s.query([]).map_err(e)?;
        while let Some(r) = rows.next().map_err(e)? {
            let digest: String = r.get(0).map_err(e)?;
            let url: String = r.get(1).map_err(e)?;
            let name: String = r.get(2).map_err(e)?;
            w.add_file(&digest, &url, &name)?;
            summary.files += 1;
        }
    }

    // Categories and detectoids first, as WSUS writes them, then everything else.
    let mut updates = conn
        .prepare(
            "SELECT u.uid, u.id, u.revision, x.xml FROM updates u JOIN update_xml x ON x.uid = u.uid
             WHERE u.state = 'active'
             ORDER BY u.update_type NOT IN ('Category', 'Detectoid'), u.uid",
        )
        .map_err(e)?;
    let mut digests = conn
        .prepare_cached("SELECT digest FROM files WHERE uid = ?1 AND digest IS NOT NULL")
        .map_err(e)?;
    let mut categories = conn
        .prepare_cached(
            "SELECT uc.category_id, c.kind FROM update_categories uc
             LEFT JOIN categories c ON c.id = uc.category_id WHERE uc.uid = ?1",
        )
        .map_err(e)?;
    let mut rows = updates.query([]).map_err(e)?;
    while let Some(r) = rows.next().map_err(e)? {
        let uid: i64 = r.get(0).map_err(e)?;
        let id: String = r.get(1).map_err(e)?;
        let revision: u32 = r.get(2).map_err(e)?;
        let packed = r
            .get_ref(3)
            .map_err(e)?
            .as_blob()
            .map_err(|x| store.err(x))?;
        let xml = zstd::decode_all(packed)
            .map_err(|x| store.err(format!("update {id}: stored XML does not decompress: {x}")))?;
        let xml = String::from_utf8(xml)
            .map_err(|x| store.err(format!("update {id}: stored XML is not UTF-8: {x}")))?;
        if !is_update_xml(&xml) {
            summary.skipped_vendor_packages += 1;
            continue;
        }
        let mut entry = PackageEntry::default();
        let list = digests
            .query_map(params![uid], |r| r.get::<_, String>(0))
            .map_err(e)?;
        for d in list {
            entry.file_digests.push(d.map_err(e)?);
        }
        let list = categories
            .query_map(params![uid], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
            })
            .map_err(e)?;
        for c in list {
            let (cid, kind) = c.map_err(e)?;
            if kind.as_deref() == Some("UpdateClassification") {
                entry.classifications.push(cid);
            } else {
                entry.categories.push(cid);
            }
        }
        w.add_update(&id, revision, &xml, &entry)?;
        summary.records += 1;
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    w.finish(server_id, &now)?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_xml_is_told_from_vendor_packages() {
        assert!(is_update_xml(
            "\u{feff}<?xml version=\"1.0\"?><upd:Update xmlns:upd=\"x\"/>"
        ));
        assert!(is_update_xml("<!-- c --><Update xmlns=\"x\">"));
        assert!(!is_update_xml("<sdp:SoftwareDistributionPackage>"));
        assert!(!is_update_xml(""));
    }
}
