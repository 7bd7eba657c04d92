//! What a plugin sees and answers: updates, categories, verdicts, with typed accessors.
//! Plain Rust types, so plugin logic can be tested with `cargo test` on the host.

use serde::{Deserialize, Serialize};

/// The kind of an update entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum UpdateType {
    #[default]
    Software,
    Driver,
    Category,
    Detectoid,
}

/// The kind of a category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum CategoryKind {
    Company,
    ProductFamily,
    #[default]
    Product,
    UpdateClassification,
    Other,
}

/// MSRC severity, ordered: `Low < Moderate < Important < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Low,
    Moderate,
    Important,
    Critical,
}

impl Severity {
    /// `critical`, `Important`, ... (any case).
    pub fn parse(s: &str) -> Option<Severity> {
        match s.trim().to_ascii_lowercase().as_str() {
            "low" => Some(Severity::Low),
            "moderate" => Some(Severity::Moderate),
            "important" => Some(Severity::Important),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "Low",
            Severity::Moderate => "Moderate",
            Severity::Important => "Important",
            Severity::Critical => "Critical",
        }
    }
}

/// One category of the site's catalog.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Category {
    /// GUID, lower case.
    pub id: String,
    pub kind: CategoryKind,
    pub title: String,
    /// Index of the parent in the same [`Categories`].
    pub parent: Option<u32>,
}

/// Every category of the site's catalog; updates refer to them by index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Categories {
    list: Vec<Category>,
}

impl Categories {
    pub fn new(list: Vec<Category>) -> Categories {
        Categories { list }
    }

    pub fn get(&self, index: u32) -> Option<&Category> {
        self.list.get(index as usize)
    }

    pub fn all(&self) -> &[Category] {
        &self.list
    }

    /// The index of the category with this title (any case) or GUID.
    pub fn find(&self, title_or_id: &str) -> Option<u32> {
        self.list
            .iter()
            .position(|c| {
                c.title.eq_ignore_ascii_case(title_or_id) || c.id.eq_ignore_ascii_case(title_or_id)
            })
            .map(|i| i as u32)
    }

    /// The categories `u` names.
    pub fn of<'a>(&'a self, u: &'a Update) -> impl Iterator<Item = &'a Category> + 'a {
        u.categories.iter().filter_map(|i| self.get(*i))
    }

    /// The classification of `u` ("Security Updates", "Drivers", ...).
    pub fn classification<'a>(&'a self, u: &'a Update) -> Option<&'a Category> {
        self.of(u)
            .find(|c| c.kind == CategoryKind::UpdateClassification)
    }

    /// The products `u` names (not its classification).
    pub fn products<'a>(&'a self, u: &'a Update) -> impl Iterator<Item = &'a Category> + 'a {
        self.of(u)
            .filter(|c| c.kind != CategoryKind::UpdateClassification)
    }

    /// `index` and the categories above it, nearest first.
    pub fn lineage(&self, index: u32) -> impl Iterator<Item = &Category> {
        let mut next = Some(index);
        let mut steps = 0;
        std::iter::from_fn(move || {
            let i = next?;
            steps += 1;
            if steps > 64 {
                return None;
            }
            let c = self.get(i)?;
            next = c.parent;
            Some(c)
        })
    }

    /// The company (vendor) above one of `u`'s products.
    pub fn company<'a>(&'a self, u: &'a Update) -> Option<&'a Category> {
        u.categories
            .iter()
            .find_map(|i| self.lineage(*i).find(|c| c.kind == CategoryKind::Company))
    }

    /// Whether `u` is in the classification with this title or GUID.
    pub fn is_classified_as(&self, u: &Update, title_or_id: &str) -> bool {
        self.classification(u).is_some_and(|c| {
            c.title.eq_ignore_ascii_case(title_or_id) || c.id.eq_ignore_ascii_case(title_or_id)
        })
    }
}

/// What a filter sees of one update.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Update {
    /// GUID, lower case.
    pub id: String,
    pub revision: u32,
    pub update_type: UpdateType,
    /// English title.
    pub title: Option<String>,
    /// Indexes into [`Categories`].
    pub categories: Vec<u32>,
    /// MSRC severity as the catalog spells it; see [`Update::severity`].
    pub msrc_severity: Option<String>,
    pub kb_articles: Vec<String>,
    pub cves: Vec<String>,
    pub bulletins: Vec<String>,
    pub languages: Vec<String>,
    /// ISO 8601, as the catalog gives it; see [`Update::created`].
    pub creation_date: Option<String>,
    pub published: bool,
    pub superseded: bool,
    pub is_bundle: bool,
    /// Download size in bytes.
    pub size: Option<u64>,
    /// The `[[source]]` it comes from.
    pub source: String,
}

impl Update {
    /// An update with this GUID and nothing else: for tests.
    pub fn new(id: &str) -> Update {
        Update {
            id: id.to_ascii_lowercase(),
            revision: 1,
            published: true,
            ..Default::default()
        }
    }

    pub fn title(&self) -> &str {
        self.title.as_deref().unwrap_or("")
    }

