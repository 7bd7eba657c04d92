//! The fields a rule can test, their types, the operators each type takes, and the parsing
//! of values (severities, dates, ages, sizes, globs).

/// How a field's values compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// A category by title or GUID, following the category tree.
    Category,
    /// One text (the title, the source name).
    Text,
    /// Several texts; the condition holds if one of them does (KB, CVE, bulletin, language).
    TextSet,
    /// MSRC severity: Critical > Important > Moderate > Low > unspecified.
    Severity,
    /// Software, Driver.
    UpdateType,
    /// The creation date.
    Date,
    Bool,
    /// Bytes.
    Size,
}

impl FieldType {
    /// The operators this type takes, as written in rule files.
    pub fn operators(self) -> &'static [&'static str] {
        match self {
            FieldType::Category => &["equals", "in", "not_in", "matches"],
            FieldType::Text => &["equals", "in", "not_in", "matches", "regex", "contains"],
            FieldType::TextSet => &["equals", "in", "not_in", "matches", "regex"],
            FieldType::Severity => &["equals", "in", "at_least", "at_most", "above", "below"],
            FieldType::UpdateType => &["equals", "in", "not_in"],
            FieldType::Date => &["before", "after", "older_than", "newer_than"],
            FieldType::Bool => &["equals"],
            FieldType::Size => &["at_least", "at_most", "above", "below"],
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            FieldType::Category => "a category (title or GUID)",
            FieldType::Text => "text",
            FieldType::TextSet => "a list of texts",
            FieldType::Severity => {
                "an MSRC severity (Critical > Important > Moderate > Low > unspecified)"
            }
            FieldType::UpdateType => "an update type (Software, Driver)",
            FieldType::Date => "a date",
            FieldType::Bool => "true or false",
            FieldType::Size => "a size (bytes, or \"150 MB\")",
        }
    }
}

/// Every field, its type, and what it reads.
pub const FIELDS: &[(&str, FieldType, &str)] = &[
    ("product", FieldType::Category, "a product the update names"),
    (
        "product_family",
        FieldType::Category,
        "a product family above one of its products",
    ),
    (
        "company",
        FieldType::Category,
        "the company above one of its products",
    ),
    (
        "vendor",
        FieldType::Category,
        "same as company (third-party catalogs: the vendor)",
    ),
    ("classification", FieldType::Category, "its classification"),
    (
        "language",
        FieldType::TextSet,
        "a language it has a title in",
    ),
    ("severity", FieldType::Severity, "its MSRC severity"),
    (
        "kb",
        FieldType::TextSet,
        "a KB article number (without \"KB\")",
    ),
    ("cve", FieldType::TextSet, "a CVE id"),
    ("bulletin", FieldType::TextSet, "a security bulletin id"),
    ("title", FieldType::Text, "its English title"),
    ("update_type", FieldType::UpdateType, "Software or Driver"),
    (
        "source",
        FieldType::Text,
        "the name of the [[source]] it comes from",
    ),
    ("created", FieldType::Date, "its creation date"),
    (
        "superseded",
        FieldType::Bool,
        "superseded by an update the store holds",
    ),
    (
        "expired",
        FieldType::Bool,
        "expired by its catalog (publication state not Published)",
    ),
    (
        "bundle",
        FieldType::Bool,
        "a bundle (it carries leaf updates)",
    ),
    (
        "file_size",
        FieldType::Size,
        "its download size (the largest the catalog gives, else its files' total)",
    ),
];

pub fn field(name: &str) -> Option<(&'static str, FieldType)> {
    FIELDS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(n, t, _)| (*n, *t))
}

/// The known name closest to `name`, if close enough to be a likely typo.
pub fn closest<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (distance(name, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Critical 4, Important 3, Moderate 2, Low 1, unspecified 0.
pub fn severity_rank(s: Option<&str>) -> Option<u8> {
    match s.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("unspecified") | Some("none") => Some(0),
        Some("low") => Some(1),
        Some("moderate") => Some(2),
        Some("important") => Some(3),
        Some("critical") => Some(4),
        Some(_) => None,
    }
}

/// An absolute date as `YYYY-MM-DD` or RFC 3339, as the sortable `YYYY-MM-DDTHH:MM:SS`.
pub fn parse_date(s: &str) -> Option<String> {
    let s = s.trim();
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some(format!("{}T00:00:00", d.format("%Y-%m-%d")));
    }
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|d| {
        d.with_timezone(&chrono::Utc)
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string()
    })
}

/// "30 days", "2 weeks", "6 months", "1 year" → days.
pub fn parse_age(s: &str) -> Option<i64> {
    let mut it = s.split_whitespace();
    let n: i64 = it.next()?.parse().ok()?;
    let unit = it.next()?.trim_end_matches('s').to_ascii_lowercase();
    if it.next().is_some() || n < 0 {
        return None;
    }
    let days = match unit.as_str() {
        "day" => 1,
        "week" => 7,
        "month" => 30,
        "year" => 365,
        _ => return None,
    };
    Some(n * days)
}

/// `1048576`, "150 MB", "2 GiB", "500 kB" → bytes.
pub fn parse_size(v: &toml::Value) -> Option<u64> {
    match v {
        toml::Value::Integer(i) => u64::try_from(*i).ok(),
        toml::Value::String(s) => {
            let s = s.trim();
            let split = s
                .find(|c: char| !c.is_ascii_digit() && c != '.')
                .unwrap_or(s.len());
            let n: f64 = s[..split].trim().parse().ok()?;
            let mult = match s[split..].trim().to_ascii_lowercase().as_str() {
                "" | "b" => 1.0,
                "kb" => 1e3,
                "mb" => 1e6,
                "gb" => 1e9,
                "kib" => 1024.0,
                "mib" => 1024.0 * 1024.0,
                "gib" => 1024.0 * 1024.0 * 1024.0,
                _ => return None,
            };
            Some((n * mult) as u64)
        }
        _ => None,
    }
}

/// A glob (`*` any run, `?` one character) as an anchored, case-insensitive regex.
pub fn glob_regex(glob: &str) -> String {
    let mut out = String::from("(?i)^");
    for c in glob.chars() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out.push('$');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_as_admins_write_them() {
        assert_eq!(severity_rank(Some("Critical")), Some(4));
        assert_eq!(severity_rank(None), Some(0));
        assert_eq!(severity_rank(Some("urgent")), None);
        assert_eq!(parse_age("30 days"), Some(30));
        assert_eq!(parse_age("6 months"), Some(180));
        assert_eq!(parse_age("soon"), None);
        assert_eq!(
            parse_date("2024-01-09").as_deref(),
            Some("2024-01-09T00:00:00")
        );
        assert_eq!(
            parse_date("2024-01-09T18:00:00+02:00").as_deref(),
            Some("2024-01-09T16:00:00")
        );
        assert_eq!(parse_date("9/1/2024"), None);
        assert_eq!(
            parse_size(&toml::Value::String("150 MB".into())),
            Some(150_000_000)
        );
        assert_eq!(parse_size(&toml::Value::Integer(7)), Some(7));
        assert_eq!(parse_size(&toml::Value::String("big".into())), None);
        let re = regex::Regex::new(&glob_regex("*Preview*")).unwrap();
        assert!(re.is_match("2024-01 Cumulative Update Preview for Windows 11"));
        assert!(!re.is_match("2024-01 Cumulative Update"));
        assert_eq!(
            closest("clasification", FIELDS.iter().map(|f| f.0)),
            Some("classification")
        );
        assert_eq!(closest("zzz", FIELDS.iter().map(|f| f.0)), None);
    }
}
