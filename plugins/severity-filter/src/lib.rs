//! severity-filter: keeps security updates at or above a minimum MSRC severity, per
//! classification. Updates of other classifications are left to the other stages.
//!
//! ```toml
//! [config]
//! minimum = "Important"                  # for "Security Updates"
//! per_classification = { "Critical Updates" = "Critical" }   # more classifications
//! unrated = "exclude"                    # or "keep": a listed update without a severity
//! on_pass = "abstain"                    # or "include": what a kept update gets
//! ```

use std::collections::HashMap;

use patchsync_sdk::prelude::*;

/// The filter, configured.
#[derive(Debug)]
pub struct SeverityFilter {
    /// Classification title (lower case) → minimum severity.
    minimum: HashMap<String, Severity>,
    keep_unrated: bool,
    include_passing: bool,
}

fn severity(key: &str, s: &str) -> Result<Severity, String> {
    Severity::parse(s).ok_or_else(|| {
        format!("'{key}': '{s}' is not an MSRC severity; use Critical, Important, Moderate or Low")
    })
}

impl Filter for SeverityFilter {
    fn init(config: &Config) -> Result<Self, String> {
        config.only(&["minimum", "per_classification", "unrated", "on_pass"])?;
        let mut minimum = HashMap::new();
        let base: String = config.require("minimum")?;
        minimum.insert("security updates".to_owned(), severity("minimum", &base)?);
        let per: HashMap<String, String> = config.get("per_classification")?.unwrap_or_default();
        for (class, s) in per {
            minimum.insert(
                class.to_lowercase(),
                severity(&format!("per_classification.{class}"), &s)?,
            );
        }
        let keep_unrated = match config.string("unrated")?.as_deref() {
            None | Some("exclude") => false,
            Some("keep") => true,
            Some(o) => {
                return Err(format!(
                    "'unrated': '{o}' is not a choice; use \"exclude\" or \"keep\""
                ));
            }
        };
        let include_passing = match config.string("on_pass")?.as_deref() {
            None | Some("abstain") => false,
            Some("include") => true,
            Some(o) => {
                return Err(format!(
                    "'on_pass': '{o}' is not a choice; use \"abstain\" or \"include\""
                ));
            }
        };
        Ok(SeverityFilter {
            minimum,
            keep_unrated,
            include_passing,
        })
    }

    fn filter(&mut self, u: &Update, cats: &Categories) -> Verdict {
        let Some(class) = cats.classification(u) else {
            return Verdict::Abstain;
        };
        let Some(min) = self.minimum.get(&class.title.to_lowercase()) else {
            return Verdict::Abstain;
        };
        let pass = |why: String| {
            if self.include_passing {
                Verdict::include(why)
            } else {
                Verdict::Abstain
            }
        };
        match u.severity() {
            Some(s) if s >= *min => pass(format!(
                "{} {} at or above {}",
                class.title,
                s.as_str(),
                min.as_str()
            )),
            Some(s) => Verdict::exclude(format!(
                "{} severity {} is below the minimum {}",
                class.title,
                s.as_str(),
                min.as_str()
            )),
            None if self.keep_unrated => pass(format!(
                "{} without a severity, kept (unrated = \"keep\")",
                class.title
            )),
            None => Verdict::exclude(format!(
                "{} without an MSRC severity (minimum {})",
                class.title,
                min.as_str()
            )),
        }
    }
}

patchsync_sdk::export_filter!(SeverityFilter);

#[cfg(test)]
mod tests {
    use super::*;
    use patchsync_sdk::testing::CategoriesBuilder;
    use serde_json::json;

    fn cats() -> Categories {
        CategoriesBuilder::new()
            .company("Microsoft")
            .product("Windows 11", "Microsoft")
            .classification("Security Updates")
            .classification("Critical Updates")
            .classification("Drivers")
            .build()
    }

    fn filter(config: serde_json::Value) -> Result<SeverityFilter, String> {
        SeverityFilter::init(&Config::from_json(config))
    }

    #[test]
    fn security_updates_below_the_minimum_are_excluded() {
        let c = cats();
        let mut f = filter(json!({"minimum": "Important"})).unwrap();
        let sec = |s: &str| {
            Update::new("a")
                .in_categories(&c, &["Windows 11", "Security Updates"])
                .with_severity(s)
        };
        assert_eq!(f.filter(&sec("Critical"), &c), Verdict::Abstain);
        assert_eq!(f.filter(&sec("Important"), &c), Verdict::Abstain);
        let v = f.filter(&sec("Moderate"), &c);
        assert_eq!(
            v,
            Verdict::exclude("Security Updates severity Moderate is below the minimum Important")
        );
        assert!(
            f.filter(
                &Update::new("b").in_categories(&c, &["Security Updates"]),
                &c
            )
            .is_exclude()
        );
        // Other classifications are not this filter's business.
        let driver = Update::new("d")
            .in_categories(&c, &["Drivers"])
            .with_severity("Low");
        assert_eq!(f.filter(&driver, &c), Verdict::Abstain);
    }

    #[test]
    fn per_classification_minimums_and_choices() {
        let c = cats();
        let mut f = filter(json!({"minimum": "Low", "per_classification": {"critical updates": "Critical"}, "on_pass": "include", "unrated": "keep"})).unwrap();
        let crit = Update::new("c").in_categories(&c, &["Critical Updates"]);
        assert!(
            f.filter(&crit.clone().with_severity("Important"), &c)
                .is_exclude()
        );
        assert!(f.filter(&crit.with_severity("Critical"), &c).is_include());
        assert!(
            f.filter(
                &Update::new("s").in_categories(&c, &["Security Updates"]),
                &c
            )
            .is_include()
        );
    }

    #[test]
    fn bad_configs_are_rejected_by_name() {
        assert!(
            filter(json!({}))
                .unwrap_err()
                .contains("'minimum' is required")
        );
        assert!(
            filter(json!({"minimum": "Severe"}))
                .unwrap_err()
                .contains("not an MSRC severity")
        );
        assert!(
            filter(json!({"minimum": "Low", "minimal": 1}))
                .unwrap_err()
                .contains("unknown key 'minimal'")
        );
    }
}
