//! "Next month": a new revision of a generated (or real) export with new, revised, expired
//! and removed updates in known proportions, and a manifest of exactly which ids changed.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::catalog::{Generator, Universe, languages, write_made};
use super::wsus_writer::{PackageEntry, WsusExportWriter};
use super::xmlgen::{file_url, guid_from};
use crate::error::{Error, Result};
use crate::model::{CategoryKind, UpdateType};
use crate::source::RecordReader;
use crate::xml::parse_update;

/// How much to change.
#[derive(Debug, Clone)]
pub struct EvolveOptions {
    pub seed: u64,
    /// Share of top-level updates touched, in percent (default 1): 40 % of it new updates,
    /// 30 % revised, 20 % expired (new revision not `Published`), 10 % removed.
    pub change_percent: f64,
}

impl Default for EvolveOptions {
    fn default() -> Self {
        EvolveOptions {
            seed: 1,
            change_percent: 1.0,
        }
    }
}

/// Exactly what changed; written beside the package as JSON.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct EvolveManifest {
    pub from: String,
    pub to: String,
    pub records_before: u64,
    pub records_after: u64,
    /// New records: bundles, their leaves, standalone updates.
    pub new: Vec<String>,
    /// Top-level updates with a new, published revision.
    pub revised: Vec<String>,
    /// Top-level updates whose new revision is not published.
    pub expired: Vec<String>,
    /// Records no longer in the package (top-level updates and their leaves).
    pub removed: Vec<String>,
}

fn records(
    path: &Path,
    mut f: impl FnMut(crate::source::MetadataRecord) -> Result<()>,
) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut cab = cab::Cabinet::new(file).map_err(|e| Error::io(path, e))?;
    let reader = std::io::BufReader::with_capacity(
        1 << 18,
        cab.read_file("metadata.txt")
            .map_err(|e| Error::io(path, e))?,
    );
    let mut rr = RecordReader::new(reader);
    while let Some(r) = rr
        .next_record()
        .map_err(|m| Error::source("evolve", path.display().to_string(), m))?
    {
        f(r)?;
    }
    Ok(())
}

