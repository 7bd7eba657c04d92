//! Rule set benchmarks: a full sync of the generated catalog with and without a 25-rule
//! set (several regexes and globs), alternating, each in a child process; the rule set's
//! evaluation alone in ns per update; and `plan` after the rules are added to a synced
//! site, against the sync that then applies them.
//!
//! `cargo bench -p patchsync --bench rules` (updates: `PATCHSYNC_BENCH_UPDATES`, default
//! 500000; the catalogs are the sync bench's, kept in `target/bench/`).

mod common;

use std::path::Path;
use std::time::Instant;

use patchsync::filter::UpdateFilter;
use patchsync::{Config, Engine, SyncOptions};

/// 25 rules of the kinds admins write; the last ones match often, most rarely.
const RULES: &str = r#"
name = "bench"
default = "continue"

[[rule]]
name = "previews"
action = "exclude"
title = { matches = ["*Preview*", "*Vorschau*"] }
[[rule]]
name = "betas"
action = "exclude"
title = { regex = "(?i)\\b(beta|insider|canary)\\b" }
[[rule]]
name = "arm64 builds"
action = "exclude"
title = { regex = "(?i)\\bARM64\\b" }
[[rule]]
name = "known bad KBs"
action = "exclude"
kb = ["5034441", "5034439", "5001716", "4023057"]
[[rule]]
name = "known bad CVE family"
action = "exclude"
cve = { regex = "^CVE-1999-" }
[[rule]]
name = "ancient"
action = "exclude"
created = { before = "2001-01-01" }
[[rule]]
name = "huge"
action = "exclude"
file_size = { above = "50 GB" }
[[rule]]
name = "expired by the catalog"
action = "exclude"
expired = true
[[rule]]
name = "legacy bulletins"
action = "exclude"
bulletin = { matches = "MS0?-*" }
[[rule]]
name = "itanium"
action = "exclude"
title = { contains = "itanium" }
[[rule]]
name = "server core previews"
action = "exclude"
title = { regex = "(?i)server.*technical preview" }
[[rule]]
name = "language packs"
action = "exclude"
title = { regex = "(?i)language (pack|interface pack)" }
[[rule]]
name = "embedded"
action = "exclude"
title = { matches = "*Embedded*" }
[[rule]]
name = "other vendors"
action = "exclude"
company = { not_in = ["Microsoft"] }
[[rule]]
name = "xp"
action = "exclude"
title = { matches = ["*Windows XP*", "*Windows 2000*"] }
[[rule]]
name = "sources we do not use"
action = "exclude"
source = ["legacy", "lab"]
[[rule]]
name = "x86 only"
action = "exclude"
title = { regex = "(?i)for x86-based systems" }
[[rule]]
name = "low and old"
action = "exclude"
severity = "Low"
created = { before = "2005-01-01" }
[[rule]]
name = "pin nothing"
action = "pin"
kb = "0"
[[rule]]
name = "critical fast-track"
action = "include"
severity = "Critical"
classification = ["Security Updates", "Critical Updates"]
[[rule]]
name = "important security"
action = "include"
severity = { at_least = "Important" }
classification = "Security Updates"
[[rule]]
name = "moderate"
action = "continue"
severity = "Moderate"
[[rule]]
name = "drivers"
action = "continue"
update_type = "Driver"
[[rule]]
name = "feature packs"
action = "exclude"
classification = "Feature Packs"
[[rule]]
name = "the rest: by the product selection"
action = "continue"
"#;

fn config(dir: &Path, cab: &Path, store: &str, rules: bool) -> Config {
    let rule_line = if rules {
        "rules = [\"bench-rules.toml\"]\n"
    } else {
        ""
    };
    let text = format!(
        "[site]\nname = \"BENCH\"\nstore = \"{store}\"\n[[source]]\nname = \"gen\"\nkind = \"wsus-export\"\npath = {:?}\n[filter]\nproducts = [\"*\"]\nclassifications = [\"*\"]\nlanguages = [\"en\", \"de\"]\n{rule_line}",
        cab.display().to_string()
    );
    Config::parse(&text, &dir.join("patchsync.toml"), dir).expect("bench config")
}

