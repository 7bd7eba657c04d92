//! Plugins: filter stages and catalog sources written by third parties.
//!
//! - **WebAssembly components** (`wasm32-wasip2`) implementing the `patchsync:plugin` WIT
//!   contract in `sdk/wit/`: sandboxed (no WASI capabilities, a memory cap, a deadline per
//!   call, HTTP only to the hosts the manifest allows). One wasmtime engine for the process;
//!   each component compiled once (and cached on disk beside the store), pre-instantiated
//!   once; one instance per plugin per sync, called with batches.
//! - **Native plugins**: shared libraries with a C ABI for the filter contract. Trusted code
//!   with the process's full rights.
//!
//! A manifest (TOML beside the code) says what a plugin is and may do: see [`Manifest`] and
//! `engine/docs/plugins.md`.

mod bindings;
mod http;
mod manifest;
mod native;
mod runtime;
mod wasm_filter;
mod wasm_source;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use wasmtime::component::{Component, Linker};

pub use manifest::{
    Code, Fields, Limits, Manifest, OnFailure, PluginKind, PluginUse, SUPPORTED_WIT,
};
pub(crate) use native::NativeFilter;
pub(crate) use wasm_filter::WasmFilter;
pub(crate) use wasm_source::WasmSource;

use crate::error::{Error, Result};
use bindings::filter_world::FilterPluginPre;
use bindings::source_world::SourcePluginPre;
use runtime::HostState;

/// The compiled, pre-instantiated plugins of this process, by code digest and cache.
enum Prepared {
    Filter(FilterPluginPre<HostState>),
    Source(SourcePluginPre<HostState>),
}

fn prepared() -> &'static Mutex<HashMap<String, Prepared>> {
    static P: OnceLock<Mutex<HashMap<String, Prepared>>> = OnceLock::new();
    P.get_or_init(Default::default)
}

/// Where compiled components are cached: `plugin-cache/` beside the store.
pub(crate) fn cache_dir(store_path: &std::path::Path) -> PathBuf {
    store_path
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join("plugin-cache")
}

/// The component of `u`, checked against its digest and its contract version.
fn component(u: &PluginUse, cache: Option<&std::path::Path>) -> Result<Component> {
    let m = &u.manifest;
    let wasm = m.read_code()?;
    let c = runtime::compile(m, &wasm, cache)?;
    let want = match m.kind {
        PluginKind::Filter => "patchsync:plugin/filter",
        PluginKind::Source => "patchsync:plugin/source",
    };
    let want_versioned = format!("{want}@{}", m.wit);
    let engine = runtime::engine()?;
    let exports: Vec<String> = c
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    if !exports.contains(&want_versioned) {
        let other = exports.iter().find(|e| e.starts_with(want));
        return Err(Error::plugin(
            &m.name,
            "load",
            match other {
                Some(o) => format!(
                    "the component exports {o}, but its manifest says wit = \"{}\"; this \
                     patchsync loads patchsync:plugin@{}: rebuild the plugin with a matching \
                     patchsync-sdk",
                    m.wit,
                    SUPPORTED_WIT.join(", @")
                ),
                None => format!(
                    "the component does not export {want_versioned} (it exports: {}); is it a \
                     {} plugin built with patchsync-sdk?",
                    if exports.is_empty() {
                        "nothing".to_owned()
                    } else {
                        exports.join(", ")
                    },
                    if m.kind == PluginKind::Filter {
                        "filter"
                    } else {
                        "source"
                    }
                ),
            },
        ));
    }
    Ok(c)
}

fn link_error(m: &Manifest, e: wasmtime::Error) -> Error {
    Error::plugin(
        &m.name,
        "load",
        format!(
            "cannot link the component: {e:#}; a plugin may import only what its world \
             allows (filters: log; sources: log, progress, http) and WASI without capabilities"
        ),
    )
}

/// A linker for `u`'s component with WASI (no capabilities) and the world's imports that
/// `add_world` adds, and the component, checked.
fn link(
    u: &PluginUse,
    cache: Option<&std::path::Path>,
    add_world: fn(&mut Linker<HostState>) -> wasmtime::Result<()>,
) -> Result<wasmtime::component::InstancePre<HostState>> {
    let c = component(u, cache)?;
    let mut linker: Linker<HostState> = Linker::new(runtime::engine()?);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
        .and_then(|()| add_world(&mut linker))
        .and_then(|()| linker.instantiate_pre(&c))
        .map_err(|e| link_error(&u.manifest, e))
}

