//! Writes a synthetic offline scan file (`wsusscn2.cab` layout) from the same generator as
//! the WSUS export: `index.xml`, `package.cab` (`package.xml` with integer RevisionIds and
//! `BundledBy` cross-references) and `packageN.cab` fragment cabs (`c/`, `l/<lang>/`, `x/`).

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::catalog::{GenerateOptions, GenerateSummary, Generator, Universe};
use super::xmlgen::guid_from;
use crate::error::{Error, Result};

/// Files per fragment cab, under the CAB format's limit of 65,535.
const FILES_PER_CAB: usize = 60_000;

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

/// One revision's fragments.
struct Frag {
    rid: u32,
    core: String,
    localized: Vec<(String, String)>,
    extended: String,
}

/// Cuts a rendered (prefixed) update XML into the offline file's fragments.
fn split(xml: &str, rid: u32) -> Frag {
    let plain = xml.replace("<upd:", "<").replace("</upd:", "</");
    let open_end = plain.find('>').map(|i| i + 1).unwrap_or(0);
    let body = &plain[open_end..plain.len() - "</Update>".len()];
    let (before, rest) = body
        .split_once("<LocalizedPropertiesCollection>")
        .unwrap_or((body, "</LocalizedPropertiesCollection>"));
    let (locs, after) = rest
        .split_once("</LocalizedPropertiesCollection>")
        .unwrap_or(("", rest));
    let mut localized = Vec::new();
    for part in locs.split("<LocalizedProperties>").skip(1) {
        let lang = part
            .split_once("<Language>")
            .and_then(|(_, r)| r.split_once("</Language>"))
            .map(|(l, _)| l.to_owned())
            .unwrap_or_else(|| "en".into());
        localized.push((lang, format!("<LocalizedProperties>{part}")));
    }
    // Files move to the extended fragment, as in Microsoft's file.
    let (core_tail, files) = match after.split_once("<Files>") {
        Some((a, b)) => {
            let (f, rest) = b.split_once("</Files>").unwrap_or((b, ""));
            (format!("{a}{rest}"), format!("<Files>{f}</Files>"))
        }
        None => (after.to_owned(), String::new()),
    };
    let severity = xml
        .split_once("MsrcSeverity=\"")
        .and_then(|(_, r)| r.split_once('"'))
        .map(|(s, _)| format!(" MsrcSeverity=\"{s}\""))
        .unwrap_or_default();
    Frag {
        rid,
        core: format!("{before}{core_tail}"),
        localized,
        extended: format!(
            "<ExtendedProperties DefaultPropertiesLanguage=\"en\"{severity} IsBeta=\"false\" />{files}"
        ),
    }
}

fn write_cab(
    path: &Path,
    members: Vec<(String, Vec<u8>)>,
    compression: cab::CompressionType,
) -> Result<()> {
    let mut b = cab::CabinetBuilder::new();
    {
        let f = b.add_folder(compression);
        for (name, _) in &members {
            f.add_file(name.as_str());
        }
    }
    let file = File::create(path).map_err(io(path))?;
    let mut w = b.build(file).map_err(io(path))?;
    let mut i = 0;
    while let Some(mut fw) = w.next_file().map_err(io(path))? {
        fw.write_all(&members[i].1).map_err(io(path))?;
        i += 1;
    }
    w.finish().map_err(io(path))?;
    Ok(())
}

fn flush_cab(dir: &Path, n: usize, frags: &mut Vec<Frag>) -> Result<PathBuf> {
    let mut members: Vec<(String, Vec<u8>)> = Vec::with_capacity(frags.len() * 3);
    for f in frags.iter() {
        members.push((format!("c\\{}", f.rid), f.core.clone().into_bytes()));
    }
    let mut locs: Vec<(String, Vec<u8>)> = frags
        .iter()
        .flat_map(|f| {
            f.localized
                .iter()
                .map(move |(l, t)| (format!("l\\{l}\\{}", f.rid), t.clone().into_bytes()))
        })
        .collect();
    locs.sort_by(|a, b| a.0.cmp(&b.0));
    members.extend(locs);
    for f in frags.iter() {
        members.push((format!("x\\{}", f.rid), f.extended.clone().into_bytes()));
    }
    frags.clear();
    let path = dir.join(format!("package{n}.cab"));
    write_cab(&path, members, cab::CompressionType::MsZip)?;
    Ok(path)
}

