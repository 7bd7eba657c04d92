//! Parser for one update's metadata XML (`upd:Update`), matched on namespace URI, not prefix.

use quick_xml::NsReader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;

use crate::model::{
    CategoryKind, Identity, Localized, RelationKind, Update, UpdateFile, UpdateId, UpdateRef,
    UpdateType,
};

/// Namespace of the update XML.
pub const UPDATE_NS: &[u8] = b"http://schemas.microsoft.com/msus/2002/12/Update";
const CATEGORY_NS: &[u8] = b"http://schemas.microsoft.com/msus/2002/12/UpdateHandlers/Category";

/// Why one update's XML could not be read. The caller adds the file and record it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlError {
    pub message: String,
    /// Byte offset inside the XML text.
    pub offset: u64,
}

impl std::fmt::Display for XmlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (at byte {} of the update XML)",
            self.message, self.offset
        )
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum E {
    Update,
    UpdateIdentity,
    Properties,
    /// Offline scan files split these properties out (`x/` fragments).
    ExtendedProperties,
    KbArticleId,
    SecurityBulletinId,
    CveId,
    MoreInfoUrl,
    SupportUrl,
    LocalizedPropertiesCollection,
    LocalizedProperties,
    Language,
    Title,
    Description,
    Relationships,
    Prerequisites,
    AtLeastOne,
    BundledUpdates,
    SupersededUpdates,
    Files,
    File,
    AdditionalDigest,
    HandlerSpecificData,
    Other,
}

fn classify(ns: &ResolveResult<'_>, local: &[u8]) -> E {
    let in_upd = matches!(ns, ResolveResult::Bound(n) if n.as_ref() == UPDATE_NS);
    if !in_upd {
        return E::Other;
    }
    match local {
        b"Update" => E::Update,
        b"UpdateIdentity" => E::UpdateIdentity,
        b"Properties" => E::Properties,
        b"ExtendedProperties" => E::ExtendedProperties,
        b"KBArticleID" => E::KbArticleId,
        b"SecurityBulletinID" => E::SecurityBulletinId,
        b"CveID" => E::CveId,
        b"MoreInfoUrl" => E::MoreInfoUrl,
        b"SupportUrl" => E::SupportUrl,
        b"LocalizedPropertiesCollection" => E::LocalizedPropertiesCollection,
        b"LocalizedProperties" => E::LocalizedProperties,
        b"Language" => E::Language,
        b"Title" => E::Title,
        b"Description" => E::Description,
        b"Relationships" => E::Relationships,
        b"Prerequisites" => E::Prerequisites,
        b"AtLeastOne" => E::AtLeastOne,
        b"BundledUpdates" => E::BundledUpdates,
        b"SupersededUpdates" => E::SupersededUpdates,
        b"Files" => E::Files,
        b"File" => E::File,
        b"AdditionalDigest" => E::AdditionalDigest,
        b"HandlerSpecificData" => E::HandlerSpecificData,
        _ => E::Other,
    }
}

/// What the parser is collecting while it walks the tree.
struct State {
    stack: Vec<E>,
    /// `IsCategory` of the innermost open `AtLeastOne`.
    at_least_one_is_category: bool,
    text: String,
    cur_loc: Option<Localized>,
    cur_lang: Option<String>,
    digest_alg: Option<String>,
}

impl State {
    fn parent(&self) -> Option<E> {
        self.stack.last().copied()
    }
    fn grandparent(&self) -> Option<E> {
        self.stack.len().checked_sub(2).map(|i| self.stack[i])
    }
}

fn err(reader: &NsReader<&[u8]>, message: impl Into<String>) -> XmlError {
    XmlError {
        message: message.into(),
        offset: reader.buffer_position(),
    }
}

fn attr(
    reader: &NsReader<&[u8]>,
    e: &BytesStart<'_>,
    name: &[u8],
) -> Result<Option<String>, XmlError> {
    for a in e.attributes() {
        let a = a.map_err(|x| err(reader, format!("bad attribute: {x}")))?;
        if a.key.local_name().as_ref() == name {
            let v = a
                .unescape_value()
                .map_err(|x| err(reader, format!("bad attribute value: {x}")))?;
            return Ok(Some(v.into_owned()));
        }
    }
    Ok(None)
}

