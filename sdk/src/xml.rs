//! Writes the update XML a source returns (the WSUS `Update` schema, with `upd:` prefixes),
//! so a source author fills in fields rather than writing XML.

use std::fmt::Write;

use sha1::{Digest, Sha1};

const NS: &str = "http://schemas.microsoft.com/msus/2002/12/Update";

/// Microsoft's classification GUIDs, by title.
const CLASSIFICATIONS: &[(&str, &str)] = &[
    ("Critical Updates", "e6cf1350-c01b-414d-a61f-263d14d133b4"),
    ("Definition Updates", "e0789628-ce08-4437-be74-2495b842f43b"),
    ("Drivers", "ebfc1fc5-71a4-4f7b-9aca-3b9a503104a0"),
    ("Feature Packs", "b54e7d24-7add-428f-8b75-90a396fa584f"),
    ("Security Updates", "0fa1201d-4330-4fa8-8ae9-b877473b6441"),
    ("Service Packs", "68c5b0a3-d1a6-4553-ae49-01d3a7827828"),
    ("Tools", "b4832bd8-e735-4761-8daf-37f882276dab"),
    ("Update Rollups", "28bc880e-0592-4cbf-8f95-c79b17911d5f"),
    ("Updates", "cd5ffd1e-e932-4e3a-bf74-18bf0b1bbd83"),
    ("Upgrades", "3689bdc8-b205-4af4-8d4a-a63924c5e9d5"),
];

/// The GUID of a well-known classification ("Security Updates", "Drivers", ...; any case).
pub fn classification_id(title: &str) -> Option<&'static str> {
    CLASSIFICATIONS
        .iter()
        .find(|(t, _)| t.eq_ignore_ascii_case(title.trim()))
        .map(|(_, g)| *g)
}

/// A stable GUID derived from a name (SHA-1, version-5 layout): the same name gives the
/// same GUID on every run, so a vendor's product keeps its category.
pub fn guid_from_name(name: &str) -> String {
    let h = Sha1::digest(name.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c => o.push(c),
        }
    }
    o
}

/// One update (or category) as update XML.
#[derive(Debug, Clone, Default)]
pub struct UpdateXml {
    id: String,
    revision: u32,
    update_type: &'static str,
    category_kind: Option<&'static str>,
    state: String,
    created: Option<String>,
    severity: Option<String>,
    kb: Vec<String>,
    cves: Vec<String>,
    bulletins: Vec<String>,
    more_info: Option<String>,
    /// (language, title, description)
    texts: Vec<(String, String, String)>,
    categories: Vec<String>,
    superseded: Vec<String>,
    /// (name, size, SHA-1 base64 digest, modified)
    files: Vec<(String, u64, String, Option<String>)>,
}

impl UpdateXml {
    /// A software update.
    pub fn software(id: &str, revision: u32) -> UpdateXml {
        UpdateXml {
            id: id.to_ascii_lowercase(),
            revision,
            update_type: "Software",
            state: "Published".into(),
            ..Default::default()
        }
    }

    /// A driver update.
    pub fn driver(id: &str, revision: u32) -> UpdateXml {
        UpdateXml {
            update_type: "Driver",
            ..UpdateXml::software(id, revision)
        }
    }

    fn category(id: &str, kind: &'static str, title: &str, parent: Option<&str>) -> UpdateXml {
        let mut x = UpdateXml {
            update_type: "Category",
            category_kind: Some(kind),
            ..UpdateXml::software(id, 1)
        };
        x.texts.push(("en".into(), title.into(), String::new()));
        x.categories.extend(parent.map(str::to_owned));
        x
    }

    /// A vendor (company) category.
    pub fn company(id: &str, title: &str) -> UpdateXml {
        UpdateXml::category(id, "Company", title, None)
    }

    /// A product category under `parent` (a company or product family GUID).
    pub fn product(id: &str, title: &str, parent: &str) -> UpdateXml {
        UpdateXml::category(id, "Product", title, Some(parent))
    }

    /// A classification category (use the well-known GUIDs, see [`classification_id`]).
    pub fn classification(id: &str, title: &str) -> UpdateXml {
        UpdateXml::category(id, "UpdateClassification", title, None)
    }

    pub fn title(mut self, language: &str, title: &str, description: &str) -> Self {
        self.texts
            .push((language.into(), title.into(), description.into()));
        self
    }

    /// `Published` (default) or `Expired`.
    pub fn state(mut self, s: &str) -> Self {
        self.state = s.into();
        self
    }

    /// ISO 8601, e.g. `2024-03-12T00:00:00Z`.
    pub fn created(mut self, iso: &str) -> Self {
        self.created = Some(iso.into());
        self
    }

    pub fn severity(mut self, s: &str) -> Self {
        self.severity = Some(s.into());
        self
    }

    /// A KB article number, with or without "KB".
    pub fn kb(mut self, kb: &str) -> Self {
        let k = kb.trim().trim_start_matches("KB").trim_start_matches("kb");
        self.kb.push(k.into());
        self
    }

    pub fn cve(mut self, cve: &str) -> Self {
        self.cves.push(cve.into());
        self
    }

    pub fn bulletin(mut self, b: &str) -> Self {
        self.bulletins.push(b.into());
        self
    }

    pub fn more_info(mut self, url: &str) -> Self {
        self.more_info = Some(url.into());
        self
    }

    /// A product or classification this update belongs to (GUID).
    pub fn in_category(mut self, guid: &str) -> Self {
        self.categories.push(guid.to_ascii_lowercase());
        self
    }

