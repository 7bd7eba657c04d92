//! The WebAssembly runtime plugins run in: one wasmtime `Engine` for the process, an epoch
//! ticker for per-call deadlines, a disk cache of compiled components, and the state each
//! plugin instance's `Store` carries (WASI granted nothing, a memory cap, the log lines and
//! stdout/stderr the plugin wrote, the HTTP policy of sources).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, ResourceTable};
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::types::Level;
use super::manifest::{Limits, Manifest, hex};
use crate::error::{Error, Result};

/// How often the epoch advances: the resolution of call deadlines.
const TICK: Duration = Duration::from_millis(10);
/// What a plugin may print to stdout and stderr in one instance's life.
const OUTPUT_CAP: usize = 1 << 20;

/// The process's wasmtime engine, with epoch interruption on and a thread that ticks it.
pub(crate) fn engine() -> Result<&'static Engine> {
    static ENGINE: OnceLock<std::result::Result<Engine, String>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let mut config = wasmtime::Config::new();
            config.wasm_component_model(true);
            config.epoch_interruption(true);
            let engine = Engine::new(&config).map_err(|e| format!("{e:#}"))?;
            let ticker = engine.weak();
            std::thread::Builder::new()
                .name("patchsync-plugin-epoch".into())
                .spawn(move || {
                    while let Some(e) = ticker.upgrade() {
                        e.increment_epoch();
                        drop(e);
                        std::thread::sleep(TICK);
                    }
                })
                .map_err(|e| e.to_string())?;
            Ok(engine)
        })
        .as_ref()
        .map_err(|e| {
            Error::plugin(
                "*",
                "start",
                format!("cannot start the WebAssembly runtime: {e}"),
            )
        })
}

/// Compiles `wasm` (already checked against the manifest's digest), or loads the machine code
/// a previous run cached in `cache_dir` under the wasm's digest and this runtime's
/// compatibility hash (which covers the wasmtime version and its settings).
pub(crate) fn compile(m: &Manifest, wasm: &[u8], cache_dir: Option<&Path>) -> Result<Component> {
    let engine = engine()?;
    let fail = |e: wasmtime::Error| {
        Error::plugin(
            &m.name,
            "load",
            format!(
                "{} is not a WebAssembly component this patchsync can run: {e:#}; build it with \
                 `cargo build --target wasm32-wasip2`",
                m.code_path().display()
            ),
        )
    };
    let Some(dir) = cache_dir else {
        return Component::new(engine, wasm).map_err(fail);
    };
    let path = cache_path(dir, engine, wasm);
    if let Ok(bytes) = std::fs::read(&path)
        && let Ok(c) = deserialize(engine, &bytes)
    {
        return Ok(c);
    }
    let compiled = engine.precompile_component(wasm).map_err(fail)?;
    // The cache is an optimisation: a read-only or full disk only costs the next compile.
    if std::fs::create_dir_all(dir).is_ok() {
        let tmp = path.with_extension("tmp");
        if std::fs::write(&tmp, &compiled).is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
    }
    deserialize(engine, &compiled).map_err(fail)
}

/// Where the compiled form of `wasm` is cached.
pub(crate) fn cache_path(dir: &Path, engine: &Engine, wasm: &[u8]) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    let digest = hex(&Sha256::digest(wasm));
    dir.join(format!("{}-{:016x}.cwasm", &digest[..32], h.finish()))
}

/// Loads machine code this engine produced.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: wasmtime runs whatever machine code it is given. These bytes are either the
    // output of `precompile_component` just above, or a file in the site's own plugin cache
    // named by the digest of the wasm it was compiled from and by this engine's compatibility
    // hash; wasmtime checks the header (version, settings) again before accepting it. The
    // cache directory belongs to the site, like the store: whoever can write it can already
    // change the site's data.
    unsafe { Component::deserialize(engine, bytes) }
}

/// What a plugin may fetch over HTTP.
#[derive(Debug, Clone)]
pub(crate) struct HttpPolicy {
    pub allowed_hosts: Vec<String>,
    pub max_bytes: usize,
    pub timeout: Duration,
}

