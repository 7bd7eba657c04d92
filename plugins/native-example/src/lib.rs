//! native-example: a native (shared library) filter that excludes the KB articles a site
//! lists, e.g. updates known to break a line-of-business application.
//!
//! ```toml
//! [config]
//! blocked_kbs = ["5034441", "KB5001716"]
//! ```
//!
//! Native plugins run with patchsync's full rights: this one exists to show the C ABI
//! (`patchsync_sdk::export_native_filter!`). Prefer WebAssembly for anything else.

use std::collections::HashSet;

use patchsync_sdk::prelude::*;

#[derive(Debug)]
pub struct KbBlocklist {
    blocked: HashSet<String>,
}

impl Filter for KbBlocklist {
    fn init(config: &Config) -> Result<Self, String> {
        config.only(&["blocked_kbs"])?;
        let blocked: HashSet<String> = config
            .strings("blocked_kbs")?
            .iter()
            .map(|k| {
                k.trim()
                    .trim_start_matches("KB")
                    .trim_start_matches("kb")
                    .to_owned()
            })
            .collect();
        if blocked
            .iter()
            .any(|k| k.is_empty() || !k.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err("'blocked_kbs': give KB numbers such as \"5034441\"".into());
        }
        Ok(KbBlocklist { blocked })
    }

    fn filter(&mut self, u: &Update, _c: &Categories) -> Verdict {
        if u.title().contains("PANIC-FOR-TEST") {
            panic!("asked to panic by the update's title");
        }
        match u
            .kb_articles
            .iter()
            .find(|k| self.blocked.contains(k.as_str()))
        {
            Some(k) => Verdict::exclude(format!("KB{k} is blocked")),
            None => Verdict::Abstain,
        }
    }
}

patchsync_sdk::export_native_filter!(KbBlocklist);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_kbs_are_excluded() {
        let c = Categories::default();
        let mut f = KbBlocklist::init(&Config::parse(r#"{"blocked_kbs": ["KB5034441"]}"#).unwrap())
            .unwrap();
        let mut u = Update::new("a");
        u.kb_articles = vec!["5034441".into()];
        assert!(f.filter(&u, &c).is_exclude());
        u.kb_articles = vec!["1".into()];
        assert_eq!(f.filter(&u, &c), Verdict::Abstain);
        assert!(
            KbBlocklist::init(&Config::parse(r#"{"blocked_kbs": ["five"]}"#).unwrap()).is_err()
        );
    }
}
