//! Generates a synthetic WSUS export shaped like Microsoft's catalog.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::wsus_writer::{PackageEntry, WsusExportWriter};
use super::xmlgen::{Entry, Loc, digest_of, file_url, guid_from, render};
use crate::error::{Error, Result};
use crate::model::{
    CategoryKind, LANGUAGES, MICROSOFT_COMPANY, UpdateType, WELL_KNOWN_CLASSIFICATIONS,
};
use crate::source::RecordReader;
use crate::xml::parse_update;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Software and driver update records to write (bundles, leaves and standalone updates).
    pub updates: usize,
    pub seed: u64,
    /// Take categories and detectoids from this WSUS export instead of the built-in tree.
    pub categories_from: Option<PathBuf>,
}

/// What was generated.
#[derive(Debug, Clone, Serialize, Default)]
pub struct GenerateSummary {
    pub records: u64,
    pub categories: u64,
    pub detectoids: u64,
    pub bundles: u64,
    pub leaves: u64,
    pub standalone: u64,
}

/// The categories generated updates are filed under.
pub(crate) struct Universe {
    /// Category and detectoid records, written first.
    pub records: Vec<(String, u32, String)>,
    pub products: Vec<(String, String)>,
    pub classifications: Vec<(String, String)>,
    pub detectoids: Vec<String>,
}

const FAMILIES: &[(&str, &[&str])] = &[
    (
        "Windows",
        &[
            "Windows 11",
            "Windows 10",
            "Windows Server 2022",
            "Windows Server 2019",
            "Windows Server 2025",
        ],
    ),
    (
        "Office",
        &[
            "Microsoft 365 Apps",
            "Office 2016",
            "Office 2019",
            "Office LTSC 2021",
        ],
    ),
    (
        "SQL Server",
        &["Microsoft SQL Server 2019", "Microsoft SQL Server 2022"],
    ),
    (
        "Developer Tools, Runtimes, and Redistributables",
        &["Visual Studio 2022", ".NET 8.0", ".NET Framework 4.8"],
    ),
    ("Exchange", &["Exchange Server 2019"]),
    ("Microsoft Defender", &["Microsoft Defender Antivirus"]),
];

/// The languages generated updates are localized in: the first eight WSUS knows.
pub(crate) const LANGS: &[(&str, u32, &str)] = LANGUAGES.split_at(8).0;

fn cat_record(
    id: &str,
    kind: CategoryKind,
    title: &str,
    parent: Option<&str>,
) -> (String, u32, String) {
    let xml = render(&Entry {
        id,
        revision: 1,
        update_type: "Category",
        state: "Published",
        created: "2004-02-28T18:17:34Z",
        severity: None,
        kb: None,
        bulletin: None,
        cves: vec![],
        locs: vec![Loc {
            lang: "en",
            title: title.into(),
            description: title.into(),
        }],
        prerequisites: vec![],
        categories: parent.map(|p| vec![p.to_owned()]).unwrap_or_default(),
        bundled: vec![],
        superseded: vec![],
        files: vec![],
        category_kind: Some(kind.as_str()),
    });
    (id.to_owned(), 1, xml)
}

impl Universe {
    pub(crate) fn builtin() -> Universe {
        let mut records = vec![cat_record(
            MICROSOFT_COMPANY,
            CategoryKind::Company,
            "Microsoft",
            None,
        )];
        let mut products = Vec::new();
        for (family, prods) in FAMILIES {
            let fid = guid_from(&format!("family/{family}"));
            records.push(cat_record(
                &fid,
                CategoryKind::ProductFamily,
                family,
                Some(MICROSOFT_COMPANY),
            ));
            for p in *prods {
                let pid = guid_from(&format!("product/{p}"));
                records.push(cat_record(&pid, CategoryKind::Product, p, Some(&fid)));
                products.push((pid, (*p).to_owned()));
            }
        }
        let mut classifications = Vec::new();
        for (title, id) in WELL_KNOWN_CLASSIFICATIONS {
            records.push(cat_record(
                id,
                CategoryKind::UpdateClassification,
                title,
                None,
            ));
            classifications.push(((*id).to_owned(), (*title).to_owned()));
        }
        let mut detectoids = Vec::new();
        for i in 0..20 {
            let id = guid_from(&format!("detectoid/{i}"));
            let xml = render(&Entry {
                id: &id,
                revision: 1,
                update_type: "Detectoid",
                state: "Published",
                created: "2015-07-29T00:00:00Z",
                severity: None,
                kb: None,
                bulletin: None,
                cves: vec![],
                locs: vec![Loc {
                    lang: "en",
                    title: format!("Detectoid {i}"),
                    description: "Applicability check".into(),
                }],
                prerequisites: vec![],
                categories: vec![],
                bundled: vec![],
                superseded: vec![],
                files: vec![],
                category_kind: None,
            });
            records.push((id.clone(), 1, xml));
            detectoids.push(id);
        }
        Universe {
            records,
            products,
            classifications,
            detectoids,
        }
    }

