//! Bundles bring their leaves transitively, including leaves the store excluded before;
//! a directory of update XML files as the source.

use crate::common::{Site, update_xml};

const P: &str = "aaaaaaaa-0000-0000-0000-000000000001";
const Q: &str = "aaaaaaaa-0000-0000-0000-000000000002";
const SEC: &str = "0fa1201d-4330-4fa8-8ae9-b877473b6441";
const B: &str = "bbbbbbbb-0000-0000-0000-000000000001";
const M: &str = "bbbbbbbb-0000-0000-0000-000000000002";
const L: &str = "bbbbbbbb-0000-0000-0000-000000000003";
const B2: &str = "bbbbbbbb-0000-0000-0000-000000000004";
const L2: &str = "bbbbbbbb-0000-0000-0000-000000000005";
const O: &str = "bbbbbbbb-0000-0000-0000-000000000006";
const B4: &str = "bbbbbbbb-0000-0000-0000-000000000007";
const B5: &str = "bbbbbbbb-0000-0000-0000-000000000008";
const GHOST: &str = "bbbbbbbb-0000-0000-0000-000000000009";

fn put(site: &Site, name: &str, xml: String) {
    std::fs::create_dir_all(site.path("catalog")).unwrap();
    std::fs::write(site.path(&format!("catalog/{name}.xml")), xml).unwrap();
}

fn stored(site: &Site) -> Vec<String> {
    let c = rusqlite::Connection::open(site.db()).unwrap();
    let mut s = c
        .prepare("SELECT id FROM updates WHERE update_type = 'Software' ORDER BY id")
        .unwrap();
    s.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn bundles_bring_leaves_transitively() {
    let site = Site::new();
    put(
        &site,
        "p",
        update_xml(P, 1, "Category:Product", "Contoso Widgets", &[], &[], ""),
    );
    put(
        &site,
        "q",
        update_xml(Q, 1, "Category:Product", "Fabrikam Tools", &[], &[], ""),
    );
    put(
        &site,
        "sec",
        update_xml(
            SEC,
            1,
            "Category:UpdateClassification",
            "Security Updates",
            &[],
            &[],
            "",
        ),
    );
    put(
        &site,
        "b",
        update_xml(
            B,
            1,
            "Software",
            "Widgets fix (KB1)",
            &[P, SEC],
            &[M],
            "<upd:KBArticleID>1</upd:KBArticleID>",
        ),
    );
    put(
        &site,
        "m",
        update_xml(M, 1, "Software", "Widgets fix middle", &[], &[L], ""),
    );
    put(
        &site,
        "l",
        update_xml(L, 1, "Software", "Widgets fix payload", &[], &[], ""),
    );
    put(
        &site,
        "b2",
        update_xml(B2, 1, "Software", "Tools fix", &[Q, SEC], &[L2], ""),
    );
    put(
        &site,
        "l2",
        update_xml(L2, 1, "Software", "Tools fix payload", &[], &[], ""),
    );
    put(
        &site,
        "o",
        update_xml(O, 1, "Software", "Orphan payload", &[], &[], ""),
    );
    let dir = site.path("catalog");
    site.write_config(
        &[("hand", "directory", &dir)],
        &["Contoso Widgets"],
        &["Security Updates"],
        &["en"],
    );

    let r = site.sync();
    assert_eq!(stored(&site), vec![B, M, L]);
    assert_eq!(r.excluded, 3, "{r:?}");
    let by: String = site.sql(&format!("SELECT selected_by FROM updates WHERE id = '{L}'"));
    assert_eq!(by, "bundle");
    let show = site.cli_json(&["show", L, "--json"]);
    assert_eq!(show["bundled_by"][0], M);

    // A new bundle that carries the orphan (excluded before, unchanged since) brings it in;
    // a bundle naming a leaf the catalog lacks is reported.
    put(
        &site,
        "b4",
        update_xml(B4, 1, "Software", "Widgets rollup", &[P, SEC], &[O], ""),
    );
    put(
        &site,
        "b5",
        update_xml(B5, 1, "Software", "Widgets broken", &[P, SEC], &[GHOST], ""),
    );
    let r = site.sync();
    assert_eq!(stored(&site), vec![B, M, L, O, B4, B5]);
    assert_eq!(r.new, 3);
    assert_eq!(r.sources[0].unresolved_bundle_leaves, 1);
    assert!(
        r.sources[0].warnings.iter().any(|w| w.contains(GHOST)),
        "{:?}",
        r.sources[0].warnings
    );

    // Widening the filter brings in the other product's bundle and its leaf.
    site.write_config(
        &[("hand", "directory", &dir)],
        &["Contoso Widgets", "Fabrikam Tools"],
        &["Security Updates"],
        &["en"],
    );
    let r = site.sync();
    assert_eq!(r.new, 2);
    assert!(stored(&site).contains(&L2.to_string()));

    // Removing a file from a full listing expires the update (kept, not deleted).
    std::fs::remove_file(site.path("catalog/b2.xml")).unwrap();
    let r = site.sync();
    assert_eq!(r.expired, 1);
    let state: String = site.sql(&format!("SELECT state FROM updates WHERE id = '{B2}'"));
    assert_eq!(state, "expired");
}

#[test]
fn categories_listed_after_their_updates_still_select_correctly() {
    const FAMILY: &str = "aaaaaaaa-0000-0000-0000-0000000000f1";
    let site = Site::new();
    // Files are read in name order: the updates come before the categories they name.
    put(
        &site,
        "a1",
        update_xml(B, 1, "Software", "Widgets fix", &[P, SEC], &[L], ""),
    );
    put(
        &site,
        "a2",
        update_xml(L, 1, "Software", "Widgets payload", &[], &[], ""),
    );
    put(
        &site,
        "a3",
        update_xml(B2, 1, "Software", "Tools fix", &[Q, SEC], &[], ""),
    );
    put(
        &site,
        "z1",
        update_xml(FAMILY, 1, "Category:ProductFamily", "Contoso", &[], &[], ""),
    );
    put(
        &site,
        "z2",
        update_xml(
            P,
            1,
            "Category:Product",
            "Contoso Widgets",
            &[FAMILY],
            &[],
            "",
        ),
    );
    put(
        &site,
        "z3",
        update_xml(Q, 1, "Category:Product", "Fabrikam Tools", &[], &[], ""),
    );
    put(
        &site,
        "z4",
        update_xml(
            SEC,
            1,
            "Category:UpdateClassification",
            "Security Updates",
            &[],
            &[],
            "",
        ),
    );
    let dir = site.path("catalog");
    site.write_config(
        &[("hand", "directory", &dir)],
        &["Contoso"],
        &["Security Updates"],
        &["en"],
    );
    let r = site.sync();
    assert_eq!(stored(&site), vec![B, L]);
    assert_eq!((r.excluded, r.sources[0].warnings.len()), (1, 0), "{r:?}");
    let pending: i64 = site.sql("SELECT COUNT(*) FROM updates WHERE selected_by = 'pending'");
    assert_eq!(pending, 0);
}
