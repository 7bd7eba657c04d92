//! What the export macros call: keeps the plugin's state for the instance's life and
//! converts between the generated WIT types and the SDK's own.

use std::any::Any;
use std::cell::RefCell;

use crate::bindings::filter::patchsync::plugin::types as wit;
use crate::{
    Categories, Category, CategoryKind, Config, Filter, Source, Update, UpdateType, Verdict,
};

thread_local! {
    static STATE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    static CATEGORIES: RefCell<Categories> = RefCell::new(Categories::default());
}

fn kind(k: wit::CategoryKind) -> CategoryKind {
    match k {
        wit::CategoryKind::Company => CategoryKind::Company,
        wit::CategoryKind::ProductFamily => CategoryKind::ProductFamily,
        wit::CategoryKind::Product => CategoryKind::Product,
        wit::CategoryKind::UpdateClassification => CategoryKind::UpdateClassification,
        wit::CategoryKind::Other => CategoryKind::Other,
    }
}

fn update(u: wit::Update) -> Update {
    Update {
        id: u.id,
        revision: u.revision,
        update_type: match u.update_type {
            wit::UpdateType::Software => UpdateType::Software,
            wit::UpdateType::Driver => UpdateType::Driver,
            wit::UpdateType::Category => UpdateType::Category,
            wit::UpdateType::Detectoid => UpdateType::Detectoid,
        },
        title: u.title,
        categories: u.categories,
        msrc_severity: u.msrc_severity,
        kb_articles: u.kb_articles,
        cves: u.cves,
        bulletins: u.bulletins,
        languages: u.languages,
        creation_date: u.creation_date,
        published: u.published,
        superseded: u.superseded,
        is_bundle: u.is_bundle,
        size: u.size,
        source: u.source,
    }
}

fn verdict(v: Verdict) -> wit::Verdict {
    match v {
        Verdict::Include(reason) => wit::Verdict {
            decision: wit::Decision::Include,
            reason,
        },
        Verdict::Exclude(reason) => wit::Verdict {
            decision: wit::Decision::Exclude,
            reason,
        },
        Verdict::Abstain => wit::Verdict {
            decision: wit::Decision::Abstain,
            reason: None,
        },
    }
}

pub fn filter_init<F: Filter>(config: &str) -> Result<(), String> {
    let config = Config::parse(config)?;
    let f = F::init(&config)?;
    STATE.with(|s| *s.borrow_mut() = Some(Box::new(f)));
    Ok(())
}

fn with_filter<F: Filter, R>(f: impl FnOnce(&mut F, &Categories) -> R) -> R {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        let state = s
            .as_mut()
            .and_then(|b| b.downcast_mut::<F>())
            .expect("patchsync calls init before anything else");
        CATEGORIES.with(|c| f(state, &c.borrow()))
    })
}

pub fn filter_prepare<F: Filter>(categories: Vec<wit::Category>) {
    let cats = Categories::new(
        categories
            .into_iter()
            .map(|c| Category {
                id: c.id,
                kind: kind(c.kind),
                title: c.title,
                parent: c.parent,
            })
            .collect(),
    );
    CATEGORIES.with(|c| *c.borrow_mut() = cats);
    with_filter::<F, _>(|f, c| f.prepare(c))
}

pub fn filter_batch<F: Filter>(batch: Vec<wit::Update>) -> Vec<wit::Verdict> {
    let batch: Vec<Update> = batch.into_iter().map(update).collect();
    with_filter::<F, _>(|f, c| f.filter_batch(&batch, c))
        .into_iter()
        .map(verdict)
        .collect()
}

pub fn source_init<S: Source>(config: &str, cursor: Option<String>) -> Result<(), String> {
    let config = Config::parse(config)?;
    let s = S::init(&config, cursor)?;
    STATE.with(|st| *st.borrow_mut() = Some(Box::new(s)));
    Ok(())
}

pub fn with_source<S: Source, R>(f: impl FnOnce(&mut S) -> Result<R, String>) -> Result<R, String> {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        match s.as_mut().and_then(|b| b.downcast_mut::<S>()) {
            Some(state) => f(state),
            None => Err("the source was not initialised".into()),
        }
    })
}

pub fn source_list<S: Source>() -> Result<wit::Listing, String> {
    let l = with_source::<S, _>(|s| s.list())?;
    Ok(wit::Listing {
        entries: l
            .entries
            .into_iter()
            .map(|i| wit::Identity {
                id: i.id,
                revision: i.revision,
            })
            .collect(),
        complete: l.complete,
        expired: l.expired,
        removed: l.removed,
    })
}

pub fn source_fetch<S: Source>(page: Vec<wit::Identity>) -> Result<Vec<wit::Document>, String> {
    let page: Vec<crate::Identity> = page
        .into_iter()
        .map(|i| crate::Identity {
            id: i.id,
            revision: i.revision,
        })
        .collect();
    let docs = with_source::<S, _>(|s| s.fetch(&page))?;
    Ok(docs
        .into_iter()
        .map(|d| wit::Document {
            xml: d.xml,
            file_urls: d.file_urls,
        })
        .collect())
}
