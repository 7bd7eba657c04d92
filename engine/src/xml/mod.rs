//! Streaming, namespace-aware readers for catalog XML.

mod update;

pub use update::{UPDATE_NS, XmlError, parse_update};
