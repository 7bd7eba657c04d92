//! A WebAssembly filter as a stage of the filter chain: one instance for the sync, batches
//! of updates in, one verdict per update out. A trap poisons the instance: it is dropped and
//! a new one built from the pre-instantiated component; the failing update is found by
//! splitting the batch, so the error can name it.

use std::collections::HashMap;
use std::sync::Mutex;

use wasmtime::Store;

use super::bindings::filter_world::{FilterPlugin, FilterPluginPre};
use super::bindings::{category_table, types, update_record};
use super::manifest::{OnFailure, PluginUse};
use super::runtime::{self, HostState};
use crate::error::{Error, Result};
use crate::filter::{CategoryTree, Decision, StageMessage, UpdateFilter, UpdateView, Verdict};
use crate::model::UpdateId;

/// Splitting a failing batch stops at this depth (2^12 = 4,096 updates: one update).
const MAX_SPLIT: u32 = 12;

/// Why a call gave no verdicts.
enum Failed {
    /// The deadline stopped it.
    Timeout(String),
    /// It trapped or answered wrongly.
    Other(String),
}

struct Live {
    store: Store<HostState>,
    plugin: FilterPlugin,
}

struct Inner {
    live: Option<Live>,
    /// Every category, as `prepare` handed them, and GUID → index.
    categories: Vec<types::Category>,
    index: HashMap<UpdateId, u32>,
    /// `on_failure = "skip"` after a failure: the reason; the plugin abstains from then on.
    skipped: Option<String>,
    messages: Vec<StageMessage>,
}

/// A WebAssembly filter plugin, started for one sync.
pub(crate) struct WasmFilter {
    stage: String,
    plugin: PluginUse,
    pre: FilterPluginPre<HostState>,
    inner: Mutex<Inner>,
}

impl WasmFilter {
    /// Instantiates the plugin and hands it its config; a rejected config is an error
    /// naming the plugin and quoting its message.
    pub(crate) fn start(plugin: PluginUse, pre: FilterPluginPre<HostState>) -> Result<WasmFilter> {
        let f = WasmFilter {
            stage: format!("plugin {}", plugin.manifest.name),
            plugin,
            pre,
            inner: Mutex::new(Inner {
                live: None,
                categories: Vec::new(),
                index: HashMap::new(),
                skipped: None,
                messages: Vec::new(),
            }),
        };
        {
            let mut inner = f.inner.lock().expect("plugin state");
            let live = f.instantiate(&mut inner)?;
            inner.live = Some(live);
        }
        Ok(f)
    }

    fn name(&self) -> &str {
        &self.plugin.manifest.name
    }

    fn fail(&self, call: &str, e: &wasmtime::Error) -> Error {
        Error::plugin(
            self.name(),
            call,
            runtime::describe(&self.plugin.manifest, e),
        )
    }

    /// Moves what the plugin logged and printed to the stage's log; returns its stderr.
    fn collect(&self, inner: &mut Inner, store: &mut Store<HostState>) -> Vec<String> {
        let (lines, stderr) = store.data_mut().drain();
        for (level, message) in lines {
            inner.messages.push(StageMessage {
                level: level.word(),
                message,
                warning: false,
            });
        }
        stderr
    }

    /// A fresh instance, `init` called, and `prepare` if categories are known.
    fn instantiate(&self, inner: &mut Inner) -> Result<Live> {
        let m = &self.plugin.manifest;
        let mut store = runtime::new_store(m, None)?;
        runtime::arm(&mut store, m.limits.call_time);
        let plugin = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| self.fail("instantiate", &e))?;
        runtime::arm(&mut store, m.limits.call_time);
        let init = plugin
            .patchsync_plugin_filter()
            .call_init(&mut store, &self.plugin.config_json);
        let stderr = self.collect(inner, &mut store);
        match init.map_err(|e| {
            Error::plugin(
                self.name(),
                "init",
                runtime::with_stderr(runtime::describe(&self.plugin.manifest, &e), &stderr),
            )
        })? {
            Ok(()) => {}
            Err(message) => {
                return Err(Error::plugin(
                    self.name(),
                    "init",
                    format!(
                        "rejected its config: {message}; fix [config] in {} or the [[plugin]] entry's config",
                        m.file.display()
                    ),
                ));
            }
        }
        if !inner.categories.is_empty() {
            runtime::arm(&mut store, m.limits.call_time);
            let r = plugin
                .patchsync_plugin_filter()
                .call_prepare(&mut store, &inner.categories);
            self.collect(inner, &mut store);
            r.map_err(|e| self.fail("prepare", &e))?;
        }
        Ok(Live { store, plugin })
    }

    /// The live instance, rebuilt if a trap dropped it.
    fn live<'a>(&self, inner: &'a mut Inner) -> Result<&'a mut Live> {
        if inner.live.is_none() {
            let live = self.instantiate(inner)?;
            inner.live = Some(live);
        }
        Ok(inner.live.as_mut().expect("just built"))
    }

    /// One call; `Err` carries the failure, the instance is dropped on a trap.
    fn call(
        &self,
        inner: &mut Inner,
        batch: &[types::Update],
    ) -> Result<std::result::Result<Vec<types::Verdict>, Failed>> {
        let limit = self.plugin.manifest.limits.call_time;
        let live = self.live(inner)?;
        runtime::arm(&mut live.store, limit);
        let r = live
            .plugin
            .patchsync_plugin_filter()
            .call_filter(&mut live.store, batch);
        let mut live = inner.live.take().expect("live");
        let stderr = self.collect(inner, &mut live.store);
        match r {
            Ok(v) if v.len() == batch.len() => {
                inner.live = Some(live);
                Ok(Ok(v))
            }
            Ok(v) => {
                inner.live = Some(live);
                Ok(Err(Failed::Other(format!(
                    "returned {} verdicts for a batch of {} updates; a filter must return one \
                     verdict per update, in order",
                    v.len(),
                    batch.len()
                ))))
            }
            Err(e) => {
                let timeout = matches!(
                    e.downcast_ref::<wasmtime::Trap>(),
                    Some(wasmtime::Trap::Interrupt)
                );
                let text =
                    runtime::with_stderr(runtime::describe(&self.plugin.manifest, &e), &stderr);
                Ok(Err(if timeout {
                    Failed::Timeout(text)
                } else {
                    Failed::Other(text)
                }))
            }
        }
    }

    /// Finds which update of a failing batch the plugin fails on, splitting the batch on
    /// fresh instances (not for timeouts: each try would take the whole limit).
    fn culprit(&self, inner: &mut Inner, batch: &[types::Update], depth: u32) -> Option<String> {
        if batch.len() == 1 {
            return Some(batch[0].id.clone());
        }
        if depth >= MAX_SPLIT {
            return None;
        }
        let (a, b) = batch.split_at(batch.len() / 2);
        for half in [a, b] {
            match self.call(inner, half) {
                Ok(Ok(_)) => {}
                Ok(Err(Failed::Other(_))) => {
                    return self.culprit(inner, half, depth + 1);
                }
                _ => return None,
            }
        }
        None
    }
}

