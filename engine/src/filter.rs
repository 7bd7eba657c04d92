//! The filter stage: which updates enter the store. Built-in product / classification
//! selection and language selection; rule sets and plugins implement [`UpdateFilter`] too.

use std::collections::{HashMap, HashSet};

use sha1::{Digest, Sha1};

use crate::error::Result;
use crate::model::{CategoryKind, UpdateId, UpdateType, well_known_classification};

/// One category as the selection sees it.
#[derive(Debug, Clone)]
pub struct CategoryNode {
    pub kind: CategoryKind,
    pub parent: Option<UpdateId>,
    pub title: String,
}

/// Every known category, with parent → children links.
#[derive(Debug, Clone, Default)]
pub struct CategoryTree {
    pub nodes: HashMap<UpdateId, CategoryNode>,
    children: HashMap<UpdateId, Vec<UpdateId>>,
}

impl CategoryTree {
    pub fn new(nodes: HashMap<UpdateId, CategoryNode>) -> Self {
        let mut children: HashMap<UpdateId, Vec<UpdateId>> = HashMap::new();
        for (id, n) in &nodes {
            if let Some(p) = n.parent {
                children.entry(p).or_default().push(*id);
            }
        }
        CategoryTree { nodes, children }
    }

    /// Adds (or replaces) one category.
    pub fn insert(&mut self, id: UpdateId, node: CategoryNode) {
        if let Some(old) = self.nodes.get(&id).and_then(|n| n.parent)
            && let Some(c) = self.children.get_mut(&old)
        {
            c.retain(|x| *x != id);
        }
        if let Some(p) = node.parent {
            self.children.entry(p).or_default().push(id);
        }
        self.nodes.insert(id, node);
    }

    /// Whether `id` and every category above it are known.
    pub fn knows_lineage(&self, id: &UpdateId) -> bool {
        let mut cur = *id;
        for _ in 0..64 {
            match self.nodes.get(&cur) {
                None => return false,
                Some(n) => match n.parent {
                    None => return true,
                    Some(p) => cur = p,
                },
            }
        }
        false
    }

    pub fn kind(&self, id: &UpdateId) -> Option<CategoryKind> {
        self.nodes.get(id).map(|n| n.kind)
    }

    /// `id` and everything below it.
    pub fn subtree(&self, id: UpdateId) -> Vec<UpdateId> {
        let mut out = vec![id];
        let mut seen: HashSet<UpdateId> = HashSet::from([id]);
        let mut i = 0;
        while i < out.len() {
            if let Some(c) = self.children.get(&out[i]) {
                for x in c {
                    if seen.insert(*x) {
                        out.push(*x);
                    }
                }
            }
            i += 1;
        }
        out
    }
}

/// What a filter sees of one update.
#[derive(Debug, Clone)]
pub struct UpdateView {
    pub id: UpdateId,
    pub revision: u32,
    pub update_type: UpdateType,
    pub title: Option<String>,
    /// Product, classification and other category GUIDs the update names.
    pub categories: Vec<UpdateId>,
    pub msrc_severity: Option<String>,
    pub is_bundle: bool,
    /// The `[[source]]` it comes from.
    pub source: String,
    pub kb_articles: Vec<String>,
    pub cves: Vec<String>,
    pub bulletins: Vec<String>,
    /// The languages it has titles in.
    pub languages: Vec<String>,
    pub creation_date: Option<String>,
    /// Publication state `Published` (not expired by its catalog).
    pub published: bool,
    /// Superseded by an update the store holds (filled when a stage asks for it).
    pub superseded: bool,
    /// Download size: the largest the catalog gives, else the files' total.
    pub size: Option<u64>,
}

impl UpdateView {
    /// What the stages see of a parsed update from `source`.
    pub fn of(u: &crate::model::Update, source: &str) -> UpdateView {
        let files: u64 = u.files.iter().filter_map(|f| f.size).sum();
        UpdateView {
            id: u.identity.id,
            revision: u.identity.revision,
            update_type: u.update_type,
            title: u.title("en").map(str::to_owned),
            categories: u.categories.clone(),
            msrc_severity: u.msrc_severity.clone(),
            is_bundle: u.is_bundle(),
            source: source.to_owned(),
            kb_articles: u.kb_articles.clone(),
            cves: u.cves.clone(),
            bulletins: u.security_bulletins.clone(),
            languages: u.localized.iter().map(|l| l.language.clone()).collect(),
            creation_date: u.creation_date.clone(),
            published: u.is_published(),
            superseded: false,
            size: u.max_download_size.or((files > 0).then_some(files)),
        }
    }
}

