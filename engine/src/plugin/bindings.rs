//! The host side of the `patchsync:plugin` WIT contract (`sdk/wit/plugin.wit`): the bindings
//! `bindgen!` makes for both worlds, and the imports the host implements (log, progress, and
//! the HTTP fetch restricted to the manifest's hosts).

use std::collections::HashMap;

use super::runtime::HostState;
use crate::filter::{CategoryTree, UpdateView};
use crate::model::{CategoryKind, UpdateId, UpdateType};

/// The filter world; it also defines the shared `types` and `log` interfaces.
pub(crate) mod filter_world {
    wasmtime::component::bindgen!({
        world: "filter-plugin",
        path: "../sdk/wit",
        // Native plugins get the same records as JSON.
        additional_derives: [serde::Serialize],
    });
}

/// The source world, sharing `types` and `log` with the filter world.
pub(crate) mod source_world {
    wasmtime::component::bindgen!({
        world: "source-plugin",
        path: "../sdk/wit",
        with: {
            "patchsync:plugin/types": super::filter_world::patchsync::plugin::types,
            "patchsync:plugin/log": super::filter_world::patchsync::plugin::log,
        },
    });
}

pub(crate) use filter_world::patchsync::plugin::types;
use types::{Level, Response};

impl types::Host for HostState {}

impl Level {
    /// The word the sync log shows.
    pub(crate) fn word(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

impl filter_world::patchsync::plugin::log::Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        // A runaway logger cannot fill memory: keep the first 10,000 lines between drains.
        if self.messages.len() < 10_000 {
            self.messages.push((level, message));
        }
    }
}

impl source_world::patchsync::plugin::progress::Host for HostState {
    fn report(&mut self, done: u64, total: u64) {
        self.progress = Some((done, total));
    }
}

impl source_world::patchsync::plugin::http::Host for HostState {
    fn fetch(
        &mut self,
        method: String,
        url: String,
        headers: Vec<(String, String)>,
    ) -> Result<Response, String> {
        let Some(policy) = self.http.clone() else {
            return Err("this plugin may not use HTTP".into());
        };
        super::http::fetch(&policy, &method, &url, &headers)
    }
}

fn kind_of(k: CategoryKind) -> types::CategoryKind {
    match k {
        CategoryKind::Company => types::CategoryKind::Company,
        CategoryKind::ProductFamily => types::CategoryKind::ProductFamily,
        CategoryKind::Product => types::CategoryKind::Product,
        CategoryKind::UpdateClassification => types::CategoryKind::UpdateClassification,
    }
}

/// The categories of `tree` as the contract hands them over (sorted by GUID), and the index
/// of each GUID.
pub(crate) fn category_table(
    tree: &CategoryTree,
) -> (Vec<types::Category>, HashMap<UpdateId, u32>) {
    // Vendor catalogs name Microsoft's classifications without shipping them: the
    // well-known ones are always in the table, as the built-in selection knows them too.
    let known: Vec<(UpdateId, crate::filter::CategoryNode)> =
        crate::model::WELL_KNOWN_CLASSIFICATIONS
            .iter()
            .filter_map(|(title, g)| {
                let id = UpdateId::parse(g).ok()?;
                (!tree.nodes.contains_key(&id)).then(|| {
                    (
                        id,
                        crate::filter::CategoryNode {
                            kind: CategoryKind::UpdateClassification,
                            parent: None,
                            title: (*title).to_owned(),
                        },
                    )
                })
            })
            .collect();
    let extra: HashMap<UpdateId, crate::filter::CategoryNode> = known.into_iter().collect();
    let node = |id: &UpdateId| {
        tree.nodes
            .get(id)
            .or_else(|| extra.get(id))
            .expect("listed")
    };
    let mut ids: Vec<&UpdateId> = tree.nodes.keys().chain(extra.keys()).collect();
    ids.sort();
    let index: HashMap<UpdateId, u32> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (**id, i as u32))
        .collect();
    let list = ids
        .iter()
        .map(|id| {
            let n = node(id);
            types::Category {
                id: id.to_string(),
                kind: kind_of(n.kind),
                title: n.title.clone(),
                parent: n.parent.and_then(|p| index.get(&p).copied()),
            }
        })
        .collect();
    (list, index)
}

/// What the contract hands over of one update: the fields the plugin reads, the others
/// empty.
pub(crate) fn update_record(
    u: &UpdateView,
    index: &HashMap<UpdateId, u32>,
    fields: crate::plugin::Fields,
) -> types::Update {
    let f = |name: &str| fields.has(name);
    let list = |name: &str, v: &Vec<String>| if f(name) { v.clone() } else { Vec::new() };
    types::Update {
        id: u.id.to_string(),
        revision: u.revision,
        update_type: match u.update_type {
            UpdateType::Software => types::UpdateType::Software,
            UpdateType::Driver => types::UpdateType::Driver,
            UpdateType::Category => types::UpdateType::Category,
            UpdateType::Detectoid => types::UpdateType::Detectoid,
        },
        title: u.title.clone().filter(|_| f("title")),
        categories: if f("categories") {
            u.categories
                .iter()
                .filter_map(|c| index.get(c).copied())
                .collect()
        } else {
            Vec::new()
        },
        msrc_severity: u.msrc_severity.clone().filter(|_| f("msrc_severity")),
        kb_articles: list("kb_articles", &u.kb_articles),
        cves: list("cves", &u.cves),
        bulletins: list("bulletins", &u.bulletins),
        languages: list("languages", &u.languages),
        creation_date: u.creation_date.clone().filter(|_| f("creation_date")),
        published: u.published && f("published"),
        superseded: u.superseded && f("superseded"),
        is_bundle: u.is_bundle && f("is_bundle"),
        size: u.size.filter(|_| f("size")),
        source: if f("source") {
            u.source.clone()
        } else {
            String::new()
        },
    }
}
