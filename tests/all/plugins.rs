//! Plugins end to end: the first-party WebAssembly plugins from `plugins/`, built for
//! `wasm32-wasip2` and loaded by the engine; the fixture plugin's failures (trap, endless
//! loop, memory growth, a wrong answer, a rejected config, a wrong contract version, a wrong
//! digest); a source plugin fed by a real HTTP server on loopback; the native example.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use crate::common::{HttpServer, Serve, Site, shared_data};

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds every plugin once per test run (a no-op when `.ci/run` built them already) into
/// `target/plugins`, apart from the tests' own target directory.
fn built() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = root().join("target/plugins");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let run = |args: &[&str]| {
            let out = std::process::Command::new(&cargo)
                .current_dir(root())
                .args(args)
                .arg("--target-dir")
                .arg(&dir)
                .output()
                .expect("run cargo");
            assert!(
                out.status.success(),
                "building the plugins failed ({args:?}); is the wasm32-wasip2 target installed \
                 (`rustup target add wasm32-wasip2`)?\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&[
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "-p",
            "severity-filter",
            "-p",
            "deferral-filter",
            "-p",
            "json-feed-source",
            "-p",
            "test-fixture",
        ]);
        run(&["build", "--release", "-p", "native-example"]);
        dir
    })
}

fn wasm(crate_name: &str) -> PathBuf {
    built()
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", crate_name.replace('-', "_")))
}

fn native_lib() -> PathBuf {
    built().join("release/libnative_example.so")
}

