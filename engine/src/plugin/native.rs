//! Native filter plugins: shared libraries loaded with libloading, speaking a small C ABI.
//!
//! A native plugin is **trusted code with the process's full rights**: no sandbox, no memory
//! cap, no deadline. Use one only for code you would link into patchsync yourself. The ABI
//! (see `engine/docs/plugins.md`, and `patchsync_sdk::export_native_filter!` which writes it):
//!
//! ```c
//! uint32_t patchsync_plugin_abi(void);   /* must return 1, checked before any other call */
//! void *patchsync_filter_new(const uint8_t *config_json, size_t len, uint8_t *err, size_t *err_len);
//! int32_t patchsync_filter_prepare(void *f, const uint8_t *categories_json, size_t len, uint8_t *err, size_t *err_len);
//! int32_t patchsync_filter_evaluate(void *f, const uint8_t *updates_json, size_t len,
//!                                   uint8_t *verdicts, size_t n, uint8_t *err, size_t *err_len);
//! void patchsync_filter_free(void *f);
//! ```
//!
//! JSON carries the same records as the WIT contract; a verdict is one byte (0 abstain,
//! 1 include, 2 exclude). `err` is a buffer of `*err_len` bytes; on failure (a null handle, a
//! non-zero return) the plugin writes a UTF-8 message there and sets `*err_len`. Panics must
//! not cross the boundary: the SDK's macro catches them and returns them as errors.
#![allow(unsafe_code)]

use std::sync::Mutex;

use libloading::{Library, Symbol};

use super::bindings::{category_table, types, update_record};
use super::manifest::{OnFailure, PluginUse};
use crate::error::{Error, Result};
use crate::filter::{CategoryTree, Decision, StageMessage, UpdateFilter, UpdateView, Verdict};
use crate::model::UpdateId;

/// The native ABI this build speaks.
pub const NATIVE_ABI: u32 = 1;
const ERR_CAP: usize = 4096;

type AbiFn = unsafe extern "C" fn() -> u32;
type NewFn = unsafe extern "C" fn(*const u8, usize, *mut u8, *mut usize) -> *mut std::ffi::c_void;
type PrepareFn =
    unsafe extern "C" fn(*mut std::ffi::c_void, *const u8, usize, *mut u8, *mut usize) -> i32;
type EvaluateFn = unsafe extern "C" fn(
    *mut std::ffi::c_void,
    *const u8,
    usize,
    *mut u8,
    usize,
    *mut u8,
    *mut usize,
) -> i32;
type FreeFn = unsafe extern "C" fn(*mut std::ffi::c_void);

struct Handle(*mut std::ffi::c_void);
// SAFETY: the handle is only used under the `Mutex` in `NativeFilter`, one call at a time;
// the ABI requires a plugin's state to be usable from any one thread at a time.
unsafe impl Send for Handle {}

/// A native filter plugin, loaded for one sync.
pub(crate) struct NativeFilter {
    stage: String,
    plugin: PluginUse,
    state: Mutex<State>,
    // Dropped last: the functions above live in it.
    lib: Library,
}

struct State {
    handle: Handle,
    index: std::collections::HashMap<UpdateId, u32>,
    skipped: bool,
    messages: Vec<StageMessage>,
}

fn take_err(buf: &[u8], len: usize) -> String {
    let s = String::from_utf8_lossy(&buf[..len.min(buf.len())]).into_owned();
    if s.is_empty() {
        "failed without a message".into()
    } else {
        s
    }
}

impl NativeFilter {
    /// Loads the library (after checking its digest), checks its ABI version, and creates
    /// the filter with its config.
    pub(crate) fn load(plugin: PluginUse) -> Result<NativeFilter> {
        let name = plugin.manifest.name.clone();
        plugin.manifest.read_code()?;
        let path = plugin.manifest.code_path().to_owned();
        let fail = |m: String| Error::plugin(&name, "load", m);
        // SAFETY: loading a library runs its initialisers. A native plugin is trusted code,
        // as the documentation says; its digest was just checked against the manifest.
        let lib = unsafe { Library::new(&path) }
            .map_err(|e| fail(format!("cannot load {}: {e}", path.display())))?;
        // SAFETY: the symbol's type is the ABI's; a library without it is refused below.
        let abi: u32 = unsafe {
            let f: Symbol<AbiFn> = lib.get(b"patchsync_plugin_abi").map_err(|_| {
                fail(format!(
                    "{} does not export patchsync_plugin_abi: it is not a patchsync native \
                     plugin (build it with patchsync_sdk::export_native_filter!)",
                    path.display()
                ))
            })?;
            f()
        };
        if abi != NATIVE_ABI {
            return Err(fail(format!(
                "{} speaks native plugin ABI {abi}; this patchsync speaks ABI {NATIVE_ABI}: \
                 rebuild it with a matching patchsync-sdk",
                path.display()
            )));
        }
        for sym in [
            "patchsync_filter_new",
            "patchsync_filter_prepare",
            "patchsync_filter_evaluate",
            "patchsync_filter_free",
        ] {
            // SAFETY: only looks the symbol up.
            if unsafe { lib.get::<*const ()>(sym.as_bytes()) }.is_err() {
                return Err(fail(format!("{} does not export {sym}", path.display())));
            }
        }
        let mut err = vec![0u8; ERR_CAP];
        let mut err_len = ERR_CAP;
        // SAFETY: ABI-checked symbol; the config and the error buffer outlive the call.
        let handle = unsafe {
            let new: Symbol<NewFn> = lib.get(b"patchsync_filter_new").expect("checked");
            new(
                plugin.config_json.as_ptr(),
                plugin.config_json.len(),
                err.as_mut_ptr(),
                &mut err_len,
            )
        };
        if handle.is_null() {
            return Err(Error::plugin(
                &name,
                "init",
                format!(
                    "rejected its config: {}; fix [config] in {}",
                    take_err(&err, err_len),
                    plugin.manifest.file.display()
                ),
            ));
        }
        Ok(NativeFilter {
            stage: format!("plugin {name}"),
            plugin,
            state: Mutex::new(State {
                handle: Handle(handle),
                index: Default::default(),
                skipped: false,
                messages: Vec::new(),
            }),
            lib,
        })
    }