/// Writes the evolution of `from` to `out` and returns (and writes to `out`.changes.json)
/// the manifest of changes.
pub fn evolve(from: &Path, out: &Path, opts: &EvolveOptions) -> Result<EvolveManifest> {
    let bad = |e: crate::xml::XmlError| {
        Error::source("evolve", from.display().to_string(), e.to_string())
    };
    // Pass 1: what is there.
    let mut top: Vec<String> = Vec::new();
    let mut leaves_of: HashMap<String, Vec<String>> = HashMap::new();
    let mut universe = Universe {
        records: vec![],
        products: vec![],
        classifications: vec![],
        detectoids: vec![],
    };
    let mut before = 0u64;
    records(from, |r| {
        before += 1;
        let u = parse_update(&r.xml).map_err(bad)?;
        let id = u.identity.id.to_string();
        match u.update_type {
            UpdateType::Category => match u.category_kind {
                Some(CategoryKind::Product) => universe
                    .products
                    .push((id, u.title("en").unwrap_or_default().into())),
                Some(CategoryKind::UpdateClassification) => universe
                    .classifications
                    .push((id, u.title("en").unwrap_or_default().into())),
                _ => {}
            },
            UpdateType::Detectoid => universe.detectoids.push(id),
            _ if !u.categories.is_empty() => {
                let leaves: Vec<String> = u.bundled().map(|b| b.to_string()).collect();
                if !leaves.is_empty() {
                    leaves_of.insert(id.clone(), leaves);
                }
                top.push(id);
            }
            _ => {}
        }
        Ok(())
    })?;
    if universe.products.is_empty() || universe.classifications.is_empty() {
        return Err(Error::source(
            "evolve",
            from.display().to_string(),
            "the package has no products or classifications to file new updates under",
        ));
    }
    let classification_ids: HashSet<String> = universe
        .classifications
        .iter()
        .map(|c| c.0.clone())
        .collect();

    // Choose what changes.
    let mut rng = fastrand::Rng::with_seed(opts.seed);
    let touched = ((top.len() as f64) * opts.change_percent / 100.0).round() as usize;
    let (n_new, n_rev, n_exp) = (touched * 4 / 10, touched * 3 / 10, touched * 2 / 10);
    let n_rem = touched.saturating_sub(n_new + n_rev + n_exp);
    rng.shuffle(&mut top);
    let mut pick = |n: usize| -> HashSet<String> { top.drain(..n.min(top.len())).collect() };
    let revised = pick(n_rev);
    let expired = pick(n_exp);
    let removed_top = pick(n_rem);
    let mut removed: HashSet<String> = removed_top.clone();
    for b in &removed_top {
        removed.extend(leaves_of.get(b).cloned().unwrap_or_default());
    }

    // Pass 2: write the next package.
    let mut w = WsusExportWriter::create(out, languages())?;
    let mut manifest = EvolveManifest {
        from: from.display().to_string(),
        to: out.display().to_string(),
        records_before: before,
        ..Default::default()
    };
    records(from, |r| {
        let id = r.id_text.to_ascii_lowercase();
        if removed.contains(&id) {
            return Ok(());
        }
        let (revision, xml) = if revised.contains(&id) || expired.contains(&id) {
            let rev = r.revision + 1;
            let mut xml = r.xml.replacen(
                &format!("RevisionNumber=\"{}\"", r.revision),
                &format!("RevisionNumber=\"{rev}\""),
                1,
            );
            if expired.contains(&id) {
                xml = xml.replacen(
                    "PublicationState=\"Published\"",
                    "PublicationState=\"Expired\"",
                    1,
                );
            } else {
                xml = xml.replacen("<upd:Description>", "<upd:Description>Revised: ", 1);
            }
            (rev, xml)
        } else {
            (r.revision, r.xml)
        };
        let u = parse_update(&xml).map_err(bad)?;
        let mut entry = PackageEntry::default();
        for c in &u.categories {
            let c = c.to_string();
            if classification_ids.contains(&c) {
                entry.classifications.push(c)
            } else {
                entry.categories.push(c)
            }
        }
        for f in &u.files {
            if let Some(d) = &f.digest {
                entry.file_digests.push(d.clone());
                w.add_file(d, &file_url(d, &f.name), &f.name)?;
            }
        }
        w.add_update(&id, revision, &xml, &entry)
    })?;
    let mut g = Generator::new(
        opts.seed ^ 0x5eed,
        &universe,
        &format!("evolve/{}/{}", opts.seed, guid_from(&manifest.from)),
        3000,
    );
    let mut new_top = 0;
    while new_top < n_new {
        for m in g.group() {
            write_made(&mut w, &m, if m.top_level { 200 } else { 100 })?;
            if m.top_level {
                new_top += 1;
            }
            manifest.new.push(m.id);
        }
    }
    manifest.records_after = w.records();
    w.finish(
        &guid_from(&format!("server/evolved/{}", opts.seed)),
        &chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )?;
    let sorted = |s: HashSet<String>| {
        let mut v: Vec<String> = s.into_iter().collect();
        v.sort();
        v
    };
    manifest.revised = sorted(revised);
    manifest.expired = sorted(expired);
    manifest.removed = sorted(removed);
    let json_path = changes_path(out);
    let json = serde_json::to_string_pretty(&manifest)
        .map_err(|e| Error::source("evolve", json_path.display().to_string(), e.to_string()))?;
    std::fs::write(&json_path, json).map_err(|e| Error::io(&json_path, e))?;
    Ok(manifest)
}

/// Where `evolve` writes its manifest: `<out>.changes.json`.
pub fn changes_path(out: &Path) -> std::path::PathBuf {
    let mut p = out.as_os_str().to_owned();
    p.push(".changes.json");
    p.into()
}
