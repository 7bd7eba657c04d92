//! patchsync-sdk: write filter and catalog-source plugins for patchsync.
//!
//! A plugin is a Rust library built for `wasm32-wasip2` into a WebAssembly component that
//! implements the `patchsync:plugin` contract (`wit/plugin.wit`), or, for filters, a native
//! shared library. This crate gives:
//!
//! - typed views of what a plugin sees ([`Update`], [`Categories`], [`Config`]) and answers
//!   ([`Verdict`], [`Listing`], [`Document`], written with [`UpdateXml`]);
//! - the [`Filter`] and [`Source`] traits, with defaults for everything optional;
//! - one macro per kind to export a plugin: [`export_filter!`], [`export_source!`],
//!   [`export_native_filter!`];
//! - [`log`], and for sources [`http::get`] and [`progress`], which the host implements;
//! - on the host (plain `cargo test`), logging to stderr and [`testing`] helpers, so plugin
//!   logic is tested without building wasm.
//!
//! It does not depend on the patchsync engine: a plugin built against contract version
//! `patchsync:plugin@0.1.0` loads in every patchsync that supports that version.
//!
//! See the README for a tutorial from `cargo new` to a loaded plugin.

extern crate self as patchsync_sdk;

mod config;
pub mod http;
pub mod log;
#[doc(hidden)]
pub mod native;
mod types;
mod xml;

#[doc(hidden)]
pub mod glue;
pub mod testing;

pub use config::Config;
pub use types::{
    Categories, Category, CategoryKind, Date, Document, Identity, Listing, Severity, Update,
    UpdateType, Verdict,
};
pub use xml::{UpdateXml, classification_id, guid_from_name};

/// The contract version this SDK builds plugins against.
pub const WIT_VERSION: &str = "0.1.0";

/// The native plugin ABI version [`export_native_filter!`] speaks.
pub const NATIVE_ABI: u32 = 1;

/// Everything a plugin usually needs.
pub mod prelude {
    pub use crate::log::{debug, error, info, warn};
    pub use crate::{
        Categories, Category, CategoryKind, Config, Date, Document, Filter, Identity, Listing,
        Severity, Source, Update, UpdateType, UpdateXml, Verdict,
    };
}

/// A filter stage.
pub trait Filter: Sized + 'static {
    /// Builds the filter from its config; an `Err` rejects the config, and patchsync shows
    /// the message with the plugin's name.
    fn init(config: &Config) -> Result<Self, String>;

    /// Once per sync, with every category of the site's catalog.
    fn prepare(&mut self, categories: &Categories) {
        let _ = categories;
    }

    /// The verdict for one update.
    fn filter(&mut self, update: &Update, categories: &Categories) -> Verdict;

    /// Verdicts for a batch (one per update, in order); override to work on the batch.
    fn filter_batch(&mut self, batch: &[Update], categories: &Categories) -> Vec<Verdict> {
        batch.iter().map(|u| self.filter(u, categories)).collect()
    }
}

/// A catalog source.
pub trait Source: Sized + 'static {
    /// Builds the source from its config and the cursor it returned at the end of its last
    /// successful sync (`None` the first time).
    fn init(config: &Config, cursor: Option<String>) -> Result<Self, String>;

    /// A string that changes whenever the catalog may have changed; `None`: cannot tell.
    fn fingerprint(&mut self) -> Result<Option<String>, String> {
        Ok(None)
    }

    /// Every identity the catalog holds.
    fn list(&mut self) -> Result<Listing, String>;

    /// The documents of the identities asked for.
    fn fetch(&mut self, page: &[Identity]) -> Result<Vec<Document>, String>;

    /// The cursor to store with this sync's data.
    fn cursor(&mut self) -> Option<String> {
        None
    }
}

/// Progress of long source calls, shown by patchsync.
pub fn progress(done: u64, total: u64) {
    #[cfg(target_arch = "wasm32")]
    bindings::source::patchsync::plugin::progress::report(done, total);
    #[cfg(not(target_arch = "wasm32"))]
    let _ = (done, total);
}

