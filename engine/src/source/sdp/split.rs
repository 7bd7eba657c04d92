//! Streams a vendor catalog document (`smc:SystemsManagementCatalog`, or one
//! `sdp:SoftwareDistributionPackage`) and hands out each package's XML text as it was
//! written, made standalone by copying the catalog root's namespace declarations onto it.
//! Only one package's text is held at a time.

use std::io::{BufRead, BufReader, Read};

use quick_xml::NsReader;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;

pub(crate) const SDP_NS: &[u8] =
    b"http://schemas.microsoft.com/wsus/2005/04/CorporatePublishing/SoftwareDistributionPackage.xsd";
pub(crate) const SMC_NS: &[u8] =
    b"http://schemas.microsoft.com/sms/2005/04/CorporatePublishing/SystemsManagementCatalog.xsd";

/// Keeps every byte the XML reader pulls, so a package's text can be cut out by offsets.
struct Tee<R> {
    inner: R,
    kept: Vec<u8>,
    /// Stream offset of `kept[0]`.
    base: u64,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(out)?;
        self.kept.extend_from_slice(&out[..n]);
        Ok(n)
    }
}

impl<R> Tee<R> {
    fn drop_before(&mut self, offset: u64) {
        let k = (offset.saturating_sub(self.base) as usize).min(self.kept.len());
        self.kept.drain(..k);
        self.base += k as u64;
    }

    fn slice(&self, start: u64, end: u64) -> &[u8] {
        let a = (start - self.base) as usize;
        let b = (end - self.base) as usize;
        &self.kept[a..b]
    }
}

fn is_package(ns: &ResolveResult<'_>, local: &[u8]) -> bool {
    local == b"SoftwareDistributionPackage"
        && matches!(ns, ResolveResult::Bound(n) if n.as_ref() == SDP_NS || n.as_ref() == SMC_NS)
}

