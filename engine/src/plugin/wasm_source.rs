//! A WebAssembly catalog source (`kind = "plugin"` in `[[source]]`): the engine's
//! [`CatalogSource`] calls map onto the `source` interface; fetches go in pages; what the
//! plugin returns is update XML, parsed by the engine's own parser (so the store keeps it
//! losslessly, like any other source's metadata).

use std::collections::HashSet;
use std::path::PathBuf;

use wasmtime::Store;

use super::bindings::source_world::SourcePlugin;
use super::bindings::types;
use super::manifest::PluginUse;
use super::runtime::{self, HostState, HttpPolicy};
use crate::error::{Error, Result};
use crate::model::{Identity, UpdateId};
use crate::source::{CatalogSource, Fetched, Listing};

/// Identities asked for per `fetch` call.
const PAGE: usize = 500;

struct Live {
    store: Store<HostState>,
    plugin: SourcePlugin,
}

/// A source plugin, started at its first call.
pub(crate) struct WasmSource {
    name: String,
    plugin: PluginUse,
    cache: Option<PathBuf>,
    cursor_in: Option<String>,
    live: Option<Live>,
    /// Log lines waiting for the next fetch to hand them to the sync log.
    pending_log: Vec<(&'static str, String)>,
    /// What the last call wrote to stderr (a panic message, when it trapped).
    stderr: Vec<String>,
}

impl WasmSource {
    pub(crate) fn new(name: &str, plugin: PluginUse, cache: Option<PathBuf>) -> WasmSource {
        WasmSource {
            name: name.to_owned(),
            plugin,
            cache,
            cursor_in: None,
            live: None,
            pending_log: Vec::new(),
            stderr: Vec::new(),
        }
    }

    fn err(&self, call: &str, message: impl Into<String>) -> Error {
        Error::source(
            &self.name,
            format!("plugin {} ({call})", self.plugin.manifest.name),
            message,
        )
    }

    fn collect(&mut self) {
        if let Some(live) = self.live.as_mut() {
            let (lines, stderr) = live.store.data_mut().drain();
            self.stderr = stderr;
            if let Some((done, total)) = live.store.data_mut().progress.take() {
                self.pending_log.push((
                    "info",
                    if total > 0 {
                        format!("progress: {done} of {total}")
                    } else {
                        format!("progress: {done}")
                    },
                ));
            }
            for (level, m) in lines {
                self.pending_log.push((level.word(), m));
            }
        }
    }

    pub(crate) fn start(&mut self) -> Result<()> {
        if self.live.is_some() {
            return Ok(());
        }
        let m = &self.plugin.manifest;
        let pre = super::source_pre(&self.plugin, self.cache.as_deref())?;
        let http = HttpPolicy {
            allowed_hosts: m.allowed_hosts.clone(),
            max_bytes: m.limits.response_bytes,
            timeout: m.limits.http_timeout,
        };
        let mut store = runtime::new_store(m, Some(http))?;
        runtime::arm(&mut store, m.limits.call_time);
        let plugin = pre
            .instantiate(&mut store)
            .map_err(|e| self.err("instantiate", runtime::describe(m, &e)))?;
        runtime::arm(&mut store, m.limits.call_time);
        let r = plugin.patchsync_plugin_source().call_init(
            &mut store,
            &self.plugin.config_json,
            self.cursor_in.as_deref(),
        );
        self.live = Some(Live { store, plugin });
        self.collect();
        match r {
            Err(e) => {
                self.live = None;
                Err(self.err("init", runtime::describe(&self.plugin.manifest, &e)))
            }
            Ok(Err(message)) => {
                self.live = None;
                Err(self.err(
                    "init",
                    format!(
                        "rejected its config: {message}; fix [config] in {} or the [[source]] entry's config",
                        self.plugin.manifest.file.display()
                    ),
                ))
            }
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Runs one call under the deadline; a trap drops the instance.
    fn call<T>(
        &mut self,
        what: &str,
        f: impl FnOnce(&mut Live) -> wasmtime::Result<std::result::Result<T, String>>,
    ) -> Result<T> {
        self.start()?;
        let limit = self.plugin.manifest.limits.call_time;
        let live = self.live.as_mut().expect("started");
        runtime::arm(&mut live.store, limit);
        let r = f(live);
        self.collect();
        match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(message)) => Err(self.err(what, message)),
            Err(e) => {
                self.live = None;
                let d = runtime::describe(&self.plugin.manifest, &e);
                Err(self.err(what, runtime::with_stderr(d, &self.stderr)))
            }
        }
    }