    /// Categories and detectoids of a real WSUS export.
    pub(crate) fn from_export(path: &Path) -> Result<Universe> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut cab = cab::Cabinet::new(file).map_err(|e| Error::io(path, e))?;
        let reader = std::io::BufReader::new(
            cab.read_file("metadata.txt")
                .map_err(|e| Error::io(path, e))?,
        );
        let mut records = RecordReader::new(reader);
        let mut u = Universe {
            records: vec![],
            products: vec![],
            classifications: vec![],
            detectoids: vec![],
        };
        while let Some(r) = records
            .next_record()
            .map_err(|m| Error::source("categories", path.display().to_string(), m))?
        {
            let up = parse_update(&r.xml).map_err(|e| {
                Error::source("categories", path.display().to_string(), e.to_string())
            })?;
            let id = up.identity.id.to_string();
            let known = u
                .products
                .iter()
                .chain(&u.classifications)
                .any(|(p, _)| *p == id);
            match (up.update_type, up.category_kind) {
                (UpdateType::Category, _) | (UpdateType::Detectoid, _)
                    if known || u.detectoids.contains(&id) => {}
                (UpdateType::Category, Some(CategoryKind::Product)) => u
                    .products
                    .push((id.clone(), up.title("en").unwrap_or_default().to_owned())),
                (UpdateType::Category, Some(CategoryKind::UpdateClassification)) => u
                    .classifications
                    .push((id.clone(), up.title("en").unwrap_or_default().to_owned())),
                (UpdateType::Detectoid, _) => u.detectoids.push(id.clone()),
                (UpdateType::Category, _) => {}
                _ => continue,
            }
            u.records.push((id, r.revision, r.xml));
        }
        if u.products.is_empty() || u.classifications.is_empty() {
            return Err(Error::source(
                "categories",
                path.display().to_string(),
                "the export has no products or classifications",
            ));
        }
        Ok(u)
    }
}

/// Produces groups of related records (bundle + leaves, or a standalone update).
pub(crate) struct Generator<'u> {
    pub rng: fastrand::Rng,
    pub universe: &'u Universe,
    pub namespace: String,
    pub counter: u64,
    pub day_offset: i64,
    last_by_product: std::collections::HashMap<(usize, usize), String>,
}

/// One record the generator made, with its `package.xml` entry.
pub(crate) struct Made {
    pub id: String,
    pub xml: String,
    pub entry: PackageEntry,
    pub files: Vec<(String, String, String)>,
    pub top_level: bool,
}

fn pick_weighted(rng: &mut fastrand::Rng, weights: &[(usize, u32)]) -> usize {
    let total: u32 = weights.iter().map(|w| w.1).sum();
    let mut x = rng.u32(0..total);
    for (i, w) in weights {
        if x < *w {
            return *i;
        }
        x -= w;
    }
    weights[0].0
}

impl<'u> Generator<'u> {
    pub(crate) fn new(seed: u64, universe: &'u Universe, namespace: &str, day_offset: i64) -> Self {
        Generator {
            rng: fastrand::Rng::with_seed(seed),
            universe,
            namespace: namespace.to_owned(),
            counter: 0,
            day_offset,
            last_by_product: Default::default(),
        }
    }

    fn next_id(&mut self) -> String {
        self.counter += 1;
        guid_from(&format!("{}/{}", self.namespace, self.counter))
    }

    fn classification_index(&mut self, driver: bool) -> usize {
        let find = |t: &str| self.universe.classifications.iter().position(|c| c.1 == t);
        if driver {
            return find("Drivers").unwrap_or(0);
        }
        let table: Vec<(usize, u32)> = [
            ("Security Updates", 40),
            ("Critical Updates", 10),
            ("Updates", 25),
            ("Definition Updates", 5),
            ("Update Rollups", 5),
            ("Feature Packs", 3),
            ("Service Packs", 2),
            ("Tools", 2),
            ("Upgrades", 3),
        ]
        .iter()
        .filter_map(|(t, w)| find(t).map(|i| (i, *w)))
        .collect();
        if table.is_empty() {
            self.rng.usize(0..self.universe.classifications.len())
        } else {
            pick_weighted(&mut self.rng, &table)
        }
    }

