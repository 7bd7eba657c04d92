//! The update metadata model: plain data, no I/O.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A map keyed by update id, for the hundreds of thousands a sync handles: foldhash (seeded
/// per map) hashes a GUID several times faster than the standard SipHash.
pub type IdMap<V> = std::collections::HashMap<UpdateId, V, foldhash::fast::RandomState>;

/// A set of update ids; see [`IdMap`].
pub type IdSet = std::collections::HashSet<UpdateId, foldhash::fast::RandomState>;

/// An update's GUID (`UpdateID`), always shown lowercase and hyphenated.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UpdateId(pub Uuid);

impl UpdateId {
    /// Parses a GUID with or without braces, in any case.
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim().trim_start_matches('{').trim_end_matches('}');
        Uuid::try_parse(t).map(UpdateId).map_err(|_| {
            format!("'{s}' is not a GUID (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")
        })
    }
}

impl fmt::Display for UpdateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for UpdateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for UpdateId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

impl TryFrom<String> for UpdateId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<UpdateId> for String {
    fn from(id: UpdateId) -> String {
        id.to_string()
    }
}

/// One revision of one update: what a catalog listing names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Identity {
    pub id: UpdateId,
    pub revision: u32,
}

/// `Properties/@UpdateType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UpdateType {
    Software,
    Driver,
    Category,
    Detectoid,
}

impl UpdateType {
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateType::Software => "Software",
            UpdateType::Driver => "Driver",
            UpdateType::Category => "Category",
            UpdateType::Detectoid => "Detectoid",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Software" => Some(UpdateType::Software),
            "Driver" => Some(UpdateType::Driver),
            "Category" => Some(UpdateType::Category),
            "Detectoid" => Some(UpdateType::Detectoid),
            _ => None,
        }
    }

    /// Categories and detectoids are synced whatever the filter says.
    pub fn is_always_synced(self) -> bool {
        matches!(self, UpdateType::Category | UpdateType::Detectoid)
    }
}

/// The kind of a category entry (`CategoryInformation/@CategoryType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CategoryKind {
    Company,
    ProductFamily,
    Product,
    UpdateClassification,
}

impl CategoryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CategoryKind::Company => "Company",
            CategoryKind::ProductFamily => "ProductFamily",
            CategoryKind::Product => "Product",
            CategoryKind::UpdateClassification => "UpdateClassification",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Company" => Some(CategoryKind::Company),
            "ProductFamily" => Some(CategoryKind::ProductFamily),
            "Product" => Some(CategoryKind::Product),
            "UpdateClassification" => Some(CategoryKind::UpdateClassification),
            _ => None,
        }
    }

    /// The CLI spelling: `company`, `product-family`, `product`, `classification`.
    pub fn cli_name(self) -> &'static str {
        match self {
            CategoryKind::Company => "company",
            CategoryKind::ProductFamily => "product-family",
            CategoryKind::Product => "product",
            CategoryKind::UpdateClassification => "classification",
        }
    }
}

/// Title and description in one language.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Localized {
    /// Language tag as the catalog spells it, lowercased (`en`, `pt-br`).
    pub language: String,
    pub title: String,
    pub description: Option<String>,
}

/// One file of an update.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateFile {
    pub name: String,
    pub size: Option<u64>,
    /// Base64 SHA-1 digest, as the catalog gives it.
    pub digest: Option<String>,
    /// Base64 SHA-256 digest (`AdditionalDigest Algorithm="SHA256"`), if any.
    pub sha256: Option<String>,
    pub modified: Option<String>,
    /// Download URL, when the source knows it.
    pub url: Option<String>,
}

/// A reference to another update (prerequisite, bundled or superseded one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateRef {
    pub id: UpdateId,
    pub revision: Option<u32>,
}

/// How two updates relate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RelationKind {
    /// Required before this one (all of them).
    Prerequisite,
    /// One of a group is required (`AtLeastOne` that is not a category group).
    PrerequisiteAnyOf,
    /// Carried inside this bundle.
    Bundled,
    /// Replaced by this update.
    Superseded,
}

impl RelationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RelationKind::Prerequisite => "prerequisite",
            RelationKind::PrerequisiteAnyOf => "prerequisite-any-of",
            RelationKind::Bundled => "bundled",
            RelationKind::Superseded => "superseded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "prerequisite" => Some(RelationKind::Prerequisite),
            "prerequisite-any-of" => Some(RelationKind::PrerequisiteAnyOf),
            "bundled" => Some(RelationKind::Bundled),
            "superseded" => Some(RelationKind::Superseded),
            _ => None,
        }
    }
}