/// A stage's answer for one update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Include,
    /// Include, and pin: kept across syncs whatever the stages say later, until `unpin`.
    Pin,
    Exclude,
    /// No opinion: the next stage decides.
    Abstain,
}

/// A verdict with the reason `explain` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    pub reason: Option<String>,
}

/// A stage of the filter pipeline.
pub trait UpdateFilter {
    /// Stage name, shown by `explain` and in reports.
    fn name(&self) -> &str;
    /// Changes whenever the stage would decide differently; a change re-evaluates the catalog.
    fn config_hash(&self) -> String;
    /// Called once per sync after categories are synced; returns warnings for the report.
    fn prepare(&mut self, _tree: &CategoryTree) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
    /// Appends one decision per update of `batch` to `out`, in order. An error (a plugin
    /// that failed with `on_failure = "abort"`) stops the sync.
    fn evaluate(
        &self,
        tree: &CategoryTree,
        batch: &[UpdateView],
        out: &mut Vec<Decision>,
    ) -> Result<()>;
    /// Whether an `Include` of this stage is final. A stage that selects (the built-in
    /// product / classification selection) returns `false`: what it includes still goes
    /// through the later stages, which may exclude it; an update nothing later decides stays
    /// included.
    fn includes_are_final(&self) -> bool {
        true
    }
    /// Whether the stage should only see batches (a plugin, where one call per update
    /// would cost more than the decision): the sync then decides in its selection stage
    /// rather than while updates stream in.
    fn batched_only(&self) -> bool {
        false
    }
    /// Lines the stage logged since the last call (a plugin's log and output), for the sync
    /// log; and warnings (a plugin skipped after a failure) for the report.
    fn drain_log(&self) -> Vec<StageMessage> {
        Vec::new()
    }
    /// For `explain`: how the stage's own steps (a rule set's rules) fared on `u`.
    fn trace(&self, _tree: &CategoryTree, _u: &UpdateView) -> Vec<crate::rules::RuleTrace> {
        Vec::new()
    }
}

/// A line a stage logged, for the sync log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageMessage {
    /// `trace`, `debug`, `info`, `warn`, `error`.
    pub level: &'static str,
    pub message: String,
    /// Also a warning of the sync report.
    pub warning: bool,
}

/// A list of names / GUIDs from the config, or "all".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    All,
    Some(Vec<String>),
}

impl Pick {
    pub fn from_list(items: &[String]) -> Pick {
        if items.iter().any(|s| s.trim() == "*") {
            Pick::All
        } else {
            Pick::Some(items.to_vec())
        }
    }

    fn hash_into(&self, h: &mut Sha1) {
        match self {
            Pick::All => h.update(b"*"),
            Pick::Some(v) => {
                let mut v: Vec<String> = v.iter().map(|s| s.trim().to_lowercase()).collect();
                v.sort();
                for s in v {
                    h.update(s.as_bytes());
                    h.update([0]);
                }
            }
        }
        h.update([1]);
    }
}

/// Built-in selection by products and classifications (titles or GUIDs). A company or
/// product family selects every product below it.
#[derive(Debug, Clone)]
pub struct ProductClassificationFilter {
    products: Pick,
    classifications: Pick,
    product_set: HashSet<UpdateId>,
    classification_set: HashSet<UpdateId>,
}

impl ProductClassificationFilter {
    pub fn new(products: Pick, classifications: Pick) -> Self {
        ProductClassificationFilter {
            products,
            classifications,
            product_set: HashSet::new(),
            classification_set: HashSet::new(),
        }
    }

    /// The products and classifications `prepare` resolved (`None`: all).
    pub fn resolved(&self) -> (Option<&HashSet<UpdateId>>, Option<&HashSet<UpdateId>>) {
        (
            matches!(self.products, Pick::Some(_)).then_some(&self.product_set),
            matches!(self.classifications, Pick::Some(_)).then_some(&self.classification_set),
        )
    }

