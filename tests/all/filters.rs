//! Product, classification and language selection, and filter changes between syncs.

use crate::common::{Site, generated};

fn ids(site: &Site, sql: &str) -> Vec<String> {
    let c = rusqlite::Connection::open(site.db()).unwrap();
    let mut s = c.prepare(sql).unwrap();
    s.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn filter_changes_add_and_remove_updates() {
    let site = Site::new();
    let cab = generated(site.dir.path(), "c.cab", 4000, 11);
    site.write_config(
        &[("gen", "wsus-export", &cab)],
        &["Windows 11"],
        &["Security Updates"],
        &["en"],
    );
    let first = site.sync();
    assert!(first.updates > 0);
    // Every top-level update kept names Windows 11 and Security Updates.
    let wrong: i64 = site.sql(
        "SELECT COUNT(*) FROM updates u WHERE u.selected_by = 'filter' AND NOT (
            EXISTS (SELECT 1 FROM update_categories c JOIN categories k ON k.id = c.category_id
                    WHERE c.uid = u.uid AND k.title = 'Windows 11')
        AND EXISTS (SELECT 1 FROM update_categories c WHERE c.uid = u.uid
                    AND c.category_id = '0fa1201d-4330-4fa8-8ae9-b877473b6441'))",
    );
    assert_eq!(wrong, 0);
    // Bundles bring their leaves: no kept bundle misses one.
    let unresolved: i64 = site.sql(
        "SELECT COUNT(*) FROM relations r JOIN updates b ON b.uid = r.uid
         WHERE r.kind = 'bundled' AND NOT EXISTS (SELECT 1 FROM updates l WHERE l.id = r.other_id)",
    );
    assert_eq!(unresolved, 0);
    let leaves: i64 = site.sql("SELECT COUNT(*) FROM updates WHERE selected_by = 'bundle'");
    assert!(leaves > 0);
    let w11 = ids(
        &site,
        "SELECT id FROM updates WHERE update_type IN ('Software', 'Driver') ORDER BY id",
    );

    // A product family selects every product below it.
    site.write_config(
        &[("gen", "wsus-export", &cab)],
        &["Windows"],
        &["Security Updates"],
        &["en"],
    );
    let wider = site.sync();
    assert!(wider.new > 0, "updates of products just added are fetched");
    assert_eq!(wider.removed, 0);
    assert_eq!(wider.catalog_version, 2);
    let windows = ids(
        &site,
        "SELECT id FROM updates WHERE update_type IN ('Software', 'Driver') ORDER BY id",
    );
    let windows_top = ids(
        &site,
        "SELECT id FROM updates WHERE selected_by = 'filter' ORDER BY id",
    );
    assert!(w11.iter().all(|i| windows.contains(i)));
    assert_eq!(windows.len() - w11.len(), wider.new as usize);
    let other_products: i64 = site.sql(
        "SELECT COUNT(*) FROM updates u JOIN update_categories c ON c.uid = u.uid JOIN categories k ON k.id = c.category_id
         WHERE k.kind = 'Product' AND k.title NOT LIKE 'Windows%'",
    );
    assert_eq!(other_products, 0);

    // Back to Windows 11 only: the others leave the store, leaves included.
    site.write_config(
        &[("gen", "wsus-export", &cab)],
        &["Windows 11"],
        &["Security Updates"],
        &["en"],
    );
    let narrower = site.sync_allowing_mass_removal();
    assert_eq!(narrower.removed as usize, windows.len() - w11.len());
    assert_eq!(narrower.new, 0);
    assert_eq!(
        ids(
            &site,
            "SELECT id FROM updates WHERE update_type IN ('Software', 'Driver') ORDER BY id"
        ),
        w11
    );
    assert_eq!(narrower.catalog_version, 3);

    // Why is an update not in the store? `show` says which stage decided.
    let gone = windows_top.iter().find(|i| !w11.contains(i)).unwrap();
    let out = site.cli(&["show", gone]);
    assert!(!out.status.success());
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        msg.contains("not in the store") && msg.contains("built-in selection"),
        "{msg}"
    );
}

#[test]
fn categories_only_until_products_are_chosen() {
    let site = Site::new();
    let cab = generated(site.dir.path(), "c.cab", 500, 2);
    site.write_config(&[("gen", "wsus-export", &cab)], &[], &["*"], &["en"]);
    let r = site.sync();
    assert_eq!(r.updates, 0);
    assert!(r.categories > 20 && r.detectoids > 0);
    assert!(
        r.excluded >= 500,
        "every update was evaluated and excluded: {r:?}"
    );
    // Choosing products later fetches them on the next sync.
    site.write_config(&[("gen", "wsus-export", &cab)], &["*"], &["*"], &["en"]);
    let r2 = site.sync();
    assert_eq!(r2.read.software + r2.read.driver, 500);
    assert_eq!(r2.updates, 500);
}

#[test]
fn unknown_filter_names_warn_in_the_report() {
    let site = Site::new();
    let cab = generated(site.dir.path(), "c.cab", 100, 2);
    site.write_config(
        &[("gen", "wsus-export", &cab)],
        &["Windows 99"],
        &["Security Updatez"],
        &["en"],
    );
    let r = site.sync();
    let w = &r.sources[0].warnings;
    assert!(
        w.iter()
            .any(|m| m.contains("Windows 99") && m.contains("patchsync categories")),
        "{w:?}"
    );
    assert!(w.iter().any(|m| m.contains("Security Updatez")), "{w:?}");
}

#[test]
fn languages_keep_only_selected_localized_properties_and_a_change_refetches() {
    let site = Site::new();
    let cab = generated(site.dir.path(), "c.cab", 400, 5);
    site.write_config(&[("gen", "wsus-export", &cab)], &["*"], &["*"], &["de"]);
    site.sync();
    let langs = ids(&site, "SELECT DISTINCT language FROM localized ORDER BY 1");
    assert_eq!(langs, vec!["de".to_string(), "en".to_string()]);
    site.write_config(&[("gen", "wsus-export", &cab)], &["*"], &["*"], &["*"]);
    let r = site.sync();
    assert!(r.unchanged > 0 && r.new == 0);
    let langs = ids(&site, "SELECT DISTINCT language FROM localized ORDER BY 1");
    assert!(langs.len() > 3, "{langs:?}");
}