    /// One group: leaves first, then their bundle (as in Microsoft's exports); or a standalone update.
    /// A group that fits in `room` records (a standalone update always does), so a catalog
    /// has exactly the size asked for.
    pub(crate) fn group_within(&mut self, room: usize) -> Vec<Made> {
        loop {
            let group = self.group();
            if group.len() <= room {
                return group;
            }
        }
    }

    pub(crate) fn group(&mut self) -> Vec<Made> {
        let u = self.universe;
        let day = self.day_offset + self.counter as i64 / 200;
        let date = chrono::NaiveDate::from_ymd_opt(2021, 1, 1).expect("date")
            + chrono::Duration::days(day.min(3000));
        let created = format!("{}T17:00:00Z", date.format("%Y-%m-%d"));
        let month = date.format("%Y-%m").to_string();
        let standalone = self.rng.u32(0..100) < 15;
        let product = self.rng.usize(0..u.products.len());
        let class = self.classification_index(standalone);
        let kb = 5_000_000 + self.rng.u32(0..999_999);
        let (pid, ptitle) = &u.products[product];
        let (cid, ctitle) = &u.classifications[class];
        let security = ctitle == "Security Updates";
        let severity = if security {
            Some(
                ["Critical", "Important", "Moderate", "Low"]
                    [pick_weighted(&mut self.rng, &[(0, 30), (1, 50), (2, 15), (3, 5)])],
            )
        } else {
            None
        };
        let cves: Vec<String> = if security {
            (0..self.rng.usize(1..6))
                .map(|_| format!("CVE-{}-{}", date.format("%Y"), self.rng.u32(20000..49999)))
                .collect()
        } else {
            vec![]
        };
        let kind_word = if standalone {
            "Driver Update"
        } else {
            ctitle.trim_end_matches('s')
        };
        let title = format!("{month} {kind_word} for {ptitle} for x64-based Systems (KB{kb})");
        let description = format!(
            "A {} issue has been identified in {ptitle} that could affect your system. Install this update to resolve it and help protect your computer.",
            if security { "security" } else { "reliability" }
        );
        let mut locs = vec![Loc {
            lang: "en",
            title: title.clone(),
            description: description.clone(),
        }];
        let extra = self.rng.usize(1..4);
        for k in 0..extra {
            let (lang, _, _) =
                LANGS[1 + (self.rng.usize(0..LANGS.len() - 1) + k) % (LANGS.len() - 1)];
            if locs.iter().any(|l| l.lang == lang) {
                continue;
            }
            locs.push(Loc {
                lang,
                title: format!("[{lang}] {title}"),
                description: format!("[{lang}] {description}"),
            });
        }
        let detectoid = (!u.detectoids.is_empty())
            .then(|| u.detectoids[self.rng.usize(0..u.detectoids.len())].clone());
        let superseded: Vec<String> = match self.last_by_product.get(&(product, class)) {
            Some(prev) if self.rng.u32(0..100) < 70 => vec![prev.clone()],
            _ => vec![],
        };
        let mut out = Vec::new();
        let mut bundled = Vec::new();
        let make_files = |rng: &mut fastrand::Rng, stem: &str| -> Vec<(String, u64)> {
            (0..rng.usize(1..3))
                .map(|i| {
                    (
                        format!("{stem}-{i}_{:08x}.msu", rng.u32(..)),
                        rng.u64(200_000..900_000_000),
                    )
                })
                .collect()
        };
        let file_rows = |files: &[(String, u64)]| -> Vec<(String, String, String)> {
            files
                .iter()
                .map(|(n, _)| {
                    let d = digest_of(n);
                    (d.clone(), file_url(&d, n), n.clone())
                })
                .collect()
        };
        if !standalone {
            for _ in 0..self.rng.usize(1..4) {
                let id = self.next_id();
                let files = make_files(&mut self.rng, &format!("kb{kb}-x64"));
                let xml = render(&Entry {
                    id: &id,
                    revision: 100,
                    update_type: "Software",
                    state: "Published",
                    created: &created,
                    severity: None,
                    kb: None,
                    bulletin: None,
                    cves: vec![],
                    locs: vec![Loc {
                        lang: "en",
                        title: format!("{title} (package)"),
                        description: String::new(),
                    }],
                    prerequisites: detectoid.iter().cloned().collect(),
                    categories: vec![],
                    bundled: vec![],
                    superseded: vec![],
                    files: files.clone(),
                    category_kind: None,
                });
                let entry = PackageEntry {
                    file_digests: files.iter().map(|f| digest_of(&f.0)).collect(),
                    ..Default::default()
                };
                bundled.push((id.clone(), 100));
                out.push(Made {
                    id,
                    xml,
                    entry,
                    files: file_rows(&files),
                    top_level: false,
                });
            }
        }
        let id = self.next_id();
        let files = if standalone {
            make_files(&mut self.rng, &format!("driver-{kb}"))
        } else {
            vec![]
        };
        let xml = render(&Entry {
            id: &id,
            revision: 200,
            update_type: if standalone { "Driver" } else { "Software" },
            state: "Published",
            created: &created,
            severity,
            kb: Some(kb),
            bulletin: security
                .then(|| format!("MS{}-{:03}", date.format("%y"), self.rng.u32(1..200))),
            cves,
            locs,
            prerequisites: detectoid.iter().cloned().collect(),
            categories: vec![pid.clone(), cid.clone()],
            bundled,
            superseded,
            files: files.clone(),
            category_kind: None,
        });
        let entry = PackageEntry {
            file_digests: files.iter().map(|f| digest_of(&f.0)).collect(),
            categories: vec![pid.clone()],
            classifications: vec![cid.clone()],
        };
        self.last_by_product.insert((product, class), id.clone());
        out.push(Made {
            id,
            xml,
            entry,
            files: file_rows(&files),
            top_level: true,
        });
        out
    }
}

