//! The C ABI of native filter plugins, on top of [`Filter`]: what
//! [`export_native_filter!`](crate::export_native_filter) exports. Panics are caught here
//! and returned as errors: they never unwind into patchsync.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::{Categories, Category, Config, Filter, Update};

struct State<F> {
    filter: F,
    categories: Categories,
}

/// Writes `msg` into the host's error buffer.
///
/// # Safety
/// `err` points to `*err_len` writable bytes.
unsafe fn report(msg: &str, err: *mut u8, err_len: *mut usize) {
    if err.is_null() || err_len.is_null() {
        return;
    }
    // SAFETY: the caller's contract.
    unsafe {
        let n = msg.len().min(*err_len);
        std::ptr::copy_nonoverlapping(msg.as_ptr(), err, n);
        *err_len = n;
    }
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    let m = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into());
    format!("panicked: {m}")
}

/// # Safety
/// `config` points to `len` readable bytes; `err` to `*err_len` writable bytes.
pub unsafe fn new<F: Filter>(
    config: *const u8,
    len: usize,
    err: *mut u8,
    err_len: *mut usize,
) -> *mut c_void {
    // SAFETY: the caller's contract.
    let bytes = unsafe { std::slice::from_raw_parts(config, len) };
    let r = catch_unwind(|| {
        let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
        F::init(&Config::parse(text)?)
    });
    match r {
        Ok(Ok(filter)) => Box::into_raw(Box::new(State {
            filter,
            categories: Categories::default(),
        })) as *mut c_void,
        Ok(Err(m)) => {
            // SAFETY: the caller's contract.
            unsafe { report(&m, err, err_len) };
            std::ptr::null_mut()
        }
        Err(p) => {
            // SAFETY: the caller's contract.
            unsafe { report(&panic_text(p), err, err_len) };
            std::ptr::null_mut()
        }
    }
}

/// # Safety
/// `state` came from [`new`] with the same `F`; the buffers as in [`new`].
pub unsafe fn prepare<F: Filter>(
    state: *mut c_void,
    json: *const u8,
    len: usize,
    err: *mut u8,
    err_len: *mut usize,
) -> i32 {
    // SAFETY: the caller's contract.
    let (state, bytes) = unsafe {
        (
            &mut *(state as *mut State<F>),
            std::slice::from_raw_parts(json, len),
        )
    };
    let r = catch_unwind(AssertUnwindSafe(|| -> Result<(), String> {
        let list: Vec<Category> =
            serde_json::from_slice(bytes).map_err(|e| format!("bad categories: {e}"))?;
        state.categories = Categories::new(list);
        state.filter.prepare(&state.categories);
        Ok(())
    }));
    finish(r, err, err_len)
}

/// # Safety
/// As [`prepare`]; `verdicts` points to `n` writable bytes.
pub unsafe fn evaluate<F: Filter>(
    state: *mut c_void,
    json: *const u8,
    len: usize,
    verdicts: *mut u8,
    n: usize,
    err: *mut u8,
    err_len: *mut usize,
) -> i32 {
    // SAFETY: the caller's contract.
    let (state, bytes, out) = unsafe {
        (
            &mut *(state as *mut State<F>),
            std::slice::from_raw_parts(json, len),
            std::slice::from_raw_parts_mut(verdicts, n),
        )
    };
    let r = catch_unwind(AssertUnwindSafe(|| -> Result<(), String> {
        let batch: Vec<Update> =
            serde_json::from_slice(bytes).map_err(|e| format!("bad batch: {e}"))?;
        let v = state.filter.filter_batch(&batch, &state.categories);
        if v.len() != out.len() {
            return Err(format!("{} verdicts for {} updates", v.len(), out.len()));
        }
        for (o, v) in out.iter_mut().zip(v) {
            *o = v.byte();
        }
        Ok(())
    }));
    finish(r, err, err_len)
}

fn finish(r: std::thread::Result<Result<(), String>>, err: *mut u8, err_len: *mut usize) -> i32 {
    let m = match r {
        Ok(Ok(())) => return 0,
        Ok(Err(m)) => m,
        Err(p) => panic_text(p),
    };
    // SAFETY: the buffers are the host's, as the exported functions' contracts say.
    unsafe { report(&m, err, err_len) };
    1
}

/// # Safety
/// `state` came from [`new`] with the same `F` and is freed once.
pub unsafe fn free<F: Filter>(state: *mut c_void) {
    if !state.is_null() {
        // SAFETY: the caller's contract.
        drop(unsafe { Box::from_raw(state as *mut State<F>) });
    }
}

/// Exports a [`Filter`](crate::Filter) as a native plugin (a `cdylib`) with patchsync's C
/// ABI: `patchsync_sdk::export_native_filter!(MyFilter);`. A native plugin runs with the
/// process's full rights: prefer a WebAssembly component unless you must.
#[macro_export]
macro_rules! export_native_filter {
    ($t:ty) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn patchsync_plugin_abi() -> u32 {
            $crate::NATIVE_ABI
        }
        /// # Safety
        /// Called by patchsync with the ABI's buffers.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn patchsync_filter_new(
            c: *const u8,
            n: usize,
            e: *mut u8,
            el: *mut usize,
        ) -> *mut ::core::ffi::c_void {
            unsafe { $crate::native::new::<$t>(c, n, e, el) }
        }
        /// # Safety
        /// Called by patchsync with the ABI's buffers.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn patchsync_filter_prepare(
            s: *mut ::core::ffi::c_void,
            j: *const u8,
            n: usize,
            e: *mut u8,
            el: *mut usize,
        ) -> i32 {
            unsafe { $crate::native::prepare::<$t>(s, j, n, e, el) }
        }
        /// # Safety
        /// Called by patchsync with the ABI's buffers.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn patchsync_filter_evaluate(
            s: *mut ::core::ffi::c_void,
            j: *const u8,
            n: usize,
            v: *mut u8,
            vn: usize,
            e: *mut u8,
            el: *mut usize,
        ) -> i32 {
            unsafe { $crate::native::evaluate::<$t>(s, j, n, v, vn, e, el) }
        }
        /// # Safety
        /// Called by patchsync once per handle.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn patchsync_filter_free(s: *mut ::core::ffi::c_void) {
            unsafe { $crate::native::free::<$t>(s) }
        }
    };
}
