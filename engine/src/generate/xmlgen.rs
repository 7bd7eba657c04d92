//! Builds the update XML of generated entries (prefixed `upd:` like real WSUS exports).

use std::fmt::Write;

use base64::Engine as _;
use sha1::{Digest, Sha1};

use super::wsus_writer::xml_escape;

pub(crate) const NS: &str = "http://schemas.microsoft.com/msus/2002/12/Update";

/// A deterministic GUID from a name (SHA-1 based, version 5 layout).
pub(crate) fn guid_from(name: &str) -> String {
    let h = Sha1::digest(name.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(b).hyphenated().to_string()
}

/// Base64 SHA-1 of a name: a stable stand-in for a file digest.
pub(crate) fn digest_of(name: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha1::digest(name.as_bytes()))
}

pub(crate) fn file_url(digest: &str, name: &str) -> String {
    let h: String = Sha1::digest(digest.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("http://download.windowsupdate.com/d/msdownload/update/software/{h}/{name}")
}

/// One localized title and description.
pub(crate) struct Loc<'a> {
    pub lang: &'a str,
    pub title: String,
    pub description: String,
}

/// Everything a generated entry's XML holds.
pub(crate) struct Entry<'a> {
    pub id: &'a str,
    pub revision: u32,
    pub update_type: &'a str,
    pub state: &'a str,
    pub created: &'a str,
    pub severity: Option<&'a str>,
    pub kb: Option<u32>,
    pub bulletin: Option<String>,
    pub cves: Vec<String>,
    pub locs: Vec<Loc<'a>>,
    pub prerequisites: Vec<String>,
    pub categories: Vec<String>,
    pub bundled: Vec<(String, u32)>,
    pub superseded: Vec<String>,
    pub files: Vec<(String, u64)>,
    pub category_kind: Option<&'a str>,
}

pub(crate) fn render(e: &Entry<'_>) -> String {
    let mut x = String::with_capacity(1800);
    let _ = write!(
        x,
        "<upd:Update xmlns:upd=\"{NS}\" xmlns:bar=\"http://schemas.microsoft.com/msus/2002/12/BaseApplicabilityRules\"{}>",
        if e.category_kind.is_some() {
            " xmlns:cat=\"http://schemas.microsoft.com/msus/2002/12/UpdateHandlers/Category\""
        } else {
            ""
        }
    );
    let _ = write!(
        x,
        "<upd:UpdateIdentity UpdateID=\"{}\" RevisionNumber=\"{}\" />",
        e.id, e.revision
    );
    let _ = write!(
        x,
        "<upd:Properties DefaultPropertiesLanguage=\"en\" UpdateType=\"{}\" PublicationState=\"{}\" CreationDate=\"{}\" IsPublic=\"true\"",
        e.update_type, e.state, e.created
    );
    if let Some(s) = e.severity {
        let _ = write!(x, " MsrcSeverity=\"{s}\"");
    }
    x.push('>');
    if let Some(kb) = e.kb {
        let _ = write!(x, "<upd:KBArticleID>{kb}</upd:KBArticleID>");
    }
    if let Some(b) = &e.bulletin {
        let _ = write!(x, "<upd:SecurityBulletinID>{b}</upd:SecurityBulletinID>");
    }
    for c in &e.cves {
        let _ = write!(x, "<upd:CveID>{c}</upd:CveID>");
    }
    if let Some(kb) = e.kb {
        let _ = write!(
            x,
            "<upd:MoreInfoUrl>https://support.microsoft.com/help/{kb}</upd:MoreInfoUrl>"
        );
    }
    x.push_str("</upd:Properties><upd:LocalizedPropertiesCollection>");
    for l in &e.locs {
        let _ = write!(
            x,
            "<upd:LocalizedProperties><upd:Language>{}</upd:Language><upd:Title>{}</upd:Title><upd:Description>{}</upd:Description></upd:LocalizedProperties>",
            l.lang,
            xml_escape(&l.title),
            xml_escape(&l.description)
        );
    }
    x.push_str("</upd:LocalizedPropertiesCollection>");
    if !(e.prerequisites.is_empty()
        && e.categories.is_empty()
        && e.bundled.is_empty()
        && e.superseded.is_empty())
    {
        x.push_str("<upd:Relationships>");
        if !(e.prerequisites.is_empty() && e.categories.is_empty()) {
            x.push_str("<upd:Prerequisites>");
            for p in &e.prerequisites {
                let _ = write!(x, "<upd:UpdateIdentity UpdateID=\"{p}\" />");
            }
            for c in &e.categories {
                let _ = write!(
                    x,
                    "<upd:AtLeastOne IsCategory=\"true\"><upd:UpdateIdentity UpdateID=\"{c}\" /></upd:AtLeastOne>"
                );
            }
            x.push_str("</upd:Prerequisites>");
        }
        if !e.bundled.is_empty() {
            x.push_str("<upd:BundledUpdates>");
            for (b, r) in &e.bundled {
                let _ = write!(
                    x,
                    "<upd:UpdateIdentity UpdateID=\"{b}\" RevisionNumber=\"{r}\" />"
                );
            }
            x.push_str("</upd:BundledUpdates>");
        }
        if !e.superseded.is_empty() {
            x.push_str("<upd:SupersededUpdates>");
            for s in &e.superseded {
                let _ = write!(x, "<upd:UpdateIdentity UpdateID=\"{s}\" />");
            }
            x.push_str("</upd:SupersededUpdates>");
        }
        x.push_str("</upd:Relationships>");
    }
    if e.category_kind.is_none() && e.update_type != "Detectoid" {
        x.push_str("<upd:ApplicabilityRules><upd:IsInstalled><bar:WindowsVersion Comparison=\"GreaterThanOrEqualTo\" MajorVersion=\"10\" BuildNumber=\"22621\" /></upd:IsInstalled></upd:ApplicabilityRules>");
    }
    if !e.files.is_empty() {
        x.push_str("<upd:Files>");
        for (name, size) in &e.files {
            let d = digest_of(name);
            let _ = write!(
                x,
                "<upd:File Digest=\"{d}\" DigestAlgorithm=\"SHA1\" FileName=\"{}\" Size=\"{size}\" Modified=\"{}\" />",
                xml_escape(name),
                e.created
            );
        }
        x.push_str("</upd:Files>");
    }
    if let Some(k) = e.category_kind {
        let _ = write!(
            x,
            "<upd:HandlerSpecificData xsi:type=\"cat:Category\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><cat:CategoryInformation CategoryType=\"{k}\" ProhibitsSubcategories=\"false\" ProhibitsUpdates=\"false\" /></upd:HandlerSpecificData>"
        );
    }
    x.push_str("</upd:Update>");
    x
}