impl UpdateFilter for WasmFilter {
    fn name(&self) -> &str {
        &self.stage
    }

    fn config_hash(&self) -> String {
        self.plugin.config_hash()
    }

    fn batched_only(&self) -> bool {
        true
    }

    fn prepare(&mut self, tree: &CategoryTree) -> Result<Vec<String>> {
        let mut inner = self.inner.lock().expect("plugin state");
        let (categories, index) = category_table(tree);
        inner.index = index;
        inner.categories = categories;
        if inner.skipped.is_some() {
            return Ok(Vec::new());
        }
        let limit = self.plugin.manifest.limits.call_time;
        let inner = &mut *inner;
        self.live(inner)?;
        let mut live = inner.live.take().expect("live");
        runtime::arm(&mut live.store, limit);
        let r = live
            .plugin
            .patchsync_plugin_filter()
            .call_prepare(&mut live.store, &inner.categories);
        self.collect(inner, &mut live.store);
        match r {
            Ok(()) => {
                inner.live = Some(live);
                Ok(Vec::new())
            }
            Err(e) => {
                let err = self.fail("prepare", &e);
                match self.plugin.on_failure {
                    OnFailure::Abort => Err(err),
                    OnFailure::Skip => {
                        let w = format!("{err}; skipped for this sync (on_failure = \"skip\")");
                        inner.skipped = Some(w.clone());
                        Ok(vec![w])
                    }
                }
            }
        }
    }

    fn evaluate(
        &self,
        _tree: &CategoryTree,
        batch: &[UpdateView],
        out: &mut Vec<Decision>,
    ) -> Result<()> {
        let mut inner = self.inner.lock().expect("plugin state");
        let abstain = |out: &mut Vec<Decision>| {
            out.extend(batch.iter().map(|_| Decision {
                verdict: Verdict::Abstain,
                reason: None,
            }))
        };
        if inner.skipped.is_some() {
            abstain(out);
            return Ok(());
        }
        let wit: Vec<types::Update> = batch
            .iter()
            .map(|u| update_record(u, &inner.index, self.plugin.manifest.fields))
            .collect();
        match self.call(&mut inner, &wit)? {
            Ok(verdicts) => {
                out.extend(verdicts.into_iter().map(|v| Decision {
                    verdict: match v.decision {
                        types::Decision::Include => Verdict::Include,
                        types::Decision::Exclude => Verdict::Exclude,
                        types::Decision::Abstain => Verdict::Abstain,
                    },
                    reason: v.reason,
                }));
                Ok(())
            }
            Err(failed) => {
                let (timeout, message) = match failed {
                    Failed::Timeout(m) => (true, m),
                    Failed::Other(m) => (false, m),
                };
                let which = if timeout || wit.len() == 1 {
                    wit.first().map(|u| u.id.clone()).filter(|_| wit.len() == 1)
                } else {
                    self.culprit(&mut inner, &wit, 0)
                };
                let call = match which {
                    Some(id) => format!("filter, update {id}"),
                    None => format!(
                        "filter, a batch of {} updates from {} to {}",
                        wit.len(),
                        wit.first().map(|u| u.id.as_str()).unwrap_or("-"),
                        wit.last().map(|u| u.id.as_str()).unwrap_or("-")
                    ),
                };
                let err = Error::plugin(self.name(), call, message);
                match self.plugin.on_failure {
                    OnFailure::Abort => Err(err),
                    OnFailure::Skip => {
                        let w = format!(
                            "{err}; skipped for the rest of this sync (on_failure = \"skip\"): \
                             the stages after it decide"
                        );
                        inner.messages.push(StageMessage {
                            level: "error",
                            message: w.clone(),
                            warning: true,
                        });
                        inner.skipped = Some(w);
                        inner.live = None;
                        abstain(out);
                        Ok(())
                    }
                }
            }
        }
    }

    fn drain_log(&self) -> Vec<StageMessage> {
        std::mem::take(&mut self.inner.lock().expect("plugin state").messages)
    }
}
