//! `patchsync serve`: the site as a long-running service: syncs on schedule and on request
//! (one at a time; requests during a sync coalesce into one more), retries failures, stops
//! a sync that runs too long, and serves the HTTP API, metrics and a status page. SIGTERM /
//! Ctrl-C stops it cleanly: a running sync is cancelled and its source rolled back.

mod alerts;
mod api;
mod hierarchy;
mod messages;
mod page;
mod tls;
pub mod worker;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use patchsync::{Config, Engine};

use worker::{ServiceState, Shared};

pub fn serve(config_path: &Path) -> Result<()> {
    let config = Config::load(config_path)?;
    // The store exists (and is migrated) before the first request reads it.
    drop(Engine::open(config.clone())?);
    let token = config.service.token.clone().or_else(|| {
        std::env::var(&config.service.token_env)
            .ok()
            .filter(|t| !t.is_empty())
    });
    let listen = config.service.listen.clone();
    let acceptor = match &config.service.tls {
        Some((cert, key)) => Some(tls::acceptor(cert, key)?),
        None => None,
    };
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen).await.with_context(|| {
            format!(
                "cannot listen on {listen} (from [service] listen in {}): another service may use \
                 that port; stop it or choose another address",
                config_path.display()
            )
        })?;
        let (events, _) = tokio::sync::broadcast::channel(1024);
        let (tx, rx) = std::sync::mpsc::channel();
        let tree = patchsync::hierarchy::SiteTree::load(&patchsync::hierarchy::tree_path(
            &config.store_path,
        ))?;
        let shared = Arc::new(Shared {
            upstream: patchsync::hierarchy::UpstreamServer::new(config.clone()),
            tree: std::sync::Mutex::new(tree),
            config,
            token,
            state: std::sync::Mutex::new(ServiceState::default()),
            events,
            requests: std::sync::Mutex::new(tx),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let (shared, stop) = (shared.clone(), stop.clone());
            std::thread::Builder::new()
                .name("patchsync-sync".into())
                .spawn(move || worker::run(shared, rx, stop))?
        };
        eprintln!(
            "patchsync serve: site {} on {scheme}://{listen}/ (API under /api/v1){}",
            shared.config.site_name,
            match &shared.config.service.schedule {
                Some(s) => format!(", schedule \"{}\" ({})", s.text, s.tz),
                None => ", no schedule (syncs on request)".into(),
            }
        );
        // A child catches up with its parent when it starts (it may have missed a
        // notification while it was down).
        if shared.config.upstream().is_some() {
            let _ = api::request_sync(&shared, false);
        }
        let app = api::router(shared.clone());
        let shutdown = {
            let (shared, stop) = (shared.clone(), stop.clone());
            async move {
                wait_for_signal().await;
                eprintln!(
                    "patchsync serve: stopping (a running sync is cancelled and rolled back)"
                );
                stop.store(true, Ordering::Relaxed);
                if let Ok(mut s) = shared.state.lock() {
                    s.stopping = true;
                    if let Some(c) = &s.cancel {
                        c.store(true, Ordering::Relaxed);
                    }
                }
            }
        };
        match acceptor {
            Some(acceptor) => {
                let tls = tls::TlsListener {
                    tcp: listener,
                    acceptor,
                };
                axum::serve(tls, app)
                    .with_graceful_shutdown(shutdown)
                    .await?;
            }
            None => {
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await?
            }
        }
        // Wait for the worker to finish rolling back.
        tokio::task::spawn_blocking(move || worker.join())
            .await?
            .map_err(|_| anyhow::anyhow!("the sync thread panicked"))?;
        eprintln!("patchsync serve: stopped");
        anyhow::Ok(())
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
