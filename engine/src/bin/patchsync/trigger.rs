//! `patchsync trigger`: asks a running service to sync, and with `--wait` follows its
//! progress stream until the sync ends.

use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::{Context, Result, bail};
use patchsync::Config;

pub fn trigger(
    config: &Path,
    full: bool,
    wait: bool,
    url: Option<String>,
    token: Option<String>,
) -> Result<()> {
    let cfg = Config::load(config)?;
    let scheme = if cfg.service.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let base = url
        .unwrap_or_else(|| format!("{scheme}://{}", cfg.service.listen))
        .trim_end_matches('/')
        .to_owned();
    let token = token
        .or(cfg.service.token.clone())
        .or_else(|| std::env::var(&cfg.service.token_env).ok())
        .context(
            "no token: pass --token, or set [service] token or the PATCHSYNC_TOKEN variable",
        )?;
    // The service's own certificate (self-signed, or from a private CA) is trusted.
    let cert = cfg.service.tls.as_ref().map(|(cert, _)| cert.as_path());
    let agent = patchsync::hierarchy::links::agent(cert, None)
        .map_err(|m| anyhow::anyhow!("[service] tls_cert: {m}"))?;
    // Subscribe first, so the end of a short sync is not missed.
    let stream = if wait {
        let resp = agent
            .get(&format!("{base}/api/v1/progress"))
            .call()
            .with_context(|| {
                format!("cannot reach the service at {base}; is `patchsync serve` running?")
            })?;
        Some(BufReader::new(resp.into_body().into_reader()))
    } else {
        None
    };
    let mut resp = agent
        .post(&format!("{base}/api/v1/sync"))
        .header("Authorization", &format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send(format!("{{\"full\": {full}}}"))
        .with_context(|| {
            format!("cannot reach the service at {base}; is `patchsync serve` running?")
        })?;
    let status = resp.status();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    if !status.is_success() {
        bail!(
            "the service refused ({status}): {}",
            body["error"].as_str().unwrap_or("no reason given")
        );
    }
    let state = body["state"].as_str().unwrap_or("started");
    out!(
        "{}",
        match state {
            "started" => "sync started",
            "queued" => "a sync is running; this one is queued to follow it",
            _ => "a sync is already queued; this request joined it",
        }
    );
    let Some(stream) = stream else {
        return Ok(());
    };
    // A queued request ends with the second "done" or "failed" after it.
    let mut ends_to_see = if state == "started" { 1 } else { 2 };
    for line in stream.lines() {
        let line = line.context("the progress stream broke off")?;
        let Some(data) = line.strip_prefix("data:") else {
            continue;
        };
        let m: serde_json::Value = serde_json::from_str(data.trim()).unwrap_or_default();
        let kind = m["kind"].as_str().unwrap_or("");
        if kind != "progress" {
            out!("[{}] {}", m["id"], m["text"].as_str().unwrap_or(""));
        }
        if kind == "done" || kind == "failed" {
            ends_to_see -= 1;
            if ends_to_see == 0 {
                if kind == "failed" {
                    bail!("{}", m["text"].as_str().unwrap_or("the sync failed"));
                }
                return Ok(());
            }
        }
    }
    bail!("the service closed the progress stream before the sync ended")
}
