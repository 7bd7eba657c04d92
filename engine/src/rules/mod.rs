//! Rule sets: admins decide in TOML, without code, which updates enter the store.
//!
//! A rule set is an ordered list of rules; each rule has an action (`include`, `exclude`,
//! `pin`) and conditions on update fields, all of which must hold. The first rule that
//! matches decides; an update no rule matches gets the set's `default` (`continue`, the
//! default, hands it to the next stage). Rules are compiled once: regexes and globs when the
//! file is loaded, category titles to GUID sets when the category tree is known
//! ([`UpdateFilter::prepare`]), relative ages to a cut-off date at the same time.
//!
//! Where rule sets sit among the stages is the site config's `[filter] order` (default:
//! pins, rule sets in their listed order, then the built-in product / classification
//! selection); `engine/docs/rules.md` is the reference.

mod fields;
mod parse;

use std::collections::HashSet;
use std::path::PathBuf;

use regex::Regex;
use sha1::{Digest, Sha1};

pub use fields::{FIELDS, FieldType};
pub use parse::load_file;
pub(crate) use parse::{RawRuleSet, compile};

use crate::filter::{CategoryTree, Decision, UpdateFilter, UpdateView, Verdict};
use crate::model::{CategoryKind, UpdateId, UpdateType, well_known_classification};

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Include,
    Exclude,
    /// Include, and keep across syncs whatever later decides (until `patchsync unpin`).
    Pin,
    /// Stop this set here: the next stage decides (an exception to the rules below).
    Continue,
}

/// What a set says about an update none of its rules match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetDefault {
    /// No opinion: the next stage decides.
    Continue,
    Include,
    Exclude,
}

/// A compiled rule set.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub name: String,
    /// `rules <name>`: how reports and `explain` name this stage.
    stage: String,
    /// The file it came from (the site config for inline sets).
    pub file: PathBuf,
    pub default: SetDefault,
    pub description: Option<String>,
    pub rules: Vec<Rule>,
    /// Over the set's text: changes when the set would decide differently.
    digest: String,
    /// Whether a condition counts days back from now (`older_than`, `newer_than`).
    relative: bool,
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// 1-based, as `explain` and errors show it.
    pub index: usize,
    pub name: Option<String>,
    pub action: Action,
    pub line: usize,
    pub conditions: Vec<Condition>,
}

/// One compiled condition.
#[derive(Debug, Clone)]
pub struct Condition {
    pub field: &'static str,
    /// As written: `severity at_least "Important"`.
    pub shown: String,
    test: Test,
}

#[derive(Debug, Clone)]
enum Matcher {
    /// Lowercased.
    Equals(HashSet<String>),
    Regex(Regex),
    Contains(String),
}

