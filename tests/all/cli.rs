//! The `patchsync` program: init, sync --json, queries, status, history, exit codes.

use crate::common::{Site, bin, generated};

#[test]
fn init_writes_a_config_that_loads_and_refuses_to_overwrite() {
    let site = Site::new();
    let out = site.cli(&["init"]);
    assert!(out.status.success());
    let cfg = patchsync::Config::load(&site.config_path()).unwrap();
    assert_eq!(cfg.site_name, "CAS");
    let again = site.cli(&["init"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
}

#[test]
fn sync_json_and_queries() {
    let site = Site::new();
    let cab = generated(site.dir.path(), "c.cab", 2000, 3);
    site.write_config(
        &[("gen", "wsus-export", &cab)],
        &["Windows 11", "Office 2016"],
        &["Security Updates", "Critical Updates"],
        &["en"],
    );
    let r = site.cli_json(&["sync", "--json"]);
    for key in [
        "catalog_version",
        "new",
        "revised",
        "expired",
        "removed",
        "unchanged",
        "categories",
        "duration_ms",
    ] {
        assert!(r[key].is_u64(), "sync --json lacks {key}: {r}");
    }
    assert_eq!(r["catalog_version"], 1);

    let ups = site.cli_json(&["updates", "--json"]);
    let ups = ups.as_array().unwrap();
    assert!(!ups.is_empty());
    for u in ups {
        for key in [
            "id",
            "revision",
            "title",
            "kb",
            "classification",
            "products",
            "severity",
            "state",
        ] {
            assert!(u.get(key).is_some(), "updates --json lacks {key}");
        }
        let class = u["classification"].as_str().unwrap();
        assert!(
            class == "Security Updates" || class == "Critical Updates",
            "{u}"
        );
        let products: Vec<&str> = u["products"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        assert!(
            products
                .iter()
                .any(|p| *p == "Windows 11" || *p == "Office 2016"),
            "{u}"
        );
    }
    let kb = ups[0]["kb"].as_str().unwrap().to_owned();
    let by_kb = site.cli_json(&["updates", "--json", "--kb", &format!("KB{kb}")]);
    assert!(
        by_kb
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["kb"] == kb.as_str())
    );
    assert!(!by_kb.as_array().unwrap().is_empty());
    let by_product = site.cli_json(&["updates", "--json", "--product", "Office 2016"]);
    let by_class = site.cli_json(&["updates", "--json", "--classification", "Critical Updates"]);
    assert!(by_product.as_array().unwrap().len() < ups.len());
    assert!(
        by_class
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["classification"] == "Critical Updates")
    );
    let bad = site.cli(&["updates", "--product", "Windows 99"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("patchsync categories"));

    let id = ups[0]["id"].as_str().unwrap();
    let show = site.cli_json(&["show", id, "--json"]);
    assert_eq!(show["id"], id);
    assert!(
        show["localized"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["language"] == "en")
    );
    let text = site.cli(&["show", id]);
    assert!(String::from_utf8_lossy(&text.stdout).contains(&format!("KB:              {kb}")));

    let products = site.cli_json(&["categories", "--kind", "product", "--json"]);
    assert!(
        products
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["kind"] == "Product" && c["parent"].is_string())
    );

    let status = site.cli_json(&["status", "--json"]);
    for key in [
        "site",
        "state",
        "last_sync_started",
        "last_sync_finished",
        "last_success",
        "last_error",
        "catalog_version",
    ] {
        assert!(status.get(key).is_some(), "status --json lacks {key}");
    }
    assert_eq!(status["state"], "succeeded");
    assert_eq!(status["site"], "TST");
    assert!(status["last_error"].is_null());
    let history = site.cli_json(&["history", "--json"]);
    assert_eq!(history.as_array().unwrap().len(), 1);
    assert_eq!(history[0]["new"], r["new"]);

    let plain = site.cli(&["sync"]);
    assert!(plain.status.success());
    let err = String::from_utf8_lossy(&plain.stderr);
    assert!(err.contains("unchanged since the last sync"), "{err}");
}

#[test]
fn a_missing_config_says_what_to_do() {
    let out = bin()
        .args(["--config", "/nonexistent/patchsync.toml", "sync"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/patchsync.toml") && err.contains("patchsync init"),
        "{err}"
    );
}

#[test]
fn queries_before_any_sync_say_so() {
    let site = Site::new();
    site.write_config(&[], &[], &[], &["en"]);
    let out = site.cli(&["updates"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("run `patchsync sync` first"));
}