/// The generated bindings of both worlds.
#[doc(hidden)]
#[allow(unsafe_code, clippy::all)]
pub mod bindings {
    pub mod filter {
        wit_bindgen::generate!({
            world: "filter-plugin",
            path: "wit",
            pub_export_macro: true,
            export_macro_name: "__export_filter_world",
            default_bindings_module: "::patchsync_sdk::bindings::filter",
            runtime_path: "::patchsync_sdk::__wit_bindgen::rt",
        });
    }
    pub mod source {
        wit_bindgen::generate!({
            world: "source-plugin",
            path: "wit",
            pub_export_macro: true,
            export_macro_name: "__export_source_world",
            default_bindings_module: "::patchsync_sdk::bindings::source",
            runtime_path: "::patchsync_sdk::__wit_bindgen::rt",
            with: {
                "patchsync:plugin/types@0.1.0": crate::bindings::filter::patchsync::plugin::types,
                "patchsync:plugin/log@0.1.0": crate::bindings::filter::patchsync::plugin::log,
            },
        });
    }
}

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

/// Exports a [`Filter`] as the component's filter: `patchsync_sdk::export_filter!(MyFilter);`
#[macro_export]
macro_rules! export_filter {
    ($t:ty) => {
        // The component's exports exist only in the wasm build; on the host the plugin is
        // an ordinary library (for `cargo test`).
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        mod __patchsync_filter_export {
            #[allow(unused_imports)]
            use super::*;
            #[doc(hidden)]
            pub struct __PatchsyncFilter;
            impl $crate::bindings::filter::exports::patchsync::plugin::filter::Guest
                for __PatchsyncFilter
            {
                fn init(config: String) -> Result<(), String> {
                    $crate::glue::filter_init::<$t>(&config)
                }
                fn prepare(
                    categories: Vec<$crate::bindings::filter::patchsync::plugin::types::Category>,
                ) {
                    $crate::glue::filter_prepare::<$t>(categories)
                }
                fn filter(
                    batch: Vec<$crate::bindings::filter::patchsync::plugin::types::Update>,
                ) -> Vec<$crate::bindings::filter::patchsync::plugin::types::Verdict> {
                    $crate::glue::filter_batch::<$t>(batch)
                }
            }
            $crate::bindings::filter::__export_filter_world!(__PatchsyncFilter);
        }
    };
}

/// Exports a [`Source`] as the component's source: `patchsync_sdk::export_source!(MySource);`
#[macro_export]
macro_rules! export_source {
    ($t:ty) => {
        // The component's exports exist only in the wasm build; on the host the plugin is
        // an ordinary library (for `cargo test`).
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        mod __patchsync_source_export {
        #[allow(unused_imports)]
        use super::*;
        #[doc(hidden)]
        pub struct __PatchsyncSource;
        impl $crate::bindings::source::exports::patchsync::plugin::source::Guest for __PatchsyncSource {
            fn init(config: String, cursor: Option<String>) -> Result<(), String> {
                $crate::glue::source_init::<$t>(&config, cursor)
            }
            fn fingerprint() -> Result<Option<String>, String> {
                $crate::glue::with_source::<$t, _>(|s| s.fingerprint())
            }
            fn list() -> Result<$crate::bindings::filter::patchsync::plugin::types::Listing, String> {
                $crate::glue::source_list::<$t>()
            }
            fn fetch(
                page: Vec<$crate::bindings::filter::patchsync::plugin::types::Identity>,
            ) -> Result<Vec<$crate::bindings::filter::patchsync::plugin::types::Document>, String> {
                $crate::glue::source_fetch::<$t>(page)
            }
            fn cursor() -> Option<String> {
                $crate::glue::with_source::<$t, _>(|s| Ok(s.cursor())).ok().flatten()
            }
        }
        $crate::bindings::source::__export_source_world!(__PatchsyncSource);
        }
    };
}