pub(crate) fn languages() -> Vec<(u32, String, String)> {
    LANGS
        .iter()
        .map(|(s, id, l)| (*id, (*s).to_owned(), (*l).to_owned()))
        .collect()
}

impl Made {
    pub(crate) fn is_bundle(&self) -> bool {
        self.xml.contains("<upd:BundledUpdates>")
    }

    /// The revision a first catalog writes it with.
    pub(crate) fn first_revision(&self) -> u32 {
        if self.top_level { 200 } else { 100 }
    }
}

impl GenerateSummary {
    /// Counts a category or detectoid record of the universe.
    pub(crate) fn count_record(&mut self, xml: &str) {
        if xml.contains("UpdateType=\"Detectoid\"") {
            self.detectoids += 1
        } else {
            self.categories += 1
        }
    }

    /// Counts a generated update.
    pub(crate) fn count(&mut self, m: &Made) {
        match (m.top_level, m.is_bundle()) {
            (true, true) => self.bundles += 1,
            (true, false) => self.standalone += 1,
            (false, _) => self.leaves += 1,
        }
    }
}

pub(crate) fn write_made(w: &mut WsusExportWriter, m: &Made, revision: u32) -> Result<()> {
    for (d, url, name) in &m.files {
        w.add_file(d, url, name)?;
    }
    w.add_update(&m.id, revision, &m.xml, &m.entry)
}

/// Writes a synthetic catalog of `opts.updates` update records (plus categories) to `out`.
pub fn generate(out: &Path, opts: &GenerateOptions) -> Result<GenerateSummary> {
    let universe = match &opts.categories_from {
        Some(p) => Universe::from_export(p)?,
        None => Universe::builtin(),
    };
    let mut w = WsusExportWriter::create(out, languages())?;
    let mut s = GenerateSummary::default();
    for (id, rev, xml) in &universe.records {
        w.add_update(id, *rev, xml, &PackageEntry::default())?;
        s.count_record(xml);
    }
    let mut g = Generator::new(opts.seed, &universe, &format!("gen/{}", opts.seed), 0);
    let mut written = 0usize;
    while written < opts.updates {
        let group = g.group_within(opts.updates - written);
        for m in &group {
            write_made(&mut w, m, m.first_revision())?;
            s.count(m);
        }
        written += group.len();
    }
    s.records = w.records();
    w.finish(
        &guid_from(&format!("server/{}", opts.seed)),
        "2026-01-01T00:00:00Z",
    )?;
    Ok(s)
}
