//! Vendor (SDP) catalogs: HP's real catalog, Dell's real package, a per-update archive built
//! from HP's packages, downloads over loopback HTTP, and the ways each can be bad.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::common::{HttpServer, Serve, Site, grouped, shared_data};

const HP_COMPANY_TITLE: &str = "HP Business Clients";

fn hp_xml() -> Option<String> {
    let zip = shared_data("third-party/HpCatalogForSms.zip")?;
    let mut z = zip::ZipArchive::new(std::fs::File::open(zip).unwrap()).unwrap();
    let mut s = String::new();
    z.by_name("HpCatalogForSms.xml")
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    Some(s)
}

/// The catalog's packages as standalone documents (the root's namespaces copied on).
fn hp_packages(xml: &str) -> Vec<(String, String, String)> {
    let root_start = xml.find("<smc:SystemsManagementCatalog").unwrap();
    let root_end = root_start + xml[root_start..].find('>').unwrap();
    let decls = &xml[root_start + "<smc:SystemsManagementCatalog".len()..root_end];
    let mut out = Vec::new();
    let mut rest = &xml[root_end..];
    while let Some(a) = rest.find("<smc:SoftwareDistributionPackage") {
        let b = a
            + rest[a..]
                .find("</smc:SoftwareDistributionPackage>")
                .unwrap()
            + "</smc:SoftwareDistributionPackage>".len();
        let pkg = &rest[a..b];
        let id = between(pkg, "PackageID=\"", "\"");
        let created = between(pkg, "CreationDate=\"", "\"");
        let doc = pkg.replacen(
            "<smc:SoftwareDistributionPackage",
            &format!("<smc:SoftwareDistributionPackage{decls}"),
            1,
        );
        out.push((id, created, doc));
        rest = &rest[b..];
    }
    out
}

fn between(s: &str, a: &str, b: &str) -> String {
    let i = s.find(a).unwrap() + a.len();
    s[i..i + s[i..].find(b).unwrap()].to_owned()
}

fn write_zip(path: &Path, members: &[(String, Vec<u8>)]) {
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in members {
        z.start_file(name.as_str(), opts).unwrap();
        z.write_all(data).unwrap();
    }
    z.finish().unwrap();
}

fn write_site(site: &Site, sources: &str, classifications: &str) {
    std::fs::write(
        site.config_path(),
        format!(
            "[site]\nname = \"TP\"\nstore = \"data/patchsync.db\"\n\n{sources}\n[filter]\nproducts = [\"*\"]\nclassifications = [{classifications}]\nlanguages = [\"en\"]\n"
        ),
    )
    .unwrap();
}

fn source(name: &str, kind: &str, path: &str, extra: &str) -> String {
    format!("[[source]]\nname = {name:?}\nkind = {kind:?}\npath = {path:?}\n{extra}\n")
}

fn hp_site(classifications: &str) -> Option<(Site, PathBuf)> {
    let zip = shared_data("third-party/HpCatalogForSms.zip")?;
    let site = Site::new();
    write_site(
        &site,
        &source("hp", "sdp-catalog", zip.to_str().unwrap(), ""),
        classifications,
    );
    Some((site, zip))
}

const CLASSIFICATION_OF: &str = "SELECT c.title, COUNT(*) FROM updates u
    JOIN update_categories uc ON uc.uid = u.uid
    JOIN (SELECT id, title FROM categories
          UNION ALL SELECT 'cd5ffd1e-e932-4e3a-bf74-18bf0b1bbd83', 'Updates'
          UNION ALL SELECT 'e6cf1350-c01b-414d-a61f-263d14d133b4', 'Critical Updates'
          UNION ALL SELECT 'b4832bd8-e735-4761-8daf-37f882276dab', 'Tools'
          UNION ALL SELECT 'b54e7d24-7add-428f-8b75-90a396fa584f', 'Feature Packs'
          UNION ALL SELECT '0fa1201d-4330-4fa8-8ae9-b877473b6441', 'Security Updates') c
      ON c.id = uc.category_id
    WHERE u.update_type IN ('Software', 'Driver') AND u.state = 'active'
      AND c.id NOT IN (SELECT id FROM categories WHERE kind != 'UpdateClassification')
    GROUP BY c.title ORDER BY 2 DESC";