    pub fn severity(&self) -> Option<Severity> {
        self.msrc_severity.as_deref().and_then(Severity::parse)
    }

    /// The creation date as (year, month, day).
    pub fn created(&self) -> Option<Date> {
        Date::parse(self.creation_date.as_deref()?)
    }

    /// Builder for tests: names categories by title or GUID in `cats`.
    pub fn in_categories(mut self, cats: &Categories, names: &[&str]) -> Update {
        for n in names {
            if let Some(i) = cats.find(n) {
                self.categories.push(i);
            }
        }
        self
    }

    pub fn with_title(mut self, t: &str) -> Update {
        self.title = Some(t.to_owned());
        self
    }

    pub fn with_severity(mut self, s: &str) -> Update {
        self.msrc_severity = Some(s.to_owned());
        self
    }

    pub fn created_on(mut self, iso: &str) -> Update {
        self.creation_date = Some(iso.to_owned());
        self
    }
}

/// A calendar date (UTC), enough for ages in days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

impl Date {
    /// The date part of `2024-03-12`, `2024-03-12T10:00:00Z`, ...
    pub fn parse(s: &str) -> Option<Date> {
        let d = s.trim().get(..10)?;
        let mut it = d.split('-');
        let year = it.next()?.parse().ok()?;
        let month: u32 = it.next()?.parse().ok()?;
        let day: u32 = it.next()?.parse().ok()?;
        ((1..=12).contains(&month) && (1..=31).contains(&day)).then_some(Date { year, month, day })
    }

    /// Days since 1970-01-01.
    pub fn days(self) -> i64 {
        // Howard Hinnant's days_from_civil.
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = if y >= 0 { y } else { y - 399 } / 400;
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146097 + doe - 719468
    }

    /// Today (UTC), from the clock the host gives the plugin.
    pub fn today() -> Date {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Date::from_days(secs.div_euclid(86_400))
    }

    /// The date `days` after 1970-01-01.
    pub fn from_days(days: i64) -> Date {
        let z = days + 719468;
        let era = if z >= 0 { z } else { z - 146096 } / 146097;
        let doe = z - era * 146097;
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
        Date { year, month, day }
    }
}

/// A filter's answer for one update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Keep it (no later stage is asked).
    Include(Option<String>),
    /// Leave it out.
    Exclude(Option<String>),
    /// No opinion: the next stage decides.
    Abstain,
}

impl Verdict {
    pub fn include(reason: impl Into<String>) -> Verdict {
        Verdict::Include(Some(reason.into()))
    }

    pub fn exclude(reason: impl Into<String>) -> Verdict {
        Verdict::Exclude(Some(reason.into()))
    }

    pub fn is_include(&self) -> bool {
        matches!(self, Verdict::Include(_))
    }

    pub fn is_exclude(&self) -> bool {
        matches!(self, Verdict::Exclude(_))
    }

    /// 0 abstain, 1 include, 2 exclude: the native ABI's byte.
    pub fn byte(&self) -> u8 {
        match self {
            Verdict::Abstain => 0,
            Verdict::Include(_) => 1,
            Verdict::Exclude(_) => 2,
        }
    }
}

/// An update identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Identity {
    pub id: String,
    pub revision: u32,
}

/// What a source's catalog holds now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub entries: Vec<Identity>,
    /// Everything the catalog has: what it no longer lists was removed upstream.
    pub complete: bool,
    /// GUIDs to mark expired.
    pub expired: Vec<String>,
    /// GUIDs deleted upstream.
    pub removed: Vec<String>,
}

/// One update's metadata, as a source returns it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Document {
    /// Update XML; [`crate::UpdateXml`] writes it.
    pub xml: String,
    /// (file digest as in the XML, download URL).
    pub file_urls: Vec<(String, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_and_count_days() {
        let d = Date::parse("2024-03-01T00:00:00Z").unwrap();
        assert_eq!(Date::from_days(d.days()), d);
        assert_eq!(d.days() - Date::parse("2024-02-28").unwrap().days(), 2);
        assert_eq!(Date::parse("1970-01-01").unwrap().days(), 0);
        assert!(Date::parse("2024-13-01").is_none());
    }

    #[test]
    fn categories_answer_by_title_and_lineage() {
        let c = Categories::new(vec![
            Category {
                id: "a".into(),
                kind: CategoryKind::Company,
                title: "Contoso".into(),
                parent: None,
            },
            Category {
                id: "b".into(),
                kind: CategoryKind::Product,
                title: "Widget".into(),
                parent: Some(0),
            },
            Category {
                id: "c".into(),
                kind: CategoryKind::UpdateClassification,
                title: "Security Updates".into(),
                parent: None,
            },
        ]);
        let u = Update::new("x").in_categories(&c, &["widget", "Security Updates"]);
        assert_eq!(c.company(&u).unwrap().title, "Contoso");
        assert!(c.is_classified_as(&u, "security updates"));
        assert_eq!(c.products(&u).count(), 1);
        assert!(Severity::Critical > Severity::Important);
    }
}
