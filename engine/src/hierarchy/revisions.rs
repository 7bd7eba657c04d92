//! GetRevisionIdList answers read as a stream: a complete listing of 500,000 revisions is a
//! 65 MB message, and as an element tree it would take hundreds of megabytes.

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use super::soap::{self, Fault, NS_EXT, NS_SOAP};
use crate::model::{Identity, UpdateId};

/// What a GetRevisionIdList answer holds.
#[derive(Debug, Default)]
pub struct RevisionAnswer {
    /// `GetRevisionIdListResult` was there.
    pub has_result: bool,
    pub anchor: Option<String>,
    pub ids: Vec<Identity>,
    /// An `UpdateIdentity` without a readable GUID or revision number was met.
    pub malformed_identity: bool,
    /// patchsync's extension (`NS_EXT` `Listing`), absent from a WSUS server's answers.
    pub listing: Option<ExtListing>,
}

/// patchsync's `Listing` extension element.
#[derive(Debug, Default)]
pub struct ExtListing {
    pub version: Option<u64>,
    pub complete: bool,
    pub expired: Vec<UpdateId>,
    pub removed: Vec<UpdateId>,
}

/// Reads a GetRevisionIdList answer (a SOAP envelope); a fault comes back as `Err`, as
/// from [`soap::body`].
pub fn read(xml: &str) -> Result<RevisionAnswer, Fault> {
    let malformed = |m: String| Fault {
        code: None,
        message: format!("not a SOAP message: {m}"),
    };
    let mut reader = NsReader::from_str(xml);
    let mut walk = Walk::default();
    loop {
        let pos = reader.buffer_position();
        let (ns, ev) = reader
            .read_resolved_event()
            .map_err(|e| malformed(format!("malformed XML after byte {pos}: {e}")))?;
        let in_ns =
            |want: &str| matches!(&ns, ResolveResult::Bound(n) if n.as_ref() == want.as_bytes());
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                match walk.path.len() {
                    0 if name != "Envelope" || !in_ns(NS_SOAP) => {
                        return Err(Fault {
                            code: None,
                            message: format!("not a SOAP 1.1 envelope (root <{name}>)"),
                        });
                    }
                    // The body's first element: a fault is read whole (it is small).
                    2 if name == "Fault" && in_ns(NS_SOAP) => {
                        return Err(soap::body(xml).err().unwrap_or(Fault {
                            code: None,
                            message: "an unreadable SOAP fault".into(),
                        }));
                    }
                    _ => {}
                }
                walk.start(name, in_ns(NS_EXT));
                if matches!(ev, Event::Empty(_)) {
                    walk.end();
                }
            }
            Event::Text(t) => {
                let s = t
                    .decode()
                    .map_err(|e| malformed(format!("bad text after byte {pos}: {e}")))?;
                walk.text.push_str(&s);
            }
            Event::GeneralRef(r) => {
                match r.resolve_char_ref().map_err(|e| malformed(e.to_string()))? {
                    Some(c) => walk.text.push(c),
                    None => {
                        let name = r.decode().map_err(|e| malformed(e.to_string()))?;
                        let v = quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| malformed(format!("unknown entity &{name};")))?;
                        walk.text.push_str(v);
                    }
                }
            }
            Event::CData(t) => walk.text.push_str(&String::from_utf8_lossy(&t)),
            Event::End(_) => {
                if walk.path.is_empty() {
                    return Err(malformed("unbalanced end tag".into()));
                }
                walk.end();
            }
            Event::Eof => {
                return Err(malformed(
                    "the document ends before its root element closes".into(),
                ));
            }
            _ => {}
        }
        if walk.done {
            return Ok(walk.out);
        }
    }
}

/// Where the reader is and what it has read.
#[derive(Default)]
struct Walk {
    /// Local names from the envelope down, and whether each is in the extension namespace.
    path: Vec<(String, bool)>,
    text: String,
    id: Option<UpdateId>,
    revision: Option<u32>,
    out: RevisionAnswer,
    done: bool,
}

impl Walk {
    fn start(&mut self, name: String, ext: bool) {
        match (self.path.len(), name.as_str()) {
            (3, "GetRevisionIdListResult") => self.out.has_result = true,
            (4, "Listing") if ext => self.out.listing = Some(ExtListing::default()),
            (_, "UpdateIdentity") => {
                self.id = None;
                self.revision = None;
            }
            _ => {}
        }
        self.text.clear();
        self.path.push((name, ext));
    }