fn guid_attr(
    reader: &NsReader<&[u8]>,
    e: &BytesStart<'_>,
    name: &[u8],
) -> Result<Option<UpdateId>, XmlError> {
    match attr(reader, e, name)? {
        None => Ok(None),
        Some(v) => UpdateId::parse(&v).map(Some).map_err(|m| {
            err(
                reader,
                format!("attribute {}: {m}", String::from_utf8_lossy(name)),
            )
        }),
    }
}

fn num_attr<T: std::str::FromStr>(
    reader: &NsReader<&[u8]>,
    e: &BytesStart<'_>,
    name: &[u8],
) -> Result<Option<T>, XmlError> {
    match attr(reader, e, name)? {
        None => Ok(None),
        Some(v) => v.trim().parse::<T>().map(Some).map_err(|_| {
            err(
                reader,
                format!(
                    "attribute {}='{v}' is not a number",
                    String::from_utf8_lossy(name)
                ),
            )
        }),
    }
}

/// Parses one update's XML. `raw` is kept verbatim in the result.
pub fn parse_update(raw: &str) -> Result<Update, XmlError> {
    let mut up = parse_fields(raw)?;
    up.raw_xml = raw.to_owned();
    Ok(up)
}

/// Like [`parse_update`], keeping `raw` itself rather than a copy of it.
pub fn parse_update_owned(raw: String) -> Result<Update, XmlError> {
    let mut up = parse_fields(&raw)?;
    up.raw_xml = raw;
    Ok(up)
}