#[test]
fn hp_catalog_reproduces_the_vendor_counts() {
    let Some((site, _)) = hp_site("\"*\"") else {
        return;
    };
    let r = site.sync();
    assert_eq!(r.updates, 1829, "{r:?}");
    assert_eq!(
        r.new,
        1829 + 4,
        "1,829 packages, one company and three products"
    );
    let db = site.db();
    assert_eq!(
        grouped(
            &db,
            "SELECT c.title, COUNT(*) FROM categories c WHERE c.kind = 'Company' GROUP BY 1"
        ),
        vec![(HP_COMPANY_TITLE.to_string(), 1)]
    );
    assert_eq!(
        grouped(
            &db,
            "SELECT p.title, COUNT(*) FROM updates u JOIN update_categories uc ON uc.uid = u.uid
             JOIN categories p ON p.id = uc.category_id AND p.kind = 'Product'
             JOIN categories co ON co.id = p.parent_id AND co.title = 'HP Business Clients'
             WHERE u.state = 'active' GROUP BY 1 ORDER BY 2 DESC"
        ),
        vec![
            ("Driver".to_string(), 1244),
            ("Software".to_string(), 338),
            ("Firmware".to_string(), 247)
        ]
    );
    assert_eq!(
        grouped(&db, CLASSIFICATION_OF),
        vec![
            ("Updates".to_string(), 1531),
            ("Critical Updates".to_string(), 254),
            ("Tools".to_string(), 26),
            ("Feature Packs".to_string(), 17),
            ("Security Updates".to_string(), 1)
        ]
    );
    assert_eq!(
        grouped(
            &db,
            "SELECT msrc_severity, COUNT(*) FROM updates WHERE update_type != 'Category'
             GROUP BY 1 ORDER BY 2 DESC"
        ),
        vec![
            ("Low".to_string(), 1079),
            ("Important".to_string(), 494),
            ("Critical".to_string(), 256)
        ]
    );
    assert_eq!(
        site.sql::<i64>("SELECT COUNT(DISTINCT uid) FROM relations WHERE kind = 'superseded'"),
        1433
    );
    // Origin files with their URL, and the package XML kept whole.
    assert_eq!(
        site.sql::<String>(
            "SELECT fu.url FROM files f JOIN file_urls fu ON fu.digest = f.digest
             WHERE f.name = 'sp65001.exe'"
        ),
        "http://ftp.hp.com/pub/softpaq/sp65001-65500/sp65001.exe"
    );
    let show = site.cli_json(&["show", "00004850-0000-0000-5350-000000065001", "--json"]);
    let text = show.to_string();
    assert_eq!(show["files"][0]["name"], "sp65001.exe", "{text}");
    assert_eq!(
        show["files"][0]["url"],
        "http://ftp.hp.com/pub/softpaq/sp65001-65500/sp65001.exe"
    );
    assert!(
        text.contains("AMD Video Driver and Control Panel"),
        "{text}"
    );
    assert!(text.contains("sp65001"), "{text}");

    // Nothing changed: the fingerprint says so without reading the catalog.
    let again = site.sync();
    assert_eq!(again.new + again.revised + again.expired, 0);
    assert_eq!(again.sources[0].fetched, 0);
}

#[test]
fn a_classification_filter_keeps_exactly_its_count() {
    let Some((site, _)) = hp_site("\"Critical Updates\"") else {
        return;
    };
    let r = site.sync();
    assert_eq!(r.updates, 254, "{r:?}");
    assert_eq!(
        site.sql::<i64>(
            "SELECT COUNT(*) FROM updates u JOIN update_categories uc ON uc.uid = u.uid
             WHERE uc.category_id = 'e6cf1350-c01b-414d-a61f-263d14d133b4' AND u.state = 'active'"
        ),
        254
    );
}

#[test]
fn the_dell_package_syncs_on_its_own() {
    let Some(sdp) = shared_data("third-party/0e6cf4ac-2853-48aa-825b-8fe28206575f.sdp") else {
        return;
    };
    let site = Site::new();
    write_site(
        &site,
        &source("dell", "sdp-catalog", sdp.to_str().unwrap(), ""),
        "\"*\"",
    );
    let r = site.sync();
    assert_eq!(r.updates, 1);
    assert_eq!(
        site.sql::<String>(
            "SELECT title FROM updates WHERE id = '0e6cf4ac-2853-48aa-825b-8fe28206575f'"
        ),
        "Realtek High Definition Audio Driver,6.0.1.8454,A02"
    );
    assert_eq!(
        site.sql::<String>(
            "SELECT p.title || ' / ' || c.title FROM categories p JOIN categories c ON c.id = p.parent_id
             WHERE p.kind = 'Product'"
        ),
        "Drivers and Applications / Dell"
    );
    // The revision is derived from CreationDate 2018-10-03T06:37:49Z (minutes since 2000).
    assert_eq!(
        site.sql::<i64>("SELECT revision FROM updates WHERE update_type = 'Software'"),
        (18 * 365 + 5 + 275) * 1440 + 6 * 60 + 37
    );
}