    fn flush_log(&mut self, sink: &mut dyn FnMut(Fetched) -> Result<()>) -> Result<()> {
        for (level, message) in std::mem::take(&mut self.pending_log) {
            sink(Fetched::Log { level, message })?;
        }
        Ok(())
    }

    fn parse_id(&self, what: &str, s: &str) -> Result<UpdateId> {
        UpdateId::parse(s).map_err(|_| {
            self.err(
                what,
                format!("'{s}' is not an update GUID; a source lists GUIDs"),
            )
        })
    }
}

impl CatalogSource for WasmSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn resume(&mut self, cursor: Option<&str>) {
        self.cursor_in = cursor.map(str::to_owned);
    }

    fn fingerprint(&mut self) -> Result<Option<String>> {
        self.call("fingerprint", |l| {
            l.plugin
                .patchsync_plugin_source()
                .call_fingerprint(&mut l.store)
        })
        // Tied to the plugin and its config, so a new plugin or config lists again.
        .map(|f| f.map(|f| format!("{}:{f}", self.plugin.config_hash())))
    }

    fn list(&mut self) -> Result<Listing> {
        let l = self.call("list", |l| {
            l.plugin.patchsync_plugin_source().call_list(&mut l.store)
        })?;
        let mut entries = Vec::with_capacity(l.entries.len());
        for e in &l.entries {
            entries.push(Identity {
                id: self.parse_id("list", &e.id)?,
                revision: e.revision,
            });
        }
        let ids = |v: &[String]| -> Result<Vec<UpdateId>> {
            v.iter().map(|s| self.parse_id("list", s)).collect()
        };
        Ok(Listing {
            expired: ids(&l.expired)?,
            removed: ids(&l.removed)?,
            entries,
            complete: l.complete,
        })
    }

    fn fetch(
        &mut self,
        wanted: &HashSet<Identity>,
        sink: &mut dyn FnMut(Fetched) -> Result<()>,
    ) -> Result<()> {
        self.flush_log(sink)?;
        let mut asked: Vec<Identity> = wanted.iter().copied().collect();
        asked.sort_by_key(|i| (i.id, i.revision));
        let origin = format!("plugin {}", self.plugin.manifest.name);
        for page in asked.chunks(PAGE) {
            let ids: Vec<types::Identity> = page
                .iter()
                .map(|i| types::Identity {
                    id: i.id.to_string(),
                    revision: i.revision,
                })
                .collect();
            let docs = self.call("fetch", |l| {
                l.plugin
                    .patchsync_plugin_source()
                    .call_fetch(&mut l.store, &ids)
            })?;
            self.flush_log(sink)?;
            for (k, doc) in docs.into_iter().enumerate() {
                let update = crate::xml::parse_update(&doc.xml).map_err(|e| {
                    self.err(
                        "fetch",
                        format!("document {} of a page is not valid update XML: {e}", k + 1),
                    )
                })?;
                if !wanted.contains(&update.identity) {
                    return Err(self.err(
                        "fetch",
                        format!(
                            "returned update {} revision {}, which was not asked for (or not \
                             with that revision); fetch returns the identities `list` gave",
                            update.identity.id, update.identity.revision
                        ),
                    ));
                }
                sink(Fetched::Update {
                    update: Box::new(update),
                    origin: origin.clone(),
                })?;
                for (digest, url) in doc.file_urls {
                    sink(Fetched::FileUrl { digest, url })?;
                }
            }
        }
        Ok(())
    }

    fn cursor(&mut self) -> Option<String> {
        let c = self
            .call("cursor", |l| {
                l.plugin
                    .patchsync_plugin_source()
                    .call_cursor(&mut l.store)
                    .map(Ok)
            })
            .ok()
            .flatten();
        self.live = None;
        c
    }
}
