//! Rule sets: the example sets decide what their comments say, against real and hand-made
//! catalogs; mistakes are named with file, line and rule; the stage order is the config's;
//! `plan` shows without changing; the mass-removal guard; `pin`; `explain`.

use std::path::{Path, PathBuf};

use crate::common::{Site, shared_data, update_xml};

const PRODUCT: &str = "aaaaaaaa-0000-0000-0000-0000000000a1";
const SECURITY: &str = "0fa1201d-4330-4fa8-8ae9-b877473b6441";
const UPDATES: &str = "cd5ffd1e-e932-4e3a-bf74-18bf0b1bbd83";

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/rules")
        .join(name)
}

/// One hand-made update: title, classification, severity, age in days.
struct Hand<'a> {
    title: &'a str,
    class: &'a str,
    severity: Option<&'a str>,
    age_days: i64,
}

fn uid(n: usize) -> String {
    format!("dddddddd-0000-0000-0000-{n:012}")
}

/// A directory catalog: one product, two classifications, and `updates` (ids from `uid`).
fn hand_catalog(dir: &Path, updates: &[Hand<'_>]) {
    std::fs::create_dir_all(dir).unwrap();
    let w = |name: &str, xml: String| std::fs::write(dir.join(name), xml).unwrap();
    w(
        "p.xml",
        update_xml(
            PRODUCT,
            1,
            "Category:Product",
            "Contoso Widgets",
            &[],
            &[],
            "",
        ),
    );
    w(
        "s.xml",
        update_xml(
            SECURITY,
            1,
            "Category:UpdateClassification",
            "Security Updates",
            &[],
            &[],
            "",
        ),
    );
    w(
        "u.xml",
        update_xml(
            UPDATES,
            1,
            "Category:UpdateClassification",
            "Updates",
            &[],
            &[],
            "",
        ),
    );
    for (i, h) in updates.iter().enumerate() {
        let created = (chrono::Utc::now() - chrono::Duration::days(h.age_days))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let mut x = update_xml(
            &uid(i),
            1,
            "Software",
            h.title,
            &[PRODUCT, h.class],
            &[],
            "",
        )
        .replace("2024-03-12T17:00:00Z", &created);
        if let Some(s) = h.severity {
            x = x.replace(
                "PublicationState=\"Published\"",
                &format!("PublicationState=\"Published\" MsrcSeverity=\"{s}\""),
            );
        }
        w(&format!("{i}.xml"), x);
    }
}

/// A site over `sources` with `rules` (paths) and extra TOML.
fn site_with(sources: &[(&str, &str, &Path)], rules: &[&Path], extra: &str) -> Site {
    let site = Site::new();
    rewrite(&site, sources, rules, extra);
    site
}

fn rewrite(site: &Site, sources: &[(&str, &str, &Path)], rules: &[&Path], extra: &str) {
    site.write_config(sources, &["*"], &["*"], &["en"]);
    let mut t = std::fs::read_to_string(site.config_path()).unwrap();
    let list: Vec<String> = rules
        .iter()
        .map(|p| format!("{:?}", p.display().to_string()))
        .collect();
    t = t.replace(
        "[filter]\n",
        &format!("[filter]\nrules = [{}]\n", list.join(", ")),
    );
    t.push_str(extra);
    std::fs::write(site.config_path(), t).unwrap();
}

fn active_titles(site: &Site) -> Vec<String> {
    let c = rusqlite::Connection::open(site.db()).unwrap();
    let mut s = c
        .prepare("SELECT title FROM updates WHERE update_type = 'Software' AND state = 'active' ORDER BY title")
        .unwrap();
    s.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn security_only_keeps_security_fixes_and_fast_tracks_critical_ones() {
    let Some(hp) = shared_data("third-party/HpCatalogForSms.zip") else {
        return;
    };
    let plain = site_with(&[("hp", "sdp-catalog", &hp)], &[], "");
    plain.sync();
    // What the comments of the set promise, counted with SQL on the unfiltered catalog.
    let expected: i64 = plain.sql(&format!(
        "SELECT COUNT(*) FROM updates u WHERE u.update_type IN ('Software', 'Driver')
           AND (u.msrc_severity = 'Critical' OR EXISTS (SELECT 1 FROM update_categories uc
                WHERE uc.uid = u.uid AND uc.category_id IN ('{SECURITY}', 'e6cf1350-c01b-414d-a61f-263d14d133b4')))"
    ));
    assert!((256..1829).contains(&expected), "{expected}");
    let ruled = site_with(
        &[("hp", "sdp-catalog", &hp)],
        &[&example("security-only.toml")],
        "",
    );
    let r = ruled.sync();
    assert_eq!(r.updates as i64, expected, "{r:?}");
    // An "Updates" package of Low severity is out, and `explain` names the rule.
    let out: String = plain.sql(
        "SELECT u.id FROM updates u JOIN update_categories uc ON uc.uid = u.uid
         WHERE uc.category_id = 'cd5ffd1e-e932-4e3a-bf74-18bf0b1bbd83' AND u.msrc_severity = 'Low' LIMIT 1",
    );
    // After the rule set is added to the unfiltered site, before it syncs again.
    rewrite(
        &plain,
        &[("hp", "sdp-catalog", &hp)],
        &[&example("security-only.toml")],
        "",
    );
    let x = plain.cli(&["explain", &out]);
    let text = String::from_utf8_lossy(&x.stdout);
    assert!(
        text.contains("rule 2 'not a security fix' (line 17): matched")
            && text.contains("verdict now: exclude"),
        "{text}"
    );
    let ex = plain.cli_json(&["explain", &out, "--json"]);
    assert_eq!(ex["stages"][0]["stage"], "rules security-only", "{ex}");
    assert_eq!(
        ex["stages"][0]["rules"][0]["failed"], "severity equals \"Critical\"",
        "{ex}"
    );
    assert_eq!(ex["recorded"]["decided_by"], "built-in selection", "{ex}");
    // On the site that synced with the set, the update's record names the rule.
    let ex = ruled.cli_json(&["explain", &out, "--json"]);
    assert_eq!(ex["in_store"], false, "{ex}");
    assert_eq!(ex["recorded"]["decided_by"], "rules security-only", "{ex}");
    assert!(
        ex["recorded"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("rule 2 'not a security fix'"),
        "{ex}"
    );
}

#[test]
fn drivers_only_for_named_vendors() {
    let Some(hp) = shared_data("third-party/HpCatalogForSms.zip") else {
        return;
    };
    // HP is one of the named vendors: its 1,244 drivers stay, with everything else.
    let ours = site_with(
        &[("hp", "sdp-catalog", &hp)],
        &[&example("drivers-by-vendor.toml")],
        "",
    );
    assert_eq!(ours.sync().updates, 1829);
    // The same set naming other vendors: HP's drivers go, its software and firmware stay.
    let text = std::fs::read_to_string(example("drivers-by-vendor.toml"))
        .unwrap()
        .replace("[\"HP Business Clients\", \"Dell\"]", "[\"Dell\"]");
    let theirs_file = ours.path("dell-only.toml");
    std::fs::write(&theirs_file, text).unwrap();
    let theirs = site_with(&[("hp", "sdp-catalog", &hp)], &[&theirs_file], "");
    assert_eq!(theirs.sync().updates, 1829 - 1244);
    let decided: String = theirs.sql(
        "SELECT reason FROM catalog_items WHERE verdict = 'excluded' AND decided_by = 'rules drivers-by-vendor' LIMIT 1",
    );
    assert!(
        decided.starts_with("rule 2 'other vendor catalog drivers'"),
        "{decided}"
    );
}

#[test]
fn previews_and_betas_stay_out() {
    let site = Site::new();
    let dir = site.path("catalog");
    let u = |title| Hand {
        title,
        class: UPDATES,
        severity: None,
        age_days: 30,
    };
    hand_catalog(
        &dir,
        &[
            u("2024-01 Cumulative Update Preview for Windows 11"),
            u("Windows 11 Insider Preview 26100"),
            u("Contoso Agent beta 3"),
            u("Betamax Codec Update"),
            u("Security Update for Contoso (KB5000001)"),
        ],
    );
    rewrite(
        &site,
        &[("hand", "directory", &dir)],
        &[&example("no-previews.toml")],
        "",
    );
    site.sync();
    assert_eq!(
        active_titles(&site),
        [
            "Betamax Codec Update",
            "Security Update for Contoso (KB5000001)"
        ]
    );
}

#[test]
fn ring_deferral_lets_updates_in_by_age() {
    let site = Site::new();
    let dir = site.path("catalog");
    let h = |title, severity, age_days| Hand {
        title,
        class: SECURITY,
        severity,
        age_days,
    };
    hand_catalog(
        &dir,
        &[
            h("critical, 1 day", Some("Critical"), 1),
            h("critical, 5 days", Some("Critical"), 5),
            h("important, 5 days", Some("Important"), 5),
            h("important, 20 days", Some("Important"), 20),
            h("unrated, 20 days", None, 20),
        ],
    );
    rewrite(
        &site,
        &[("hand", "directory", &dir)],
        &[&example("ring-deferral.toml")],
        "",
    );
    site.sync();
    assert_eq!(
        active_titles(&site),
        ["critical, 5 days", "important, 20 days", "unrated, 20 days"]
    );
}

#[test]
fn rule_mistakes_name_the_file_line_and_rule() {
    let site = Site::new();
    let cases: &[(&str, &[&str])] = &[
        (
            "[[rule]]\naction = \"exclude\"\n\n[[rule]]\naction = \"exclude\"\nclasification = \"Drivers\"\n",
            &[
                ":6:",
                "rule 2",
                "unknown field 'clasification'",
                "did you mean 'classification'?",
            ],
        ),
        (
            "[[rule]]\naction = \"exclude\"\nseverity = { matches = \"Crit*\" }\n",
            &[
                ":3:",
                "rule 1",
                "'matches' does not apply to an MSRC severity",
                "at_least",
            ],
        ),
        (
            "[[rule]]\naction = \"include\"\ntitle = { regex = \"(unclosed\" }\n",
            &[":3:", "rule 1", "not a valid regular expression"],
        ),
        (
            "[[rule]]\naction = \"include\"\ncreated = { before = \"31/12/2024\" }\n",
            &[":3:", "is not a date", "2024-01-31"],
        ),
        (
            "[[rule]]\naction = \"include\"\ncreated = { older_than = \"a while\" }\n",
            &[":3:", "is not an age", "30 days"],
        ),
        (
            "[[rule]]\naction = \"keep\"\n",
            &[":2:", "rule 1", "action", "\"continue\""],
        ),
        (
            "[[rule]]\nseverity = \"Critical\"\n",
            &[":1:", "rule 1", "has no action"],
        ),
        ("default = \"maybe\"\n", &[":1:", "default", "continue"]),
        (
            "[[rule]]\naction = \"include\"\nseverity = \"Urgent\"\n",
            &[":3:", "not a severity"],
        ),
        (
            "[[rule]]\naction = \"include\"\nfile_size = { above = \"huge\" }\n",
            &[":3:", "is not a size"],
        ),
    ];
    for (i, (text, expect)) in cases.iter().enumerate() {
        let file = site.path(&format!("bad{i}.toml"));
        std::fs::write(&file, text).unwrap();
        let out = site.cli(&["rules", "check", file.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "case {i} passed");
        assert!(err.contains(&file.display().to_string()), "case {i}: {err}");
        for e in *expect {
            assert!(err.contains(e), "case {i}: expected '{e}' in {err}");
        }
    }
    // The same mistake in a site's rule set stops `sync` before anything is read.
    let file = site.path("bad0.toml");
    let dir = site.path("catalog");
    hand_catalog(&dir, &[]);
    rewrite(&site, &[("hand", "directory", &dir)], &[&file], "");
    let out = site.cli(&["sync"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean 'classification'?"));
    assert!(!site.db().exists());
    // An inline set in the config is checked the same way, with the config's line.
    rewrite(
        &site,
        &[("hand", "directory", &dir)],
        &[],
        "\n[[rule_set]]\nname = \"inline\"\n[[rule_set.rule]]\naction = \"exclude\"\ntittle = \"x\"\n",
    );
    let t = std::fs::read_to_string(site.config_path())
        .unwrap()
        .replace("rules = []\n", "");
    std::fs::write(site.config_path(), &t).unwrap();
    let line = t.lines().position(|l| l.starts_with("tittle")).unwrap() + 1;
    let out = site.cli(&["sync"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "patchsync.toml:{line}: rule 1: unknown field 'tittle'; did you mean 'title'?"
        )),
        "{err}"
    );
}

/// Five updates, two of them previews.
fn preview_catalog(site: &Site, n_plain: usize) -> PathBuf {
    let dir = site.path("catalog");
    let mut list = vec![
        Hand {
            title: "Widgets Preview 1",
            class: UPDATES,
            severity: None,
            age_days: 9,
        },
        Hand {
            title: "Widgets Preview 2",
            class: UPDATES,
            severity: None,
            age_days: 9,
        },
    ];
    let titles: Vec<String> = (0..n_plain)
        .map(|i| format!("Widgets fix {i:02}"))
        .collect();
    for t in &titles {
        list.push(Hand {
            title: t,
            class: SECURITY,
            severity: Some("Important"),
            age_days: 9,
        });
    }
    hand_catalog(&dir, &list);
    dir
}

#[test]
fn the_stage_order_is_the_configs() {
    let site = Site::new();
    let dir = preview_catalog(&site, 3);
    let no_previews = example("no-previews.toml");
    // Default: rule sets first, so the exclusion wins over the built-in selection.
    rewrite(&site, &[("hand", "directory", &dir)], &[&no_previews], "");
    site.sync();
    assert_eq!(active_titles(&site).len(), 3);
    let set_order = |order: &str| {
        let t = std::fs::read_to_string(site.config_path()).unwrap();
        let t = match t.find("order = ") {
            Some(i) => {
                let end = i + t[i..].find('\n').unwrap();
                format!("{}{order}{}", &t[..i], &t[end..])
            }
            None => t.replace("[filter]\n", &format!("[filter]\n{order}\n")),
        };
        std::fs::write(site.config_path(), t).unwrap();
    };
    // Built-in selection first: it selects, and the rule sets after it may still exclude.
    set_order("order = [\"built-in\", \"rules\"]");
    site.sync();
    assert_eq!(active_titles(&site).len(), 3);

    // An include rule adds what the built-in selection leaves out only when it runs first:
    // what the built-in selection does not select is excluded there and then.
    let t = std::fs::read_to_string(site.config_path())
        .unwrap()
        .replace(
            "classifications = [\"*\"]",
            "classifications = [\"Security Updates\"]",
        )
        .replace(
            &format!("rules = [{:?}]", no_previews.display().to_string()),
            "rules = [\"previews-in\"]",
        );
    std::fs::write(
        site.config_path(),
        format!(
            "{t}\n[[rule_set]]\nname = \"previews-in\"\n[[rule_set.rule]]\naction = \"include\"\ntitle = {{ matches = \"*Preview*\" }}\n"
        ),
    )
    .unwrap();
    site.sync();
    assert_eq!(
        active_titles(&site).len(),
        3,
        "built-in first: previews are not security updates"
    );
    set_order("order = [\"rules\", \"built-in\"]");
    site.sync();
    assert_eq!(
        active_titles(&site).len(),
        5,
        "rules first: the include rule adds them"
    );
}

#[test]
fn plan_lists_the_changes_and_their_rules_without_changing_anything() {
    let site = Site::new();
    let dir = preview_catalog(&site, 20);
    rewrite(&site, &[("hand", "directory", &dir)], &[], "");
    site.sync();
    let before = site.snapshot();
    let runs: i64 = site.sql("SELECT COUNT(*) FROM sync_runs");
    rewrite(
        &site,
        &[("hand", "directory", &dir)],
        &[&example("no-previews.toml")],
        "",
    );
    let plan = site.cli_json(&["plan", "--json"]);
    assert_eq!(plan["report"]["removed"], 2, "{plan}");
    let changes = plan["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2, "{plan}");
    for c in changes {
        assert_eq!(c["change"], "removed");
        assert_eq!(c["decided_by"], "rules no-previews");
        assert!(
            c["reason"]
                .as_str()
                .unwrap()
                .starts_with("rule 1 'previews'"),
            "{c}"
        );
        assert!(c["title"].as_str().unwrap().contains("Preview"));
    }
    assert_eq!(site.snapshot(), before, "plan changed the store");
    assert_eq!(
        site.sql::<i64>("SELECT COUNT(*) FROM sync_runs"),
        runs,
        "plan left a history row"
    );
    let text = String::from_utf8_lossy(&site.cli(&["plan"]).stdout).to_string();
    assert!(
        text.contains("2 removed") && text.contains("rule 1 'previews'"),
        "{text}"
    );
    let r = site.sync();
    assert_eq!(r.removed, 2);
}

#[test]
fn mass_removal_and_rules_that_exclude_everything_are_refused_unless_allowed() {
    let site = Site::new();
    let dir = preview_catalog(&site, 30);
    rewrite(&site, &[("hand", "directory", &dir)], &[], "");
    site.sync();
    // A set that removes the 30 security fixes: 94 % of the catalog.
    let cut = site.path("cut.toml");
    std::fs::write(&cut, "[[rule]]\nname = \"no security\"\naction = \"exclude\"\nclassification = \"Security Updates\"\n").unwrap();
    rewrite(&site, &[("hand", "directory", &dir)], &[&cut], "");
    let before = site.snapshot();
    let out = site.cli(&["sync"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("would remove 30 of its 32 active updates")
            && err.contains("mass_removal_percent = 20")
            && err.contains("--allow-mass-removal"),
        "{err}"
    );
    assert_eq!(site.snapshot(), before);
    let plan = site.cli_json(&["plan", "--json"]);
    let warnings = plan["report"]["sources"][0]["warnings"].to_string();
    assert!(warnings.contains("would remove 30"), "{plan}");
    let out = site.cli(&["sync", "--allow-mass-removal"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(active_titles(&site).len(), 2);

    // A set whose default excludes everything, on a fresh site.
    let fresh = Site::new();
    let none = fresh.path("none.toml");
    std::fs::write(&none, "name = \"nothing\"\ndefault = \"exclude\"\n").unwrap();
    rewrite(&fresh, &[("hand", "directory", &dir)], &[&none], "");
    let out = fresh.cli(&["sync"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("the rule sets exclude every update") && err.contains("rules nothing"),
        "{err}"
    );
    assert_eq!(
        fresh.sql::<i64>("SELECT COUNT(*) FROM updates WHERE update_type = 'Software'"),
        0
    );
    assert!(
        fresh
            .cli(&["sync", "--allow-mass-removal"])
            .status
            .success()
    );
}

#[test]
fn a_pin_rule_keeps_an_update_after_the_filter_drops_it() {
    let site = Site::new();
    let dir = preview_catalog(&site, 3);
    let pin = site.path("pin.toml");
    std::fs::write(
        &pin,
        "[[rule]]\nname = \"keep preview 1\"\naction = \"pin\"\ntitle = \"Widgets Preview 1\"\n",
    )
    .unwrap();
    rewrite(&site, &[("hand", "directory", &dir)], &[&pin], "");
    site.sync();
    let pinned: String =
        site.sql("SELECT u.title FROM pins p JOIN updates u ON u.id = p.update_id");
    assert_eq!(pinned, "Widgets Preview 1");
    // Without the rule and with a filter that selects none of the previews' classification.
    site.write_config(
        &[("hand", "directory", &dir)],
        &["*"],
        &["Security Updates"],
        &["en"],
    );
    site.sync();
    let titles = active_titles(&site);
    assert!(
        titles.contains(&"Widgets Preview 1".to_owned()),
        "{titles:?}"
    );
    assert!(
        !titles.contains(&"Widgets Preview 2".to_owned()),
        "{titles:?}"
    );
}