    fn resolve(tree: &CategoryTree, wanted: &str, kinds: &[CategoryKind]) -> Vec<UpdateId> {
        if let Ok(id) = UpdateId::parse(wanted) {
            return vec![id];
        }
        let w = wanted.trim();
        let mut hits: Vec<UpdateId> = tree
            .nodes
            .iter()
            .filter(|(_, n)| kinds.contains(&n.kind) && n.title.eq_ignore_ascii_case(w))
            .map(|(id, _)| *id)
            .collect();
        hits.sort();
        hits
    }
}

impl UpdateFilter for ProductClassificationFilter {
    fn name(&self) -> &str {
        "built-in selection"
    }

    fn config_hash(&self) -> String {
        let mut h = Sha1::new();
        self.products.hash_into(&mut h);
        self.classifications.hash_into(&mut h);
        format!("{:x}", h.finalize())
    }

    fn includes_are_final(&self) -> bool {
        false
    }

    fn prepare(&mut self, tree: &CategoryTree) -> Result<Vec<String>> {
        let mut warnings = Vec::new();
        self.product_set.clear();
        self.classification_set.clear();
        if let Pick::Some(list) = &self.products {
            for p in list {
                let hits = Self::resolve(
                    tree,
                    p,
                    &[
                        CategoryKind::Company,
                        CategoryKind::ProductFamily,
                        CategoryKind::Product,
                    ],
                );
                if hits.is_empty() || (hits.len() == 1 && !tree.nodes.contains_key(&hits[0])) {
                    warnings.push(format!(
                        "[filter] products: '{p}' matches no company, product family or product in the catalog; \
                         see `patchsync categories --kind product`"
                    ));
                }
                for h in hits {
                    self.product_set.extend(tree.subtree(h));
                }
            }
        }
        if let Pick::Some(list) = &self.classifications {
            for c in list {
                let mut hits = Self::resolve(tree, c, &[CategoryKind::UpdateClassification]);
                if hits.is_empty() {
                    if let Some(id) = well_known_classification(c) {
                        hits.push(id);
                    } else {
                        warnings.push(format!(
                            "[filter] classifications: '{c}' matches no classification in the catalog; \
                             see `patchsync categories --kind classification`"
                        ));
                    }
                }
                self.classification_set.extend(hits);
            }
        }
        Ok(warnings)
    }

    fn evaluate(
        &self,
        tree: &CategoryTree,
        batch: &[UpdateView],
        out: &mut Vec<Decision>,
    ) -> Result<()> {
        for u in batch {
            let products: Vec<&UpdateId> = u
                .categories
                .iter()
                .filter(|c| tree.kind(c) != Some(CategoryKind::UpdateClassification))
                .collect();
            let product_ok = match &self.products {
                Pick::All => true,
                Pick::Some(_) => products.iter().any(|p| self.product_set.contains(p)),
            };
            let class_ok = match &self.classifications {
                Pick::All => true,
                Pick::Some(_) => u
                    .categories
                    .iter()
                    .any(|c| self.classification_set.contains(c)),
            };
            out.push(match (product_ok, class_ok) {
                (true, true) => Decision {
                    verdict: Verdict::Include,
                    reason: Some("product and classification selected".into()),
                },
                (false, _) => Decision {
                    verdict: Verdict::Exclude,
                    reason: Some("no selected product".into()),
                },
                (true, false) => Decision {
                    verdict: Verdict::Exclude,
                    reason: Some("classification not selected".into()),
                },
            });
        }
        Ok(())
    }
}

/// Which localized properties are kept. English is always kept: it is every catalog's
/// default language and the titles shown everywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanguageSelection {
    all: bool,
    tags: Vec<String>,
}

impl LanguageSelection {
    pub fn new(tags: &[String]) -> Self {
        let all = tags.iter().any(|t| t.trim() == "*");
        let mut tags: Vec<String> = tags.iter().map(|t| t.trim().to_ascii_lowercase()).collect();
        if !tags.iter().any(|t| t == "en") {
            tags.push("en".into());
        }
        tags.sort();
        tags.dedup();
        LanguageSelection { all, tags }
    }