/// Everything but the kept XML.
fn parse_fields(raw: &str) -> Result<Update, XmlError> {
    let mut reader = NsReader::from_str(raw);
    reader.config_mut().check_end_names = true;

    let mut up = Update::blank();
    let mut st = State {
        stack: Vec::with_capacity(16),
        at_least_one_is_category: false,
        text: String::new(),
        cur_loc: None,
        cur_lang: None,
        digest_alg: None,
    };
    let mut saw_root = false;
    let mut saw_identity = false;
    let mut saw_type = false;

    loop {
        let pos = reader.buffer_position();
        let (ns, ev) = reader.read_resolved_event().map_err(|e| XmlError {
            message: format!("malformed XML: {e}"),
            offset: pos,
        })?;
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let is_empty = matches!(ev, Event::Empty(_));
                let local = e.local_name();
                let kind = classify(&ns, local.as_ref());
                if st.stack.is_empty() {
                    if kind != E::Update {
                        let ns_text = match &ns {
                            ResolveResult::Bound(n) => {
                                String::from_utf8_lossy(n.as_ref()).into_owned()
                            }
                            _ => "no namespace".into(),
                        };
                        return Err(err(
                            &reader,
                            format!(
                                "root element is <{}> in {ns_text}; expected <Update> in namespace {}",
                                String::from_utf8_lossy(local.as_ref()),
                                String::from_utf8_lossy(UPDATE_NS)
                            ),
                        ));
                    }
                    saw_root = true;
                }
                let in_cat_ns = matches!(&ns, ResolveResult::Bound(n) if n.as_ref() == CATEGORY_NS);
                start_element(
                    &reader,
                    e,
                    kind,
                    in_cat_ns,
                    &mut st,
                    &mut up,
                    &mut saw_identity,
                    &mut saw_type,
                )?;
                if !is_empty {
                    st.stack.push(kind);
                    st.text.clear();
                } else {
                    end_element(kind, &mut st, &mut up);
                }
            }
            Event::End(_) => {
                let kind = st.stack.pop().unwrap_or(E::Other);
                end_element(kind, &mut st, &mut up);
                st.text.clear();
            }
            Event::Text(t) if wants_text(st.parent()) => {
                let s = t
                    .decode()
                    .map_err(|e| err(&reader, format!("bad text: {e}")))?;
                st.text.push_str(&s);
            }
            Event::CData(t) if wants_text(st.parent()) => {
                let s = t
                    .decode()
                    .map_err(|e| err(&reader, format!("bad CDATA: {e}")))?;
                st.text.push_str(&s);
            }
            Event::GeneralRef(r) if wants_text(st.parent()) => {
                let c = r
                    .resolve_char_ref()
                    .map_err(|e| err(&reader, format!("bad character reference: {e}")))?;
                if let Some(c) = c {
                    st.text.push(c);
                } else {
                    let name = r
                        .decode()
                        .map_err(|e| err(&reader, format!("bad entity: {e}")))?;
                    match quick_xml::escape::resolve_predefined_entity(&name) {
                        Some(v) => st.text.push_str(v),
                        None => return Err(err(&reader, format!("unknown entity &{name};"))),
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !saw_root {
        return Err(XmlError {
            message: "no <Update> element: the record is empty or not update XML".into(),
            offset: 0,
        });
    }
    if !st.stack.is_empty() {
        return Err(XmlError {
            message: "the XML ends before </Update>: the record is truncated".into(),
            offset: raw.len() as u64,
        });
    }
    if !saw_identity {
        return Err(XmlError {
            message: "no <UpdateIdentity UpdateID=... RevisionNumber=...> in the update".into(),
            offset: 0,
        });
    }
    if !saw_type {
        return Err(XmlError {
            message: "no <Properties UpdateType=...> in the update".into(),
            offset: 0,
        });
    }
    Ok(up)
}

fn wants_text(e: Option<E>) -> bool {
    matches!(
        e,
        Some(
            E::KbArticleId
                | E::SecurityBulletinId
                | E::CveId
                | E::MoreInfoUrl
                | E::SupportUrl
                | E::Language
                | E::Title
                | E::Description
                | E::AdditionalDigest
        )
    )
}

#[allow(clippy::too_many_arguments)]
fn start_element(
    reader: &NsReader<&[u8]>,
    e: &BytesStart<'_>,
    kind: E,
    in_cat_ns: bool,
    st: &mut State,
    up: &mut Update,
    saw_identity: &mut bool,
    saw_type: &mut bool,
) -> Result<(), XmlError> {
    let parent = st.parent();
    match kind {
        E::UpdateIdentity => {
            let id = guid_attr(reader, e, b"UpdateID")?
                .ok_or_else(|| err(reader, "<UpdateIdentity> without UpdateID"))?;
            let rev: Option<u32> = num_attr(reader, e, b"RevisionNumber")?;
            match (parent, st.grandparent()) {
                (Some(E::Update), _) => {
                    up.identity = Identity {
                        id,
                        revision: rev.ok_or_else(|| {
                            err(
                                reader,
                                "<UpdateIdentity> of the update has no RevisionNumber",
                            )
                        })?,
                    };
                    *saw_identity = true;
                }
                (Some(E::Prerequisites), _) => up
                    .relations
                    .push((RelationKind::Prerequisite, UpdateRef { id, revision: rev })),
                (Some(E::AtLeastOne), Some(E::Prerequisites)) => {
                    if st.at_least_one_is_category {
                        up.categories.push(id);
                    } else {
                        up.relations.push((
                            RelationKind::PrerequisiteAnyOf,
                            UpdateRef { id, revision: rev },
                        ))
                    }
                }
                (Some(E::BundledUpdates), _) | (Some(E::AtLeastOne), Some(E::BundledUpdates)) => up
                    .relations
                    .push((RelationKind::Bundled, UpdateRef { id, revision: rev })),
                (Some(E::SupersededUpdates), _) => up
                    .relations
                    .push((RelationKind::Superseded, UpdateRef { id, revision: rev })),
                _ => {}
            }
        }
        E::Properties if parent == Some(E::Update) => {
            let t = attr(reader, e, b"UpdateType")?
                .ok_or_else(|| err(reader, "<Properties> without UpdateType"))?;
            up.update_type = UpdateType::parse(&t).ok_or_else(|| {
                err(
                    reader,
                    format!("UpdateType '{t}' is not one of Software, Driver, Category, Detectoid"),
                )
            })?;
            *saw_type = true;
            if let Some(s) = attr(reader, e, b"PublicationState")? {
                up.publication_state = s;
            }
            up.creation_date = attr(reader, e, b"CreationDate")?;
            up.default_language = attr(reader, e, b"DefaultPropertiesLanguage")?;
            up.msrc_severity = attr(reader, e, b"MsrcSeverity")?.filter(|s| !s.is_empty());
            up.is_beta =
                attr(reader, e, b"IsBeta")?.is_some_and(|v| v.eq_ignore_ascii_case("true"));
            up.max_download_size = num_attr(reader, e, b"MaxDownloadSize")?;
        }
        E::ExtendedProperties if parent == Some(E::Update) => {
            if let Some(s) = attr(reader, e, b"MsrcSeverity")?.filter(|s| !s.is_empty()) {
                up.msrc_severity = Some(s);
            }
            if let Some(v) = attr(reader, e, b"IsBeta")? {
                up.is_beta = v.eq_ignore_ascii_case("true");
            }
            if let Some(n) = num_attr(reader, e, b"MaxDownloadSize")? {
                up.max_download_size = Some(n);
            }
            if up.default_language.is_none() {
                up.default_language = attr(reader, e, b"DefaultPropertiesLanguage")?;
            }
        }
        E::LocalizedProperties => {
            st.cur_loc = Some(Localized {
                language: String::new(),
                title: String::new(),
                description: None,
            });
        }
        E::AtLeastOne => {
            st.at_least_one_is_category =
                attr(reader, e, b"IsCategory")?.is_some_and(|v| v.eq_ignore_ascii_case("true"));
        }
        E::File if parent == Some(E::Files) => {
            up.files.push(UpdateFile {
                name: attr(reader, e, b"FileName")?.unwrap_or_default(),
                size: num_attr(reader, e, b"Size")?,
                digest: attr(reader, e, b"Digest")?,
                sha256: None,
                modified: attr(reader, e, b"Modified")?,
                url: None,
            });
        }
        E::AdditionalDigest => {
            st.digest_alg = attr(reader, e, b"Algorithm")?;
        }
        E::Other if in_cat_ns && e.local_name().as_ref() == b"CategoryInformation" => {
            let t = attr(reader, e, b"CategoryType")?.unwrap_or_default();
            up.category_kind = Some(CategoryKind::parse(&t).ok_or_else(|| {
                err(reader, format!("CategoryType '{t}' is not one of Company, ProductFamily, Product, UpdateClassification"))
            })?);
            up.display_order = num_attr(reader, e, b"DisplayOrder")?;
        }
        _ => {}
    }
    Ok(())
}

fn end_element(kind: E, st: &mut State, up: &mut Update) {
    let text = || st.text.trim().to_owned();
    match kind {
        E::KbArticleId => {
            let t = text();
            if !t.is_empty() {
                up.kb_articles.push(t)
            }
        }
        E::SecurityBulletinId => {
            let t = text();
            if !t.is_empty() {
                up.security_bulletins.push(t)
            }
        }
        E::CveId => {
            let t = text();
            if !t.is_empty() {
                up.cves.push(t)
            }
        }
        E::MoreInfoUrl if matches!(st.parent(), Some(E::Properties | E::ExtendedProperties)) => {
            up.more_info_url = Some(text())
        }
        E::SupportUrl if matches!(st.parent(), Some(E::Properties | E::ExtendedProperties)) => {
            up.support_url = Some(text())
        }
        // Offline scan files carry the URLs per language only: the first one counts, unless
        // the update's properties give one.
        E::MoreInfoUrl | E::SupportUrl if st.parent() == Some(E::LocalizedProperties) => {
            let slot = if kind == E::MoreInfoUrl {
                &mut up.more_info_url
            } else {
                &mut up.support_url
            };
            if slot.is_none() {
                *slot = Some(text());
            }
        }
        E::Language if st.parent() == Some(E::LocalizedProperties) => {
            st.cur_lang = Some(text().to_ascii_lowercase());
        }
        E::Title => {
            if let Some(l) = st.cur_loc.as_mut() {
                l.title = st.text.clone();
            }
        }
        E::Description => {
            if let Some(l) = st.cur_loc.as_mut() {
                l.description = Some(st.text.clone());
            }
        }
        E::LocalizedProperties => {
            if let Some(mut l) = st.cur_loc.take() {
                l.language = st.cur_lang.take().unwrap_or_default();
                up.localized.push(l);
            }
        }
        E::AtLeastOne => st.at_least_one_is_category = false,
        E::AdditionalDigest
            if st
                .digest_alg
                .take()
                .is_some_and(|a| a.eq_ignore_ascii_case("SHA256")) =>
        {
            let t = text();
            if let Some(f) = up.files.last_mut() {
                f.sha256 = Some(t);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUNDLE: &str = r#"<Update xmlns="http://schemas.microsoft.com/msus/2002/12/Update"><UpdateIdentity UpdateID="11111111-2222-3333-4444-555555555555" RevisionNumber="204"/><Properties UpdateType="Software" PublicationState="Published" CreationDate="2024-01-09T18:00:00Z" MsrcSeverity="Critical" DefaultPropertiesLanguage="en"><KBArticleID>5034441</KBArticleID><SecurityBulletinID>MS24-001</SecurityBulletinID><CveID>CVE-2024-20666</CveID><CveID>CVE-2024-0001</CveID></Properties><LocalizedPropertiesCollection><LocalizedProperties><Language>en</Language><Title>Security Update &amp; more (KB5034441)</Title><Description>Fixes &#x41; thing</Description></LocalizedProperties><LocalizedProperties><Language>pt-BR</Language><Title>Atualização</Title></LocalizedProperties></LocalizedPropertiesCollection><Relationships><Prerequisites><UpdateIdentity UpdateID="aaaaaaaa-0000-0000-0000-000000000001"/><AtLeastOne IsCategory="true"><UpdateIdentity UpdateID="0fa1201d-4330-4fa8-8ae9-b877473b6441"/></AtLeastOne><AtLeastOne IsCategory="true"><UpdateIdentity UpdateID="bbbbbbbb-0000-0000-0000-000000000002"/></AtLeastOne><AtLeastOne><UpdateIdentity UpdateID="aaaaaaaa-0000-0000-0000-000000000003"/></AtLeastOne></Prerequisites><BundledUpdates><UpdateIdentity UpdateID="cccccccc-0000-0000-0000-000000000004" RevisionNumber="3"/></BundledUpdates><SupersededUpdates><UpdateIdentity UpdateID="dddddddd-0000-0000-0000-000000000005"/></SupersededUpdates></Relationships></Update>"#;

    #[test]
    fn reads_every_field_without_prefixes() {
        let u = parse_update(BUNDLE).unwrap();
        assert_eq!(
            u.identity.id.to_string(),
            "11111111-2222-3333-4444-555555555555"
        );
        assert_eq!(u.identity.revision, 204);
        assert_eq!(u.update_type, UpdateType::Software);
        assert_eq!(u.msrc_severity.as_deref(), Some("Critical"));
        assert_eq!(u.kb_articles, vec!["5034441"]);
        assert_eq!(u.security_bulletins, vec!["MS24-001"]);
        assert_eq!(u.cves, vec!["CVE-2024-20666", "CVE-2024-0001"]);
        assert_eq!(u.localized.len(), 2);
        assert_eq!(u.localized[0].title, "Security Update & more (KB5034441)");
        assert_eq!(u.localized[0].description.as_deref(), Some("Fixes A thing"));
        assert_eq!(u.localized[1].language, "pt-br");
        assert_eq!(u.categories.len(), 2);
        assert!(u.is_bundle());
        let kinds: Vec<_> = u.relations.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            kinds,
            vec![
                RelationKind::Prerequisite,
                RelationKind::PrerequisiteAnyOf,
                RelationKind::Bundled,
                RelationKind::Superseded
            ]
        );
        assert_eq!(u.relations[2].1.revision, Some(3));
        assert_eq!(u.raw_xml, BUNDLE);
    }

    #[test]
    fn prefixed_and_unprefixed_read_the_same() {
        let prefixed = BUNDLE
            .replace("<Update xmlns=", "<upd:Update xmlns:upd=")
            .replace("</Update>", "</upd:Update>")
            .replace('<', "<upd:")
            .replace("<upd:/", "</upd:")
            .replace("<upd:upd:", "<upd:")
            .replace("</upd:upd:", "</upd:");
        let a = parse_update(BUNDLE).unwrap();
        let b = parse_update(&prefixed).unwrap();
        assert_eq!(a.localized, b.localized);
        assert_eq!(a.relations, b.relations);
        assert_eq!(a.categories, b.categories);
    }

    #[test]
    fn wrong_namespace_is_named() {
        let x = BUNDLE.replace("msus/2002/12/Update\"", "example.com/other\"");
        let e = parse_update(&x).unwrap_err();
        assert!(e.message.contains("expected <Update> in namespace"), "{e}");
        assert!(e.message.contains("example.com/other"), "{e}");
    }

    #[test]
    fn truncated_and_malformed_are_errors() {
        let e = parse_update(&BUNDLE[..BUNDLE.len() - 30]).unwrap_err();
        assert!(
            e.message.contains("truncated") || e.message.contains("malformed"),
            "{e}"
        );
        let e = parse_update(&BUNDLE.replace("</Title>", "</Titel>")).unwrap_err();
        assert!(e.message.contains("malformed"), "{e}");
        let e = parse_update(&BUNDLE.replace("11111111-2222", "1111-zzzz")).unwrap_err();
        assert!(e.message.contains("not a GUID"), "{e}");
    }
}
