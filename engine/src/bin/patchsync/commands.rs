//! What each subcommand does.

use std::path::Path;

use anyhow::{Context, Result, bail};
use patchsync::generate::{EvolveOptions, GenerateOptions, changes_path, evolve, generate};
use patchsync::model::{CategoryKind, UpdateId};
use patchsync::store::Store;
use patchsync::{Config, Engine, SyncOptions, UpdateQuery, status_of};

use crate::progress::Progress;
use crate::{Cli, Command, KindArg, StateArg, table};

fn json<T: serde::Serialize>(v: &T) -> Result<()> {
    out!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Opens the store read-only, so queries work while a sync writes.
fn reader(config: &Path) -> Result<(Config, Store)> {
    let cfg = Config::load(config)?;
    let store = Store::open_read_only(&cfg.store_path)?;
    Ok((cfg, store))
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Init { force } => init(&cli.config, force),
        Command::Sync {
            full,
            allow_mass_removal,
            json: as_json,
        } => sync(
            &cli.config,
            SyncOptions {
                full,
                allow_mass_removal,
            },
            as_json,
        ),
        Command::Plan {
            full,
            limit,
            json: as_json,
        } => plan(&cli.config, full, limit, as_json),
        Command::Explain { id, json: as_json } => {
            let id = UpdateId::parse(&id).map_err(anyhow::Error::msg)?;
            let engine = Engine::open_path(&cli.config)?;
            let x = engine.explain(id)?;
            if as_json {
                return json(&x);
            }
            print_explanation(&x);
            Ok(())
        }
        Command::Serve => crate::serve::serve(&cli.config),
        Command::Trigger {
            full,
            wait,
            url,
            token,
        } => crate::trigger::trigger(&cli.config, full, wait, url, token),
        Command::Plugin {
            command: crate::PluginCommand::Check { manifest, json },
        } => {
            let r = patchsync::plugin::check(&manifest)?;
            if json {
                out!(
                    "{}",
                    serde_json::to_string_pretty(&r).expect("report serializes")
                );
            } else {
                out!(
                    "{}: {} {} {} plugin, patchsync:plugin@{}, sha256 {}: loaded and initialised in {} ms: OK",
                    manifest.display(),
                    r.name,
                    r.version,
                    if r.native {
                        format!("native {}", r.kind)
                    } else {
                        r.kind.clone()
                    },
                    r.wit,
                    r.sha256,
                    r.load_ms
                );
            }
            Ok(())
        }
        Command::Rules {
            command: crate::RulesCommand::Check { file },
        } => {
            let set = patchsync::rules::load_file(&file)?;
            out!(
                "{}: rule set '{}', {} rule(s), default {:?}: OK",
                file.display(),
                set.name,
                set.rules.len(),
                set.default
            );
            for r in &set.rules {
                out!(
                    "  {} (line {}): {:?} when {}",
                    r.label(),
                    r.line,
                    r.action,
                    if r.conditions.is_empty() {
                        "always".to_owned()
                    } else {
                        r.conditions
                            .iter()
                            .map(|c| c.shown.clone())
                            .collect::<Vec<_>>()
                            .join(" and ")
                    }
                );
            }
            Ok(())
        }
        Command::Categories {
            kind,
            json: as_json,
        } => {
            let (_, store) = reader(&cli.config)?;
            let kind = kind.map(|k| match k {
                KindArg::Company => CategoryKind::Company,
                KindArg::ProductFamily => CategoryKind::ProductFamily,
                KindArg::Product => CategoryKind::Product,
                KindArg::Classification => CategoryKind::UpdateClassification,
            });
            let rows = store.categories(kind)?;
            if as_json {
                return json(&rows);
            }
            let out: Vec<Vec<String>> = rows
                .into_iter()
                .map(|r| vec![r.id, r.kind, r.title, r.parent.unwrap_or_default()])
                .collect();
            table::print(&["ID", "KIND", "TITLE", "PARENT"], &out);
            Ok(())
        }
        Command::Updates {
            kb,
            product,
            classification,
            state,
            leaves,
            json: as_json,
        } => {
            let (_, store) = reader(&cli.config)?;
            let q = UpdateQuery {
                kb,
                product,
                classification,
                state: Some(
                    match state {
                        StateArg::Active => "active",
                        StateArg::Expired => "expired",
                        StateArg::All => "all",
                    }
                    .into(),
                ),
                all_types: false,
                leaves,
            };
            let rows = store.updates(&q)?;
            if as_json {
                return json(&rows);
            }
            let out: Vec<Vec<String>> = rows
                .into_iter()
                .map(|r| {
                    vec![
                        r.id,
                        r.revision.to_string(),
                        r.kb.map(|k| format!("KB{k}")).unwrap_or_default(),
                        r.classification.unwrap_or_default(),
                        r.severity.unwrap_or_default(),
                        if r.pinned {
                            format!("{} (pinned)", r.state)
                        } else {
                            r.state
                        },
                        r.title.unwrap_or_default(),
                    ]
                })
                .collect();
            table::print(
                &[
                    "ID",
                    "REV",
                    "KB",
                    "CLASSIFICATION",
                    "SEVERITY",
                    "STATE",
                    "TITLE",
                ],
                &out,
            );
            Ok(())
        }
        Command::ImportUpdate {
            source,
            id,
            kb,
            json: as_json,
        } => {
            let target = match (id, kb) {
                (Some(id), None) => patchsync::sync::ImportTarget::Id(
                    UpdateId::parse(&id).map_err(anyhow::Error::msg)?,
                ),
                (None, Some(kb)) => patchsync::sync::ImportTarget::Kb(kb),
                _ => bail!("give exactly one of --id GUID or --kb NUMBER"),
            };
            let mut engine = Engine::open_path(&cli.config)?;
            let r = engine.import_update(&source, &target)?;
            if as_json {
                return json(&r);
            }
            for w in &r.warnings {
                eprintln!("warning: {w}");
            }
            for p in &r.pinned {
                out!(
                    "pinned {} (revision {}) {}",
                    p.id,
                    p.revision,
                    p.title.clone().unwrap_or_default()
                );
            }
            out!(
                "{} bundled update(s) and {} categor(ies) stored with it; catalog version {}",
                r.leaves,
                r.categories,
                r.catalog_version
            );
            Ok(())
        }
        Command::Export {
            format: crate::ExportFormat::Patchsync,
            out,
            since,
            sign,
            json: as_json,
        } => export_package(&cli.config, &out, since, sign.as_deref(), as_json),
        Command::Import {
            file,
            allow_mass_removal,
            json: as_json,
        } => import_package(&cli.config, &file, allow_mass_removal, as_json),
        Command::Keygen { out } => {
            let g = patchsync::package::SigningKey::generate(&out)?;
            out!(
                "Secret key: {} (keep it on the exporting site; export --sign {})",
                g.secret_key.display(),
                g.secret_key.display()
            );
            out!("Public key: {}", g.public_key.display());
            out!(
                "On each importing site, in the config:\n  [import]\n  trusted_keys = [\"{}\"]",
                g.public_text
            );
            Ok(())
        }
        Command::Export {
            format: crate::ExportFormat::Wsus,
            out,
            since,
            sign,
            json: as_json,
        } => {
            if since.is_some() || sign.is_some() {
                bail!(
                    "--since and --sign apply to patchsync packages; a WSUS export is always the whole active catalog, unsigned"
                );
            }
            let engine = Engine::open_path(&cli.config)?;
            let s = engine.export_wsus(&out)?;
            if as_json {
                return json(&s);
            }
            out!(
                "Wrote {}: {} update revisions, {} files with URLs{}",
                out.display(),
                s.records,
                s.files,
                if s.skipped_vendor_packages > 0 {
                    format!(
                        "; {} vendor (SDP) packages left out: WSUS takes those through a publishing tool",
                        s.skipped_vendor_packages
                    )
                } else {
                    String::new()
                }
            );
            Ok(())
        }
        Command::Unpin { id } => {
            let id = UpdateId::parse(&id).map_err(anyhow::Error::msg)?;
            let mut engine = Engine::open_path(&cli.config)?;
            if engine.unpin(id)? {
                out!("unpinned {id}; the next sync keeps or removes it as the filter says");
            } else {
                bail!("update {id} is not pinned (see `patchsync updates` for pinned ones)");
            }
            Ok(())
        }
        Command::Show {
            id,
            json: as_json,
            xml,
        } => {
            let (_, store) = reader(&cli.config)?;
            let id = UpdateId::parse(&id).map_err(anyhow::Error::msg)?;
            let u = store.show(id, xml)?;
            if xml && !as_json {
                out!("{}", u.raw_xml.unwrap_or_default());
                return Ok(());
            }
            if as_json {
                return json(&u);
            }
            print_show(&u);
            Ok(())
        }
        Command::Status {
            json: as_json,
            tree: true,
        } => {
            let cfg = Config::load(&cli.config)?;
            let store = Store::open_read_only(&cfg.store_path)?;
            let t = patchsync::hierarchy::site_tree(&store, &cfg)?;
            if as_json {
                return json(&t);
            }
            print_tree(&t, 0);
            Ok(())
        }
        Command::Status {
            json: as_json,
            tree: false,
        } => {
            let cfg = Config::load(&cli.config)?;
            if !cfg.store_path.exists() {
                bail!(
                    "site {} has no store yet at {}; run `patchsync sync`",
                    cfg.site_name,
                    cfg.store_path.display()
                );
            }
            let store = Store::open_read_only(&cfg.store_path)?;
            let s = status_of(&store, &cfg)?;
            if as_json {
                return json(&s);
            }
            let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
            out!("site:               {}", s.site);
            out!("state:              {}", s.state);
            out!("last sync started:  {}", opt(&s.last_sync_started));
            out!("last sync finished: {}", opt(&s.last_sync_finished));
            out!("last success:       {}", opt(&s.last_success));
            out!(
                "last error:         {}{}",
                s.last_error_code
                    .map(|c| format!("[{c}] "))
                    .unwrap_or_default(),
                opt(&s.last_error)
            );
            out!("catalog version:    {}", s.catalog_version);
            out!(
                "updates:            {} active, {} expired",
                s.updates_active,
                s.updates_expired
            );
            out!("categories:         {}", s.categories);
            out!("detectoids:         {}", s.detectoids);
            out!("content digest:     {}", s.content_digest);
            if let Some(i) = &s.imported {
                out!(
                    "imported from:      site {} up to its catalog version {} (next: export --since {})",
                    i.site_name,
                    i.version,
                    i.version
                );
            }
            out!("store:              {}", s.store.display());
            out!("log:                {}", s.log.display());
            Ok(())
        }
        Command::History {
            limit,
            json: as_json,
        } => {
            let (_, store) = reader(&cli.config)?;
            let rows = store.history(limit)?;
            if as_json {
                return json(&rows);
            }
            let n = |o: Option<u64>| o.map(|x| x.to_string()).unwrap_or_else(|| "-".into());
            let out: Vec<Vec<String>> = rows
                .into_iter()
                .map(|r| {
                    vec![
                        r.id.to_string(),
                        r.started,
                        r.status,
                        n(r.catalog_version),
                        n(r.new),
                        n(r.revised),
                        n(r.expired),
                        n(r.removed),
                        n(r.unchanged),
                        n(r.duration_ms),
                        r.error.unwrap_or_default(),
                    ]
                })
                .collect();
            table::print(
                &[
                    "RUN",
                    "STARTED",
                    "STATUS",
                    "VERSION",
                    "NEW",
                    "REVISED",
                    "EXPIRED",
                    "REMOVED",
                    "UNCHANGED",
                    "MS",
                    "ERROR",
                ],
                &out,
            );
            Ok(())
        }
        Command::GenerateCatalog {
            updates,
            seed,
            out,
            evolve_from,
            change_percent,
            categories_from,
            offline,
        } => {
            match evolve_from {
                Some(from) => {
                    let m = evolve(
                        &from,
                        &out,
                        &EvolveOptions {
                            seed,
                            change_percent,
                        },
                    )?;
                    eprintln!(
                        "Wrote {} ({} records): {} new, {} revised, {} expired, {} removed; changes in {}",
                        out.display(),
                        m.records_after,
                        m.new.len(),
                        m.revised.len(),
                        m.expired.len(),
                        m.removed.len(),
                        changes_path(&out).display()
                    );
                }
                None => {
                    let opts = GenerateOptions {
                        updates,
                        seed,
                        categories_from,
                    };
                    let s = if offline {
                        patchsync::generate::generate_offline(&out, &opts)?
                    } else {
                        generate(&out, &opts)?
                    };
                    eprintln!(
                        "Wrote {}: {} records ({} categories, {} detectoids, {} bundles, {} leaves, {} standalone)",
                        out.display(),
                        s.records,
                        s.categories,
                        s.detectoids,
                        s.bundles,
                        s.leaves,
                        s.standalone
                    );
                }
            }
            Ok(())
        }
        Command::Demo { dir, updates } => demo(&dir, updates),
    }
}

