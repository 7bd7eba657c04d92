//! Plugin manifests: the TOML file next to a plugin's `.wasm` (or shared library) that says
//! what it is, what it may do, and how it is configured. Validated at config load.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

use crate::config::line_of;
use crate::error::{Error, Result};

/// The contract versions (`patchsync:plugin@X`) this build loads.
pub const SUPPORTED_WIT: &[&str] = &["0.1.0"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: Spanned<String>,
    version: Spanned<String>,
    kind: Spanned<String>,
    /// The `patchsync:plugin` version the plugin was built against.
    wit: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    wasm: Option<Spanned<String>>,
    #[serde(default)]
    library: Option<Spanned<String>>,
    sha256: Spanned<String>,
    #[serde(default)]
    on_failure: Option<Spanned<String>>,
    /// The update fields a filter reads (default: all).
    #[serde(default)]
    fields: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    limits: Option<RawLimits>,
    #[serde(default)]
    permissions: Option<RawPermissions>,
    #[serde(default)]
    config: Option<toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    #[serde(default)]
    memory_mb: Option<Spanned<f64>>,
    #[serde(default)]
    call_seconds: Option<Spanned<f64>>,
    #[serde(default)]
    response_mb: Option<Spanned<f64>>,
    #[serde(default)]
    http_timeout_seconds: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPermissions {
    #[serde(default)]
    allowed_hosts: Vec<String>,
}

/// The update fields a filter reads: only those cross into the plugin (the others arrive
/// empty), and only those the sync loads from the store for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields(u16);

impl Fields {
    /// The optional fields of the contract's `update` record (id, revision and type are
    /// always sent).
    pub const NAMES: &'static [&'static str] = &[
        "title",
        "categories",
        "msrc_severity",
        "kb_articles",
        "cves",
        "bulletins",
        "languages",
        "creation_date",
        "published",
        "superseded",
        "is_bundle",
        "size",
        "source",
    ];
    pub const ALL: Fields = Fields((1 << 13) - 1);
    /// Fields the sync loads from the store only when a stage reads them.
    const DETAILS: &'static [&'static str] =
        &["kb_articles", "cves", "bulletins", "languages", "size"];

    fn bit(name: &str) -> Option<u16> {
        Self::NAMES.iter().position(|n| *n == name).map(|i| 1 << i)
    }

    pub fn has(self, name: &str) -> bool {
        Self::bit(name).is_some_and(|b| self.0 & b != 0)
    }

    /// Whether the sync must load KB, CVE, bulletin, language or size details for it.
    pub fn needs_details(self) -> bool {
        Self::DETAILS.iter().any(|n| self.has(n))
    }
}

/// What a plugin is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    Filter,
    Source,
}

/// What a failing plugin does to the sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Stop the sync; the source being synced is rolled back.
    Abort,
    /// Leave the plugin out for the rest of the sync (it abstains), with a warning.
    Skip,
}

impl OnFailure {
    pub(crate) fn parse(s: &str) -> Option<OnFailure> {
        match s.trim() {
            "abort" => Some(OnFailure::Abort),
            "skip" => Some(OnFailure::Skip),
            _ => None,
        }
    }
}

/// The code a plugin manifest points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Code {
    /// A WebAssembly component, sandboxed.
    Wasm(PathBuf),
    /// A shared library with the C ABI: trusted code with the process's full rights.
    Native(PathBuf),
}

/// Limits a WebAssembly plugin runs under.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Linear memory an instance may grow to.
    pub memory_bytes: usize,
    /// Wall time one call may take.
    pub call_time: std::time::Duration,
    /// Largest HTTP response body a source may fetch.
    pub response_bytes: usize,
    /// Timeout of one HTTP request.
    pub http_timeout: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            call_time: std::time::Duration::from_secs(10),
            response_bytes: 64 << 20,
            http_timeout: std::time::Duration::from_secs(30),
        }
    }
}

/// A validated manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The manifest file.
    pub file: PathBuf,
    pub name: String,
    pub version: String,
    pub kind: PluginKind,
    pub wit: String,
    pub description: Option<String>,
    pub code: Code,
    /// SHA-256 (lowercase hex) the code file must have.
    pub sha256: String,
    pub on_failure: OnFailure,
    /// The update fields a filter reads.
    pub fields: Fields,
    pub limits: Limits,
    /// Hosts (`name` or `name:port`) a source may fetch from.
    pub allowed_hosts: Vec<String>,
    /// The `[config]` table handed to `init`.
    pub config: toml::Table,
}