    /// Applies `on_failure` to a failed call.
    fn failed(&self, state: &mut State, call: &str, message: String) -> Result<()> {
        let err = Error::plugin(&self.plugin.manifest.name, call, message);
        match self.plugin.on_failure {
            OnFailure::Abort => Err(err),
            OnFailure::Skip => {
                state.skipped = true;
                state.messages.push(StageMessage {
                    level: "error",
                    message: format!(
                        "{err}; skipped for the rest of this sync (on_failure = \"skip\")"
                    ),
                    warning: true,
                });
                Ok(())
            }
        }
    }
}

impl Drop for NativeFilter {
    fn drop(&mut self) {
        let state = self.state.get_mut().expect("plugin state");
        // SAFETY: the handle came from patchsync_filter_new and is freed once.
        unsafe {
            if let Ok(free) = self.lib.get::<FreeFn>(b"patchsync_filter_free") {
                free(state.handle.0);
            }
        }
    }
}

impl UpdateFilter for NativeFilter {
    fn name(&self) -> &str {
        &self.stage
    }

    fn config_hash(&self) -> String {
        self.plugin.config_hash()
    }

    fn prepare(&mut self, tree: &CategoryTree) -> Result<Vec<String>> {
        let (list, index) = category_table(tree);
        let json = serde_json::to_vec(&list).expect("categories serialize");
        let state = self.state.get_mut().expect("plugin state");
        state.index = index;
        if state.skipped {
            return Ok(Vec::new());
        }
        let mut err = vec![0u8; ERR_CAP];
        let mut err_len = ERR_CAP;
        // SAFETY: ABI-checked symbol, a live handle, buffers that outlive the call.
        let rc = unsafe {
            let f: Symbol<PrepareFn> = self.lib.get(b"patchsync_filter_prepare").expect("checked");
            f(
                state.handle.0,
                json.as_ptr(),
                json.len(),
                err.as_mut_ptr(),
                &mut err_len,
            )
        };
        if rc != 0 {
            let mut state = self.state.lock().expect("plugin state");
            self.failed(&mut state, "prepare", take_err(&err, err_len))?;
        }
        Ok(Vec::new())
    }

    fn evaluate(
        &self,
        _tree: &CategoryTree,
        batch: &[UpdateView],
        out: &mut Vec<Decision>,
    ) -> Result<()> {
        let mut state = self.state.lock().expect("plugin state");
        let abstain = |out: &mut Vec<Decision>| {
            out.extend(batch.iter().map(|_| Decision {
                verdict: Verdict::Abstain,
                reason: None,
            }))
        };
        if state.skipped {
            abstain(out);
            return Ok(());
        }
        let records: Vec<types::Update> = batch
            .iter()
            .map(|u| update_record(u, &state.index, self.plugin.manifest.fields))
            .collect();
        let json = serde_json::to_vec(&records).expect("updates serialize");
        let mut verdicts = vec![255u8; batch.len()];
        let mut err = vec![0u8; ERR_CAP];
        let mut err_len = ERR_CAP;
        // SAFETY: ABI-checked symbol, a live handle, buffers that outlive the call; the
        // plugin writes at most `verdicts.len()` bytes and `err_len` bytes.
        let rc = unsafe {
            let f: Symbol<EvaluateFn> =
                self.lib.get(b"patchsync_filter_evaluate").expect("checked");
            f(
                state.handle.0,
                json.as_ptr(),
                json.len(),
                verdicts.as_mut_ptr(),
                verdicts.len(),
                err.as_mut_ptr(),
                &mut err_len,
            )
        };
        let reason = format!("native plugin {}", self.plugin.manifest.name);
        let problem = if rc != 0 {
            Some(take_err(&err, err_len))
        } else {
            verdicts.iter().position(|v| *v > 2).map(|i| {
                format!(
                    "gave no valid verdict for update {} (byte {}); a filter writes 0, 1 or 2 per update",
                    batch[i].id, verdicts[i]
                )
            })
        };
        if let Some(p) = problem {
            self.failed(
                &mut state,
                &format!("filter, a batch of {}", batch.len()),
                p,
            )?;
            abstain(out);
            return Ok(());
        }
        out.extend(verdicts.iter().map(|v| Decision {
            verdict: match v {
                1 => Verdict::Include,
                2 => Verdict::Exclude,
                _ => Verdict::Abstain,
            },
            reason: (*v != 0).then(|| reason.clone()),
        }));
        Ok(())
    }

    fn drain_log(&self) -> Vec<StageMessage> {
        std::mem::take(&mut self.state.lock().expect("plugin state").messages)
    }
}
