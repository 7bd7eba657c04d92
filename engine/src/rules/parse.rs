//! Reading rule sets: TOML into compiled rules, every mistake rejected at load with the
//! file, the line, the rule's number and a hint.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use regex::Regex;
use serde::Deserialize;
use sha1::{Digest, Sha1};
use toml::Spanned;

use super::fields::{self, FieldType};
use super::{
    Action, BoolField, CategoryField, Condition, Matcher, Rule, RuleSet, SetDefault, SetField,
    Test, TextField,
};
use crate::config::line_of;
use crate::error::{Error, Result};
use crate::model::UpdateType;

/// A rule set as written (a file, or a `[[rule_set]]` table of the site config).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRuleSet {
    #[serde(default)]
    pub name: Option<Spanned<String>>,
    #[serde(default)]
    pub default: Option<Spanned<String>>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub rule: Vec<Spanned<BTreeMap<Spanned<String>, Spanned<toml::Value>>>>,
}

const RESERVED: &[&str] = &["name", "action", "description"];

/// Reads and compiles a rule file.
pub fn load_file(path: &Path) -> Result<RuleSet> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
        file: path.to_owned(),
        line: None,
        message: format!("cannot read the rule file: {e}"),
    })?;
    let raw: RawRuleSet = toml::from_str(&text).map_err(|e| Error::Config {
        file: path.to_owned(),
        line: e.span().map(|s| line_of(&text, s.start)),
        message: format!(
            "{}; a rule file has `name`, `default` and [[rule]] tables",
            e.message().trim()
        ),
    })?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "rules".into());
    compile(raw, &text, path, &stem)
}

