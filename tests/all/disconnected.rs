//! Disconnected sites: `patchsync export` packages (full and incremental, signed) imported
//! by a site that never sees the catalogs, which ends up with the connected site's catalog.

use std::path::{Path, PathBuf};

use patchsync::generate::{EvolveOptions, evolve};
use sha2::{Digest, Sha256};

use crate::common::{Site, catalog, generated, shared_data};

/// The connected site's config plus `extra` TOML.
fn configure(
    site: &Site,
    sources: &[(&str, &str, &Path)],
    classes: &[&str],
    langs: &[&str],
    extra: &str,
) {
    site.write_config(sources, &["*"], classes, langs);
    let mut t = std::fs::read_to_string(site.config_path()).unwrap();
    t.push_str(extra);
    std::fs::write(site.config_path(), t).unwrap();
}

/// A site with no sources that trusts `public_key` (a path).
fn disconnected(langs: &[&str], public_key: &Path) -> Site {
    let site = Site::new();
    configure(
        &site,
        &[],
        &["*"],
        langs,
        &format!(
            "\n[import]\ntrusted_keys = [{:?}]\n",
            public_key.display().to_string()
        ),
    );
    site
}

fn digest(site: &Site) -> String {
    site.cli_json(&["status", "--json"])["content_digest"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `patchsync export` on `site`; returns the package path and the manifest.
fn export(
    site: &Site,
    name: &str,
    since: Option<u64>,
    key: Option<&Path>,
) -> (PathBuf, serde_json::Value) {
    let out = site.path(name);
    let mut args = vec![
        "export".to_owned(),
        "--out".into(),
        out.display().to_string(),
        "--json".into(),
    ];
    if let Some(v) = since {
        args.extend(["--since".into(), v.to_string()]);
    }
    if let Some(k) = key {
        args.extend(["--sign".into(), k.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let m = site.cli_json(&args);
    (out, m)
}

fn import(site: &Site, package: &Path) -> serde_json::Value {
    site.cli_json(&["import", package.to_str().unwrap(), "--json"])
}

fn keygen(site: &Site, name: &str) -> (PathBuf, PathBuf) {
    let base = site.path(&format!("keys/{name}"));
    let out = site.cli(&["keygen", "--out", base.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (base.with_extension("key"), base.with_extension("pub"))
}

fn same_catalog(connected: &Site, fed: &Site, step: &str) {
    let (a, b) = (catalog(&connected.db()), catalog(&fed.db()));
    let missing: Vec<&String> = a.iter().filter(|l| !b.contains(l)).take(3).collect();
    let extra: Vec<&String> = b.iter().filter(|l| !a.contains(l)).take(3).collect();
    assert!(
        missing.is_empty() && extra.is_empty() && a.len() == b.len(),
        "{step}: {} vs {} active updates; missing {missing:#?}\nextra {extra:#?}",
        a.len(),
        b.len()
    );
    assert_eq!(digest(connected), digest(fed), "{step}: content digest");
}

#[test]
fn a_site_fed_only_by_packages_matches_the_connected_site() {
    let (Some(real), Some(scan), Some(dell), Some(hp)) = (
        shared_data("wsus-export/WSUS.cab"),
        shared_data("wsusscn2/wsusscn2.cab"),
        shared_data("third-party/0e6cf4ac-2853-48aa-825b-8fe28206575f.sdp"),
        shared_data("third-party/HpCatalogForSms.zip"),
    ) else {
        return;
    };
    let connected = Site::new();
    let month1 = generated(connected.dir.path(), "m1.cab", 800, 11);
    let live = connected.path("gen.cab");
    std::fs::copy(&month1, &live).unwrap();
    let sources = [
        ("real", "wsus-export", real.as_path()),
        ("gen", "wsus-export", live.as_path()),
        ("scan", "wsusscn2", scan.as_path()),
        ("dell", "sdp-catalog", dell.as_path()),
        ("hp", "sdp-catalog", hp.as_path()),
    ];
    let supersedence = "\n[supersedence]\nexpire = \"immediately\"\n";
    configure(&connected, &sources, &["*"], &["en", "de"], supersedence);
    let (key, public) = keygen(&connected, "cas");
    let fed = disconnected(&["en", "de"], &public);

    connected.sync();
    let (full, m) = export(&connected, "full.pkg", None, Some(&key));
    assert_eq!(m["kind"], "full");
    assert!(m["counts"]["categories"].as_u64().unwrap() >= 451, "{m}");
    let r = import(&fed, &full);
    assert_eq!(r["already_imported"], false);
    assert_eq!(
        r["signed_by"].as_str(),
        std::fs::read_to_string(&public)
            .ok()
            .as_deref()
            .map(str::trim)
    );
    same_catalog(&connected, &fed, "full package");
    // The real catalog's categories, the vendor's synthesized ones, the scan file's
    // supersedence: all there, as the connected site has them.
    let cats = "SELECT COUNT(*) FROM categories";
    assert_eq!(fed.sql::<i64>(cats), connected.sql::<i64>(cats));
    let sup = "SELECT COUNT(*) FROM relations WHERE kind = 'superseded'";
    assert_eq!(fed.sql::<i64>(sup), connected.sql::<i64>(sup));

    // Importing it again changes nothing.
    let before = fed.snapshot();
    assert_eq!(import(&fed, &full)["already_imported"], true);
    assert_eq!(fed.snapshot(), before);

    // Evolutions, each carried by an incremental package.
    let mut imported = m["to_version"].as_u64().unwrap();
    let mut previous = month1.clone();
    for step in 0..3u64 {
        let next = connected.path(&format!("m{}.cab", step + 2));
        evolve(
            &previous,
            &next,
            &EvolveOptions {
                seed: 20 + step,
                change_percent: 4.0,
            },
        )
        .unwrap();
        std::fs::copy(&next, &live).unwrap();
        previous = next;
        if step == 2 {
            // The connected site narrows its selection: the package removes what it drops.
            configure(
                &connected,
                &sources,
                &["Security Updates", "Critical Updates", "Updates", "Drivers"],
                &["en", "de"],
                supersedence,
            );
        }
        // The narrowing is deliberate: past the mass-removal guard.
        let report = connected.sync_allowing_mass_removal();
        let (pkg, m) = export(
            &connected,
            &format!("inc{step}.pkg"),
            Some(imported),
            Some(&key),
        );
        assert_eq!(m["kind"], "incremental");
        assert_eq!(m["from_version"].as_u64(), Some(imported));
        assert_eq!(m["to_version"].as_u64(), Some(report.catalog_version));
        if step == 2 {
            assert!(report.removed > 0, "{report:?}");
            assert_eq!(m["counts"]["removed"].as_u64(), Some(report.removed), "{m}");
        } else {
            assert!(m["counts"]["expired"].as_u64().unwrap() > 0, "{m}");
        }
        let r = import(&fed, &pkg);
        let got = &r["report"];
        assert_eq!(got["new"].as_u64(), Some(report.new), "step {step}: {r}");
        assert_eq!(
            got["removed"].as_u64(),
            Some(report.removed),
            "step {step}: {r}"
        );
        same_catalog(&connected, &fed, &format!("evolution {step}"));
        imported = m["to_version"].as_u64().unwrap();
    }
    let status = fed.cli_json(&["status", "--json"]);
    assert_eq!(
        status["imported"]["version"].as_u64(),
        Some(imported),
        "{status}"
    );
}

#[test]
fn import_keeps_the_sites_own_languages() {
    let connected = Site::new();
    let catalog_file = generated(connected.dir.path(), "gen.cab", 300, 5);
    configure(
        &connected,
        &[("gen", "wsus-export", &catalog_file)],
        &["*"],
        &["en", "de", "fr"],
        "",
    );
    connected.sync();
    let (key, public) = keygen(&connected, "k");
    let fed = disconnected(&["en"], &public);
    let (pkg, _) = export(&connected, "full.pkg", None, Some(&key));
    import(&fed, &pkg);
    assert_eq!(digest(&connected), digest(&fed));
    let langs = "SELECT group_concat(DISTINCT language) FROM localized";
    assert_eq!(fed.sql::<String>(langs), "en");
    assert!(connected.sql::<String>(langs).contains("de"));
}

/// The store file's bytes (the WAL is checkpointed into it when the last connection
/// closes); `None` before the site has a store.
fn store_bytes(site: &Site) -> Option<Vec<u8>> {
    let wal = site.path("data/patchsync.db-wal");
    assert!(!wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0);
    std::fs::read(site.db()).ok()
}

fn refused(site: &Site, package: &Path, expect: &[&str]) {
    let before = store_bytes(site);
    let out = site.cli(&["import", package.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{} was imported", package.display());
    for e in expect {
        assert!(
            err.contains(e),
            "{}: expected '{e}' in: {err}",
            package.display()
        );
    }
    match before {
        Some(before) => assert!(
            store_bytes(site).is_some_and(|after| Sha256::digest(after) == Sha256::digest(&before)),
            "{}: the store changed",
            package.display()
        ),
        // A first import that fails leaves an empty store.
        None => assert_eq!(site.sql::<i64>("SELECT COUNT(*) FROM updates"), 0),
    }
}

/// Rewrites a package's manifest (and drops its signature), keeping the framing valid.
fn with_manifest(pkg: &Path, out: &Path, edit: impl Fn(&mut serde_json::Value)) {
    let bytes = std::fs::read(pkg).unwrap();
    let n = bytes.len();
    let footer = &bytes[n - 56..];
    let mlen = u64::from_le_bytes(footer[..8].try_into().unwrap()) as usize;
    let slen = u64::from_le_bytes(footer[8..16].try_into().unwrap()) as usize;
    let at = n - 56 - slen - mlen;
    let mut m: serde_json::Value = serde_json::from_slice(&bytes[at..at + mlen]).unwrap();
    edit(&mut m);
    let manifest = serde_json::to_vec(&m).unwrap();
    let mut b = bytes[..at].to_vec();
    b.extend_from_slice(&manifest);
    b.extend_from_slice(&(manifest.len() as u64).to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    b.extend_from_slice(&Sha256::digest(&manifest));
    b.extend_from_slice(b"PSPKGEND");
    std::fs::write(out, b).unwrap();
}

#[test]
fn bad_packages_are_refused_and_change_nothing() {
    let connected = Site::new();
    let month1 = generated(connected.dir.path(), "m1.cab", 400, 9);
    let live = connected.path("gen.cab");
    std::fs::copy(&month1, &live).unwrap();
    configure(
        &connected,
        &[("gen", "wsus-export", &live)],
        &["*"],
        &["en"],
        "",
    );
    let (key, public) = keygen(&connected, "cas");
    let (other_key, _) = keygen(&connected, "stranger");
    let fed = disconnected(&["en"], &public);

    connected.sync();
    let (v1, m1) = export(&connected, "v1.pkg", None, Some(&key));
    // An incremental package before any full one.
    let (early, _) = export(&connected, "early.pkg", Some(0), Some(&key));
    refused(
        &fed,
        &early,
        &["imported nothing yet", "import a full package first"],
    );

    let mut previous = month1;
    for step in 0..2u64 {
        let next = connected.path(&format!("m{}.cab", step + 2));
        evolve(
            &previous,
            &next,
            &EvolveOptions {
                seed: 40 + step,
                change_percent: 5.0,
            },
        )
        .unwrap();
        std::fs::copy(&next, &live).unwrap();
        previous = next;
        connected.sync();
    }
    let v1_version = m1["to_version"].as_u64().unwrap();
    import(&fed, &v1);
    let (gap, _) = export(&connected, "gap.pkg", Some(v1_version + 1), Some(&key));
    let (good, _) = export(&connected, "good.pkg", Some(v1_version), Some(&key));

    // Out of order: the changes of version 2 are missing.
    refused(
        &fed,
        &gap,
        &[
            &format!("up to version {v1_version}"),
            &format!(
                "versions {}..={} are missing",
                v1_version + 1,
                v1_version + 1
            ),
            &format!("--since {v1_version}"),
        ],
    );

    // Truncated, anywhere.
    let bytes = std::fs::read(&good).unwrap();
    for cut in [bytes.len() / 2, bytes.len() - 1, 10] {
        let p = fed.path(&format!("cut{cut}.pkg"));
        std::fs::write(&p, &bytes[..cut]).unwrap();
        refused(&fed, &p, &["copy it again"]);
    }
    // One flipped byte, anywhere: 40 places spread over the file, the ends included.
    let positions: Vec<usize> = (0..40)
        .map(|i| i * (bytes.len() - 1) / 39)
        .chain([1, 17, bytes.len() - 2, bytes.len() - 60])
        .collect();
    for at in positions {
        let mut b = bytes.clone();
        b[at] ^= 0x20;
        let p = fed.path(&format!("flip{at}.pkg"));
        std::fs::write(&p, b).unwrap();
        refused(&fed, &p, &[]);
        let err =
            String::from_utf8_lossy(&fed.cli(&["import", p.to_str().unwrap()]).stderr).to_string();
        assert!(
            [
                "copy it again",
                "altered",
                "not a patchsync export package",
                "get a fresh copy"
            ]
            .iter()
            .any(|m| err.contains(m)),
            "flip at {at}: {err}"
        );
    }

    // Signed by a key this site does not trust.
    let (untrusted, _) = export(
        &connected,
        "untrusted.pkg",
        Some(v1_version),
        Some(&other_key),
    );
    refused(
        &fed,
        &untrusted,
        &["does not trust", "[import] trusted_keys"],
    );
    // The trusted key's name on another key's signature.
    {
        let sig_of = |b: &[u8]| {
            let n = b.len();
            let slen = u64::from_le_bytes(b[n - 48..n - 40].try_into().unwrap()) as usize;
            let s: serde_json::Value = serde_json::from_slice(&b[n - 56 - slen..n - 56]).unwrap();
            s["signature"].as_str().unwrap().to_owned()
        };
        let mine = sig_of(&bytes);
        let theirs = sig_of(&std::fs::read(&untrusted).unwrap());
        let mut b = bytes.clone();
        let at = b
            .windows(mine.len())
            .position(|w| w == mine.as_bytes())
            .unwrap();
        b[at..at + theirs.len()].copy_from_slice(theirs.as_bytes());
        let p = fed.path("wrong-signature.pkg");
        std::fs::write(&p, b).unwrap();
        refused(
            &fed,
            &p,
            &["signature", "does not match", "altered after it was signed"],
        );
    }
    // Unsigned, where only signed packages are imported.
    let (unsigned, _) = export(&connected, "unsigned.pkg", Some(v1_version), None);
    refused(
        &fed,
        &unsigned,
        &["not signed", "--sign KEY", "allow_unsigned"],
    );
    // A format this patchsync does not know.
    let future = fed.path("future.pkg");
    with_manifest(&good, &future, |m| m["format_version"] = 2.into());
    refused(
        &fed,
        &future,
        &["format version 2", "reads version 1", "upgrade patchsync"],
    );
    // Another site's lineage.
    let stranger = Site::new();
    configure(
        &stranger,
        &[("gen", "wsus-export", &live)],
        &["*"],
        &["en"],
        "",
    );
    stranger.sync();
    let (foreign, _) = export(&stranger, "foreign.pkg", None, Some(&key));
    refused(
        &fed,
        &foreign,
        &["comes from site 'TST'", "this site imports from site 'TST'"],
    );

    // And the good one still imports.
    import(&fed, &good);
    same_catalog(&connected, &fed, "after the refusals");
}

#[test]
fn export_says_what_it_cannot_do() {
    let site = Site::new();
    let catalog_file = generated(site.dir.path(), "gen.cab", 50, 2);
    configure(
        &site,
        &[("gen", "wsus-export", &catalog_file)],
        &["*"],
        &["en"],
        "",
    );
    site.sync();
    let out = site.cli(&[
        "export",
        "--out",
        site.path("x.pkg").to_str().unwrap(),
        "--since",
        "9",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("--since 9 is ahead of this site's catalog version 1"),
        "{err}"
    );
    assert!(!site.path("x.pkg").exists());
    // A folder that does not exist yet is made, as for a WSUS export.
    let nested = site.path("out/packages/full.pkg");
    let out = site.cli(&["export", "--out", nested.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(nested.is_file());
}

#[test]
fn a_package_that_removes_much_is_applied_only_when_allowed() {
    let connected = Site::new();
    let catalog_file = generated(connected.dir.path(), "gen.cab", 300, 8);
    let sources = [("gen", "wsus-export", catalog_file.as_path())];
    configure(&connected, &sources, &["*"], &["en"], "");
    connected.sync();
    let (key, public) = keygen(&connected, "cas");
    let fed = disconnected(&["en"], &public);
    let (full, m) = export(&connected, "full.pkg", None, Some(&key));
    import(&fed, &full);
    // The connected site narrows its selection on purpose.
    configure(&connected, &sources, &["Security Updates"], &["en"], "");
    let r = connected.sync_allowing_mass_removal();
    assert!(r.removed > 50, "{r:?}");
    let since = m["to_version"].as_u64().unwrap();
    let (inc, _) = export(&connected, "inc.pkg", Some(since), Some(&key));
    let before = fed.snapshot();
    let out = fed.cli(&["import", inc.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("would remove") && err.contains("--allow-mass-removal"),
        "{err}"
    );
    assert_eq!(fed.snapshot(), before);
    let out = fed.cli(&[
        "import",
        inc.to_str().unwrap(),
        "--allow-mass-removal",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    same_catalog(&connected, &fed, "after the narrowing");
}