#[test]
fn a_changed_package_shows_up_as_revised() {
    let Some(xml) = hp_xml() else {
        return;
    };
    let site = Site::new();
    let path = site.path("hp.xml");
    std::fs::write(&path, &xml).unwrap();
    write_site(
        &site,
        &source("hp", "sdp-catalog", path.to_str().unwrap(), ""),
        "\"*\"",
    );
    site.sync();
    let id = "00004850-0000-0000-5350-000000065001";
    let before: i64 = site.sql(&format!("SELECT revision FROM updates WHERE id = '{id}'"));
    // Same CreationDate, new title: the text changed, so the revision moves on.
    std::fs::write(
        &path,
        xml.replacen(
            "AMD Video Driver and Control Panel [13.152.1.9001-131203]",
            "AMD Video Driver and Control Panel [13.152.1.9002]",
            1,
        ),
    )
    .unwrap();
    let r = site.sync();
    assert_eq!((r.new, r.revised, r.expired), (0, 1, 0), "{r:?}");
    let after: i64 = site.sql(&format!("SELECT revision FROM updates WHERE id = '{id}'"));
    assert_eq!(after, before + 1);
    assert!(
        site.sql::<String>(&format!("SELECT title FROM updates WHERE id = '{id}'"))
            .ends_with("[13.152.1.9002]")
    );
    // And it stays at that revision while it does not change again.
    let r = site.cli_json(&["sync", "--full", "--json"]);
    assert_eq!(r["revised"], 0, "{r}");
}

#[test]
fn a_per_update_archive_rereads_only_changed_packages() {
    let Some(xml) = hp_xml() else {
        return;
    };
    let packages: Vec<_> = hp_packages(&xml).into_iter().take(60).collect();
    let site = Site::new();
    let path = site.path("hp-packages.zip");
    let build = |times: &[(String, String)], docs: &[(String, String)]| {
        let manifest: serde_json::Map<String, serde_json::Value> = times
            .iter()
            .map(|(id, t)| (id.clone(), serde_json::Value::String(t.clone())))
            .collect();
        let mut members: Vec<(String, Vec<u8>)> = docs
            .iter()
            .map(|(id, doc)| (format!("{id}.sdp"), doc.as_bytes().to_vec()))
            .collect();
        members.push((
            "update_manifest.json".into(),
            serde_json::to_vec(&manifest).unwrap(),
        ));
        write_zip(&path, &members);
    };
    let mut times: Vec<(String, String)> = packages
        .iter()
        .map(|(id, t, _)| (id.clone(), t.clone()))
        .collect();
    let mut docs: Vec<(String, String)> = packages
        .iter()
        .map(|(id, _, d)| (id.clone(), d.clone()))
        .collect();
    build(&times, &docs);
    write_site(
        &site,
        &source("hp-archive", "sdp-catalog", path.to_str().unwrap(), ""),
        "\"*\"",
    );
    let r = site.sync();
    assert_eq!(r.updates, 60);
    assert_eq!(
        r.sources[0].fetched,
        60 + 4,
        "60 packages, a company and products"
    );

    // Three packages get a new time; one of them a new title too. Only they are read.
    for i in [3, 17, 42] {
        times[i].1 = "2019-02-01T10:00:00".into();
    }
    docs[17].1 = docs[17]
        .1
        .replacen("<sdp:Title>", "<sdp:Title>Revised: ", 1);
    // A package whose time did not change is not read, even if its bytes did.
    docs[5].1 = docs[5].1.replacen("<sdp:Title>", "<sdp:Title>Ignored: ", 1);
    build(&times, &docs);
    let r = site.sync();
    assert_eq!((r.new, r.revised, r.expired), (0, 3, 0), "{r:?}");
    assert_eq!(
        r.sources[0].fetched, 3,
        "only the three changed packages are read"
    );
    assert!(
        site.sql::<String>(&format!(
            "SELECT title FROM updates WHERE id = '{}'",
            times[17].0
        ))
        .starts_with("Revised: ")
    );
    assert!(
        !site
            .sql::<String>(&format!(
                "SELECT title FROM updates WHERE id = '{}'",
                times[5].0
            ))
            .starts_with("Ignored: ")
    );

    // A package dropped from the manifest expires.
    times.remove(0);
    docs.remove(0);
    build(&times, &docs);
    let r = site.sync();
    assert_eq!((r.new, r.revised, r.expired), (0, 0, 1), "{r:?}");
}

