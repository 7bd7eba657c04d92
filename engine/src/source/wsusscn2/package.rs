//! Streams `package.xml` (`OfflineSyncPackage`): one compact entry per revision, with the
//! integer `RevisionId` cross-references kept for the source to resolve, and the entry's own
//! XML kept verbatim for the revisions the caller asks for.

use std::io::{BufRead, Read};

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use crate::model::{CategoryKind, Identity, UpdateId};

/// One `Updates/Update` of package.xml.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub identity: Identity,
    pub revision_id: u32,
    pub creation_date: Option<String>,
    pub default_language: Option<String>,
    /// `Categories/Category`: kind (when the catalog names a known one) and id.
    pub categories: Vec<(Option<CategoryKind>, UpdateId)>,
    /// `Prerequisites/UpdateId` (all required) and `Prerequisites/Or/UpdateId` groups.
    pub prerequisites: Vec<UpdateId>,
    pub prerequisites_any: Vec<UpdateId>,
    /// RevisionIds of the bundles that carry this revision.
    pub bundled_by: Vec<u32>,
    /// RevisionIds of the revisions that supersede this one.
    pub superseded_by: Vec<u32>,
    /// The entry's XML, once [`capture_raw`] has copied it out.
    pub raw: Option<String>,
    /// Where the entry's XML lies in package.xml (after any byte-order mark), so a later
    /// pass can copy it out without parsing again.
    pub span: (u64, u64),
}

/// Everything package.xml says.
#[derive(Debug, Default)]
pub(crate) struct PackageXml {
    pub entries: Vec<Entry>,
    /// `FileLocations/FileLocation`: file id (its digest) → URL.
    pub file_locations: Vec<(String, String)>,
}

/// The elements whose nesting matters.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tag {
    Root,
    Updates,
    Update,
    Prerequisites,
    Or,
    Categories,
    BundledBy,
    SupersededBy,
    Other,
}

fn tag(local: &[u8]) -> Tag {
    match local {
        b"OfflineSyncPackage" => Tag::Root,
        b"Updates" => Tag::Updates,
        b"Update" => Tag::Update,
        b"Prerequisites" => Tag::Prerequisites,
        b"Or" => Tag::Or,
        b"Categories" => Tag::Categories,
        b"BundledBy" => Tag::BundledBy,
        b"SupersededBy" => Tag::SupersededBy,
        _ => Tag::Other,
    }
}

fn need(e: &BytesStart<'_>, name: &[u8], what: &str) -> Result<String, String> {
    parse_attr(e, name, what, |v| Ok(v.to_owned()))
}

/// `name`'s value, trimmed, handed to `parse` without a copy (ids and numbers: hundreds of
/// thousands per package.xml); an error if the element lacks it.
fn parse_attr<T>(
    e: &BytesStart<'_>,
    name: &[u8],
    what: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, String> {
    crate::xml::attr_parsed(e, name, parse)?
        .ok_or_else(|| format!("<{what}> without {}", String::from_utf8_lossy(name)))
}

fn guid(v: &str, what: &str) -> Result<UpdateId, String> {
    UpdateId::parse(v).map_err(|e| format!("{what}: {e}"))
}

fn number(v: &str, what: &str) -> Result<u32, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("{what} '{v}' is not a number"))
}

