//! What a top-level site asks a WSUS server (or Microsoft Update) for: the products and
//! classifications of its `[filter]`, resolved against the categories it knows, so only
//! their updates are listed and fetched. The engine's own filter still decides what is kept.

use std::collections::BTreeSet;

use crate::filter::{CategoryNode, CategoryTree, Pick, ProductClassificationFilter, UpdateFilter};
use crate::model::{CategoryKind, Update, UpdateType};

/// The site's selection and the categories its store held when the sync began.
pub struct ServerSelection {
    pub products: Pick,
    pub classifications: Pick,
    pub known: CategoryTree,
}

impl ServerSelection {
    /// Of the server's `products` and `classifications` (ids), those the selection names,
    /// reading the categories just fetched (`fresh`) beside the known ones. A title that
    /// matches nothing selects nothing here; the engine's filter reports it.
    pub fn narrow<'a>(
        &self,
        fresh: impl Iterator<Item = &'a Update>,
        products: &BTreeSet<String>,
        classifications: &BTreeSet<String>,
    ) -> (BTreeSet<String>, BTreeSet<String>) {
        let mut tree = self.known.clone();
        for u in fresh.filter(|u| u.update_type == UpdateType::Category) {
            tree.insert(
                u.identity.id,
                CategoryNode {
                    kind: u.category_kind.unwrap_or(CategoryKind::Product),
                    parent: u.categories.first().copied(),
                    title: u.title("en").unwrap_or("").to_owned(),
                },
            );
        }
        let mut filter =
            ProductClassificationFilter::new(self.products.clone(), self.classifications.clone());
        // Unmatched names are the engine filter's to report (with the same message).
        let _ = filter.prepare(&tree);
        let (p, c) = filter.resolved();
        let keep = |all: &BTreeSet<String>, set: Option<&std::collections::HashSet<_>>| match set {
            None => all.clone(),
            Some(set) => all
                .iter()
                .filter(|id| crate::model::UpdateId::parse(id).is_ok_and(|id| set.contains(&id)))
                .cloned()
                .collect(),
        };
        (keep(products, p), keep(classifications, c))
    }
}