/// Calls `each(index, xml)` for every package of the document, in order. Errors are plain
/// messages; the caller adds the source and file.
pub(crate) fn for_each_package(
    input: impl Read,
    mut each: impl FnMut(usize, &str) -> Result<(), String>,
) -> Result<usize, String> {
    // The reader's offsets start after a byte-order mark; so must the kept bytes.
    let mut input = BufReader::new(input);
    let bom = input
        .fill_buf()
        .map_err(|e| format!("cannot read: {e}"))?
        .starts_with(b"\xEF\xBB\xBF");
    if bom {
        input.consume(3);
    }
    let tee = Tee {
        inner: input,
        kept: Vec::with_capacity(1 << 20),
        base: 0,
    };
    let mut reader = NsReader::from_reader(BufReader::with_capacity(1 << 16, tee));
    reader.config_mut().check_end_names = true;
    let mut buf = Vec::with_capacity(4096);
    let mut depth = 0usize;
    let mut root_decls: Vec<(String, String)> = Vec::new();
    let mut package_start: Option<(u64, usize)> = None;
    let mut count = 0usize;
    loop {
        let before = reader.buffer_position();
        buf.clear();
        let (ns, ev) = reader
            .read_resolved_event_into(&mut buf)
            .map_err(|e| {
                let text = e.to_string();
                if text.contains("end of input") || text.contains("UnexpectedEof") {
                    format!(
                        "the catalog ends in the middle of an element (byte {before}) after {count} package(s): \
                         it is truncated; download it again"
                    )
                } else {
                    format!("malformed XML at byte {before}: {text}")
                }
            })?;
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                let local = e.local_name();
                if depth == 0 {
                    let root_ok = is_package(&ns, local.as_ref())
                        || (local.as_ref() == b"SystemsManagementCatalog"
                            && matches!(&ns, ResolveResult::Bound(n) if n.as_ref() == SMC_NS));
                    if !root_ok {
                        return Err(format!(
                            "the root element is <{}>, not smc:SystemsManagementCatalog or \
                             sdp:SoftwareDistributionPackage: this is not a vendor (SDP) catalog",
                            String::from_utf8_lossy(e.name().as_ref())
                        ));
                    }
                    for a in e.attributes().flatten() {
                        let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
                        if key == "xmlns" || key.starts_with("xmlns:") {
                            let v = String::from_utf8_lossy(&a.value).into_owned();
                            root_decls.push((key, v));
                        }
                    }
                }
                if package_start.is_none() && depth <= 1 && is_package(&ns, local.as_ref()) {
                    reader.get_mut().get_mut().drop_before(before);
                    package_start = Some((before, depth));
                }
                if empty {
                    if let Some((start, d)) = package_start
                        && d == depth
                    {
                        package_start = None;
                        emit(&mut reader, start, &root_decls, count, &mut each)?;
                        count += 1;
                    }
                } else {
                    depth += 1;
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if let Some((start, d)) = package_start
                    && d == depth
                {
                    package_start = None;
                    emit(&mut reader, start, &root_decls, count, &mut each)?;
                    count += 1;
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if depth != 0 || package_start.is_some() {
        return Err(format!(
            "the document ends inside an element after {count} package(s): the catalog is truncated; \
             download it again"
        ));
    }
    if count == 0 && root_decls.is_empty() && reader.buffer_position() == 0 {
        return Err("the catalog is empty".into());
    }
    Ok(count)
}

fn emit<R: Read>(
    reader: &mut NsReader<BufReader<Tee<R>>>,
    start: u64,
    root_decls: &[(String, String)],
    index: usize,
    each: &mut impl FnMut(usize, &str) -> Result<(), String>,
) -> Result<(), String> {
    let end = reader.buffer_position();
    let tee = reader.get_ref().get_ref();
    let bytes = tee.slice(start, end);
    let text = std::str::from_utf8(bytes)
        .map_err(|e| format!("package {} is not UTF-8: {e}", index + 1))?;
    let xml = standalone(text, root_decls);
    each(index, &xml)
}

/// Copies the root's namespace declarations the package's start tag lacks onto it.
fn standalone(text: &str, root_decls: &[(String, String)]) -> String {
    let tag_end = text.find('>').unwrap_or(text.len());
    let name_end = text[1..tag_end]
        .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
        .map(|i| i + 1)
        .unwrap_or(tag_end);
    let tag = &text[..tag_end];
    let mut extra = String::new();
    for (k, v) in root_decls {
        if !tag.contains(&format!("{k}=")) {
            extra.push(' ');
            extra.push_str(k);
            extra.push_str("=\"");
            extra.push_str(v);
            extra.push('"');
        }
    }
    if extra.is_empty() {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + extra.len());
    out.push_str(&text[..name_end]);
    out.push_str(&extra);
    out.push_str(&text[name_end..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packages_come_out_standalone() {
        let doc = r#"<?xml version="1.0"?>
<smc:SystemsManagementCatalog xmlns:smc="http://schemas.microsoft.com/sms/2005/04/CorporatePublishing/SystemsManagementCatalog.xsd" xmlns:sdp="http://schemas.microsoft.com/wsus/2005/04/CorporatePublishing/SoftwareDistributionPackage.xsd">
  <smc:SoftwareDistributionPackage SchemaVersion="1.0"><sdp:Properties PackageID="a"/></smc:SoftwareDistributionPackage>
  <smc:SoftwareDistributionPackage><sdp:Properties PackageID="b"/></smc:SoftwareDistributionPackage>
</smc:SystemsManagementCatalog>"#;
        let mut seen = Vec::new();
        let n = for_each_package(doc.as_bytes(), |i, x| {
            seen.push((i, x.to_owned()));
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 2);
        assert!(
            seen[0]
                .1
                .starts_with("<smc:SoftwareDistributionPackage xmlns:smc=")
        );
        assert!(seen[0].1.ends_with("</smc:SoftwareDistributionPackage>"));
        assert!(seen[1].1.contains("PackageID=\"b\""));
    }

    #[test]
    fn a_cut_document_is_an_error() {
        let doc = r#"<smc:SystemsManagementCatalog xmlns:smc="http://schemas.microsoft.com/sms/2005/04/CorporatePublishing/SystemsManagementCatalog.xsd"><smc:SoftwareDistributionPackage>"#;
        let e = for_each_package(doc.as_bytes(), |_, _| Ok(())).unwrap_err();
        assert!(e.contains("truncated"), "{e}");
    }
}
