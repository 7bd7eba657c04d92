//! `patchsync explain ID`: the decision trail of one update under the current config: each
//! stage in order, each rule tried, and the verdict; beside what the last sync recorded.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::filter::{CategoryTree, FilterChain, UpdateView, Verdict};
use crate::model::UpdateId;
use crate::rules::RuleTrace;
use crate::store::Store;

/// One stage's part in a decision.
#[derive(Debug, Clone, Serialize)]
pub struct StageStep {
    pub stage: String,
    /// `include`, `pin`, `exclude`, or `continue` (no opinion: the next stage decides).
    pub verdict: String,
    pub reason: Option<String>,
    /// For a rule set: the rules tried, up to the one that matched.
    pub rules: Vec<RuleTrace>,
}

/// The decision trail of one update.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub id: String,
    pub title: Option<String>,
    pub source: Option<String>,
    /// The store has its metadata.
    pub in_store: bool,
    pub state: Option<String>,
    /// What the last sync recorded: `stored` / `excluded`, by which stage, why.
    pub recorded: Option<Recorded>,
    /// The current config's stages, in order, up to the one that decides.
    pub stages: Vec<StageStep>,
    /// The current config's verdict: `include`, `pin` or `exclude`.
    pub verdict: Option<String>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    pub verdict: String,
    pub decided_by: Option<String>,
    pub reason: Option<String>,
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Include => "include",
        Verdict::Pin => "pin",
        Verdict::Exclude => "exclude",
        Verdict::Abstain => "continue",
    }
}

/// Explains `id` against the store with `chain` (prepared here against the store's tree).
pub(crate) fn explain(store: &Store, chain: &mut FilterChain, id: UpdateId) -> Result<Explanation> {
    let ids = id.to_string();
    let e = |x: rusqlite::Error| store.err(x);
    let recorded = store
        .conn
        .query_row(
            "SELECT verdict, decided_by, reason, source FROM catalog_items WHERE update_id = ?1
             ORDER BY verdict = 'stored' DESC LIMIT 1",
            [&ids],
            |r| {
                Ok((
                    Recorded {
                        verdict: r.get(0)?,
                        decided_by: r.get(1)?,
                        reason: r.get(2)?,
                    },
                    r.get::<_, String>(3)?,
                ))
            },
        )
        .ok();
    let row: Option<(String, u32, String, Vec<u8>)> = {
        use rusqlite::OptionalExtension;
        store
            .conn
            .query_row(
                "SELECT u.source, u.revision, u.state, x.xml FROM updates u
                 JOIN update_xml x ON x.uid = u.uid WHERE u.id = ?1",
                [&ids],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(e)?
    };
    let mut out = Explanation {
        id: ids.clone(),
        title: None,
        source: recorded.as_ref().map(|(_, s)| s.clone()),
        in_store: row.is_some(),
        state: None,
        recorded: recorded.map(|(r, _)| r),
        stages: Vec::new(),
        verdict: None,
        note: None,
    };
    let Some((source, revision, state, packed)) = row else {
        if out.recorded.is_none() {
            return Err(Error::NotFound(format!(
                "update {id} is neither in the store nor in any source's catalog as last synced"
            )));
        }
        out.note = Some(
            "its metadata is not in the store (the last sync left it out), so the current rules \
             cannot be shown against it here; `patchsync plan` evaluates the catalog again"
                .into(),
        );
        return Ok(out);
    };
    let xml = zstd::decode_all(&packed[..])
        .map_err(|x| store.err(format!("update {id}: stored XML does not decompress: {x}")))?;
    let xml = String::from_utf8_lossy(&xml);
    let mut update = crate::source::parse_stored(&xml)
        .map_err(|m| store.err(format!("update {id}: stored XML does not parse: {m}")))?;
    update.identity.revision = revision;
    let mut view = UpdateView::of(&update, &source);
    view.superseded = chain.superseded.contains(&id);
    out.title = view.title.clone();
    out.source = Some(source);
    out.state = Some(state);
    if update.update_type.is_always_synced() {
        out.verdict = Some("include".into());
        out.note = Some(format!(
            "a {}: always synced, whatever the filter",
            update.update_type.as_str().to_lowercase()
        ));
        return Ok(out);
    }
    let tree: CategoryTree = crate::store::load_category_tree(&store.conn).map_err(e)?;
    chain.prepare(&tree)?;
    if chain.is_pinned(&id) {
        out.stages.push(StageStep {
            stage: "pin".into(),
            verdict: "include".into(),
            reason: Some("pinned (import-update, or a rule with action = \"pin\"); `patchsync unpin` releases it".into()),
            rules: Vec::new(),
        });
        out.verdict = Some("include".into());
        return Ok(out);
    }
    let mut decisions = Vec::new();
    let mut selected = false;
    for stage in &chain.stages {
        decisions.clear();
        stage.evaluate(&tree, std::slice::from_ref(&view), &mut decisions)?;
        let d = decisions.pop().expect("one decision per update");
        out.stages.push(StageStep {
            stage: stage.name().to_owned(),
            verdict: verdict_word(d.verdict).into(),
            reason: d.reason.clone(),
            rules: stage.trace(&tree, &view),
        });
        if d.verdict == Verdict::Include && !stage.includes_are_final() {
            // Selected: the later stages may still exclude it.
            selected = true;
        } else if d.verdict != Verdict::Abstain {
            out.verdict = Some(verdict_word(d.verdict).into());
            return Ok(out);
        }
    }
    if selected {
        out.verdict = Some("include".into());
        return Ok(out);
    }
    out.stages.push(StageStep {
        stage: "default".into(),
        verdict: "exclude".into(),
        reason: Some("no stage included it".into()),
        rules: Vec::new(),
    });
    out.verdict = Some("exclude".into());
    if out.in_store {
        out.note = Some("the store keeps it as a bundle's leaf, or from before a config change: the next sync decides it again".into());
    }
    Ok(out)
}
