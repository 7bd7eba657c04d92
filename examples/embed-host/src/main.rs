//! A host program that embeds patchsync: open an engine on a config, sync with a progress
//! subscriber, then query the store — no CLI involved.
//!
//! `cargo run -p embed-host -- path/to/patchsync.toml`; without an argument it makes a small
//! demo site (a generated catalog) in a temporary folder.

use std::path::PathBuf;

use patchsync::generate::{GenerateOptions, generate};
use patchsync::{Config, Engine, SyncEvent, SyncOptions, UpdateQuery};

fn demo_site() -> patchsync::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("patchsync-embed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| patchsync::Error::Io {
        path: dir.clone(),
        source: e,
    })?;
    generate(
        &dir.join("catalog.cab"),
        &GenerateOptions {
            updates: 2000,
            seed: 42,
            categories_from: None,
        },
    )?;
    let config = dir.join("patchsync.toml");
    std::fs::write(
        &config,
        "[site]\nname = \"EMBED\"\nstore = \"store.db\"\n\n[[source]]\nname = \"catalog\"\nkind = \"wsus-export\"\npath = \"catalog.cab\"\n\n[filter]\nproducts = [\"Windows 11\"]\nclassifications = [\"Security Updates\"]\nlanguages = [\"en\"]\n",
    )
    .map_err(|e| patchsync::Error::Io { path: config.clone(), source: e })?;
    Ok(config)
}

fn main() -> patchsync::Result<()> {
    let demo = std::env::args().nth(1).is_none();
    let config_path = match std::env::args().nth(1) {
        Some(p) => PathBuf::from(p),
        None => demo_site()?,
    };
    let mut engine = Engine::open(Config::load(&config_path)?)?;

    // Subscribe to progress: any closure will do; here, one line per phase and a summary.
    let report = engine.sync(SyncOptions::default(), &mut |event| match event {
        SyncEvent::PhaseStarted {
            source,
            phase,
            total,
        } => println!("[{source}] {} ({total} items)", phase.label()),
        SyncEvent::Warning { message, .. } => println!("warning: {message}"),
        SyncEvent::Finished { report } => println!(
            "catalog version {}: {} new, {} revised",
            report.catalog_version, report.new, report.revised
        ),
        _ => {}
    })?;
    assert!(report.catalog_version >= 1);

    // Query the store.
    let critical = engine.updates(&UpdateQuery {
        state: Some("active".into()),
        ..Default::default()
    })?;
    println!("{} active updates; the five newest:", critical.len());
    for u in critical.iter().take(5) {
        println!(
            "  KB{:<8} {:<9} {}",
            u.kb.clone().unwrap_or_default(),
            u.severity.clone().unwrap_or_default(),
            u.title.clone().unwrap_or_default()
        );
    }
    let status = engine.status()?;
    println!(
        "site {} is {}, content digest {}",
        status.site, status.state, status.content_digest
    );
    if demo {
        drop(engine);
        let _ = std::fs::remove_dir_all(config_path.parent().expect("demo folder"));
    }
    Ok(())
}