/// One parsed revision of an update, with its raw XML kept as it came.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    pub identity: Identity,
    pub update_type: UpdateType,
    /// `Published`, `Expired`, ... as the catalog says.
    pub publication_state: String,
    pub creation_date: Option<String>,
    pub default_language: Option<String>,
    pub msrc_severity: Option<String>,
    pub is_beta: bool,
    pub max_download_size: Option<u64>,
    pub kb_articles: Vec<String>,
    pub security_bulletins: Vec<String>,
    pub cves: Vec<String>,
    pub more_info_url: Option<String>,
    pub support_url: Option<String>,
    pub localized: Vec<Localized>,
    /// GUIDs from `Prerequisites/AtLeastOne[@IsCategory='true']`: products, classification,
    /// or (for a category) its parent.
    pub categories: Vec<UpdateId>,
    pub relations: Vec<(RelationKind, UpdateRef)>,
    pub files: Vec<UpdateFile>,
    /// For `UpdateType="Category"`: its kind.
    pub category_kind: Option<CategoryKind>,
    pub display_order: Option<i64>,
    /// The metadata exactly as the source gave it.
    pub raw_xml: String,
}

impl Update {
    /// A published software update with nothing else known yet: what parsers fill in.
    pub fn blank() -> Update {
        Update {
            identity: Identity {
                id: UpdateId(uuid::Uuid::nil()),
                revision: 0,
            },
            update_type: UpdateType::Software,
            publication_state: "Published".into(),
            creation_date: None,
            default_language: None,
            msrc_severity: None,
            is_beta: false,
            max_download_size: None,
            kb_articles: vec![],
            security_bulletins: vec![],
            cves: vec![],
            more_info_url: None,
            support_url: None,
            localized: vec![],
            categories: vec![],
            relations: vec![],
            files: vec![],
            category_kind: None,
            display_order: None,
            raw_xml: String::new(),
        }
    }

    pub fn is_published(&self) -> bool {
        self.publication_state.eq_ignore_ascii_case("Published")
    }

    pub fn is_bundle(&self) -> bool {
        self.relations
            .iter()
            .any(|(k, _)| *k == RelationKind::Bundled)
    }

    pub fn bundled(&self) -> impl Iterator<Item = UpdateId> + '_ {
        self.relations
            .iter()
            .filter(|(k, _)| *k == RelationKind::Bundled)
            .map(|(_, r)| r.id)
    }

    /// The title in `lang` (case-insensitive), else English, else the first one.
    pub fn title(&self, lang: &str) -> Option<&str> {
        let pick = |l: &str| {
            self.localized
                .iter()
                .find(|p| p.language.eq_ignore_ascii_case(l))
        };
        pick(lang)
            .or_else(|| pick("en"))
            .or_else(|| self.localized.first())
            .map(|p| p.title.as_str())
    }
}

/// The well-known classification GUIDs of Microsoft's catalog.
pub const WELL_KNOWN_CLASSIFICATIONS: &[(&str, &str)] = &[
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

/// Microsoft's GUID for a classification title (any case), if it is a well-known one.
pub fn well_known_classification(title: &str) -> Option<UpdateId> {
    let title = title.trim();
    WELL_KNOWN_CLASSIFICATIONS
        .iter()
        .find(|(t, _)| t.eq_ignore_ascii_case(title))
        .map(|(_, g)| UpdateId::parse(g).expect("well-known GUID"))
}

/// Languages WSUS names in `package.xml`: (short name, LCID, long name).
pub const LANGUAGES: &[(&str, u32, &str)] = &[
    ("en", 1033, "English"),
    ("de", 1031, "German"),
    ("fr", 1036, "French"),
    ("ja", 1041, "Japanese"),
    ("es", 3082, "Spanish"),
    ("zh-cn", 2052, "Chinese (Simplified)"),
    ("pt-br", 1046, "Portuguese (Brazil)"),
    ("it", 1040, "Italian"),
    ("nl", 1043, "Dutch"),
    ("pt", 2070, "Portuguese (Portugal)"),
    ("ru", 1049, "Russian"),
    ("zh-tw", 1028, "Chinese (Traditional)"),
    ("ko", 1042, "Korean"),
];

/// Company "Microsoft".
pub const MICROSOFT_COMPANY: &str = "56309036-4c77-4dd9-951a-99ee9c246a94";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_parses_any_case_and_braces() {
        let a = UpdateId::parse("{E6CF1350-C01B-414D-A61F-263D14D133B4}").unwrap();
        let b = UpdateId::parse("e6cf1350-c01b-414d-a61f-263d14d133b4").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "e6cf1350-c01b-414d-a61f-263d14d133b4");
        let err = UpdateId::parse("e6cf1350-zz").unwrap_err();
        assert!(err.contains("not a GUID"), "{err}");
    }
}