    /// An update this one supersedes (GUID).
    pub fn supersedes(mut self, guid: &str) -> Self {
        self.superseded.push(guid.to_ascii_lowercase());
        self
    }

    /// A file: name, size, SHA-1 digest in base64 (as WSUS gives it), modification time.
    pub fn file(
        mut self,
        name: &str,
        size: u64,
        sha1_base64: &str,
        modified: Option<&str>,
    ) -> Self {
        self.files.push((
            name.into(),
            size,
            sha1_base64.into(),
            modified.map(str::to_owned),
        ));
        self
    }

    /// The XML.
    pub fn build(&self) -> String {
        let mut x = String::with_capacity(1024);
        let _ = write!(x, "<upd:Update xmlns:upd=\"{NS}\"");
        if self.category_kind.is_some() {
            x.push_str(" xmlns:cat=\"http://schemas.microsoft.com/msus/2002/12/UpdateHandlers/Category\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"");
        }
        x.push('>');
        let _ = write!(
            x,
            "<upd:UpdateIdentity UpdateID=\"{}\" RevisionNumber=\"{}\" />",
            esc(&self.id),
            self.revision
        );
        let _ = write!(
            x,
            "<upd:Properties DefaultPropertiesLanguage=\"en\" UpdateType=\"{}\" PublicationState=\"{}\"",
            self.update_type,
            esc(&self.state)
        );
        if let Some(c) = &self.created {
            let _ = write!(x, " CreationDate=\"{}\"", esc(c));
        }
        if let Some(s) = &self.severity {
            let _ = write!(x, " MsrcSeverity=\"{}\"", esc(s));
        }
        x.push('>');
        for k in &self.kb {
            let _ = write!(x, "<upd:KBArticleID>{}</upd:KBArticleID>", esc(k));
        }
        for b in &self.bulletins {
            let _ = write!(
                x,
                "<upd:SecurityBulletinID>{}</upd:SecurityBulletinID>",
                esc(b)
            );
        }
        for c in &self.cves {
            let _ = write!(x, "<upd:CveID>{}</upd:CveID>", esc(c));
        }
        if let Some(u) = &self.more_info {
            let _ = write!(x, "<upd:MoreInfoUrl>{}</upd:MoreInfoUrl>", esc(u));
        }
        x.push_str("</upd:Properties><upd:LocalizedPropertiesCollection>");
        for (lang, title, desc) in &self.texts {
            let _ = write!(
                x,
                "<upd:LocalizedProperties><upd:Language>{}</upd:Language><upd:Title>{}</upd:Title>",
                esc(lang),
                esc(title)
            );
            if !desc.is_empty() {
                let _ = write!(x, "<upd:Description>{}</upd:Description>", esc(desc));
            }
            x.push_str("</upd:LocalizedProperties>");
        }
        x.push_str("</upd:LocalizedPropertiesCollection>");
        if !(self.categories.is_empty() && self.superseded.is_empty()) {
            x.push_str("<upd:Relationships>");
            if !self.categories.is_empty() {
                x.push_str("<upd:Prerequisites>");
                for c in &self.categories {
                    let _ = write!(
                        x,
                        "<upd:AtLeastOne IsCategory=\"true\"><upd:UpdateIdentity UpdateID=\"{}\" /></upd:AtLeastOne>",
                        esc(c)
                    );
                }
                x.push_str("</upd:Prerequisites>");
            }
            if !self.superseded.is_empty() {
                x.push_str("<upd:SupersededUpdates>");
                for s in &self.superseded {
                    let _ = write!(x, "<upd:UpdateIdentity UpdateID=\"{}\" />", esc(s));
                }
                x.push_str("</upd:SupersededUpdates>");
            }
            x.push_str("</upd:Relationships>");
        }
        if !self.files.is_empty() {
            x.push_str("<upd:Files>");
            for (name, size, digest, modified) in &self.files {
                let _ = write!(
                    x,
                    "<upd:File Digest=\"{}\" DigestAlgorithm=\"SHA1\" FileName=\"{}\" Size=\"{size}\"",
                    esc(digest),
                    esc(name)
                );
                if let Some(m) = modified {
                    let _ = write!(x, " Modified=\"{}\"", esc(m));
                }
                x.push_str(" />");
            }
            x.push_str("</upd:Files>");
        }
        if let Some(k) = self.category_kind {
            let _ = write!(
                x,
                "<upd:HandlerSpecificData xsi:type=\"cat:Category\"><cat:CategoryInformation CategoryType=\"{k}\" ProhibitsSubcategories=\"false\" ProhibitsUpdates=\"false\" /></upd:HandlerSpecificData>"
            );
        }
        x.push_str("</upd:Update>");
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_are_stable_and_well_formed() {
        let g = guid_from_name("Contoso");
        assert_eq!(g, guid_from_name("Contoso"));
        assert_eq!(g.len(), 36);
        assert_eq!(&g[14..15], "5");
        assert_eq!(
            classification_id("security updates"),
            Some("0fa1201d-4330-4fa8-8ae9-b877473b6441")
        );
    }

    #[test]
    fn text_is_escaped() {
        let x = UpdateXml::software("A", 2)
            .title("en", "Fix <b> & \"c\"", "")
            .build();
        assert!(x.contains("Fix &lt;b&gt; &amp; &quot;c&quot;"), "{x}");
        assert!(x.contains("UpdateID=\"a\" RevisionNumber=\"2\""));
    }
}