fn sha256_file(p: &Path) -> String {
    Sha256::digest(std::fs::read(p).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes a manifest for `code` into the site: `body` holds the lines after the code and
/// digest (limits, config, ...).
fn manifest(site: &Site, name: &str, kind: &str, code: &Path, body: &str) -> PathBuf {
    let key = if code.extension().is_some_and(|e| e == "wasm") {
        "wasm"
    } else {
        "library"
    };
    let text = format!(
        "name = {name:?}\nversion = \"0.1.0\"\nkind = {kind:?}\nwit = \"0.1.0\"\n{key} = {:?}\nsha256 = {:?}\n{body}",
        code.display().to_string(),
        sha256_file(code)
    );
    let p = site.path(&format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

/// A site over HP's real catalog (everything selected), with `extra` TOML appended.
fn hp_site(extra: &str) -> Option<Site> {
    let hp = shared_data("third-party/HpCatalogForSms.zip")?;
    let site = Site::new();
    site.write_config(&[("hp", "sdp-catalog", &hp)], &["*"], &["*"], &["en"]);
    let mut t = std::fs::read_to_string(site.config_path()).unwrap();
    t.push_str(extra);
    std::fs::write(site.config_path(), t).unwrap();
    Some(site)
}

fn append(site: &Site, extra: &str) {
    let mut t = std::fs::read_to_string(site.config_path()).unwrap();
    t.push_str(extra);
    std::fs::write(site.config_path(), t).unwrap();
}

fn active(site: &Site) -> i64 {
    site.sql("SELECT COUNT(*) FROM updates WHERE update_type IN ('Software', 'Driver') AND state = 'active'")
}

fn plugin_entry(manifest: &Path, extra: &str) -> String {
    format!(
        "\n[[plugin]]\nmanifest = {:?}\n{extra}",
        manifest.display().to_string()
    )
}

const CRITICAL_UPDATES: &str = "e6cf1350-c01b-414d-a61f-263d14d133b4";
const UPDATES: &str = "cd5ffd1e-e932-4e3a-bf74-18bf0b1bbd83";
const SECURITY: &str = "0fa1201d-4330-4fa8-8ae9-b877473b6441";

#[test]
fn severity_filter_keeps_what_its_config_says_on_hps_real_catalog() {
    let Some(plain) = hp_site("") else { return };
    plain.sync();
    assert_eq!(active(&plain), 1829);
    // What the plugin's config promises, counted with SQL on the unfiltered store: in the
    // three listed classifications only updates at or above their minimum stay; Tools and
    // Feature Packs are not the plugin's business.
    let class_is = |c: &str| {
        format!(
            "EXISTS (SELECT 1 FROM update_categories uc WHERE uc.uid = u.uid AND uc.category_id = '{c}')"
        )
    };
    let expected: i64 = plain.sql(&format!(
        "SELECT COUNT(*) FROM updates u WHERE u.update_type IN ('Software', 'Driver') AND NOT (
            ({} AND COALESCE(u.msrc_severity, '') NOT IN ('Critical', 'Important'))
         OR ({} AND COALESCE(u.msrc_severity, '') <> 'Critical')
         OR ({} AND COALESCE(u.msrc_severity, '') NOT IN ('Critical', 'Important')))",
        class_is(SECURITY),
        class_is(CRITICAL_UPDATES),
        class_is(UPDATES)
    ));
    assert!((256..1829).contains(&expected), "{expected}");

    let site = hp_site("").unwrap();
    let m = manifest(
        &site,
        "severity-filter",
        "filter",
        &wasm("severity-filter"),
        "fields = [\"categories\", \"msrc_severity\"]\n[config]\nminimum = \"Important\"\n",
    );
    append(
        &site,
        &plugin_entry(
            &m,
            "config = { per_classification = { \"Critical Updates\" = \"Critical\", \"Updates\" = \"Important\" } }\n",
        ),
    );
    let report = site.sync();
    assert_eq!(active(&site), expected, "{report:?}");
    // The verdict's reason is recorded and `explain` shows the plugin's stage.
    let low: String = plain.sql(&format!(
        "SELECT u.id FROM updates u WHERE u.msrc_severity = 'Low' AND {} LIMIT 1",
        class_is(UPDATES)
    ));
    let e = site.cli_json(&["explain", &low, "--json"]);
    assert_eq!(e["recorded"]["verdict"], "excluded", "{e}");
    assert_eq!(e["recorded"]["decided_by"], "plugin severity-filter", "{e}");
    assert_eq!(
        e["recorded"]["reason"], "Updates severity Low is below the minimum Important",
        "{e}"
    );
    // The run records the plugin's digest and config hash.
    let record: String = site.sql("SELECT report FROM sync_runs ORDER BY id DESC LIMIT 1");
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert_eq!(record["plugins"][0]["name"], "severity-filter");
    assert_eq!(
        record["plugins"][0]["sha256"],
        sha256_file(&wasm("severity-filter"))
    );
    // The compiled component was cached beside the store.
    let cached = std::fs::read_dir(site.path("data/plugin-cache"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "cwasm")
        })
        .count();
    assert_eq!(cached, 1);
}

/// A site whose catalog is a directory of hand-made updates titled `titles`.
fn fixture_site(titles: &[&str], plugin: &str) -> Site {
    use crate::common::update_xml;
    let site = Site::new();
    let dir = site.path("catalog");
    std::fs::create_dir_all(&dir).unwrap();
    let product = "aaaaaaaa-0000-0000-0000-000000000001";
    std::fs::write(
        dir.join("p.xml"),
        update_xml(
            product,
            1,
            "Category:Product",
            "Contoso Widgets",
            &[],
            &[],
            "",
        ),
    )
    .unwrap();
    for (i, t) in titles.iter().enumerate() {
        std::fs::write(
            dir.join(format!("{i}.xml")),
            update_xml(
                &format!("bbbbbbbb-0000-0000-0000-{i:012}"),
                1,
                "Software",
                t,
                &[product],
                &[],
                "",
            ),
        )
        .unwrap();
    }
    site.write_config(&[("hand", "directory", &dir)], &["*"], &["*"], &["en"]);
    append(&site, plugin);
    site
}

fn fixture(site: &Site, body: &str) -> PathBuf {
    manifest(site, "fixture", "filter", &wasm("test-fixture"), body)
}

#[test]
fn a_trapping_plugin_aborts_the_sync_naming_the_update_and_changes_nothing() {
    let titles: Vec<String> = (0..40).map(|i| format!("Widget fix {i}")).collect();
    let mut refs: Vec<&str> = titles.iter().map(String::as_str).collect();
    refs.push("Widget BOOM");
    let site = fixture_site(&refs, "");
    site.sync();
    let before = site.snapshot();
    let m = fixture(&site, "[config]\nmode = \"trap\"\ntrap_on = \"BOOM\"\n");
    append(&site, &plugin_entry(&m, ""));
    let err = site.try_sync().unwrap_err().to_string();
    assert!(
        err.contains("plugin 'fixture'")
            && err.contains("update bbbbbbbb-0000-0000-0000-000000000040")
            && err.contains("fixture trap on"),
        "{err}"
    );
    assert_eq!(site.snapshot(), before, "the store is exactly as before");
    assert!(err.contains("plugin"));

    // With on_failure = "skip" the sync goes on without the plugin and says so.
    let t = std::fs::read_to_string(site.config_path())
        .unwrap()
        .replace("[[plugin]]\n", "[[plugin]]\non_failure = \"skip\"\n");
    std::fs::write(site.config_path(), t).unwrap();
    let report = site.sync();
    let warned = report
        .sources
        .iter()
        .flat_map(|s| s.warnings.iter())
        .any(|w| w.contains("skipped for the rest of this sync") && w.contains("fixture trap on"));
    assert!(warned, "{report:?}");
    assert_eq!(active(&site), 41);
}

#[test]
fn an_endless_loop_is_stopped_at_the_call_limit() {
    let site = fixture_site(&["Widget 1", "Widget 2"], "");
    let m = fixture(
        &site,
        "[limits]\ncall_seconds = 0.3\n[config]\nmode = \"loop\"\n",
    );
    append(&site, &plugin_entry(&m, ""));
    let started = std::time::Instant::now();
    let err = site.try_sync().unwrap_err().to_string();
    assert!(
        err.contains("plugin 'fixture'")
            && err.contains("did not return within its limit of 0.3 s"),
        "{err}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_eq!(active(&site), 0, "nothing was stored");
}

#[test]
fn memory_growth_stops_at_the_manifests_cap() {
    let site = fixture_site(&["Widget 1"], "");
    let m = fixture(
        &site,
        "[limits]\nmemory_mb = 24\n[config]\nmode = \"grow\"\n",
    );
    append(&site, &plugin_entry(&m, ""));
    let err = site.try_sync().unwrap_err().to_string();
    assert!(
        err.contains("plugin 'fixture'")
            && err.contains("limit of 24 MB")
            && err.contains("memory_mb"),
        "{err}"
    );
}

#[test]
fn a_wrong_answer_a_rejected_config_a_wrong_version_and_a_wrong_digest_are_named() {
    let site = fixture_site(&["Widget 1", "Widget 2", "Widget 3"], "");
    let m = fixture(&site, "[config]\nmode = \"wrong-count\"\n");
    append(&site, &plugin_entry(&m, ""));
    let err = site.try_sync().unwrap_err().to_string();
    assert!(
        err.contains("returned 2 verdicts for a batch of 3 updates"),
        "{err}"
    );

    let site = fixture_site(&["Widget 1"], "");
    let m = fixture(&site, "[config]\nmode = \"reject\"\n");
    append(&site, &plugin_entry(&m, ""));
    let err = site.try_sync().unwrap_err().to_string();
    assert!(
        err.contains("plugin 'fixture' (init)")
            && err.contains("rejected its config: mode = \"reject\""),
        "{err}"
    );
    let (status, code): (String, i64) = {
        let c = rusqlite::Connection::open(site.db()).unwrap();
        c.query_row(
            "SELECT status, error_code FROM sync_runs ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    assert_eq!((status.as_str(), code), ("failed", 10));

    // A manifest claiming another contract version fails at config load, with its line.
    let site = fixture_site(&["Widget 1"], "");
    let m = fixture(&site, "");
    let t = std::fs::read_to_string(&m)
        .unwrap()
        .replace("wit = \"0.1.0\"", "wit = \"0.2.0\"");
    std::fs::write(&m, t).unwrap();
    append(&site, &plugin_entry(&m, ""));
    let out = site.cli(&["sync"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("fixture.toml:4") && err.contains("patchsync:plugin@0.2.0"),
        "{err}"
    );

    // A component that differs from the manifest's digest is refused with both digests.
    let site = fixture_site(&["Widget 1"], "");
    let m = fixture(&site, "");
    let t = std::fs::read_to_string(&m).unwrap();
    let wrong = "0".repeat(64);
    let digest = sha256_file(&wasm("test-fixture"));
    std::fs::write(&m, t.replace(&digest, &wrong)).unwrap();
    append(&site, &plugin_entry(&m, ""));
    let err = site.try_sync().unwrap_err().to_string();
    assert!(err.contains(&digest) && err.contains(&wrong), "{err}");
    assert_eq!(active(&site), 0);
}

#[test]
fn plugin_logs_and_output_go_to_the_sync_log() {
    let site = fixture_site(&["Widget 1", "Widget 2"], "");
    let m = fixture(&site, "[config]\nmode = \"include\"\n");
    append(&site, &plugin_entry(&m, ""));
    site.sync();
    assert_eq!(active(&site), 2);
    let log = std::fs::read_to_string(site.path("data/sync.log")).unwrap();
    assert!(
        log.contains("plugin fixture [info] (hand): batch 1 of 2 updates"),
        "{log}"
    );
    assert!(log.contains("fixture stdout: batch 1"), "{log}");
    // A cache file that went bad is compiled again, not trusted (a new process reads it).
    let cached: Vec<PathBuf> = std::fs::read_dir(site.path("data/plugin-cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    std::fs::write(&cached[0], b"garbage").unwrap();
    let out = site.cli(&["sync", "--full"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::read(&cached[0]).unwrap().len() > 1000,
        "compiled again"
    );
}

/// A vendor feed with `n` updates released `age_days[i]` days ago.
fn feed(updates: &[(&str, u32, &str, Option<&str>, i64)]) -> Vec<u8> {
    let items: Vec<serde_json::Value> = updates
        .iter()
        .map(|(key, rev, class, sev, age)| {
            let released = (chrono::Utc::now() - chrono::Duration::days(*age))
                .format("%Y-%m-%dT00:00:00Z")
                .to_string();
            serde_json::json!({
                "key": key, "revision": rev, "title": format!("Contoso Widget {key}"),
                "product": "Contoso Widget", "classification": class, "severity": sev,
                "kb": format!("KB9{}", &key[3..]), "released": released,
                "files": [{"name": format!("{key}.msi"), "size": 2048,
                           "sha1": format!("{key}qZk+NkcGgWq6PiVxe="), "url": format!("https://dl.contoso.com/{key}.msi")}]
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({"vendor": "Contoso", "updates": items})).unwrap()
}

fn feed_site(server: &HttpServer, allowed: &str, filters: &str) -> Site {
    let site = Site::new();
    let m = manifest(
        &site,
        "json-feed",
        "source",
        &wasm("json-feed-source"),
        &format!("[permissions]\nallowed_hosts = [{allowed:?}]\n"),
    );
    std::fs::write(
        site.config_path(),
        format!(
            "[site]\nname = \"TST\"\nstore = \"data/patchsync.db\"\n\n[[source]]\nname = \"contoso\"\nkind = \"plugin\"\npath = {:?}\nconfig = {{ url = {:?} }}\n\n[filter]\nproducts = [\"*\"]\n{filters}",
            m.display().to_string(),
            server.url
        ),
    )
    .unwrap();
    site
}

#[test]
fn a_source_plugin_syncs_a_vendor_feed_over_http_and_a_deferral_filter_holds_young_updates() {
    let body = feed(&[
        ("CW-001", 1, "Updates", None, 30),
        ("CW-002", 1, "Updates", None, 2),
        ("CW-003", 2, "Security Updates", Some("Critical"), 1),
        ("CW-004", 1, "Security Updates", Some("Important"), 1),
    ]);
    let server = HttpServer::start("/feed.json", Serve::Body(body));
    let host = server.url.split('/').nth(2).unwrap().to_owned();
    let site = feed_site(&server, &host, "");
    let report = site.sync();
    assert_eq!(
        report.new,
        4 + 4,
        "4 updates, a company, a product, 2 classifications: {report:?}"
    );
    assert_eq!(active(&site), 4);
    let kb: String = site.sql(
        "SELECT k.kb FROM kb_articles k JOIN updates u ON u.uid = k.uid WHERE u.title = 'Contoso Widget CW-003'",
    );
    assert_eq!(kb, "9003");
    let url: String = site.sql(
        "SELECT fu.url FROM files f JOIN file_urls fu ON fu.digest = f.digest WHERE f.name = 'CW-003.msi'",
    );
    assert_eq!(url, "https://dl.contoso.com/CW-003.msi");
    let vendor: String = site.sql("SELECT title FROM categories WHERE kind = 'Company'");
    assert_eq!(vendor, "Contoso");
    // The plugin's log line and its progress reach the sync log.
    let log = std::fs::read_to_string(site.path("data/sync.log")).unwrap();
    assert!(
        log.contains("source contoso [info] (contoso): progress: 8 of 8"),
        "{log}"
    );
    assert!(log.contains(": 4 updates from Contoso"), "{log}");

    // Deferral: 14 days, Critical security updates fast-tracked.
    let m = manifest(
        &site,
        "deferral",
        "filter",
        &wasm("deferral-filter"),
        "[config]\ndays = 14\nexcept = [{ classification = \"Security Updates\", severity = \"Critical\" }]\n",
    );
    append(&site, &plugin_entry(&m, ""));
    site.sync_allowing_mass_removal();
    let kept: Vec<String> = {
        let c = rusqlite::Connection::open(site.db()).unwrap();
        let mut s = c
            .prepare("SELECT title FROM updates WHERE update_type = 'Software' AND state = 'active' ORDER BY title")
            .unwrap();
        s.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(kept, ["Contoso Widget CW-001", "Contoso Widget CW-003"]);
    let young = patchsync_sdk::guid_from_name("Contoso/CW-002");
    let e = site.cli_json(&["explain", &young, "--json"]);
    assert_eq!(e["recorded"]["decided_by"], "plugin deferral", "{e}");
    let reason = e["recorded"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("deferred: 2 days old, eligible on "),
        "{e}"
    );
}

#[test]
fn a_source_plugin_may_fetch_only_from_allowed_hosts() {
    let server = HttpServer::start(
        "/feed.json",
        Serve::Body(feed(&[("CW-001", 1, "Updates", None, 3)])),
    );
    let site = feed_site(&server, "feeds.contoso.com", "");
    let err = site.try_sync().unwrap_err().to_string();
    assert!(
        err.contains("source 'contoso'")
            && err
                .contains("is not in the manifest's permissions.allowed_hosts (feeds.contoso.com)"),
        "{err}"
    );
    assert_eq!(active(&site), 0);
}

#[test]
fn a_native_plugin_filters_and_its_panics_become_errors() {
    let site = fixture_site(&["Widget 1", "Widget PANIC-FOR-TEST"], "");
    let lib = native_lib();
    let m = manifest(
        &site,
        "kb-block",
        "filter",
        &lib,
        "[config]\nblocked_kbs = [\"KB1\"]\n",
    );
    append(&site, &plugin_entry(&m, ""));
    let err = site.try_sync().unwrap_err().to_string();
    assert!(
        err.contains("plugin 'kb-block'") && err.contains("panicked: asked to panic"),
        "{err}"
    );
    // A library that is not a patchsync plugin is refused before any call.
    let site = fixture_site(&["Widget 1"], "");
    let Some(libm) = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists()) else {
        return;
    };
    let not_plugin = site.path("libnot.so");
    std::fs::copy(&libm, &not_plugin).unwrap();
    let m = manifest(&site, "not-a-plugin", "filter", &not_plugin, "");
    append(&site, &plugin_entry(&m, ""));
    let err = site.try_sync().unwrap_err().to_string();
    assert!(
        err.contains("plugin 'not-a-plugin'")
            && err.contains("does not export patchsync_plugin_abi"),
        "{err}"
    );
}

/// `patchsync plugin check` on a severity-filter manifest with this `minimum`.
fn check(site: &Site, name: &str, minimum: &str) -> std::process::Output {
    let m = manifest(
        site,
        name,
        "filter",
        &wasm("severity-filter"),
        &format!("[config]\nminimum = {minimum:?}\n"),
    );
    crate::common::bin()
        .args(["plugin", "check", "--json"])
        .arg(&m)
        .output()
        .unwrap()
}

#[test]
fn plugin_check_loads_a_plugin_without_a_site() {
    let site = Site::new();
    let out = check(&site, "severity-filter", "Important");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["name"], "severity-filter");
    assert_eq!(r["kind"], "filter");
    assert_eq!(r["wit"], "0.1.0");
    // The same plugin with a config it rejects: the plugin's own message, by name.
    let out = check(&site, "severity-bad", "Severe");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("plugin 'severity-bad' (init): rejected its config: 'minimum': 'Severe' is not an MSRC severity"),
        "{err}"
    );
}