    fn end(&mut self) {
        let Some((name, _)) = self.path.pop() else {
            return;
        };
        let t = self.text.trim();
        let parent = self.path.last().map(|(n, ext)| (n.as_str(), *ext));
        match (parent, name.as_str()) {
            (Some(("GetRevisionIdListResult", _)), "Anchor") => {
                self.out.anchor = Some(t.to_owned());
            }
            (Some(("UpdateIdentity", _)), "UpdateID") => self.id = UpdateId::parse(t).ok(),
            (Some(("UpdateIdentity", _)), "RevisionNumber") => self.revision = t.parse().ok(),
            (Some(("NewRevisions", _)), "UpdateIdentity") => match (self.id, self.revision) {
                (Some(id), Some(revision)) => self.out.ids.push(Identity { id, revision }),
                _ => self.out.malformed_identity = true,
            },
            (Some(("Listing", true)), field) => {
                if let Some(x) = self.out.listing.as_mut() {
                    match field {
                        "Version" => x.version = t.parse().ok(),
                        "Complete" => x.complete = soap::boolean(t) == Some(true),
                        "Expired" => x.expired.extend(UpdateId::parse(t).ok()),
                        "Removed" => x.removed.extend(UpdateId::parse(t).ok()),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        self.text.clear();
        self.done = self.path.is_empty();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(n: usize, ext: &str) -> String {
        let mut ids = String::new();
        for i in 0..n {
            ids.push_str(&format!(
                "<UpdateIdentity><UpdateID>{:08x}-0000-4000-8000-000000000000</UpdateID><RevisionNumber>{}</RevisionNumber></UpdateIdentity>",
                i,
                i % 300 + 1
            ));
        }
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{NS_SOAP}"><soap:Body><GetRevisionIdListResponse xmlns="http://www.microsoft.com/SoftwareDistribution"><GetRevisionIdListResult><Anchor>7,2026-11-27 10:00:00.000</Anchor><NewRevisions>{ids}</NewRevisions>{ext}</GetRevisionIdListResult></GetRevisionIdListResponse></soap:Body></soap:Envelope>"#
        )
    }

    #[test]
    fn reads_what_the_element_tree_reads() {
        let ext = format!(
            r#"<x:Listing xmlns:x="{NS_EXT}"><x:Version>12</x:Version><x:Complete>true</x:Complete><x:Expired>00000001-0000-4000-8000-000000000000</x:Expired><x:Removed>00000002-0000-4000-8000-000000000000</x:Removed><x:Removed>00000003-0000-4000-8000-000000000000</x:Removed></x:Listing>"#
        );
        let xml = answer(1000, &ext);
        let r = read(&xml).unwrap();
        let tree = soap::body(&xml).unwrap();
        let result = tree.child("GetRevisionIdListResult").unwrap();
        assert!(r.has_result && !r.malformed_identity);
        assert_eq!(r.anchor.as_deref(), result.text_of("Anchor"));
        let from_tree: Vec<Identity> = result
            .child("NewRevisions")
            .unwrap()
            .all("UpdateIdentity")
            .map(|u| Identity {
                id: UpdateId::parse(u.text_of("UpdateID").unwrap()).unwrap(),
                revision: u.text_of("RevisionNumber").unwrap().parse().unwrap(),
            })
            .collect();
        assert_eq!(r.ids, from_tree);
        let x = r.listing.unwrap();
        assert_eq!((x.version, x.complete), (Some(12), true));
        assert_eq!((x.expired.len(), x.removed.len()), (1, 2));
        assert_eq!(
            x.removed[1].to_string(),
            "00000003-0000-4000-8000-000000000000"
        );
    }

    #[test]
    fn an_answer_without_the_extension_or_with_a_bad_identity() {
        let xml = answer(3, "");
        let r = read(&xml).unwrap();
        assert_eq!(r.ids.len(), 3);
        assert!(r.listing.is_none());
        let bad = xml.replacen(
            "<RevisionNumber>1</RevisionNumber>",
            "<RevisionNumber>x</RevisionNumber>",
            1,
        );
        assert!(read(&bad).unwrap().malformed_identity);
        assert!(read(&xml[..xml.len() / 2]).is_err());
    }

    #[test]
    fn a_fault_is_read_as_a_fault() {
        let fault = soap::fault(
            soap::ErrorCode::InvalidCookie,
            "expired",
            "GetRevisionIdList",
        );
        let f = read(&fault).unwrap_err();
        assert_eq!(f.code, Some(soap::ErrorCode::InvalidCookie));
    }
}