impl Matcher {
    fn test(&self, value: &str) -> bool {
        match self {
            Matcher::Equals(set) => set.contains(&value.to_lowercase()),
            Matcher::Regex(re) => re.is_match(value),
            Matcher::Contains(s) => value.to_lowercase().contains(s),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CategoryField {
    Product,
    ProductFamily,
    Company,
    Classification,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextField {
    Title,
    Source,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetField {
    Language,
    Kb,
    Cve,
    Bulletin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BoolField {
    Superseded,
    Expired,
    Bundle,
}

#[derive(Debug, Clone)]
enum Test {
    Category {
        field: CategoryField,
        /// Titles or GUIDs as written (for `equals`/`in`/`not_in`), or a title glob.
        names: Vec<String>,
        glob: Option<Regex>,
        negate: bool,
        /// Filled by `prepare`: every category the names stand for, subtrees included.
        resolved: HashSet<UpdateId>,
    },
    Text {
        field: TextField,
        m: Matcher,
        negate: bool,
    },
    Set {
        field: SetField,
        m: Matcher,
        negate: bool,
    },
    /// Ranks, inclusive.
    Severity {
        lo: u8,
        hi: u8,
    },
    SeverityIn(Vec<u8>),
    UpdateType {
        types: Vec<UpdateType>,
        negate: bool,
    },
    /// Sortable `YYYY-MM-DDTHH:MM:SS` bounds; `before` is exclusive, `after` inclusive.
    Date {
        before: Option<String>,
        after: Option<String>,
    },
    /// Days back from now, turned into a `Date` by `prepare`.
    Age {
        days: i64,
        older: bool,
        cutoff: String,
    },
    Bool {
        field: BoolField,
        value: bool,
    },
    Size {
        lo: u64,
        hi: u64,
    },
}

impl Condition {
    fn holds(&self, u: &UpdateView) -> bool {
        match &self.test {
            Test::Category {
                resolved, negate, ..
            } => u.categories.iter().any(|c| resolved.contains(c)) != *negate,
            Test::Text { field, m, negate } => {
                let v = match field {
                    TextField::Title => u.title.as_deref().unwrap_or(""),
                    TextField::Source => u.source.as_str(),
                };
                m.test(v) != *negate
            }
            Test::Set { field, m, negate } => {
                let values = match field {
                    SetField::Language => &u.languages,
                    SetField::Kb => &u.kb_articles,
                    SetField::Cve => &u.cves,
                    SetField::Bulletin => &u.bulletins,
                };
                values.iter().any(|v| m.test(v)) != *negate
            }
            Test::Severity { lo, hi } => {
                let r = fields::severity_rank(u.msrc_severity.as_deref()).unwrap_or(0);
                (*lo..=*hi).contains(&r)
            }
            Test::SeverityIn(ranks) => {
                ranks.contains(&fields::severity_rank(u.msrc_severity.as_deref()).unwrap_or(0))
            }
            Test::UpdateType { types, negate } => types.contains(&u.update_type) != *negate,
            Test::Date { before, after } => match u.creation_date.as_deref() {
                None => false,
                Some(d) => {
                    let d = &d[..d.len().min(19)];
                    before.as_deref().is_none_or(|b| d < b)
                        && after.as_deref().is_none_or(|a| d >= a)
                }
            },
            Test::Age { older, cutoff, .. } => match u.creation_date.as_deref() {
                None => false,
                Some(d) => {
                    let d = &d[..d.len().min(19)];
                    if *older {
                        d < cutoff.as_str()
                    } else {
                        d >= cutoff.as_str()
                    }
                }
            },
            Test::Bool { field, value } => {
                let v = match field {
                    BoolField::Superseded => u.superseded,
                    BoolField::Expired => !u.published,
                    BoolField::Bundle => u.is_bundle,
                };
                v == *value
            }
            Test::Size { lo, hi } => u.size.is_some_and(|s| (*lo..=*hi).contains(&s)),
        }
    }

    /// Resolves category names against the tree and ages against `now`; returns warnings.
    fn prepare(&mut self, tree: &CategoryTree, now: chrono::DateTime<chrono::Utc>) -> Vec<String> {
        let mut warnings = Vec::new();
        match &mut self.test {
            Test::Category {
                field,
                names,
                glob,
                resolved,
                ..
            } => {
                resolved.clear();
                let kinds: &[CategoryKind] = match field {
                    CategoryField::Product => &[CategoryKind::Product],
                    CategoryField::ProductFamily => &[CategoryKind::ProductFamily],
                    CategoryField::Company => &[CategoryKind::Company],
                    CategoryField::Classification => &[CategoryKind::UpdateClassification],
                };
                let nodes = || tree.nodes.iter().filter(|(_, n)| kinds.contains(&n.kind));
                let mut roots: Vec<UpdateId> = Vec::new();
                if let Some(re) = glob {
                    roots.extend(
                        nodes()
                            .filter(|(_, n)| re.is_match(&n.title))
                            .map(|(id, _)| *id),
                    );
                }
                for name in names.iter() {
                    let before = roots.len();
                    if let Ok(id) = UpdateId::parse(name) {
                        roots.push(id);
                        continue;
                    }
                    roots.extend(
                        nodes()
                            .filter(|(_, n)| n.title.eq_ignore_ascii_case(name.trim()))
                            .map(|(id, _)| *id),
                    );
                    if roots.len() == before {
                        if *field == CategoryField::Classification
                            && let Some(id) = well_known_classification(name)
                        {
                            roots.push(id);
                        } else {
                            warnings.push(format!(
                                "{} '{name}' matches no {} in the catalog",
                                self.field,
                                self.field.replace('_', " ")
                            ));
                        }
                    }
                }
                for r in roots {
                    resolved.extend(tree.subtree(r));
                }
            }
            Test::Age {
                days,
                older,
                cutoff,
            } => {
                let _ = older;
                *cutoff = (now - chrono::Duration::days(*days))
                    .format("%Y-%m-%dT%H:%M:%S")
                    .to_string();
            }
            _ => {}
        }
        warnings
    }
}

/// How one rule fared against one update, for `explain`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuleTrace {
    pub index: usize,
    pub name: Option<String>,
    pub line: usize,
    pub matched: bool,
    /// The first condition that did not hold.
    pub failed: Option<String>,
}

impl Rule {
    /// `rule 3 'no previews' (line 14)`.
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("rule {} '{n}'", self.index),
            None => format!("rule {}", self.index),
        }
    }
}

impl RuleSet {
    /// Each rule tried in order until one matches.
    pub fn rule_trace(&self, u: &UpdateView) -> Vec<RuleTrace> {
        let mut out = Vec::new();
        for r in &self.rules {
            let failed = r.conditions.iter().find(|c| !c.holds(u));
            out.push(RuleTrace {
                index: r.index,
                name: r.name.clone(),
                line: r.line,
                matched: failed.is_none(),
                failed: failed.map(|c| c.shown.clone()),
            });
            if failed.is_none() {
                break;
            }
        }
        out
    }

    fn decide(&self, u: &UpdateView) -> Decision {
        for r in &self.rules {
            if r.conditions.iter().all(|c| c.holds(u)) {
                let verdict = match r.action {
                    Action::Include => Verdict::Include,
                    Action::Exclude => Verdict::Exclude,
                    Action::Pin => Verdict::Pin,
                    Action::Continue => Verdict::Abstain,
                };
                return Decision {
                    verdict,
                    reason: Some(format!(
                        "{} of {} (line {})",
                        r.label(),
                        self.file.display(),
                        r.line
                    )),
                };
            }
        }
        match self.default {
            SetDefault::Continue => Decision {
                verdict: Verdict::Abstain,
                reason: None,
            },
            d => Decision {
                verdict: if d == SetDefault::Include {
                    Verdict::Include
                } else {
                    Verdict::Exclude
                },
                reason: Some(format!(
                    "no rule matched: the default of {}",
                    self.file.display()
                )),
            },
        }
    }

    /// Whether a condition reads `superseded` (the sync then loads what the store supersedes).
    pub fn uses_supersedence(&self) -> bool {
        self.rules.iter().flat_map(|r| &r.conditions).any(|c| {
            matches!(
                c.test,
                Test::Bool {
                    field: BoolField::Superseded,
                    ..
                }
            )
        })
    }
}

impl UpdateFilter for RuleSet {
    #[allow(clippy::misnamed_getters)] // the stage's name is `rules <set name>`
    fn name(&self) -> &str {
        &self.stage
    }

    fn config_hash(&self) -> String {
        let mut h = Sha1::new();
        h.update(self.digest.as_bytes());
        if self.relative {
            // Ages move with the calendar: decide excluded updates again once a day.
            h.update(chrono::Utc::now().format("%Y-%m-%d").to_string().as_bytes());
        }
        format!("{:x}", h.finalize())
    }

    fn prepare(&mut self, tree: &CategoryTree) -> crate::error::Result<Vec<String>> {
        let now = chrono::Utc::now();
        let file = self.file.display().to_string();
        let mut warnings = Vec::new();
        for r in &mut self.rules {
            let label = r.label();
            for c in &mut r.conditions {
                for w in c.prepare(tree, now) {
                    warnings.push(format!(
                        "{file}:{}: {label}: {w}; see `patchsync categories`",
                        r.line
                    ));
                }
            }
        }
        Ok(warnings)
    }

    fn evaluate(
        &self,
        _tree: &CategoryTree,
        batch: &[UpdateView],
        out: &mut Vec<Decision>,
    ) -> crate::error::Result<()> {
        out.extend(batch.iter().map(|u| self.decide(u)));
        Ok(())
    }

    fn trace(&self, _tree: &CategoryTree, u: &UpdateView) -> Vec<RuleTrace> {
        self.rule_trace(u)
    }
}