/// Compiles a parsed rule set; `text` is what its spans point into, `file` where it lives.
pub(crate) fn compile(
    raw: RawRuleSet,
    text: &str,
    file: &Path,
    default_name: &str,
) -> Result<RuleSet> {
    let err = |span: std::ops::Range<usize>, rule: Option<usize>, message: String| Error::Config {
        file: file.to_owned(),
        line: Some(line_of(text, span.start)),
        message: match rule {
            Some(i) => format!("rule {i}: {message}"),
            None => message,
        },
    };
    let name = match &raw.name {
        Some(n) if n.get_ref().trim().is_empty() => {
            return Err(err(n.span(), None, "name: must not be empty".into()));
        }
        Some(n) => n.get_ref().trim().to_owned(),
        None => default_name.to_owned(),
    };
    let default = match &raw.default {
        None => SetDefault::Continue,
        Some(d) => match d.get_ref().as_str() {
            "continue" => SetDefault::Continue,
            "include" => SetDefault::Include,
            "exclude" => SetDefault::Exclude,
            other => {
                return Err(err(
                    d.span(),
                    None,
                    format!(
                        "default: '{other}' is not one of continue (the next stage decides), include, exclude"
                    ),
                ));
            }
        },
    };
    let mut rules = Vec::new();
    let mut relative = false;
    for (i, raw_rule) in raw.rule.iter().enumerate() {
        let index = i + 1;
        let table = raw_rule.get_ref();
        let find = |k: &str| table.iter().find(|(key, _)| key.get_ref() == k);
        let action = match find("action") {
            None => {
                return Err(err(
                    raw_rule.span(),
                    Some(index),
                    "has no action; add action = \"include\", \"exclude\", \"pin\" or \"continue\""
                        .into(),
                ));
            }
            Some((_, v)) => match v.get_ref().as_str() {
                Some("include") => Action::Include,
                Some("exclude") => Action::Exclude,
                Some("pin") => Action::Pin,
                Some("continue") => Action::Continue,
                _ => {
                    return Err(err(
                        v.span(),
                        Some(index),
                        format!(
                            "action: {} is not \"include\", \"exclude\", \"pin\" or \"continue\"",
                            v.get_ref()
                        ),
                    ));
                }
            },
        };
        let rule_name = match find("name") {
            Some((_, v)) => Some(
                v.get_ref()
                    .as_str()
                    .ok_or_else(|| err(v.span(), Some(index), "name: must be a string".into()))?
                    .to_owned(),
            ),
            None => None,
        };
        let mut conditions = Vec::new();
        for (key, value) in table {
            let k = key.get_ref().as_str();
            if RESERVED.contains(&k) {
                continue;
            }
            let Some((field, ty)) = fields::field(k) else {
                let hint = match fields::closest(k, fields::FIELDS.iter().map(|f| f.0)) {
                    Some(c) => format!("did you mean '{c}'? "),
                    None => String::new(),
                };
                return Err(err(
                    key.span(),
                    Some(index),
                    format!(
                        "unknown field '{k}'; {hint}fields: {}",
                        fields::FIELDS
                            .iter()
                            .map(|f| f.0)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            };
            let cs = conditions_of(field, ty, value.get_ref())
                .map_err(|m| err(value.span(), Some(index), format!("{field}: {m}")))?;
            relative |= cs.iter().any(|c| matches!(c.test, Test::Age { .. }));
            conditions.extend(cs);
        }
        rules.push(Rule {
            index,
            name: rule_name,
            action,
            line: line_of(text, raw_rule.span().start),
            conditions,
        });
    }
    let mut h = Sha1::new();
    h.update(name.as_bytes());
    h.update([0]);
    h.update(text.as_bytes());
    Ok(RuleSet {
        stage: format!("rules {name}"),
        name,
        file: file.to_owned(),
        default,
        description: raw.description,
        rules,
        digest: format!("{:x}", h.finalize()),
        relative,
    })
}

/// `field = value` or `field = { operator = value, ... }` (several operators: all hold).
fn conditions_of(
    field: &'static str,
    ty: FieldType,
    value: &toml::Value,
) -> Result<Vec<Condition>, String> {
    let ops: Vec<(String, toml::Value)> = match value {
        toml::Value::Table(t) => {
            if t.is_empty() {
                return Err(format!(
                    "an empty table; write an operator: {}",
                    ty.operators().join(", ")
                ));
            }
            t.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        }
        toml::Value::Array(_) if ty.operators().contains(&"in") => {
            vec![("in".into(), value.clone())]
        }
        _ if ty == FieldType::Date || ty == FieldType::Size => {
            return Err(format!(
                "is {}; write an operator: {}, e.g. {field} = {{ {} = ... }}",
                ty.describe(),
                ty.operators().join(", "),
                ty.operators()[0]
            ));
        }
        _ => vec![("equals".into(), value.clone())],
    };
    ops.into_iter()
        .map(|(op, v)| condition(field, ty, op, v))
        .collect()
}

fn condition(
    field: &'static str,
    ty: FieldType,
    op: String,
    v: toml::Value,
) -> Result<Condition, String> {
    if !ty.operators().contains(&op.as_str()) {
        return Err(format!(
            "'{op}' does not apply to {}; it takes {}",
            ty.describe(),
            ty.operators().join(", ")
        ));
    }
    let shown = format!("{field} {op} {v}");
    let strings = |v: &toml::Value| -> Result<Vec<String>, String> {
        match v {
            toml::Value::String(s) => Ok(vec![s.clone()]),
            toml::Value::Integer(i) => Ok(vec![i.to_string()]),
            toml::Value::Array(a) => a
                .iter()
                .map(|x| match x {
                    toml::Value::String(s) => Ok(s.clone()),
                    toml::Value::Integer(i) => Ok(i.to_string()),
                    other => Err(format!("{other} is not text")),
                })
                .collect(),
            other => Err(format!("{other} is not text or a list of texts")),
        }
    };
    let single = |v: &toml::Value| -> Result<String, String> {
        match v {
            toml::Value::String(s) => Ok(s.clone()),
            other => Err(format!("'{op}' takes one text, not {other}")),
        }
    };
    let regex = |pattern: &str| {
        Regex::new(pattern).map_err(|e| {
            format!(
                "'{pattern}' is not a valid regular expression: {e}; (?i) makes it case-insensitive"
            )
        })
    };
    let matcher = |op: &str, v: &toml::Value| -> Result<(Matcher, bool), String> {
        Ok(match op {
            "equals" | "in" | "not_in" => (
                Matcher::Equals(
                    strings(v)?
                        .iter()
                        .map(|s| s.trim().to_lowercase())
                        .collect(),
                ),
                op == "not_in",
            ),
            "matches" => {
                let globs = strings(v)?;
                let joined = globs
                    .iter()
                    .map(|g| fields::glob_regex(g))
                    .collect::<Vec<_>>()
                    .join("|");
                (Matcher::Regex(regex(&joined)?), false)
            }
            "regex" => (Matcher::Regex(regex(&single(v)?)?), false),
            "contains" => (Matcher::Contains(single(v)?.to_lowercase()), false),
            _ => unreachable!("checked against the type's operators"),
        })
    };
    let test = match ty {
        FieldType::Category => {
            let field = match field {
                "product" => CategoryField::Product,
                "product_family" => CategoryField::ProductFamily,
                "company" | "vendor" => CategoryField::Company,
                _ => CategoryField::Classification,
            };
            let (names, glob) = if op == "matches" {
                let joined = strings(&v)?
                    .iter()
                    .map(|g| fields::glob_regex(g))
                    .collect::<Vec<_>>()
                    .join("|");
                (Vec::new(), Some(regex(&joined)?))
            } else {
                (strings(&v)?, None)
            };
            Test::Category {
                field,
                names,
                glob,
                negate: op == "not_in",
                resolved: HashSet::new(),
            }
        }
        FieldType::Text => {
            let (m, negate) = matcher(&op, &v)?;
            Test::Text {
                field: if field == "title" {
                    TextField::Title
                } else {
                    TextField::Source
                },
                m,
                negate,
            }
        }
        FieldType::TextSet => {
            let (mut m, negate) = matcher(&op, &v)?;
            let field = match field {
                "language" => SetField::Language,
                "kb" => SetField::Kb,
                "cve" => SetField::Cve,
                _ => SetField::Bulletin,
            };
            if field == SetField::Kb
                && let Matcher::Equals(set) = &m
            {
                // "KB5034441" and "5034441" name the same article.
                m = Matcher::Equals(
                    set.iter()
                        .map(|s| s.trim_start_matches("kb").to_owned())
                        .collect(),
                );
            }
            Test::Set { field, m, negate }
        }
        FieldType::Severity => {
            let rank = |s: &str| {
                fields::severity_rank(Some(s)).ok_or_else(|| {
                    format!("'{s}' is not a severity; use Critical, Important, Moderate, Low or unspecified")
                })
            };
            match op.as_str() {
                "equals" | "in" => Test::SeverityIn(
                    strings(&v)?
                        .iter()
                        .map(|s| rank(s))
                        .collect::<Result<_, _>>()?,
                ),
                _ => {
                    let r = rank(&single(&v)?)?;
                    let (lo, hi) = match op.as_str() {
                        "at_least" => (r, 4),
                        "at_most" => (0, r),
                        "above" => (r.saturating_add(1), 4),
                        _ => (0, r.checked_sub(1).ok_or("nothing is below unspecified")?),
                    };
                    Test::Severity { lo, hi }
                }
            }
        }
        FieldType::UpdateType => Test::UpdateType {
            types: strings(&v)?
                .iter()
                .map(|s| match s.trim().to_ascii_lowercase().as_str() {
                    "software" => Ok(UpdateType::Software),
                    "driver" => Ok(UpdateType::Driver),
                    _ => Err(format!("'{s}' is not Software or Driver")),
                })
                .collect::<Result<_, _>>()?,
            negate: op == "not_in",
        },
        FieldType::Date => match op.as_str() {
            "before" | "after" => {
                let s = single(&v)?;
                let d = fields::parse_date(&s).ok_or_else(|| {
                    format!("'{s}' is not a date; write 2024-01-31 or 2024-01-31T18:00:00Z")
                })?;
                if op == "before" {
                    Test::Date {
                        before: Some(d),
                        after: None,
                    }
                } else {
                    Test::Date {
                        before: None,
                        after: Some(d),
                    }
                }
            }
            _ => {
                let s = single(&v)?;
                let days = fields::parse_age(&s).ok_or_else(|| {
                    format!("'{s}' is not an age; write \"30 days\", \"2 weeks\", \"6 months\" or \"1 year\"")
                })?;
                Test::Age {
                    days,
                    older: op == "older_than",
                    cutoff: String::new(),
                }
            }
        },
        FieldType::Bool => Test::Bool {
            field: match field {
                "superseded" => BoolField::Superseded,
                "expired" => BoolField::Expired,
                _ => BoolField::Bundle,
            },
            value: v
                .as_bool()
                .ok_or_else(|| format!("{v} is not true or false"))?,
        },
        FieldType::Size => {
            let n = fields::parse_size(&v).ok_or_else(|| {
                format!("{v} is not a size; write bytes, or \"150 MB\", \"2 GiB\"")
            })?;
            let (lo, hi) = match op.as_str() {
                "at_least" => (n, u64::MAX),
                "at_most" => (0, n),
                "above" => (n.saturating_add(1), u64::MAX),
                _ => (0, n.checked_sub(1).ok_or("nothing is below 0 bytes")?),
            };
            Test::Size { lo, hi }
        }
    };
    Ok(Condition { field, shown, test })
}