fn init(path: &Path, force: bool) -> Result<()> {
    if path.exists() && !force {
        bail!(
            "{} already exists; pass --force to overwrite it",
            path.display()
        );
    }
    std::fs::write(path, patchsync::config::STARTER_CONFIG)
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!(
        "Wrote {}; edit [[source]] and [filter], then run `patchsync sync`",
        path.display()
    );
    Ok(())
}

fn export_package(
    config: &Path,
    out: &Path,
    since: Option<u64>,
    sign: Option<&Path>,
    as_json: bool,
) -> Result<()> {
    let engine = Engine::open_path(config)?;
    let key = sign.map(patchsync::package::SigningKey::load).transpose()?;
    let m = engine.export_package(
        out,
        &patchsync::package::ExportOptions {
            since,
            sign: key.as_ref(),
        },
    )?;
    if as_json {
        return json(&m);
    }
    let size: u64 = m.parts.iter().map(|p| p.size).sum();
    out!(
        "Wrote {}: {} package of site {}, catalog versions {}..{}: {} update records ({} expired, {} categories), {} removed, {} file URLs; {:.1} MB, {}",
        out.display(),
        match m.kind {
            patchsync::package::PackageKind::Full => "full",
            patchsync::package::PackageKind::Incremental => "incremental",
        },
        m.site_name,
        m.from_version,
        m.to_version,
        m.counts.updates,
        m.counts.expired,
        m.counts.categories,
        m.counts.removed,
        m.counts.file_urls,
        size as f64 / 1e6,
        match &key {
            Some(k) => format!("signed by {}", k.public_text()),
            None => "unsigned".to_owned(),
        }
    );
    Ok(())
}

