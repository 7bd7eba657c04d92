//! The synthetic catalog generator: deterministic, shaped like Microsoft's, readable back.

use crate::common::{Site, bin};

#[test]
fn same_seed_same_catalog_and_shape() {
    let site = Site::new();
    let a = site.path("a.cab");
    let b = site.path("b.cab");
    let c = site.path("c.cab");
    for (p, seed) in [(&a, "9"), (&b, "9"), (&c, "10")] {
        let out = bin()
            .args([
                "generate-catalog",
                "--updates",
                "1500",
                "--seed",
                seed,
                "--out",
            ])
            .arg(p)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let meta = |p: &std::path::Path| {
        let mut cab = cab::Cabinet::new(std::fs::File::open(p).unwrap()).unwrap();
        let mut s = String::new();
        std::io::Read::read_to_string(&mut cab.read_file("metadata.txt").unwrap(), &mut s).unwrap();
        s
    };
    assert_eq!(meta(&a), meta(&b));
    assert_ne!(meta(&a), meta(&c));

    let text = meta(&a);
    let mut r = patchsync::source::RecordReader::new(text.as_bytes());
    let (mut bundles, mut leaves, mut superseding, mut langs, mut classifications) =
        (0, 0, 0, 0, std::collections::HashSet::new());
    let mut software = 0;
    while let Some(rec) = r.next_record().unwrap() {
        let u = patchsync::xml::parse_update(&rec.xml).unwrap();
        if u.update_type.is_always_synced() {
            continue;
        }
        software += 1;
        if u.is_bundle() {
            bundles += 1;
        }
        if u.categories.is_empty() {
            leaves += 1;
            assert!(!u.files.is_empty(), "leaves carry the files");
        }
        if u.relations
            .iter()
            .any(|(k, _)| *k == patchsync::model::RelationKind::Superseded)
        {
            superseding += 1;
        }
        langs = langs.max(u.localized.len());
        if let Some(c) = u.categories.get(1) {
            classifications.insert(*c);
        }
    }
    assert_eq!(software, 1500);
    assert!(
        bundles > 300 && leaves > bundles,
        "{bundles} bundles, {leaves} leaves"
    );
    assert!(superseding > 100, "{superseding}");
    assert!(langs >= 3);
    assert!(
        classifications.len() >= 8,
        "real classification GUIDs in use: {}",
        classifications.len()
    );
}

#[test]
fn categories_can_come_from_a_real_export() {
    let Some(real) = crate::common::shared_data("wsus-export/WSUS.cab") else {
        return;
    };
    let site = Site::new();
    let out = site.path("g.cab");
    let s = patchsync::generate::generate(
        &out,
        &patchsync::generate::GenerateOptions {
            updates: 300,
            seed: 1,
            categories_from: Some(real.clone()),
        },
    )
    .unwrap();
    assert_eq!(s.categories, 451);
    assert_eq!(s.detectoids, 3674);
    site.write_config(&[("g", "wsus-export", &out)], &["Windows"], &["*"], &["en"]);
    let r = site.sync();
    assert_eq!(r.categories, 427);
    assert!(
        r.updates > 0,
        "updates filed under real products are selected by title"
    );
}