/// The state each plugin instance's store holds.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limits: StoreLimits,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    /// How much of stdout / stderr was already handed to the log.
    seen: (usize, usize),
    /// Lines logged since the last drain.
    pub messages: Vec<(Level, String)>,
    pub http: Option<HttpPolicy>,
    pub progress: Option<(u64, u64)>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl HostState {
    /// No files, no network, no environment, no arguments; stdout and stderr captured.
    pub(crate) fn new(limits: &Limits, http: Option<HttpPolicy>) -> HostState {
        let stdout = MemoryOutputPipe::new(OUTPUT_CAP);
        let stderr = MemoryOutputPipe::new(OUTPUT_CAP);
        let wasi = wasmtime_wasi::WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_blocking_current_thread(true)
            .build();
        HostState {
            wasi,
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.memory_bytes)
                .trap_on_grow_failure(true)
                .instances(8)
                .build(),
            stdout,
            stderr,
            seen: (0, 0),
            messages: Vec::new(),
            http,
            progress: None,
        }
    }

    /// Log lines and new stdout / stderr lines since the last call, and the new stderr
    /// lines alone (what a panicking plugin said before it trapped).
    pub(crate) fn drain(&mut self) -> (Vec<(Level, String)>, Vec<String>) {
        let mut out = std::mem::take(&mut self.messages);
        let mut stderr = Vec::new();
        for (pipe, seen, level) in [
            (&self.stdout, &mut self.seen.0, Level::Info),
            (&self.stderr, &mut self.seen.1, Level::Warn),
        ] {
            let all = pipe.contents();
            if all.len() > *seen {
                let text = String::from_utf8_lossy(&all[*seen..]);
                for l in text.lines().filter(|l| !l.trim().is_empty()) {
                    if level == Level::Warn {
                        stderr.push(l.to_owned());
                    }
                    out.push((level, l.to_owned()));
                }
                *seen = all.len();
            }
        }
        (out, stderr)
    }
}

/// A store for one instance, with the manifest's memory cap and no deadline yet.
pub(crate) fn new_store(m: &Manifest, http: Option<HttpPolicy>) -> Result<Store<HostState>> {
    let mut store = Store::new(engine()?, HostState::new(&m.limits, http));
    store.limiter(|s| &mut s.limits);
    store.epoch_deadline_trap();
    store.set_epoch_deadline(u64::MAX / 2);
    Ok(store)
}

/// Arms the deadline of one call.
pub(crate) fn arm(store: &mut Store<HostState>, limit: Duration) {
    let ticks = (limit.as_millis() / TICK.as_millis()).max(1) as u64 + 1;
    store.set_epoch_deadline(ticks);
}

/// Turns a failed call into words: the deadline, the memory cap, or the trap itself.
pub(crate) fn describe(m: &Manifest, e: &wasmtime::Error) -> String {
    let text = format!("{e:#}");
    if let Some(wasmtime::Trap::Interrupt) = e.downcast_ref::<wasmtime::Trap>() {
        return format!(
            "did not return within its limit of {:.1} s (limits.call_seconds in {}); \
             the call was stopped",
            m.limits.call_time.as_secs_f64(),
            m.file.display()
        );
    }
    if text.contains("forcing trap when growing memory")
        || text.contains("memory minimum size")
        || text.contains("exceeds memory limits")
    {
        return format!(
            "needed more memory than its limit of {} MB (limits.memory_mb in {}): {text}",
            m.limits.memory_bytes >> 20,
            m.file.display()
        );
    }
    let what = match e.downcast_ref::<wasmtime::Trap>() {
        Some(t) => t.to_string(),
        None => e.to_string().lines().next().unwrap_or_default().to_owned(),
    };
    format!("trapped ({what})")
}

/// A trap's description with what the plugin wrote to stderr just before (a panic message).
pub(crate) fn with_stderr(description: String, stderr: &[String]) -> String {
    let said: Vec<&str> = stderr
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.starts_with("note:") && !l.is_empty())
        .collect();
    if said.is_empty() {
        description
    } else {
        let tail = &said[said.len().saturating_sub(3)..];
        format!("{description}; it wrote: {}", tail.join(" / "))
    }
}