fn import_package(
    config: &Path,
    file: &Path,
    allow_mass_removal: bool,
    as_json: bool,
) -> Result<()> {
    let mut engine = Engine::open(Config::load(config)?)?;
    let mut progress = Progress::new(as_json);
    let options = SyncOptions {
        allow_mass_removal,
        ..Default::default()
    };
    let r = engine.import_package(file, options, &mut |e| progress.event(e))?;
    if as_json {
        return json(&r);
    }
    if r.already_imported {
        out!(
            "{}: this site already has catalog version {} of site {}; nothing changed",
            file.display(),
            r.to_version,
            r.site_name
        );
    } else if let Some(report) = &r.report {
        out!(
            "Imported {}: site {} catalog versions {}..{}; this site is at catalog version {}",
            file.display(),
            r.site_name,
            r.from_version,
            r.to_version,
            report.catalog_version
        );
    }
    Ok(())
}

fn plan(config: &Path, full: bool, limit: usize, as_json: bool) -> Result<()> {
    let mut engine = Engine::open(Config::load(config)?)?;
    let p = engine.plan(
        SyncOptions {
            full,
            ..Default::default()
        },
        &mut |_| {},
    )?;
    if as_json {
        return json(&p);
    }
    let r = &p.report;
    out!(
        "A sync now would: {} new, {} revised, {} expired, {} removed ({} unchanged, {} left out by the filter). Nothing was changed.",
        r.new,
        r.revised,
        r.expired,
        r.removed,
        r.unchanged,
        r.excluded
    );
    for w in r.sources.iter().flat_map(|s| &s.warnings) {
        out!("warning: {w}");
    }
    for kind in ["new", "revised", "expired", "removed"] {
        let list: Vec<_> = p.changes.iter().filter(|c| c.change == kind).collect();
        if list.is_empty() {
            continue;
        }
        out!("{kind} ({}):", list.len());
        for c in list.iter().take(limit) {
            out!(
                "  {} {}  [{}{}]",
                c.id,
                c.title.clone().unwrap_or_default(),
                c.decided_by.clone().unwrap_or_default(),
                c.reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            );
        }
        if list.len() > limit {
            out!(
                "  ... and {} more (--limit, or --json for all)",
                list.len() - limit
            );
        }
    }
    Ok(())
}