    /// `de` keeps `de` and `de-*`; `pt-br` keeps exactly `pt-br` (any case).
    pub fn keeps(&self, lang: &str) -> bool {
        if self.all {
            return true;
        }
        let l = lang.to_ascii_lowercase();
        self.tags
            .iter()
            .any(|t| *t == l || (!t.contains('-') && l.split('-').next() == Some(t.as_str())))
    }

    /// The languages listed (always with `en`); `None` when every language is kept.
    pub fn tags(&self) -> Option<&[String]> {
        (!self.all).then_some(&self.tags[..])
    }

    pub fn config_hash(&self) -> String {
        if self.all {
            "*".into()
        } else {
            self.tags.join(",")
        }
    }
}

/// The ordered stages; the first that does not abstain decides, and an update no stage
/// includes is left out. Pinned updates (`import-update`) are included before any stage.
pub struct FilterChain {
    pub stages: Vec<Box<dyn UpdateFilter>>,
    /// Updates pinned by `import-update`: kept whatever the stages say, until `unpin`.
    pub pinned: HashSet<UpdateId>,
    /// Updates the store holds a superseder of, for stages that read `superseded`
    /// (loaded by the sync when [`needs_supersedence`](Self::needs_supersedence)).
    pub superseded: HashSet<UpdateId>,
    /// A stage reads `superseded`.
    pub needs_supersedence: bool,
    /// A stage reads more than id, type, title, categories, severity and bundle flag (KB,
    /// CVE, languages, dates, sizes, source): the selection stage loads those from the store.
    pub needs_details: bool,
    /// Messages stages logged, drained by the sync into its log.
    messages: Vec<(String, StageMessage)>,
}

impl FilterChain {
    pub fn new(stages: Vec<Box<dyn UpdateFilter>>) -> Self {
        FilterChain {
            stages,
            pinned: HashSet::new(),
            superseded: HashSet::new(),
            needs_supersedence: false,
            needs_details: false,
            messages: Vec::new(),
        }
    }

    pub fn is_pinned(&self, id: &UpdateId) -> bool {
        self.pinned.contains(id)
    }

    pub fn config_hash(&self) -> String {
        let mut h = Sha1::new();
        for s in &self.stages {
            h.update(s.name().as_bytes());
            h.update(s.config_hash().as_bytes());
        }
        format!("{:x}", h.finalize())
    }

    pub fn prepare(&mut self, tree: &CategoryTree) -> Result<Vec<String>> {
        let mut warnings = Vec::new();
        for s in &mut self.stages {
            warnings.extend(s.prepare(tree)?);
        }
        self.collect_messages();
        Ok(warnings)
    }

    /// Whether a stage wants batches only (see [`UpdateFilter::batched_only`]).
    pub fn batched_only(&self) -> bool {
        self.stages.iter().any(|s| s.batched_only())
    }

    fn collect_messages(&mut self) {
        for s in &self.stages {
            for m in s.drain_log() {
                self.messages.push((s.name().to_owned(), m));
            }
        }
    }

    /// `(stage, message)` the stages logged since the last call.
    pub fn take_messages(&mut self) -> Vec<(String, StageMessage)> {
        self.collect_messages();
        std::mem::take(&mut self.messages)
    }

