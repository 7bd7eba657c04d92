//! Sync schedules: "daily at 03:30", "weekly on Sunday at 02:00", "every 6 hours", or a
//! five-field cron expression ("30 2 * * 0"), in a configured time zone.

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// When syncs are due.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub text: String,
    pub tz: Tz,
    rule: Rule,
}

#[derive(Debug, Clone, PartialEq)]
enum Rule {
    /// Every so many minutes, counted from the last run.
    Every(i64),
    /// minute, hour, day of month, month, day of week (0 = Sunday) as allowed-value sets.
    Cron(Box<[Vec<bool>; 5]>),
}

const HINT: &str = "write \"daily at 03:30\", \"weekly on Sunday at 02:00\", \"every 6 hours\", \
                    \"every 30 minutes\" or a cron expression such as \"30 2 * * 0\"";

fn hhmm(s: &str) -> Option<(u32, u32)> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some((h, m))
}

fn weekday(s: &str) -> Option<u32> {
    let s = s.trim().to_ascii_lowercase();
    let days = [
        "sunday",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
    ];
    days.iter()
        .position(|d| *d == s || (s.len() >= 3 && d.starts_with(&s)))
        .map(|i| i as u32)
}

/// One cron field: `*`, `N`, `A-B`, `*/S`, `A-B/S`, lists of those.
fn field(text: &str, lo: u32, hi: u32, name: &str) -> Result<Vec<bool>, String> {
    let mut allowed = vec![false; (hi + 1) as usize];
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .map_err(|_| format!("{name}: step '{s}' is not a number"))?,
            ),
            None => (part, 1),
        };
        if step == 0 {
            return Err(format!("{name}: a step of 0"));
        }
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            let p = |x: &str| {
                x.parse::<u32>()
                    .map_err(|_| format!("{name}: '{x}' is not a number"))
            };
            (p(a)?, p(b)?)
        } else {
            let v = range
                .parse::<u32>()
                .map_err(|_| format!("{name}: '{range}' is not a number"))?;
            (v, if part.contains('/') { hi } else { v })
        };
        if a < lo || b > hi || a > b {
            return Err(format!("{name}: {range} is outside {lo}-{hi}"));
        }
        for v in (a..=b).step_by(step as usize) {
            allowed[v as usize] = true;
        }
    }
    Ok(allowed)
}

impl Schedule {
    /// Parses a schedule in time zone `tz` (an IANA name such as "Europe/Berlin", or "UTC").
    pub fn parse(text: &str, tz: &str) -> Result<Schedule, String> {
        let tz: Tz = tz.trim().parse().map_err(|_| {
            format!(
                "'{tz}' is not a time zone; use an IANA name such as \"UTC\" or \"Europe/Berlin\""
            )
        })?;
        let t = text.trim().to_ascii_lowercase();
        let words: Vec<&str> = t.split_whitespace().collect();
        let bad = || format!("'{text}' is not a schedule; {HINT}");
        let cron = |m: u32, h: u32, dow: Option<u32>| {
            let fields = format!(
                "{m} {h} * * {}",
                dow.map(|d| d.to_string()).unwrap_or("*".into())
            );
            Self::cron(&fields)
        };
        let rule = match words.as_slice() {
            ["daily", "at", time] => {
                let (h, m) = hhmm(time).ok_or_else(bad)?;
                cron(m, h, None)?
            }
            ["weekly", "on", day, "at", time] => {
                let (h, m) = hhmm(time).ok_or_else(bad)?;
                cron(m, h, Some(weekday(day).ok_or_else(bad)?))?
            }
            ["every", n, unit] | ["every", n, unit, ..] if words.len() == 3 => {
                let n: i64 = n.parse().map_err(|_| bad())?;
                let per = match unit.trim_end_matches('s') {
                    "minute" => 1,
                    "hour" => 60,
                    "day" => 24 * 60,
                    _ => return Err(bad()),
                };
                if n <= 0 {
                    return Err(bad());
                }
                Rule::Every(n * per)
            }
            ["every", unit] => match *unit {
                "hour" => Rule::Every(60),
                "day" => Rule::Every(24 * 60),
                _ => return Err(bad()),
            },
            _ if words.len() == 5 => {
                Self::cron(&t).map_err(|e| format!("'{text}': {e}; {HINT}"))?
            }
            _ => return Err(bad()),
        };
        Ok(Schedule {
            text: text.trim().to_owned(),
            tz,
            rule,
        })
    }