#[test]
fn downloads_are_verified_and_failures_touch_nothing() {
    let (Some(zip), Some(sdp)) = (
        shared_data("third-party/HpCatalogForSms.zip"),
        shared_data("third-party/0e6cf4ac-2853-48aa-825b-8fe28206575f.sdp"),
    ) else {
        return;
    };
    let bytes = std::fs::read(&zip).unwrap();
    let digest = {
        use sha2::Digest;
        sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let site = Site::new();
    let dell = source("dell", "sdp-catalog", sdp.to_str().unwrap(), "");

    // A good download with the right pin.
    let ok = HttpServer::start("/HpCatalogForSms.zip", Serve::Body(bytes.clone()));
    write_site(
        &site,
        &format!(
            "{}{dell}",
            source(
                "hp",
                "sdp-catalog",
                &ok.url,
                &format!("sha256 = {digest:?}")
            )
        ),
        "\"*\"",
    );
    let r = site.sync();
    assert_eq!(r.updates, 1830);
    drop(ok);
    let before = site.snapshot();

    let bad_pin = "0".repeat(64);
    for (answer, pin, expect) in [
        (
            Serve::Body(bytes.clone()),
            bad_pin.as_str(),
            "SHA-256 mismatch",
        ),
        (Serve::Status(404), digest.as_str(), "HTTP 404"),
        (
            Serve::CutOff(bytes.clone(), bytes.len() / 2),
            digest.as_str(),
            "cut off",
        ),
    ] {
        let server = HttpServer::start("/HpCatalogForSms.zip", answer);
        write_site(
            &site,
            &format!(
                "{}{dell}",
                source(
                    "hp",
                    "sdp-catalog",
                    &server.url,
                    &format!("sha256 = {pin:?}")
                )
            ),
            "\"*\"",
        );
        let err = site.try_sync().unwrap_err().to_string();
        assert!(err.contains("source 'hp'"), "{err}");
        assert!(err.contains(expect), "{expect}: {err}");
        if expect.contains("SHA") {
            assert!(err.contains(&bad_pin) && err.contains(&digest), "{err}");
        }
        assert_eq!(site.snapshot(), before, "a failed download changes nothing");
        // The other source of the site still synced (its outcome is in the run's report).
        let report: String = site.sql("SELECT report FROM sync_runs ORDER BY id DESC LIMIT 1");
        let report: serde_json::Value = serde_json::from_str(&report).unwrap();
        let outcomes: Vec<String> = report["sources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| format!("{}={}", s["source"], s["outcome"]))
            .collect();
        assert_eq!(
            outcomes,
            vec!["\"hp\"=\"failed\"", "\"dell\"=\"unchanged\""],
            "{report}"
        );
    }
}

#[test]
fn bad_vendor_catalogs_are_named_and_change_nothing() {
    let Some(xml) = hp_xml() else {
        return;
    };
    let zip = shared_data("third-party/HpCatalogForSms.zip").unwrap();
    let site = Site::new();
    let good = site.path("good.xml");
    let packages = hp_packages(&xml);
    let one = &packages[0].2;
    std::fs::write(&good, one).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated.zip",
            std::fs::read(&zip).unwrap()[..400_000].to_vec(),
            "truncated",
        ),
        (
            "no-id.xml",
            one.replacen("PackageID=", "PackageId=", 1).into_bytes(),
            "PackageID",
        ),
        (
            "cut.xml",
            xml.as_bytes()[..xml.len() / 3].to_vec(),
            "truncated",
        ),
    ];
    for (file, bytes, expect) in cases {
        let bad = site.path(file);
        std::fs::write(&bad, &bytes).unwrap();
        write_site(
            &site,
            &format!(
                "{}{}",
                source("good", "sdp-catalog", good.to_str().unwrap(), ""),
                source("bad", "sdp-catalog", bad.to_str().unwrap(), "")
            ),
            "\"*\"",
        );
        let before = std::fs::exists(site.db()).unwrap().then(|| site.snapshot());
        let err = site.try_sync().unwrap_err().to_string();
        assert!(err.contains("source 'bad'") && err.contains(file), "{err}");
        assert!(err.contains(expect), "{expect}: {err}");
        assert_eq!(
            site.sql::<i64>("SELECT COUNT(*) FROM updates WHERE source = 'bad'"),
            0
        );
        assert_eq!(
            site.sql::<i64>(
                "SELECT COUNT(*) FROM updates WHERE source = 'good' AND update_type = 'Software'"
            ),
            1,
            "the good source is kept"
        );
        if let Some(b) = before {
            assert_eq!(site.snapshot(), b);
        }
    }

    // An unknown classification is kept as such and reported.
    let site = Site::new();
    let odd = site.path("odd.xml");
    std::fs::write(
        &odd,
        one.replacen(
            "UpdateClassification=\"Updates\"",
            "UpdateClassification=\"BIOS Bundles\"",
            1,
        ),
    )
    .unwrap();
    write_site(
        &site,
        &source("odd", "sdp-catalog", odd.to_str().unwrap(), ""),
        "\"*\"",
    );
    let r = site.sync();
    let warnings = r.sources[0].warnings.join("\n");
    assert!(warnings.contains("'BIOS Bundles'"), "{warnings}");
    assert_eq!(
        site.sql::<String>("SELECT title FROM categories WHERE kind = 'UpdateClassification'"),
        "BIOS Bundles"
    );
}