/// The pre-instantiated plugin of `u` for one world, made at most once per process (and
/// cache directory): `get` finds it in the table, `make` builds it.
fn prepared_or<P: Clone>(
    key: String,
    get: impl Fn(&Prepared) -> Option<P>,
    make: impl FnOnce() -> Result<(P, Prepared)>,
) -> Result<P> {
    if let Some(p) = prepared()
        .lock()
        .expect("plugin table")
        .get(&key)
        .and_then(&get)
    {
        return Ok(p);
    }
    let (p, entry) = make()?;
    prepared().lock().expect("plugin table").insert(key, entry);
    Ok(p)
}

/// The pre-instantiated filter of `u` (compiled at most once per process).
pub(crate) fn filter_pre(
    u: &PluginUse,
    cache: Option<&std::path::Path>,
) -> Result<FilterPluginPre<HostState>> {
    let key = format!("filter:{}:{:?}", u.manifest.sha256, cache);
    prepared_or(
        key,
        |p| match p {
            Prepared::Filter(f) => Some(f.clone()),
            Prepared::Source(_) => None,
        },
        || {
            let pre = link(u, cache, |l| {
                bindings::filter_world::FilterPlugin::add_to_linker::<
                    HostState,
                    wasmtime::component::HasSelf<HostState>,
                >(l, |s| s)
            })
            .and_then(|p| FilterPluginPre::new(p).map_err(|e| link_error(&u.manifest, e)))?;
            Ok((pre.clone(), Prepared::Filter(pre)))
        },
    )
}

/// The pre-instantiated source of `u` (compiled at most once per process).
pub(crate) fn source_pre(
    u: &PluginUse,
    cache: Option<&std::path::Path>,
) -> Result<SourcePluginPre<HostState>> {
    let key = format!("source:{}:{:?}", u.manifest.sha256, cache);
    prepared_or(
        key,
        |p| match p {
            Prepared::Source(s) => Some(s.clone()),
            Prepared::Filter(_) => None,
        },
        || {
            let pre = link(u, cache, |l| {
                bindings::source_world::SourcePlugin::add_to_linker::<
                    HostState,
                    wasmtime::component::HasSelf<HostState>,
                >(l, |s| s)
            })
            .and_then(|p| SourcePluginPre::new(p).map_err(|e| link_error(&u.manifest, e)))?;
            Ok((pre.clone(), Prepared::Source(pre)))
        },
    )
}

/// The filter stage a `[[plugin]]` entry describes: a WebAssembly or a native plugin,
/// started (instantiated, `init` called with its config) for one sync.
pub fn start_filter(
    u: &PluginUse,
    cache: Option<&std::path::Path>,
) -> Result<Box<dyn crate::filter::UpdateFilter>> {
    Ok(match &u.manifest.code {
        Code::Wasm(_) => Box::new(WasmFilter::start(u.clone(), filter_pre(u, cache)?)?),
        Code::Native(_) => Box::new(NativeFilter::load(u.clone())?),
    })
}

/// What `patchsync plugin check` found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckReport {
    pub name: String,
    pub version: String,
    pub kind: String,
    pub wit: String,
    pub native: bool,
    pub sha256: String,
    /// Time to load (compile, for a WebAssembly component), instantiate and `init` it.
    pub load_ms: u64,
}

/// Loads a plugin as a sync would (digest, contract version, compile, instantiate, `init`
/// with the manifest's config), without a site: what a plugin author runs first.
pub fn check(manifest: &std::path::Path) -> Result<CheckReport> {
    let m = Manifest::load(manifest)?;
    let started = std::time::Instant::now();
    let u = PluginUse::new(m.clone(), None, Some(OnFailure::Abort));
    match m.kind {
        PluginKind::Filter => {
            start_filter(&u, None)?;
        }
        PluginKind::Source => {
            let mut s = WasmSource::new("check", u, None);
            s.start()?;
        }
    }
    Ok(CheckReport {
        name: m.name.clone(),
        version: m.version.clone(),
        kind: match m.kind {
            PluginKind::Filter => "filter".into(),
            PluginKind::Source => "source".into(),
        },
        wit: m.wit.clone(),
        native: matches!(m.code, Code::Native(_)),
        sha256: m.sha256.clone(),
        load_ms: started.elapsed().as_millis() as u64,
    })
}