impl Manifest {
    /// Reads and validates a manifest; errors name the file, the line and the key.
    pub fn load(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            file: path.to_owned(),
            line: None,
            message: format!("cannot read the plugin manifest: {e}"),
        })?;
        Manifest::parse(path, &text)
    }

    pub(crate) fn parse(path: &Path, text: &str) -> Result<Manifest> {
        let fail = |span: Option<std::ops::Range<usize>>, message: String| Error::Config {
            file: path.to_owned(),
            line: span.map(|s| line_of(text, s.start)),
            message,
        };
        let raw: RawManifest =
            toml::from_str(text).map_err(|e| fail(e.span(), e.message().trim().to_owned()))?;
        let name = raw.name.get_ref().trim().to_owned();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(fail(
                Some(raw.name.span()),
                format!("name: '{name}' must be letters, digits, '-' or '_'"),
            ));
        }
        let kind = match raw.kind.get_ref().trim() {
            "filter" => PluginKind::Filter,
            "source" => PluginKind::Source,
            other => {
                return Err(fail(
                    Some(raw.kind.span()),
                    format!("kind: '{other}' is not a plugin kind; use \"filter\" or \"source\""),
                ));
            }
        };
        let wit = raw.wit.get_ref().trim().to_owned();
        if !SUPPORTED_WIT.contains(&wit.as_str()) {
            return Err(fail(
                Some(raw.wit.span()),
                format!(
                    "wit: plugin '{name}' was built against patchsync:plugin@{wit}; this patchsync \
                     loads patchsync:plugin@{}: rebuild the plugin with a matching patchsync-sdk",
                    SUPPORTED_WIT.join(", @")
                ),
            ));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let code = match (&raw.wasm, &raw.library) {
            (Some(w), None) => Code::Wasm(base.join(w.get_ref())),
            (None, Some(l)) => {
                if kind != PluginKind::Filter {
                    return Err(fail(
                        Some(l.span()),
                        "library: native plugins can only be filters; write a source as a \
                         WebAssembly component (`wasm = ...`)"
                            .into(),
                    ));
                }
                Code::Native(base.join(l.get_ref()))
            }
            _ => {
                return Err(fail(
                    Some(raw.name.span()),
                    "give exactly one of `wasm = \"plugin.wasm\"` (a WebAssembly component) or \
                     `library = \"libplugin.so\"` (a native plugin)"
                        .into(),
                ));
            }
        };
        let sha256 = raw.sha256.get_ref().trim().to_ascii_lowercase();
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(fail(
                Some(raw.sha256.span()),
                "sha256: must be 64 hex digits, the SHA-256 of the plugin file (`sha256sum FILE`)"
                    .into(),
            ));
        }
        let on_failure = match &raw.on_failure {
            None => OnFailure::Abort,
            Some(s) => OnFailure::parse(s.get_ref()).ok_or_else(|| {
                fail(
                    Some(s.span()),
                    format!(
                        "on_failure: '{}' is not a choice; use \"abort\" or \"skip\"",
                        s.get_ref()
                    ),
                )
            })?,
        };
        let fields = match &raw.fields {
            None => Fields::ALL,
            Some(list) => {
                let mut bits = 0;
                for f in list.get_ref() {
                    bits |= Fields::bit(f.trim()).ok_or_else(|| {
                        fail(
                            Some(list.span()),
                            format!(
                                "fields: '{f}' is not a field of an update; fields: {}",
                                Fields::NAMES.join(", ")
                            ),
                        )
                    })?;
                }
                Fields(bits)
            }
        };
        let mut limits = Limits::default();
        if let Some(l) = &raw.limits {
            let positive = |v: &Option<Spanned<f64>>, key: &str| -> Result<Option<f64>> {
                match v {
                    None => Ok(None),
                    Some(s) if *s.get_ref() > 0.0 && s.get_ref().is_finite() => {
                        Ok(Some(*s.get_ref()))
                    }
                    Some(s) => Err(fail(
                        Some(s.span()),
                        format!("limits.{key}: must be a positive number"),
                    )),
                }
            };
            if let Some(v) = positive(&l.memory_mb, "memory_mb")? {
                limits.memory_bytes = (v * 1048576.0) as usize;
            }
            if let Some(v) = positive(&l.call_seconds, "call_seconds")? {
                limits.call_time = std::time::Duration::from_secs_f64(v);
            }
            if let Some(v) = positive(&l.response_mb, "response_mb")? {
                limits.response_bytes = (v * 1048576.0) as usize;
            }
            if let Some(v) = positive(&l.http_timeout_seconds, "http_timeout_seconds")? {
                limits.http_timeout = std::time::Duration::from_secs_f64(v);
            }
        }
        let allowed_hosts: Vec<String> = raw
            .permissions
            .map(|p| p.allowed_hosts)
            .unwrap_or_default()
            .into_iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .collect();
        Ok(Manifest {
            file: path.to_owned(),
            name,
            version: raw.version.get_ref().trim().to_owned(),
            kind,
            wit,
            description: raw.description,
            code,
            sha256,
            on_failure,
            fields,
            limits,
            allowed_hosts,
            config: raw.config.unwrap_or_default(),
        })
    }

    /// The code file.
    pub fn code_path(&self) -> &Path {
        match &self.code {
            Code::Wasm(p) | Code::Native(p) => p,
        }
    }

    /// Reads the code file and checks its digest against the manifest's.
    pub fn read_code(&self) -> Result<Vec<u8>> {
        let path = self.code_path();
        let bytes = std::fs::read(path).map_err(|e| {
            Error::plugin(
                &self.name,
                "load",
                format!(
                    "cannot read {}: {e}; build the plugin or fix the path in {}",
                    path.display(),
                    self.file.display()
                ),
            )
        })?;
        let actual = hex(&Sha256::digest(&bytes));
        if actual != self.sha256 {
            return Err(Error::plugin(
                &self.name,
                "load",
                format!(
                    "{} has SHA-256 {actual} but {} says {}; if you rebuilt the plugin on purpose, \
                     put the new digest in the manifest",
                    path.display(),
                    self.file.display(),
                    self.sha256
                ),
            ));
        }
        Ok(bytes)
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A plugin as the site config uses it: its manifest, the config it gets (the manifest's
/// `[config]` with the site's overrides on top), and the failure policy.
#[derive(Debug, Clone)]
pub struct PluginUse {
    pub manifest: Manifest,
    /// The merged config, as JSON for `init`.
    pub config_json: String,
    pub on_failure: OnFailure,
}

impl PluginUse {
    /// `manifest` with `overrides` on top of its `[config]`, and a failure policy (default:
    /// the manifest's).
    pub fn new(
        manifest: Manifest,
        overrides: Option<&toml::Table>,
        on_failure: Option<OnFailure>,
    ) -> PluginUse {
        let mut config = manifest.config.clone();
        if let Some(o) = overrides {
            for (k, v) in o {
                config.insert(k.clone(), v.clone());
            }
        }
        let config_json = serde_json::to_string(&config).unwrap_or_else(|_| "{}".into());
        PluginUse {
            on_failure: on_failure.unwrap_or(manifest.on_failure),
            manifest,
            config_json,
        }
    }

    /// What a change of which re-evaluates the catalog: the code's digest and the config.
    pub fn config_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.manifest.sha256.as_bytes());
        h.update([0]);
        h.update(self.config_json.as_bytes());
        hex(&h.finalize())[..16].to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest> {
        Manifest::parse(Path::new("/p/plugin.toml"), text)
    }

    const OK: &str = r#"
name = "severity-filter"
version = "0.1.0"
kind = "filter"
wit = "0.1.0"
wasm = "severity_filter.wasm"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
[limits]
memory_mb = 16
call_seconds = 0.5
[config]
minimum = "Important"
"#;

    #[test]
    fn a_manifest_reads_with_defaults() {
        let m = parse(OK).unwrap();
        assert_eq!(m.kind, PluginKind::Filter);
        assert_eq!(m.code, Code::Wasm("/p/severity_filter.wasm".into()));
        assert_eq!(m.limits.memory_bytes, 16 << 20);
        assert_eq!(m.limits.call_time, std::time::Duration::from_millis(500));
        assert_eq!(m.on_failure, OnFailure::Abort);
        assert_eq!(m.config["minimum"].as_str(), Some("Important"));
        assert!(m.fields.has("kb_articles") && m.fields.needs_details());
        let m = parse(&OK.replace("[limits]", "fields = [\"title\", \"superseded\"]\n[limits]"))
            .unwrap();
        assert!(m.fields.has("superseded") && !m.fields.has("cves") && !m.fields.needs_details());
        let e = parse(&OK.replace("[limits]", "fields = [\"titel\"]\n[limits]"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(":8") && e.contains("'titel' is not a field"),
            "{e}"
        );
    }

    #[test]
    fn mistakes_name_the_line_and_key() {
        let e = parse(&OK.replace("wit = \"0.1.0\"", "wit = \"0.2.0\""))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("plugin.toml:5") && e.contains("patchsync:plugin@0.2.0"),
            "{e}"
        );
        let e = parse(&OK.replace("call_seconds = 0.5", "call_seconds = -1"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(":10") && e.contains("limits.call_seconds"),
            "{e}"
        );
        let e = parse(&OK.replace("kind = \"filter\"", "kind = \"sorter\""))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(":4") && e.contains("\"filter\" or \"source\""),
            "{e}"
        );
        let e = parse(&format!("{OK}\n[permissions]\nhosts = []\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `hosts`"), "{e}");
    }
}