fn print_explanation(x: &patchsync::explain::Explanation) {
    out!("{} {}", x.id, x.title.clone().unwrap_or_default());
    out!(
        "  source: {}; in the store: {}{}",
        x.source.clone().unwrap_or_default(),
        if x.in_store { "yes" } else { "no" },
        x.state
            .as_ref()
            .map(|s| format!(" ({s})"))
            .unwrap_or_default()
    );
    if let Some(r) = &x.recorded {
        out!(
            "  last sync: {} by {}: {}",
            r.verdict,
            r.decided_by.clone().unwrap_or_default(),
            r.reason.clone().unwrap_or_default()
        );
    }
    for s in &x.stages {
        out!(
            "  stage {}: {}{}",
            s.stage,
            s.verdict,
            s.reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
        for t in &s.rules {
            let label = match &t.name {
                Some(n) => format!("rule {} '{n}'", t.index),
                None => format!("rule {}", t.index),
            };
            match &t.failed {
                None => out!("    {label} (line {}): matched", t.line),
                Some(c) => out!("    {label} (line {}): no, {c} does not hold", t.line),
            }
        }
    }
    if let Some(v) = &x.verdict {
        out!("  verdict now: {v}");
    }
    if let Some(n) = &x.note {
        out!("  note: {n}");
    }
}

fn sync(config: &Path, options: SyncOptions, as_json: bool) -> Result<()> {
    let cfg = Config::load(config)?;
    let mut engine = Engine::open(cfg.clone())?;
    let mut progress = Progress::new(as_json);
    let result = engine.sync(options, &mut |e| progress.event(e));
    drop(engine);
    hierarchy_after_sync(&cfg, result.as_ref().is_ok_and(|r| r.changed()));
    match result {
        Ok(report) => {
            if as_json {
                json(&report)?;
            }
            Ok(())
        }
        Err(e) => {
            let engine = Engine::open(cfg)?;
            // The report of a failed sync still says what each source did.
            if as_json && let Ok(Some(report)) = engine.store().last_report() {
                json(&report)?;
            }
            Err(e.into())
        }
    }
}

/// A sync from the command line plays its part in the hierarchy as the service does: a
/// changed catalog is announced to the children, and a child reports to its parent.
fn hierarchy_after_sync(cfg: &Config, changed: bool) {
    use patchsync::hierarchy::links;
    if changed && cfg.children.iter().any(|c| c.url.is_some()) {
        // One try each: a child that is down catches up when it starts.
        let outcomes = links::notify_children(cfg, 1);
        for (site, r) in &outcomes {
            if let Err(m) = r {
                eprintln!(
                    "child site '{site}' was not notified: {m}; it catches up at its next start or schedule"
                );
            }
        }
        if let Err(e) = links::record_notifications(cfg, outcomes) {
            eprintln!("{e}");
        }
    }
    if let Err(m) = links::report_to_parent(cfg, 1) {
        eprintln!("the status report to the parent failed: {m}");
    }
}

fn print_show(u: &patchsync::store::ShowUpdate) {
    let r = &u.row;
    out!("{}", r.title.clone().unwrap_or_default());
    out!(
        "  id:              {} (revision {}, seen revisions {:?})",
        r.id,
        r.revision,
        u.revisions_seen
    );
    out!("  type:            {}", r.update_type);
    out!(
        "  state:           {} ({}){}",
        r.state,
        u.publication_state,
        if r.pinned {
            ", pinned: kept until `patchsync unpin`"
        } else {
            ""
        }
    );
    out!(
        "  created:         {}",
        r.creation_date.clone().unwrap_or_default()
    );
    out!(
        "  classification:  {}",
        r.classification.clone().unwrap_or_default()
    );
    out!("  products:        {}", r.products.join(", "));
    out!(
        "  severity:        {}",
        r.severity.clone().unwrap_or_default()
    );
    out!("  KB:              {}", u.kb_articles.join(", "));
    out!("  bulletins:       {}", u.security_bulletins.join(", "));
    out!("  CVEs:            {}", u.cves.join(", "));
    out!("  source:          {}", u.source);
    out!(
        "  selected by:     {} ({})",
        r.selected_by,
        u.reason.clone().unwrap_or_default()
    );
    out!(
        "  catalog version: first {}, changed {}",
        u.first_version,
        u.changed_version
    );
    for rel in &u.relations {
        out!(
            "  {:<16} {} {}",
            format!("{}:", rel.kind),
            rel.id,
            rel.title.clone().unwrap_or_default()
        );
    }
    for b in &u.bundled_by {
        out!("  bundled by:      {b}");
    }
    for f in &u.files {
        out!(
            "  file:            {} ({} bytes, sha1 {}) {}",
            f.name,
            f.size.unwrap_or(0),
            f.digest.clone().unwrap_or_default(),
            f.url.clone().unwrap_or_default()
        );
    }
    for l in &u.localized {
        out!("  [{}] {}", l.language, l.title);
    }
}

fn demo(dir: &Path, updates: usize) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let catalog = dir.join("catalog.cab");
    let next = dir.join("catalog-next.cab");
    let config_path = dir.join("patchsync.toml");
    let store = dir.join("data/patchsync.db");
    if store.exists() {
        std::fs::remove_file(&store).ok();
        std::fs::remove_file(dir.join("data/patchsync.db-wal")).ok();
        std::fs::remove_file(dir.join("data/patchsync.db-shm")).ok();
    }
    eprintln!(
        "1. Generating a catalog of {updates} updates in {}",
        catalog.display()
    );
    generate(
        &catalog,
        &GenerateOptions {
            updates,
            seed: 1,
            categories_from: None,
        },
    )?;
    std::fs::write(
        &config_path,
        "[site]\nname = \"DEMO\"\nstore = \"data/patchsync.db\"\n\n[[source]]\nname = \"demo-catalog\"\nkind = \"wsus-export\"\npath = \"catalog.cab\"\n\n[filter]\nproducts = [\"Windows\", \"Office\"]\nclassifications = [\"Security Updates\", \"Critical Updates\", \"Updates\"]\nlanguages = [\"en\", \"de\"]\n",
    )?;
    eprintln!("2. First sync (products: Windows and Office families; security, critical, updates)");
    sync(&config_path, SyncOptions::default(), false)?;
    eprintln!("3. Evolving the catalog by 1% (\"next month\")");
    let m = evolve(
        &catalog,
        &next,
        &EvolveOptions {
            seed: 2,
            change_percent: 1.0,
        },
    )?;
    std::fs::rename(&next, &catalog)?;
    eprintln!(
        "   {} new, {} revised, {} expired, {} removed records",
        m.new.len(),
        m.revised.len(),
        m.expired.len(),
        m.removed.len()
    );
    eprintln!("4. Delta sync");
    sync(&config_path, SyncOptions::default(), false)?;
    eprintln!("5. Unchanged re-sync");
    sync(&config_path, SyncOptions::default(), false)?;
    eprintln!(
        "6. Status (patchsync --config {} status)",
        config_path.display()
    );
    let cfg = Config::load(&config_path)?;
    let s = status_of(&Store::open_read_only(&cfg.store_path)?, &cfg)?;
    json(&s)
}

/// One line per site, children indented under their parent.
fn print_tree(v: &patchsync::hierarchy::SiteView, depth: usize) {
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    let link = v
        .link
        .as_ref()
        .map(|l| {
            format!(
                "  link {}{}",
                l.health,
                l.reason
                    .as_ref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            )
        })
        .unwrap_or_default();
    out!(
        "{}{}  {} {}  version {}{}  last success {}  digest {}{}",
        "  ".repeat(depth),
        v.site,
        v.state,
        opt(&v.state_time),
        v.catalog_version,
        v.parent_version
            .map(|p| format!(" (parent's {p})"))
            .unwrap_or_default(),
        opt(&v.last_success),
        if v.content_digest.is_empty() {
            "-"
        } else {
            &v.content_digest
        },
        link
    );
    if let Some(e) = &v.last_error {
        out!("{}  last error: {e}", "  ".repeat(depth));
    }
    if let Some(u) = &v.upstream {
        out!("{}  upstream: {u}", "  ".repeat(depth));
    }
    for c in &v.children {
        print_tree(c, depth + 1);
    }
}
