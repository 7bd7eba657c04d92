//! The real WSUS export in ../shared/data: exact counts, categories, languages, raw XML.

use crate::common::{Site, shared_data};

#[test]
fn real_export_syncs_every_record_with_exact_counts() {
    let Some(cab) = shared_data("wsus-export/WSUS.cab") else {
        return;
    };
    let site = Site::new();
    site.write_config(&[("wsus", "wsus-export", &cab)], &[], &[], &["*"]);
    let r = site.sync();

    // 4,125 revision records: 451 categories (3 / 61 / 367 / 20) and 3,674 detectoids.
    let read = r.read;
    assert_eq!(
        (
            read.company,
            read.product_family,
            read.product,
            read.classification
        ),
        (3, 61, 367, 20)
    );
    assert_eq!(read.categories(), 451);
    assert_eq!(read.detectoid, 3674);
    assert_eq!(read.total(), 4125);
    assert_eq!(read.software + read.driver, 0);
    assert_eq!(
        site.sql::<i64>("SELECT COUNT(*) FROM revisions"),
        4125,
        "every revision is recorded as seen"
    );

    // The store keeps the newest revision of each of the 4,087 distinct updates.
    assert_eq!(r.new, 4087);
    assert_eq!(site.sql::<i64>("SELECT COUNT(*) FROM updates"), 4087);
    assert_eq!(r.categories, 427);
    assert_eq!(r.detectoids, 3660);
    let kinds: Vec<(String, i64)> = {
        let c = rusqlite::Connection::open(site.db()).unwrap();
        let mut s = c
            .prepare("SELECT kind, COUNT(*) FROM categories GROUP BY kind ORDER BY kind")
            .unwrap();
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(
        kinds,
        vec![
            ("Company".into(), 2),
            ("Product".into(), 356),
            ("ProductFamily".into(), 57),
            ("UpdateClassification".into(), 12)
        ]
    );
    // Critical Updates: revision 100 replaced revision 1; both were seen.
    assert_eq!(
        site.sql::<i64>(
            "SELECT revision FROM updates WHERE id = 'e6cf1350-c01b-414d-a61f-263d14d133b4'"
        ),
        100
    );
    assert_eq!(site.sql::<i64>("SELECT COUNT(*) FROM revisions WHERE update_id = 'e6cf1350-c01b-414d-a61f-263d14d133b4'"), 2);
    assert_eq!(r.catalog_version, 1);
    assert_eq!(r.updates, 0, "the export holds no software updates");
}

#[test]
fn real_export_category_tree_and_titles() {
    let Some(cab) = shared_data("wsus-export/WSUS.cab") else {
        return;
    };
    let site = Site::new();
    site.write_config(&[("wsus", "wsus-export", &cab)], &[], &[], &["en", "pt-br"]);
    site.sync();
    let cats = site.cli_json(&["categories", "--kind", "classification", "--json"]);
    let titles: Vec<&str> = cats
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["title"].as_str().unwrap())
        .collect();
    for t in [
        "Critical Updates",
        "Security Updates",
        "Definition Updates",
        "Drivers",
        "Upgrades",
    ] {
        assert!(titles.contains(&t), "{t} missing from {titles:?}");
    }
    let c = &cats.as_array().unwrap()[0];
    for key in ["id", "kind", "title", "parent"] {
        assert!(c.get(key).is_some(), "categories --json lacks {key}");
    }
    // Every product hangs under a product family or company that is in the store.
    let orphans: i64 = site.sql(
        "SELECT COUNT(*) FROM categories p WHERE p.kind = 'Product'
         AND NOT EXISTS (SELECT 1 FROM categories f WHERE f.id = p.parent_id AND f.kind IN ('ProductFamily', 'Company'))",
    );
    assert_eq!(orphans, 0);
    // Language tags compare case-insensitively: both pt-BR and pt-br records are kept.
    let pt: i64 = site.sql("SELECT COUNT(*) FROM localized WHERE lower(language) = 'pt-br'");
    assert!(pt > 0);
    let fr: i64 = site.sql("SELECT COUNT(*) FROM localized WHERE language = 'fr'");
    assert_eq!(fr, 0, "languages not selected are not kept");
}

#[test]
fn raw_xml_is_kept_losslessly() {
    let Some(cab) = shared_data("wsus-export/WSUS.cab") else {
        return;
    };
    let site = Site::new();
    site.write_config(&[("wsus", "wsus-export", &cab)], &[], &[], &["en"]);
    site.sync();
    // The record for Windows 2000 family's product, read straight from the package.
    let file = std::fs::File::open(&cab).unwrap();
    let mut c = cab::Cabinet::new(file).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut c.read_file("metadata.txt").unwrap(), &mut text).unwrap();
    let mut reader = patchsync::source::RecordReader::new(text.as_bytes());
    let mut checked = 0;
    while let Some(rec) = reader.next_record().unwrap() {
        if rec.index % 500 != 1 {
            continue;
        }
        let u = patchsync::xml::parse_update(&rec.xml).unwrap();
        let stored: i64 = site.sql(&format!(
            "SELECT revision FROM updates WHERE id = '{}'",
            u.identity.id
        ));
        if stored as u32 != rec.revision {
            continue; // an older revision of an update stored at a newer one
        }
        let out = site.cli(&["show", &u.identity.id.to_string(), "--xml"]);
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8(out.stdout)
                .unwrap()
                .trim_end_matches('\n'),
            rec.xml
        );
        checked += 1;
    }
    assert!(checked >= 5);
}