/// Reads package.xml (each entry's XML is left for [`capture_raw`]). Errors are plain
/// messages naming the update; the caller adds the source and file.
pub(crate) fn read_package_xml(mut input: impl BufRead) -> Result<PackageXml, String> {
    skip_bom(&mut input)?;
    let mut reader = Reader::from_reader(input);
    reader.config_mut().check_end_names = true;
    let mut buf = Vec::with_capacity(4096);
    let mut out = PackageXml::default();
    let mut path: Vec<Tag> = Vec::with_capacity(8);
    let mut cur: Option<Entry> = None;
    let mut saw_root = false;
    loop {
        buf.clear();
        let pos = reader.buffer_position();
        let ev = reader.read_event_into(&mut buf).map_err(|e| {
            let t = e.to_string();
            if t.contains("end of input") {
                format!("package.xml ends inside an element (byte {pos}): it is truncated")
            } else {
                format!("package.xml is malformed at byte {pos}: {t}")
            }
        })?;
        match &ev {
            Event::Start(e) | Event::Empty(e) => {
                let empty = matches!(ev, Event::Empty(_));
                let name = e.local_name();
                let local = name.as_ref();
                let this = tag(local);
                if path.is_empty() {
                    if this != Tag::Root {
                        return Err(format!(
                            "package.xml's root is <{}>, not OfflineSyncPackage: this is not an offline scan file",
                            String::from_utf8_lossy(local)
                        ));
                    }
                    saw_root = true;
                }
                let parent = path.last().copied();
                match (local, parent) {
                    (b"Update", Some(Tag::Updates)) => {
                        // One walk over the attributes (package.xml has one entry per revision).
                        let (mut id, mut rev, mut rid, mut created, mut lang) =
                            (None, None, None, None, None);
                        for a in e.attributes() {
                            let a = a.map_err(|x| format!("bad attribute: {x}"))?;
                            let v = || {
                                a.unescape_value()
                                    .map_err(|x| format!("bad attribute value: {x}"))
                            };
                            match a.key.local_name().as_ref() {
                                b"UpdateId" => id = Some(guid(v()?.trim(), "UpdateId")?),
                                b"RevisionNumber" => {
                                    rev = Some(number(v()?.trim(), "RevisionNumber")?)
                                }
                                b"RevisionId" => rid = Some(number(v()?.trim(), "RevisionId")?),
                                b"CreationDate" => created = Some(v()?.trim().to_owned()),
                                b"DefaultLanguage" => lang = Some(v()?.trim().to_owned()),
                                _ => {}
                            }
                        }
                        let missing = |what: &str| format!("<Update> without {what}");
                        let id = id.ok_or_else(|| missing("UpdateId"))?;
                        let rev = rev.ok_or_else(|| missing("RevisionNumber"))?;
                        let rid = rid.ok_or_else(|| missing("RevisionId"))?;
                        let identity = Identity { id, revision: rev };
                        let entry = Entry {
                            span: (pos, if empty { reader.buffer_position() } else { 0 }),
                            identity,
                            revision_id: rid,
                            creation_date: created,
                            default_language: lang,
                            categories: vec![],
                            prerequisites: vec![],
                            prerequisites_any: vec![],
                            bundled_by: vec![],
                            superseded_by: vec![],
                            raw: None,
                        };
                        if empty {
                            out.entries.push(entry);
                        } else {
                            cur = Some(entry);
                        }
                    }
                    (b"UpdateId", Some(Tag::Prerequisites)) | (b"UpdateId", Some(Tag::Or)) => {
                        if let Some(c) = cur.as_mut() {
                            let id = parse_attr(e, b"Id", "UpdateId", |v| guid(v, "prerequisite"))
                                .map_err(|m| format!("update {}: {m}", c.identity.id))?;
                            if parent == Some(Tag::Or) {
                                c.prerequisites_any.push(id);
                            } else {
                                c.prerequisites.push(id);
                            }
                        }
                    }
                    (b"Category", Some(Tag::Categories)) => {
                        if let Some(c) = cur.as_mut() {
                            let id = parse_attr(e, b"Id", "Category", |v| guid(v, "category"))
                                .map_err(|m| format!("update {}: {m}", c.identity.id))?;
                            let kind = crate::xml::attr_parsed(e, b"Type", |t| {
                                Ok(CategoryKind::parse(t))
                            })?
                            .flatten();
                            c.categories.push((kind, id));
                        }
                    }
                    (b"Revision", Some(Tag::BundledBy))
                    | (b"Revision", Some(Tag::SupersededBy)) => {
                        if let Some(c) = cur.as_mut() {
                            let r = parse_attr(e, b"Id", "Revision", |v| number(v, "Revision Id"))
                                .map_err(|m| format!("update {}: {m}", c.identity.id))?;
                            if parent == Some(Tag::BundledBy) {
                                c.bundled_by.push(r);
                            } else {
                                c.superseded_by.push(r);
                            }
                        }
                    }
                    (b"FileLocation", _) => {
                        let id = need(e, b"Id", "FileLocation")?;
                        let url = need(e, b"Url", "FileLocation")?;
                        out.file_locations.push((id, url));
                    }
                    _ => {}
                }
                if !empty {
                    path.push(this);
                }
            }
            Event::End(_) => {
                let closed = path.pop();
                if closed == Some(Tag::Update)
                    && path.last() == Some(&Tag::Updates)
                    && let Some(mut entry) = cur.take()
                {
                    entry.span.1 = reader.buffer_position();
                    out.entries.push(entry);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !saw_root {
        return Err("package.xml is empty".into());
    }
    if !path.is_empty() {
        return Err("package.xml ends before </OfflineSyncPackage>: it is truncated".into());
    }
    Ok(out)
}

fn skip_bom(input: &mut impl BufRead) -> Result<(), String> {
    let bom = input
        .fill_buf()
        .map_err(|e| format!("cannot read package.xml: {e}"))?
        .starts_with(b"\xEF\xBB\xBF");
    if bom {
        input.consume(3);
    }
    Ok(())
}

/// Copies the XML of the entries `keep_raw` accepts out of package.xml by their spans, in
/// one sequential read without parsing.
pub(crate) fn capture_raw(
    mut input: impl BufRead,
    entries: &mut [Entry],
    keep_raw: &dyn Fn(Identity) -> bool,
) -> Result<(), String> {
    skip_bom(&mut input)?;
    let mut at: u64 = 0;
    let cut = || {
        "package.xml is shorter than when it was listed: download the offline scan file again"
            .to_owned()
    };
    for e in entries.iter_mut() {
        if !keep_raw(e.identity) {
            continue;
        }
        let (start, end) = e.span;
        if start < at || end < start {
            return Err("package.xml changed between listing and reading: sync again".into());
        }
        let skipped = std::io::copy(&mut (&mut input).take(start - at), &mut std::io::sink())
            .map_err(|e| e.to_string())?;
        if skipped != start - at {
            return Err(cut());
        }
        let mut bytes = vec![0u8; (end - start) as usize];
        input.read_exact(&mut bytes).map_err(|_| cut())?;
        e.raw =
            Some(String::from_utf8(bytes).map_err(|e| format!("package.xml is not UTF-8: {e}"))?);
        at = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<OfflineSyncPackage xmlns="http://schemas.microsoft.com/msus/2004/02/OfflineSync"><Updates>
<Update CreationDate="2017-06-27T00:03:52Z" DefaultLanguage="en" UpdateId="0a51549b-4e86-4a26-97d4-9e3567f24ea1" RevisionNumber="201" RevisionId="123456" IsLeaf="true" IsBundle="true"><SupersededBy><Revision Id="234567" /></SupersededBy></Update>
<Update UpdateId="913aa7a4-75d8-4abc-9d66-8ddc163be471" RevisionNumber="200" RevisionId="456789"><Prerequisites><UpdateId Id="0fa1201d-4330-4fa8-8ae9-b877473b6441" /><Or><UpdateId Id="12c24e87-bd40-451b-9477-2c2bf501e0d7" /></Or></Prerequisites><Categories><Category Type="Product" Id="12c24e87-bd40-451b-9477-2c2bf501e0d7" /></Categories><BundledBy><Revision Id="7" /></BundledBy></Update>
</Updates><FileLocations><FileLocation Id="abc=" Url="http://x/y.cab" IsIncluded="false" /></FileLocations></OfflineSyncPackage>"#;

    #[test]
    fn entries_keep_their_cross_references_and_xml() {
        let mut p = read_package_xml(DOC.as_bytes()).unwrap();
        capture_raw(DOC.as_bytes(), &mut p.entries, &|i| i.revision == 201).unwrap();
        assert_eq!(p.entries.len(), 2);
        let a = &p.entries[0];
        assert_eq!(a.revision_id, 123456);
        assert_eq!(a.superseded_by, vec![234567]);
        assert!(
            a.raw
                .as_deref()
                .unwrap()
                .starts_with("<Update CreationDate=")
        );
        assert!(a.raw.as_deref().unwrap().ends_with("</Update>"));
        let b = &p.entries[1];
        assert!(b.raw.is_none());
        assert_eq!(b.prerequisites.len(), 1);
        assert_eq!(b.prerequisites_any.len(), 1);
        assert_eq!(b.categories[0].0, Some(CategoryKind::Product));
        assert_eq!(b.bundled_by, vec![7]);
        assert_eq!(
            p.file_locations,
            vec![("abc=".into(), "http://x/y.cab".into())]
        );
    }

    #[test]
    fn spans_copy_out_each_entry_as_written() {
        // Each entry exactly as the document has it, from its `<Update ` to its `</Update>`.
        let written: Vec<String> = DOC
            .split("<Update ")
            .skip(1)
            .map(|rest| {
                format!(
                    "<Update {}</Update>",
                    rest.split("</Update>").next().unwrap()
                )
            })
            .collect();
        for doc in [DOC.to_owned(), format!("\u{feff}{DOC}")] {
            let mut listed = read_package_xml(doc.as_bytes()).unwrap();
            capture_raw(doc.as_bytes(), &mut listed.entries, &|_| true).unwrap();
            for (a, b) in written.iter().zip(&listed.entries) {
                assert_eq!(Some(a), b.raw.as_ref());
                assert!(b.raw.as_deref().unwrap().starts_with("<Update "));
            }
        }
    }

    #[test]
    fn a_cut_package_xml_is_an_error() {
        let e = read_package_xml(&DOC.as_bytes()[..DOC.len() / 2]).unwrap_err();
        assert!(e.contains("truncated"), "{e}");
    }
}
