//! Deciding updates while they stream in, when the category tree allows it: an update whose
//! categories and their whole lineage are known gets its verdict at once (no second write);
//! leaves are written as kept by their bundle and confirmed after the fetch; the rest stays
//! `pending` for the selection stage.

use std::collections::{HashMap, HashSet};

use crate::filter::{CategoryNode, CategoryTree, FilterChain, UpdateView, Verdict};
use crate::model::{Update, UpdateId};

/// What the decider says about one fetched update.
pub(crate) enum Early {
    /// Keep it: (stage, reason, pin it).
    Keep(String, Option<String>, bool),
    /// Leave it out: (stage, reason).
    Drop(String, Option<String>),
    /// A leaf (no categories): stored as kept by a bundle, confirmed after the fetch.
    Tentative,
    /// Not decidable yet: the selection stage decides.
    Pending,
}

/// Decides fetched updates as they arrive.
pub(crate) struct StreamDecider<'a> {
    chain: &'a mut FilterChain,
    source: String,
    tree: CategoryTree,
    dirty: bool,
    /// Updates bundled by updates kept so far → the bundle that carries them.
    kept_children: HashMap<UpdateId, UpdateId>,
    /// Leaves stored tentatively, with what they bundle themselves.
    tentative: Vec<(UpdateId, Vec<UpdateId>)>,
    /// Rewrite rows whose revision is already stored (the language selection changed).
    pub(crate) rewrite_same_revision: bool,
    /// Decisions made for a whole batch at once (stages that want batches), by update.
    predecided: HashMap<UpdateId, (String, crate::filter::Decision)>,
}

impl<'a> StreamDecider<'a> {
    pub(crate) fn new(
        chain: &'a mut FilterChain,
        source: &str,
        tree: CategoryTree,
        rewrite_same_revision: bool,
    ) -> Self {
        StreamDecider {
            source: source.to_owned(),
            rewrite_same_revision,
            chain,
            tree,
            dirty: true,
            kept_children: HashMap::new(),
            tentative: Vec::new(),
            predecided: HashMap::new(),
        }
    }

    /// Whether a stage wants batches: then [`decide`](Self::decide) evaluates the batch
    /// being applied in one call.
    pub(crate) fn batched(&self) -> bool {
        self.chain.batched_only()
    }

    /// Decides, in one call, every update of `lookahead` whose categories are all known,
    /// and empties it.
    fn decide_lookahead(&mut self, lookahead: &std::cell::RefCell<Vec<UpdateView>>) {
        let views: Vec<UpdateView> = std::mem::take(&mut *lookahead.borrow_mut())
            .into_iter()
            .filter(|v| {
                !v.categories.is_empty() && v.categories.iter().all(|c| self.tree.knows_lineage(c))
            })
            .map(|mut v| {
                v.superseded = self.chain.superseded.contains(&v.id);
                v
            })
            .collect();
        if views.is_empty() {
            return;
        }
        if self.dirty {
            if self.chain.prepare(&self.tree).is_err() {
                return;
            }
            self.dirty = false;
        }
        // A stage that fails here fails again, with its error, in the selection stage.
        if let Ok(decisions) = self.chain.evaluate(&self.tree, &views) {
            for (v, d) in views.iter().zip(decisions) {
                self.predecided.insert(v.id, d);
            }
        }
    }

    /// Call for every fetched category, so later updates can be decided against it.
    pub(crate) fn add_category(&mut self, u: &Update) {
        if let Some(kind) = u.category_kind {
            let title = u.title("en").unwrap_or_default().to_owned();
            self.tree.insert(
                u.identity.id,
                CategoryNode {
                    kind,
                    parent: u.categories.first().copied(),
                    title,
                },
            );
            self.dirty = true;
        }
    }

    pub(crate) fn decide(
        &mut self,
        u: &Update,
        lookahead: &std::cell::RefCell<Vec<UpdateView>>,
    ) -> Early {
        if u.categories.is_empty() && !self.chain.is_pinned(&u.identity.id) {
            self.tentative.push((u.identity.id, u.bundled().collect()));
            return Early::Tentative;
        }
        if self.chain.batched_only() {
            if !self.predecided.contains_key(&u.identity.id) {
                self.decide_lookahead(lookahead);
            }
            let Some((stage, d)) = self.predecided.remove(&u.identity.id) else {
                return Early::Pending;
            };
            return self.early(u, stage, d);
        }
        if !self.chain.is_pinned(&u.identity.id)
            && !u.categories.iter().all(|c| self.tree.knows_lineage(c))
        {
            return Early::Pending;
        }
        if self.dirty {
            // Warnings are reported once, by the selection stage, against the final tree.
            if self.chain.prepare(&self.tree).is_err() {
                return Early::Pending;
            }
            self.dirty = false;
        }
        let mut view = UpdateView::of(u, &self.source);
        view.superseded = self.chain.superseded.contains(&u.identity.id);
        // A stage that fails here fails again, with its error, in the selection stage.
        let Some((stage, d)) = self
            .chain
            .evaluate(&self.tree, std::slice::from_ref(&view))
            .ok()
            .and_then(|mut v| v.pop())
        else {
            return Early::Pending;
        };
        self.early(u, stage, d)
    }

    fn early(&mut self, u: &Update, stage: String, d: crate::filter::Decision) -> Early {
        match d.verdict {
            Verdict::Include | Verdict::Pin => {
                self.kept_children
                    .extend(u.bundled().map(|b| (b, u.identity.id)));
                Early::Keep(stage, d.reason, d.verdict == Verdict::Pin)
            }
            _ => Early::Drop(stage, d.reason),
        }
    }

    /// After the fetch: the tentative leaves that kept bundles carry (transitively); the ones
    /// nothing fetched in this sync carries (the selection stage looks at those again); and
    /// every (leaf, bundle) pair kept bundles name, so leaves the store lacks can be fetched.
    pub(crate) fn settle(mut self) -> Settled {
        let mut confirmed: HashSet<UpdateId> = HashSet::new();
        loop {
            let mut changed = false;
            for (leaf, children) in &self.tentative {
                if !confirmed.contains(leaf) && self.kept_children.contains_key(leaf) {
                    confirmed.insert(*leaf);
                    for c in children {
                        self.kept_children.insert(*c, *leaf);
                    }
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let (confirmed, unconfirmed) = self
            .tentative
            .into_iter()
            .map(|(l, _)| l)
            .partition(|l| confirmed.contains(l));
        Settled {
            confirmed,
            unconfirmed,
            carried: self.kept_children,
        }
    }
}

/// The outcome of [`StreamDecider::settle`].
pub(crate) struct Settled {
    pub confirmed: Vec<UpdateId>,
    pub unconfirmed: Vec<UpdateId>,
    /// leaf → the kept bundle that names it.
    pub carried: HashMap<UpdateId, UpdateId>,
}
