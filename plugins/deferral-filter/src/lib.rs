//! deferral-filter: holds back updates younger than N days, the way update rings defer,
//! except those an exception fast-tracks (e.g. Critical security updates).
//!
//! ```toml
//! [config]
//! days = 14
//! # Exceptions: an update matching every condition of one of them is not held back.
//! except = [{ classification = "Security Updates", severity = "Critical" }]
//! undated = "keep"       # or "defer": an update without a creation date
//! # today = "2024-05-01" # a fixed date instead of the clock (reproducible plans)
//! ```
//!
//! An update old enough, or excepted, gets no verdict (the other stages decide); one still
//! deferred is excluded, with the day it becomes eligible as the reason. Excluded updates
//! are decided again at a later sync: the plugin's config hash includes the date.

use patchsync_sdk::prelude::*;
use serde::Deserialize;

/// One exception: all its conditions hold.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Exception {
    /// Classification title or GUID.
    #[serde(default)]
    pub classification: Option<String>,
    /// MSRC severity at or above.
    #[serde(default)]
    pub severity: Option<String>,
    /// Text the title contains (any case).
    #[serde(default)]
    pub title_contains: Option<String>,
}

/// The filter, configured.
#[derive(Debug)]
pub struct DeferralFilter {
    days: i64,
    except: Vec<(Exception, Option<Severity>)>,
    defer_undated: bool,
    today: Date,
}

impl Filter for DeferralFilter {
    fn init(config: &Config) -> Result<Self, String> {
        config.only(&["days", "except", "undated", "today"])?;
        let days: i64 = config.require("days")?;
        if !(0..=3650).contains(&days) {
            return Err(format!("'days': {days} is out of range; give 0 to 3650"));
        }
        let mut except = Vec::new();
        for (i, e) in config
            .get::<Vec<Exception>>("except")?
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let sev = match &e.severity {
                None => None,
                Some(s) => Some(Severity::parse(s).ok_or_else(|| {
                    format!("'except[{i}].severity': '{s}' is not an MSRC severity; use Critical, Important, Moderate or Low")
                })?),
            };
            if e.classification.is_none() && sev.is_none() && e.title_contains.is_none() {
                return Err(format!(
                    "'except[{i}]' has no condition; give classification, severity or title_contains"
                ));
            }
            except.push((e, sev));
        }
        let defer_undated = match config.string("undated")?.as_deref() {
            None | Some("keep") => false,
            Some("defer") => true,
            Some(o) => {
                return Err(format!(
                    "'undated': '{o}' is not a choice; use \"keep\" or \"defer\""
                ));
            }
        };
        let today = match config.string("today")? {
            None => Date::today(),
            Some(t) => Date::parse(&t)
                .ok_or_else(|| format!("'today': '{t}' is not a date (YYYY-MM-DD)"))?,
        };
        Ok(DeferralFilter {
            days,
            except,
            defer_undated,
            today,
        })
    }

    fn filter(&mut self, u: &Update, cats: &Categories) -> Verdict {
        let excepted = self.except.iter().any(|(e, sev)| {
            e.classification
                .as_ref()
                .is_none_or(|c| cats.is_classified_as(u, c))
                && sev.is_none_or(|min| u.severity().is_some_and(|s| s >= min))
                && e.title_contains
                    .as_ref()
                    .is_none_or(|t| u.title().to_lowercase().contains(&t.to_lowercase()))
        });
        if excepted {
            return Verdict::Abstain;
        }
        let Some(created) = u.created() else {
            return if self.defer_undated {
                Verdict::exclude("no creation date (undated = \"defer\")")
            } else {
                Verdict::Abstain
            };
        };
        let age = self.today.days() - created.days();
        if age >= self.days {
            return Verdict::Abstain;
        }
        let ready = Date::from_days(created.days() + self.days);
        Verdict::exclude(format!(
            "deferred: {age} days old, eligible on {:04}-{:02}-{:02} ({} days)",
            ready.year, ready.month, ready.day, self.days
        ))
    }
}

patchsync_sdk::export_filter!(DeferralFilter);

#[cfg(test)]
mod tests {
    use super::*;
    use patchsync_sdk::testing::CategoriesBuilder;
    use serde_json::json;

    fn cats() -> Categories {
        CategoriesBuilder::new()
            .classification("Security Updates")
            .classification("Updates")
            .build()
    }

    fn filter(c: serde_json::Value) -> Result<DeferralFilter, String> {
        DeferralFilter::init(&Config::from_json(c))
    }

    #[test]
    fn young_updates_wait_old_ones_and_exceptions_pass() {
        let c = cats();
        let mut f = filter(json!({"days": 14, "today": "2024-05-15",
            "except": [{"classification": "Security Updates", "severity": "Critical"}]}))
        .unwrap();
        let young = Update::new("a")
            .in_categories(&c, &["Updates"])
            .created_on("2024-05-10T00:00:00Z");
        assert_eq!(
            f.filter(&young, &c),
            Verdict::exclude("deferred: 5 days old, eligible on 2024-05-24 (14 days)")
        );
        let old = young.clone().created_on("2024-05-01");
        assert_eq!(f.filter(&old, &c), Verdict::Abstain);
        let critical = Update::new("b")
            .in_categories(&c, &["Security Updates"])
            .with_severity("Critical")
            .created_on("2024-05-14");
        assert_eq!(f.filter(&critical, &c), Verdict::Abstain);
        let important = critical.clone().with_severity("Important");
        assert!(f.filter(&important, &c).is_exclude());
        assert_eq!(f.filter(&Update::new("u"), &c), Verdict::Abstain);
    }

    #[test]
    fn bad_configs_are_named() {
        assert!(
            filter(json!({}))
                .unwrap_err()
                .contains("'days' is required")
        );
        assert!(
            filter(json!({"days": -1}))
                .unwrap_err()
                .contains("out of range")
        );
        assert!(
            filter(json!({"days": 1, "except": [{}]}))
                .unwrap_err()
                .contains("'except[0]' has no condition")
        );
        assert!(
            filter(json!({"days": 1, "except": [{"severity": "Urgent"}]}))
                .unwrap_err()
                .contains("except[0].severity")
        );
        assert!(
            filter(json!({"days": 1, "today": "soon"}))
                .unwrap_err()
                .contains("'today'")
        );
    }
}