fn child(mode: &str, dir: &Path, cab: &Path) {
    let t = Instant::now();
    let options = SyncOptions {
        allow_mass_removal: true,
        ..Default::default()
    };
    match mode {
        "plain" | "rules" => {
            common::fresh_sync(mode, dir, |store| config(dir, cab, store, mode == "rules"))
        }
        "plan" => {
            let p = Engine::open(config(dir, cab, "plain.db", true))
                .unwrap()
                .plan(options, &mut |_| {})
                .expect("plan");
            eprintln!(
                "plan: {} changes, {} removed",
                p.changes.len(),
                p.report.removed
            );
        }
        "apply" => {
            let r = Engine::open(config(dir, cab, "plain.db", true))
                .unwrap()
                .sync(options, &mut |_| {})
                .expect("sync");
            eprintln!("apply: {} removed", r.removed);
        }
        "eval" => {
            let set = patchsync::rules::load_file(&dir.join("bench-rules.toml")).unwrap();
            let store = patchsync::store::Store::open_read_only(&dir.join("rules.db")).unwrap();
            let c = rusqlite::Connection::open(store.path()).unwrap();
            let tree = patchsync::store::load_category_tree(&c).unwrap();
            let mut set = set;
            set.prepare(&tree).expect("prepare");
            let views = common::views(cab, usize::MAX);
            let t = Instant::now();
            let mut out = Vec::with_capacity(views.len());
            set.evaluate(&tree, &views, &mut out).expect("evaluate");
            let ns = t.elapsed().as_nanos() as f64 / views.len() as f64;
            let included = out
                .iter()
                .filter(|d| d.verdict == patchsync::filter::Verdict::Include)
                .count();
            eprintln!(
                "eval: {} updates, {included} included by a rule",
                views.len()
            );
            println!("{ns} 0");
            return;
        }
        other => panic!("unknown mode {other}"),
    }
    println!("{} {}", t.elapsed().as_secs_f64(), common::peak_rss_kb());
}

fn main() {
    match common::role() {
        common::Role::Child(mode, p) => return child(&mode, &p[0], &p[1]),
        common::Role::List => return,
        common::Role::Parent => {}
    }
    let n = common::updates();
    let (root, cab, _) = common::catalogs(n);
    let dir = common::fresh_dir(&root, &format!("rules-{n}"));
    std::fs::write(dir.join("bench-rules.toml"), RULES).unwrap();
    let (plain, ruled) = common::alternating("plain", "rules", 3, &[&dir, &cab]);
    let rounds = plain.len();
    let (eval_ns, _) = common::run_child("eval", &[&dir, &cab]);
    // Every "plain" run leaves plain.db synced without rules: add them, plan, apply.
    let (plan_s, plan_rss) = common::run_child("plan", &[&dir, &cab]);
    let (apply_s, apply_rss) = common::run_child("apply", &[&dir, &cab]);

    let (p, r) = (common::median(plain.clone()), common::median(ruled.clone()));
    let lines = [
        format!(
            "{n} updates, 25 rules (8 regexes and globs on titles, KB / CVE / bulletin lists, dates, sizes, severities, categories); {rounds} alternating rounds"
        ),
        "| run | time | |".into(),
        "|---|---|---|".into(),
        format!("| full sync without rules | {p:.2} s (runs: {plain:.1?}) | |"),
        format!(
            "| full sync with the rule set | {r:.2} s (runs: {ruled:.1?}) | {:+.1} % |",
            100.0 * (r - p) / p
        ),
        format!(
            "| the rule set alone, in memory | {eval_ns:.0} ns per update | {:.2} s for the catalog |",
            eval_ns * n as f64 / 1e9
        ),
        format!(
            "| plan after adding the rules to the synced site | {plan_s:.2} s, {:.0} MB | {:.2}× the sync that applies them |",
            plan_rss as f64 / 1024.0,
            plan_s / apply_s
        ),
        format!(
            "| sync applying the rules | {apply_s:.2} s, {:.0} MB | |",
            apply_rss as f64 / 1024.0
        ),
    ];
    for l in &lines {
        println!("{l}");
    }
    std::fs::write(
        root.join(format!("rules-results-{n}.md")),
        lines.join("\n") + "\n",
    )
    .unwrap();
}