/// Writes a synthetic offline scan file of `opts.updates` update revisions (plus the
/// category and detectoid revisions) to `out`.
pub fn generate_offline(out: &Path, opts: &GenerateOptions) -> Result<GenerateSummary> {
    let universe = match &opts.categories_from {
        Some(p) => Universe::from_export(p)?,
        None => Universe::builtin(),
    };
    let dir = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let work = tempfile::tempdir_in(dir).map_err(io(dir))?;
    let package_path = work.path().join("package.xml");
    let mut package = BufWriter::with_capacity(
        1 << 20,
        File::create(&package_path).map_err(io(&package_path))?,
    );
    writeln!(
        package,
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<OfflineSyncPackage xmlns=\"http://schemas.microsoft.com/msus/2004/02/OfflineSync\" MinimumClientVersion=\"5.8.0.2678\" PackageId=\"{}\" PackageVersion=\"1.1\" ProtocolVersion=\"1.0\" CreationDate=\"2026-01-01T00:00:00Z\" SourceId=\"cc56dcba-9026-4399-8535-7a3c9bed7086\"><Updates>",
        guid_from(&format!("offline/{}", opts.seed))
    )
    .map_err(io(&package_path))?;
    let mut s = GenerateSummary::default();
    let mut rid: u32 = 0;
    let mut frags: Vec<Frag> = Vec::new();
    let mut cabs: Vec<(u32, PathBuf)> = Vec::new();
    let mut range_start: u32 = 1;
    let mut locations = String::new();
    let mut add = |id: &str,
                   rev: u32,
                   xml: &str,
                   bundled_by: Option<u32>,
                   is_bundle: bool,
                   frags: &mut Vec<Frag>|
     -> Result<u32> {
        rid += 1;
        let created = xml
            .split_once("CreationDate=\"")
            .and_then(|(_, r)| r.split_once('"'))
            .map(|(d, _)| d)
            .unwrap_or("2026-01-01T00:00:00Z");
        let mut e = format!(
            "<Update CreationDate=\"{created}\" DefaultLanguage=\"en\" UpdateId=\"{id}\" RevisionNumber=\"{rev}\" RevisionId=\"{rid}\" IsLeaf=\"{}\" IsBundle=\"{is_bundle}\">",
            bundled_by.is_some() || !is_bundle
        );
        if let Some(b) = bundled_by {
            let _ = write!(e, "<BundledBy><Revision Id=\"{b}\" /></BundledBy>");
        }
        e.push_str("</Update>");
        package.write_all(e.as_bytes()).map_err(io(&package_path))?;
        frags.push(split(xml, rid));
        Ok(rid)
    };
    let mut last: u32 = 0;
    for (id, rev, xml) in &universe.records {
        last = add(id, *rev, xml, None, false, &mut frags)?;
        s.count_record(xml);
    }
    let mut g = Generator::new(opts.seed, &universe, &format!("gen/{}", opts.seed), 0);
    let mut written = 0usize;
    let (mut counted, mut cab_files) = (0usize, 0usize);
    while written < opts.updates {
        let mut group = g.group_within(opts.updates - written);
        // Bundles first, so their leaves can name them by RevisionId.
        group.sort_by_key(|m| !m.top_level);
        let mut bundle_rids: Vec<(u32, &str)> = Vec::new();
        for m in &group {
            let is_bundle = m.is_bundle();
            let by = bundle_rids
                .iter()
                .find(|(_, xml)| xml.contains(&m.id))
                .map(|(r, _)| *r);
            let r = add(&m.id, m.first_revision(), &m.xml, by, is_bundle, &mut frags)?;
            last = r;
            if is_bundle {
                bundle_rids.push((r, &m.xml));
            }
            s.count(m);
            for (d, url, _) in &m.files {
                let _ = write!(
                    locations,
                    "<FileLocation Id=\"{d}\" Url=\"{url}\" IsIncluded=\"false\" />"
                );
            }
        }
        written += group.len();
        // Files the current cab will hold (core and extended fragment, localized ones).
        let files: usize = frags[counted..]
            .iter()
            .map(|f| 2 + f.localized.len())
            .sum::<usize>()
            + cab_files;
        counted = frags.len();
        cab_files = files;
        if files >= FILES_PER_CAB - 1_000 {
            let n = cabs.len() + 2;
            cabs.push((range_start, flush_cab(work.path(), n, &mut frags)?));
            range_start = last + 1;
            (counted, cab_files) = (0, 0);
        }
    }
    if !frags.is_empty() {
        let n = cabs.len() + 2;
        cabs.push((range_start, flush_cab(work.path(), n, &mut frags)?));
    }
    debug_assert!(last >= 1);
    write!(
        package,
        "</Updates><FileLocations>{locations}</FileLocations></OfflineSyncPackage>"
    )
    .map_err(io(&package_path))?;
    package.flush().map_err(io(&package_path))?;
    drop(package);
    s.records = last as u64;

    let package_cab = work.path().join("package.cab");
    let xml = std::fs::read(&package_path).map_err(io(&package_path))?;
    write_cab(
        &package_cab,
        vec![("package.xml".into(), xml)],
        cab::CompressionType::MsZip,
    )?;
    let mut index =
        String::from("<INDEX VERSION=\"1\"><CABLIST XOR=\"0\"><CAB NAME=\"package.cab\" />");
    for (i, (start, _)) in cabs.iter().enumerate() {
        let start = if i == 0 { 0 } else { *start };
        let _ = write!(
            index,
            "<CAB NAME=\"package{}.cab\" RANGESTART=\"{start}\" />",
            i + 2
        );
    }
    index.push_str("</CABLIST></INDEX>");
    let mut outer: Vec<(String, Vec<u8>)> = vec![
        ("index.xml".into(), index.into_bytes()),
        (
            "package.cab".into(),
            std::fs::read(&package_cab).map_err(io(&package_cab))?,
        ),
    ];
    for (i, (_, p)) in cabs.iter().enumerate() {
        outer.push((
            format!("package{}.cab", i + 2),
            std::fs::read(p).map_err(io(p))?,
        ));
    }
    // The inner cabs are compressed already; the outer one stores them.
    write_cab(out, outer, cab::CompressionType::None)?;
    Ok(s)
}
