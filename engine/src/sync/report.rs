//! What a sync did: per source and in total. Serialized as `patchsync sync --json`.

use serde::Serialize;

/// How one source's part of a sync ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SourceOutcome {
    #[default]
    Synced,
    /// Fingerprint and filter unchanged: nothing was read.
    Unchanged,
    Failed,
}

/// Revision records read from sources in one sync, by kind (a catalog may carry several
/// revisions of one update; all are read and recorded as seen, the newest is kept).
#[derive(Debug, Clone, Copy, Serialize, Default, PartialEq, Eq)]
pub struct ReadCounts {
    pub company: u64,
    pub product_family: u64,
    pub product: u64,
    pub classification: u64,
    pub detectoid: u64,
    pub software: u64,
    pub driver: u64,
}

impl ReadCounts {
    /// All category records (companies, product families, products, classifications).
    pub fn categories(&self) -> u64 {
        self.company + self.product_family + self.product + self.classification
    }

    pub fn total(&self) -> u64 {
        self.categories() + self.detectoid + self.software + self.driver
    }

    pub(crate) fn count(&mut self, u: &crate::model::Update) {
        use crate::model::{CategoryKind as K, UpdateType as T};
        match (u.update_type, u.category_kind) {
            (T::Category, Some(K::Company)) => self.company += 1,
            (T::Category, Some(K::ProductFamily)) => self.product_family += 1,
            (T::Category, Some(K::UpdateClassification)) => self.classification += 1,
            (T::Category, _) => self.product += 1,
            (T::Detectoid, _) => self.detectoid += 1,
            (T::Software, _) => self.software += 1,
            (T::Driver, _) => self.driver += 1,
        }
    }

    fn add(&mut self, o: &ReadCounts) {
        self.company += o.company;
        self.product_family += o.product_family;
        self.product += o.product;
        self.classification += o.classification;
        self.detectoid += o.detectoid;
        self.software += o.software;
        self.driver += o.driver;
    }
}

/// One source's counts.
#[derive(Debug, Clone, Serialize, Default)]
pub struct SourceReport {
    pub source: String,
    pub kind: String,
    pub outcome: SourceOutcome,
    /// Entries (updates, categories, detectoids) stored for the first time.
    pub new: u64,
    /// Entries replaced by a higher revision.
    pub revised: u64,
    /// Entries newly marked expired (unpublished revision, or gone from a full listing).
    pub expired: u64,
    /// Updates that left the store because the filter no longer selects them.
    pub removed: u64,
    /// Listed entries already stored at the same revision.
    pub unchanged: u64,
    /// Fetched updates the filter left out.
    pub excluded: u64,
    /// Updates whose metadata was read from the source in this sync.
    pub fetched: u64,
    /// Bundled updates that a kept bundle names but the catalog does not have.
    pub unresolved_bundle_leaves: u64,
    /// Revision records read, by kind.
    pub read: ReadCounts,
    pub warnings: Vec<String>,
    pub error: Option<String>,
    pub duration_ms: u64,
    /// Where the time went, in milliseconds.
    pub phases: PhaseTimes,
}

/// Milliseconds spent in each phase of a source's sync.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct PhaseTimes {
    pub listing_ms: u64,
    pub fetching_ms: u64,
    pub selecting_ms: u64,
    pub applying_ms: u64,
}

/// The whole sync.
#[derive(Debug, Clone, Serialize, Default)]
pub struct SyncReport {
    pub site: String,
    pub full: bool,
    pub catalog_version: u64,
    pub previous_catalog_version: u64,
    pub new: u64,
    pub revised: u64,
    pub expired: u64,
    pub removed: u64,
    pub unchanged: u64,
    pub excluded: u64,
    /// Updates the supersedence rules expired in this sync (`[supersedence]`).
    pub expired_superseded: u64,
    /// Long-expired updates deleted with their metadata (`delete_expired_after_days`).
    pub deleted: u64,
    /// Categories in the store after the sync.
    pub categories: u64,
    /// Detectoids in the store after the sync.
    pub detectoids: u64,
    /// Active software and driver updates in the store after the sync.
    pub updates: u64,
    pub duration_ms: u64,
    /// Revision records read from all sources, by kind.
    pub read: ReadCounts,
    pub sources: Vec<SourceReport>,
    /// The plugins this sync ran, with the digest of their code and the hash of their
    /// config: the audit trail of who decided what.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<PluginRecord>,
}

/// A plugin as one sync used it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PluginRecord {
    pub name: String,
    pub version: String,
    /// `filter` or `source`.
    pub kind: String,
    /// A native library rather than a WebAssembly component.
    pub native: bool,
    pub sha256: String,
    pub config_hash: String,
}

impl SyncReport {
    pub(crate) fn add(&mut self, s: &SourceReport) {
        self.new += s.new;
        self.revised += s.revised;
        self.expired += s.expired;
        self.removed += s.removed;
        self.unchanged += s.unchanged;
        self.excluded += s.excluded;
        self.read.add(&s.read);
    }

    /// Whether this sync changed the store's catalog.
    pub fn changed(&self) -> bool {
        self.new
            + self.revised
            + self.expired
            + self.removed
            + self.expired_superseded
            + self.deleted
            > 0
    }
}
