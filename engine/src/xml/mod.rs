//! Streaming, namespace-aware readers for catalog XML.

mod update;

pub use update::{UPDATE_NS, XmlError, parse_update, parse_update_owned};

/// An attribute's unescaped, trimmed value by local name; errors are plain messages.
pub(crate) fn attr_trimmed(
    e: &quick_xml::events::BytesStart<'_>,
    name: &[u8],
) -> Result<Option<String>, String> {
    attr_parsed(e, name, |v| Ok(v.to_owned()))
}

/// An attribute's unescaped, trimmed value by local name, handed to `parse` without a copy.
pub(crate) fn attr_parsed<T>(
    e: &quick_xml::events::BytesStart<'_>,
    name: &[u8],
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    for a in e.attributes() {
        let a = a.map_err(|x| format!("bad attribute: {x}"))?;
        if a.key.local_name().as_ref() == name {
            let v = a
                .unescape_value()
                .map_err(|x| format!("bad attribute value: {x}"))?;
            return parse(v.trim()).map(Some);
        }
    }
    Ok(None)
}