#[test]
fn the_json_report_of_a_failed_sync_lists_every_source() {
    let (Some(zip), Some(sdp)) = (
        shared_data("third-party/HpCatalogForSms.zip"),
        shared_data("third-party/0e6cf4ac-2853-48aa-825b-8fe28206575f.sdp"),
    ) else {
        return;
    };
    let site = Site::new();
    let bad = site.path("cut.zip");
    std::fs::write(&bad, &std::fs::read(&zip).unwrap()[..300_000]).unwrap();
    write_site(
        &site,
        &format!(
            "{}{}",
            source("hp", "sdp-catalog", bad.to_str().unwrap(), ""),
            source("dell", "sdp-catalog", sdp.to_str().unwrap(), "")
        ),
        "\"*\"",
    );
    let out = site.cli(&["sync", "--json"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cut.zip"));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["sources"][0]["outcome"], "failed", "{r}");
    assert!(
        r["sources"][0]["error"]
            .as_str()
            .unwrap()
            .contains("truncated")
    );
    assert_eq!(r["sources"][1]["outcome"], "synced", "{r}");
    assert_eq!(
        r["sources"][1]["new"], 3,
        "the package, its product and its company"
    );
}

#[test]
fn a_catalog_inside_a_cab_reads_like_the_zip() {
    let Some(xml) = hp_xml() else {
        return;
    };
    let site = Site::new();
    let cab = site.path("HpCatalogForSms.cab");
    crate::common::write_cab(&cab, &[("HpCatalogForSms.xml", xml.as_bytes())]);
    write_site(
        &site,
        &source("hp", "sdp-catalog", cab.to_str().unwrap(), ""),
        "\"Security Updates\"",
    );
    let r = site.sync();
    assert_eq!(r.updates, 1, "{r:?}");
    // The per-update layout in a CAB: two packages and their manifest.
    let packages = hp_packages(&xml);
    let site = Site::new();
    let cab = site.path("packages.cab");
    let manifest = format!(
        "{{\"{}\":\"{}\",\"{}\":\"{}\"}}",
        packages[0].0, packages[0].1, packages[1].0, packages[1].1
    );
    let a = format!("{}.sdp", packages[0].0);
    let b = format!("{}.sdp", packages[1].0);
    crate::common::write_cab(
        &cab,
        &[
            ("update_manifest.json", manifest.as_bytes()),
            (a.as_str(), packages[0].2.as_bytes()),
            (b.as_str(), packages[1].2.as_bytes()),
        ],
    );
    write_site(
        &site,
        &source("hp", "sdp-catalog", cab.to_str().unwrap(), ""),
        "\"*\"",
    );
    assert_eq!(site.sync().updates, 2);
}

#[test]
fn a_pinned_local_catalog_with_another_digest_is_refused() {
    let Some(sdp) = shared_data("third-party/0e6cf4ac-2853-48aa-825b-8fe28206575f.sdp") else {
        return;
    };
    let site = Site::new();
    let pin = "ab".repeat(32);
    write_site(
        &site,
        &source(
            "dell",
            "sdp-catalog",
            sdp.to_str().unwrap(),
            &format!("sha256 = {pin:?}"),
        ),
        "\"*\"",
    );
    let err = site.try_sync().unwrap_err().to_string();
    assert!(
        err.contains("SHA-256 mismatch") && err.contains(&pin),
        "{err}"
    );
    assert_eq!(site.sql::<i64>("SELECT COUNT(*) FROM updates"), 0);
    // A malformed pin is a config error with its line.
    write_site(
        &site,
        &source(
            "dell",
            "sdp-catalog",
            sdp.to_str().unwrap(),
            "sha256 = \"abc\"",
        ),
        "\"*\"",
    );
    let out = site.cli(&["sync"]);
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        msg.contains("sha256: must be 64 hex digits") && msg.contains("patchsync.toml:"),
        "{msg}"
    );
}
