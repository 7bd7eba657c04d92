//! Supersedence rules (expire superseded updates immediately, after N months, feature
//! upgrades apart, never without the superseder) and the cleanup of long-expired updates.

use crate::common::{Site, generated, shared_data};

fn write(site: &Site, cab: &std::path::Path, supersedence: &str) {
    std::fs::write(
        site.config_path(),
        format!(
            "[site]\nname = \"SUP\"\nstore = \"data/patchsync.db\"\n[[source]]\nname = \"gen\"\nkind = \"wsus-export\"\npath = {:?}\n[filter]\nproducts = [\"*\"]\n{supersedence}\n",
            cab.display().to_string()
        ),
    )
    .unwrap();
}

/// Active updates an active update in the store supersedes, split by "is a feature upgrade".
fn superseded_now(site: &Site) -> (i64, i64) {
    let q = |upgrade: bool| -> i64 {
        site.sql(&format!(
            "SELECT COUNT(DISTINCT old.uid) FROM relations r
             JOIN updates new ON new.uid = r.uid AND new.state = 'active'
             JOIN updates old ON old.id = r.other_id AND old.state = 'active'
             WHERE r.kind = 'superseded' AND old.update_type IN ('Software', 'Driver')
               AND {} EXISTS (SELECT 1 FROM update_categories c WHERE c.uid = old.uid
                              AND c.category_id = '3689bdc8-b205-4af4-8d4a-a63924c5e9d5')",
            if upgrade { "" } else { "NOT" }
        ))
    };
    (q(false), q(true))
}

#[test]
fn superseded_updates_expire_by_the_rules_and_long_expired_ones_go() {
    let dir = tempfile::tempdir().unwrap();
    let cab = generated(dir.path(), "gen.cab", 3000, 21);
    let site = Site::new();
    write(&site, &cab, "");
    let first = site.sync();
    assert_eq!(first.expired_superseded, 0, "the default is never");
    let (plain, upgrades) = superseded_now(&site);
    assert!(
        plain > 20,
        "the generated catalog supersedes within itself: {plain}"
    );
    assert!(
        upgrades > 0,
        "and has superseded feature upgrades: {upgrades}"
    );

    // Pin one superseded update: it must stay.
    let pinned: String = site.sql(
        "SELECT old.id FROM relations r JOIN updates new ON new.uid = r.uid
         JOIN updates old ON old.id = r.other_id
         WHERE r.kind = 'superseded' AND old.update_type IN ('Software', 'Driver')
           AND NOT EXISTS (SELECT 1 FROM update_categories c WHERE c.uid = old.uid
                           AND c.category_id = '3689bdc8-b205-4af4-8d4a-a63924c5e9d5')
         ORDER BY old.id LIMIT 1",
    );
    let out = site.cli(&["import-update", "--source", "gen", "--id", &pinned]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Far in the future: nothing is due yet.
    write(
        &site,
        &cab,
        "[supersedence]\nexpire = \"after 1200 months\"",
    );
    assert_eq!(site.sync().expired_superseded, 0);

    // Immediately, feature upgrades apart.
    write(
        &site,
        &cab,
        "[supersedence]\nexpire = \"immediately\"\nfeature_upgrades = \"never\"",
    );
    let version_before: i64 =
        site.sql("SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'catalog_version'");
    let r = site.sync();
    assert_eq!(
        r.expired_superseded as i64,
        plain - 1,
        "all but the pinned one: {r:?}"
    );
    assert_eq!(r.catalog_version as i64, version_before + 1);
    assert_eq!(
        site.sql::<String>(&format!("SELECT state FROM updates WHERE id = '{pinned}'")),
        "active"
    );
    // What is left superseded is the pinned one (if its superseder is still active) and the
    // feature upgrades.
    let (plain_left, upgrades_left) = superseded_now(&site);
    assert!(plain_left <= 1, "{plain_left}");
    assert_eq!(upgrades_left, upgrades);
    // Expired, not deleted: still in the store, with when it expired.
    let expired: i64 =
        site.sql("SELECT COUNT(*) FROM updates WHERE state = 'expired' AND expired_at IS NOT NULL");
    assert!(expired >= plain - 1);

    // Cleanup: updates expired for longer than 0 days are deleted, pinned ones kept.
    write(
        &site,
        &cab,
        "[supersedence]\nexpire = \"immediately\"\nfeature_upgrades = \"never\"\ndelete_expired_after_days = 0",
    );
    let r = site.sync();
    assert_eq!(r.deleted as i64, expired, "{r:?}");
    assert_eq!(
        site.sql::<i64>("SELECT COUNT(*) FROM updates WHERE state = 'expired'"),
        0
    );
    assert_eq!(
        site.sql::<i64>("SELECT COUNT(*) FROM localized l WHERE NOT EXISTS (SELECT 1 FROM updates u WHERE u.uid = l.uid)"),
        0,
        "their metadata is gone too"
    );
    assert_eq!(
        site.sql::<i64>(&format!(
            "SELECT COUNT(*) FROM updates WHERE id = '{pinned}'"
        )),
        1
    );
    let log = std::fs::read_to_string(site.path("data/sync.log")).unwrap();
    assert!(log.contains("Supersedence rules expired"), "{log}");
}

#[test]
fn an_update_whose_superseder_is_not_in_the_store_does_not_expire() {
    let Some(zip) = shared_data("third-party/HpCatalogForSms.zip") else {
        return;
    };
    // Only Critical Updates are stored: what they supersede (mostly older packages the
    // catalog no longer has, or ones of other classifications) is never expired by them.
    let site = Site::new();
    std::fs::write(
        site.config_path(),
        format!(
            "[site]\nname = \"HP\"\nstore = \"data/patchsync.db\"\n[[source]]\nname = \"hp\"\nkind = \"sdp-catalog\"\npath = {:?}\n[filter]\nproducts = [\"*\"]\n[supersedence]\nexpire = \"immediately\"\n",
            zip.display().to_string()
        ),
    )
    .unwrap();
    let r = site.sync();
    let with_superseder_in_store: i64 = site.sql(
        "SELECT COUNT(DISTINCT old.uid) FROM relations r
         JOIN updates new ON new.uid = r.uid
         JOIN updates old ON old.id = r.other_id
         WHERE r.kind = 'superseded' AND old.state = 'expired'",
    );
    assert_eq!(
        r.expired_superseded as i64, with_superseder_in_store,
        "{r:?}"
    );
    let listed_superseded: i64 =
        site.sql("SELECT COUNT(DISTINCT other_id) FROM relations WHERE kind = 'superseded'");
    assert!(
        (r.expired_superseded as i64) < listed_superseded,
        "superseded packages the catalog does not hold are not touched"
    );
    assert_eq!(r.updates as i64, 1829 - r.expired_superseded as i64);
}