    fn cron(t: &str) -> Result<Rule, String> {
        let f: Vec<&str> = t.split_whitespace().collect();
        Ok(Rule::Cron(Box::new([
            field(f[0], 0, 59, "minute")?,
            field(f[1], 0, 23, "hour")?,
            field(f[2], 1, 31, "day of month")?,
            field(f[3], 1, 12, "month")?,
            field(&f[4].replace('7', "0"), 0, 6, "day of week")?,
        ])))
    }

    fn matches(&self, local: &DateTime<Tz>) -> bool {
        let Rule::Cron(f) = &self.rule else {
            return false;
        };
        f[0][local.minute() as usize]
            && f[1][local.hour() as usize]
            && f[2][local.day() as usize]
            && f[3][local.month() as usize]
            && f[4][local.weekday().num_days_from_sunday() as usize]
    }

    /// The first time strictly after `after` at which a sync is due; `last_run` anchors
    /// "every N" schedules (none yet: due at once).
    pub fn next_after(
        &self,
        after: DateTime<Utc>,
        last_run: Option<DateTime<Utc>>,
    ) -> DateTime<Utc> {
        match &self.rule {
            Rule::Every(min) => match last_run {
                None => after,
                Some(l) => (l + Duration::minutes(*min)).max(after),
            },
            Rule::Cron(_) => {
                // Minute by minute through local time; a year of minutes at most.
                let start = after
                    .with_second(0)
                    .and_then(|t| t.with_nanosecond(0))
                    .unwrap_or(after)
                    + Duration::minutes(1);
                let mut t = start;
                for _ in 0..(366 * 24 * 60) {
                    let local = self.tz.from_utc_datetime(&t.naive_utc());
                    if self.matches(&local) {
                        return t;
                    }
                    t += Duration::minutes(1);
                }
                after + Duration::days(366)
            }
        }
    }

    /// Whether a sync fell due after `last_run` and at or before `now` (one missed while
    /// the service was down runs once at start).
    pub fn missed(&self, last_run: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
        match last_run {
            None => true,
            Some(l) => self.next_after(l, Some(l)) <= now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn simple_forms_and_cron_agree_in_the_configured_zone() {
        let weekly = Schedule::parse("weekly on Sunday at 02:00", "Europe/Berlin").unwrap();
        // Friday 2026-11-27 12:00 UTC → Sunday 2026-11-29 02:00 Berlin = 01:00 UTC.
        assert_eq!(
            weekly.next_after(at("2026-11-27T12:00:00Z"), None),
            at("2026-11-29T01:00:00Z")
        );
        let cron = Schedule::parse("0 2 * * 0", "Europe/Berlin").unwrap();
        assert_eq!(
            cron.next_after(at("2026-11-27T12:00:00Z"), None),
            at("2026-11-29T01:00:00Z")
        );
        let daily = Schedule::parse("daily at 03:30", "UTC").unwrap();
        assert_eq!(
            daily.next_after(at("2026-11-27T03:30:00Z"), None),
            at("2026-11-28T03:30:00Z")
        );
        let every = Schedule::parse("every 6 hours", "UTC").unwrap();
        assert_eq!(
            every.next_after(at("2026-11-27T12:00:00Z"), Some(at("2026-11-27T10:00:00Z"))),
            at("2026-11-27T16:00:00Z")
        );
        // Down over Sunday night: the missed sync runs at start.
        assert!(weekly.missed(Some(at("2026-11-22T01:00:00Z")), at("2026-11-30T08:00:00Z")));
        assert!(!weekly.missed(Some(at("2026-11-29T01:00:05Z")), at("2026-11-30T08:00:00Z")));
        for bad in [
            "weekly on Funday at 02:00",
            "daily at 25:00",
            "every 0 hours",
            "61 * * * *",
            "sometimes",
        ] {
            let e = Schedule::parse(bad, "UTC").unwrap_err();
            assert!(e.contains("daily at 03:30"), "{bad}: {e}");
        }
        assert!(
            Schedule::parse("daily at 03:30", "Mars/Olympus")
                .unwrap_err()
                .contains("time zone")
        );
    }
}