    /// One `(stage, decision)` per update of `batch`. The first stage with an opinion
    /// decides, except that a selecting stage's `Include` (see
    /// [`UpdateFilter::includes_are_final`]) lets the later stages still exclude it.
    pub fn evaluate(
        &self,
        tree: &CategoryTree,
        batch: &[UpdateView],
    ) -> Result<Vec<(String, Decision)>> {
        let mut result: Vec<Option<(String, Decision)>> = batch
            .iter()
            .map(|u| {
                self.pinned.contains(&u.id).then(|| {
                    (
                        "pin".to_owned(),
                        Decision {
                            verdict: Verdict::Include,
                            reason: Some("pinned by import-update".into()),
                        },
                    )
                })
            })
            .collect();
        // Included by a selecting stage, still open to the later ones.
        let mut selected: Vec<Option<(String, Decision)>> = vec![None; batch.len()];
        let mut out = Vec::with_capacity(batch.len());
        for stage in &self.stages {
            let open: Vec<usize> = (0..batch.len()).filter(|i| result[*i].is_none()).collect();
            if open.is_empty() {
                break;
            }
            let sub: Vec<UpdateView> = if open.len() == batch.len() {
                Vec::new()
            } else {
                open.iter().map(|i| batch[*i].clone()).collect()
            };
            let input = if sub.is_empty() { batch } else { &sub[..] };
            out.clear();
            stage.evaluate(tree, input, &mut out)?;
            let last_word = stage.includes_are_final();
            for (k, i) in open.iter().enumerate() {
                let Some(d) = out.get(k).filter(|d| d.verdict != Verdict::Abstain) else {
                    continue;
                };
                let decided = Some((stage.name().to_owned(), d.clone()));
                if d.verdict == Verdict::Include && !last_word {
                    selected[*i] = decided;
                } else {
                    result[*i] = decided;
                }
            }
        }
        Ok(result
            .into_iter()
            .zip(selected)
            .map(|(r, sel)| {
                r.or(sel).unwrap_or_else(|| {
                    (
                        "default".to_owned(),
                        Decision {
                            verdict: Verdict::Exclude,
                            reason: Some("no stage included it".into()),
                        },
                    )
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::WELL_KNOWN_CLASSIFICATIONS;

    fn id(n: u8) -> UpdateId {
        UpdateId::parse(&format!("00000000-0000-0000-0000-0000000000{n:02x}")).unwrap()
    }

    fn tree() -> CategoryTree {
        let mut nodes = HashMap::new();
        let node = |kind, parent: Option<u8>, title: &str| CategoryNode {
            kind,
            parent: parent.map(id),
            title: title.into(),
        };
        nodes.insert(id(1), node(CategoryKind::Company, None, "Microsoft"));
        nodes.insert(id(2), node(CategoryKind::ProductFamily, Some(1), "Windows"));
        nodes.insert(id(3), node(CategoryKind::Product, Some(2), "Windows 11"));
        nodes.insert(id(4), node(CategoryKind::Product, Some(2), "Windows 10"));
        nodes.insert(id(5), node(CategoryKind::Product, Some(1), "Office 2016"));
        nodes.insert(
            UpdateId::parse(WELL_KNOWN_CLASSIFICATIONS[4].1).unwrap(),
            node(CategoryKind::UpdateClassification, None, "Security Updates"),
        );
        CategoryTree::new(nodes)
    }

    fn view(cats: &[UpdateId]) -> UpdateView {
        let mut u = crate::model::Update::blank();
        u.identity.id = id(99);
        u.categories = cats.to_vec();
        UpdateView::of(&u, "test")
    }

    #[test]
    fn a_family_selects_the_products_below_it() {
        let t = tree();
        let sec = UpdateId::parse(WELL_KNOWN_CLASSIFICATIONS[4].1).unwrap();
        let mut f = ProductClassificationFilter::new(
            Pick::Some(vec!["windows".into()]),
            Pick::Some(vec!["Security Updates".into()]),
        );
        assert!(f.prepare(&t).unwrap().is_empty());
        let mut out = vec![];
        f.evaluate(
            &t,
            &[view(&[id(3), sec]), view(&[id(5), sec]), view(&[id(4)])],
            &mut out,
        )
        .unwrap();
        let v: Vec<_> = out.iter().map(|d| d.verdict).collect();
        assert_eq!(
            v,
            vec![Verdict::Include, Verdict::Exclude, Verdict::Exclude]
        );
        assert_eq!(
            out[2].reason.as_deref(),
            Some("classification not selected")
        );
    }

    #[test]
    fn unknown_names_warn() {
        let mut f =
            ProductClassificationFilter::new(Pick::Some(vec!["Windows 99".into()]), Pick::All);
        let w = f.prepare(&tree()).unwrap();
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("Windows 99"));
    }

    #[test]
    fn languages_match_primary_tags_case_insensitively() {
        let l = LanguageSelection::new(&["de".into(), "pt-BR".into()]);
        assert!(l.keeps("de") && l.keeps("DE-at") && l.keeps("pt-br") && l.keeps("en"));
        assert!(!l.keeps("pt") && !l.keeps("fr"));
    }
}
