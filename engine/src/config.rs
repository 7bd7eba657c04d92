//! Site configuration: raw TOML structs (`deny_unknown_fields`) validated into engine types.
//! Errors name the file, the line and the key.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::error::{Error, Result};
use crate::filter::{LanguageSelection, Pick};
pub use crate::source::location::Location;

/// The raw file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    site: Spanned<RawSite>,
    #[serde(default)]
    source: Vec<Spanned<RawSource>>,
    #[serde(default)]
    filter: Option<RawFilter>,
    #[serde(default)]
    supersedence: Option<RawSupersedence>,
    #[serde(default)]
    import: Option<RawImport>,
    #[serde(default)]
    service: Option<Spanned<RawService>>,
    /// Rule sets written in the site config itself.
    #[serde(default)]
    rule_set: Vec<Spanned<crate::rules::RawRuleSet>>,
    /// Filter plugins, in the order they apply.
    #[serde(default)]
    plugin: Vec<Spanned<RawPlugin>>,
    /// Child sites that sync from this one (the hierarchy).
    #[serde(default)]
    child: Vec<Spanned<RawChild>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChild {
    /// The child's site name (`[site] name` there).
    name: Spanned<String>,
    /// The secret it authenticates with (or `secret_env`, a variable holding it).
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    secret_env: Option<Spanned<String>>,
    /// Where its service listens, for sync notifications (e.g. "http://10.0.0.5:8530").
    #[serde(default)]
    url: Option<Spanned<String>>,
    /// PEM certificates to trust for an https `url`.
    #[serde(default)]
    tls_ca: Option<Spanned<String>>,
    /// A WSUS downstream server: known by its name (`accountName`), without a secret.
    #[serde(default)]
    wsus: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlugin {
    /// The plugin's manifest (TOML beside its code).
    manifest: Spanned<String>,
    /// Overrides of the manifest's `[config]`, key by key.
    #[serde(default)]
    config: Option<toml::Table>,
    /// `abort` or `skip`; default: the manifest's.
    #[serde(default)]
    on_failure: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    #[serde(default)]
    listen: Option<Spanned<String>>,
    #[serde(default)]
    schedule: Option<Spanned<String>>,
    #[serde(default)]
    timezone: Option<Spanned<String>>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    token_env: Option<String>,
    #[serde(default)]
    retry_delay_minutes: Option<Spanned<i64>>,
    #[serde(default)]
    retry_attempts: Option<Spanned<i64>>,
    #[serde(default)]
    max_run_minutes: Option<Spanned<f64>>,
    #[serde(default)]
    alert_webhook: Option<Spanned<String>>,
    #[serde(default)]
    alert_command: Option<String>,
    #[serde(default)]
    stale_after_hours: Option<Spanned<f64>>,
    #[serde(default)]
    tls_cert: Option<Spanned<String>>,
    #[serde(default)]
    tls_key: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImport {
    /// Public keys (`ed25519:<base64>`, as `patchsync keygen` writes them in `NAME.pub`, or
    /// the path of such a file) whose signed packages this site imports.
    #[serde(default)]
    trusted_keys: Option<Spanned<Vec<String>>>,
    /// Import packages that carry no signature (default false).
    #[serde(default)]
    allow_unsigned: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSupersedence {
    /// "never" (default), "immediately", or "after N months".
    #[serde(default)]
    expire: Option<Spanned<String>>,
    /// The same choice for feature upgrades (classification Upgrades); default: as `expire`.
    #[serde(default)]
    feature_upgrades: Option<Spanned<String>>,
    /// Delete updates expired for longer than this many days (pinned ones excepted).
    #[serde(default)]
    delete_expired_after_days: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    /// Site code shown in status and logs, e.g. "CAS".
    name: Spanned<String>,
    /// SQLite store; relative paths are relative to the config file.
    store: Spanned<String>,
    /// Sync log; default `sync.log` beside the store.
    #[serde(default)]
    log: Option<Spanned<String>>,
    /// The log rotates when it outgrows this many MB (default 10) ...
    #[serde(default)]
    log_max_mb: Option<Spanned<f64>>,
    /// ... keeping this many old files (default 5).
    #[serde(default)]
    log_keep: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    name: Spanned<String>,
    kind: Spanned<String>,
    /// A file or folder; for `sdp-catalog` and `wsusscn2` also an http(s) URL.
    path: Spanned<String>,
    /// Optional SHA-256 (hex) the catalog file must have.
    #[serde(default)]
    sha256: Option<Spanned<String>>,
    /// When `patchsync serve` syncs this source; default: the site's schedule (vendor
    /// catalogs: every 7 days).
    #[serde(default)]
    schedule: Option<Spanned<String>>,
    /// For `kind = "plugin"`: overrides of the manifest's `[config]`.
    #[serde(default)]
    config: Option<Spanned<toml::Table>>,
    /// For `kind = "upstream"`: the secret this site authenticates to its parent with, or
    /// the variable (`secret_env`) that holds it.
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    secret_env: Option<Spanned<String>>,
    /// For `kind = "upstream"` over https: PEM certificates to trust for the parent (its
    /// own self-signed certificate, or a private CA); default: the system's roots.
    #[serde(default)]
    tls_ca: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFilter {
    #[serde(default)]
    products: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    classifications: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    languages: Option<Spanned<Vec<String>>>,
    /// Rule sets in the order they apply: names of `[[rule_set]]` tables, or rule files.
    #[serde(default)]
    rules: Option<Spanned<Vec<String>>>,
    /// The stages in order: "rules", "built-in", "plugins" (default: in that order).
    #[serde(default)]
    order: Option<Spanned<Vec<String>>>,
    /// A sync that would remove more than this share of a source's active updates is
    /// refused unless `--allow-mass-removal` (default 20).
    #[serde(default)]
    mass_removal_percent: Option<Spanned<i64>>,
}

/// The kinds of catalog source this build knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    WsusExport,
    Directory,
    Wsusscn2,
    SdpCatalog,
    /// A WebAssembly source plugin; `path` is its manifest.
    Plugin,
    /// The parent site, or a WSUS server, over MS-WSUSSS; `path` is its URL.
    Upstream,
    /// A WSUS server or Microsoft Update as a top-level site's catalog source, over
    /// MS-WSUSSS: the site's products and classifications are what it asks for.
    WsusServer,
}

impl SourceKind {
    pub const NAMES: &'static [&'static str] = &[
        "wsus-export",
        "directory",
        "wsusscn2",
        "sdp-catalog",
        "plugin",
        "upstream",
        "wsus-server",
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::WsusExport => "wsus-export",
            SourceKind::Directory => "directory",
            SourceKind::Wsusscn2 => "wsusscn2",
            SourceKind::SdpCatalog => "sdp-catalog",
            SourceKind::Plugin => "plugin",
            SourceKind::Upstream => "upstream",
            SourceKind::WsusServer => "wsus-server",
        }
    }

    pub fn parse(s: &str) -> Option<SourceKind> {
        match s {
            "wsus-export" => Some(SourceKind::WsusExport),
            "directory" => Some(SourceKind::Directory),
            "wsusscn2" => Some(SourceKind::Wsusscn2),
            "sdp-catalog" => Some(SourceKind::SdpCatalog),
            "plugin" => Some(SourceKind::Plugin),
            "upstream" => Some(SourceKind::Upstream),
            "wsus-server" => Some(SourceKind::WsusServer),
            _ => None,
        }
    }

    /// Whether `path` may be an http(s) URL (downloaded, verified, then read).
    pub fn takes_url(self) -> bool {
        matches!(
            self,
            SourceKind::Wsusscn2
                | SourceKind::SdpCatalog
                | SourceKind::Upstream
                | SourceKind::WsusServer
        )
    }
}

/// One configured catalog source.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub name: String,
    pub kind: SourceKind,
    /// The file or folder (or URL) the source reads.
    pub location: Location,
    /// SHA-256 (lowercase hex) the catalog must have, if pinned.
    pub sha256: Option<String>,
    /// Its own schedule in service mode (`None`: the site's).
    pub schedule: Option<crate::schedule::Schedule>,
    /// For `kind = "plugin"`: the plugin, its config, and where its compiled form is cached.
    pub plugin: Option<(crate::plugin::PluginUse, PathBuf)>,
    /// For `kind = "upstream"`: who this site is to its parent.
    pub auth: Option<UpstreamAuth>,
}

/// How a child site authenticates to its parent.
#[derive(Debug, Clone)]
pub struct UpstreamAuth {
    /// This site's name (`[site] name`), the account the parent knows it by.
    pub site: String,
    /// The secret shared with the parent (its `[[child]]` entry for this site).
    pub secret: String,
    /// Certificates to trust for an https parent (PEM); `None`: the system's roots.
    pub tls_ca: Option<PathBuf>,
}

/// A child site (`[[child]]`): who may sync from this site, and where it is told to.
#[derive(Debug, Clone)]
pub struct ChildSite {
    pub name: String,
    pub secret: String,
    /// Its service's base URL, for sync notifications; `None`: it is not notified and
    /// syncs on its own schedule.
    pub url: Option<String>,
    /// Certificates to trust for an https `url` (PEM).
    pub tls_ca: Option<PathBuf>,
    /// A WSUS downstream server (`wsus = true`): authorized by its name (MS-WSUSSS
    /// `accountName`) alone, with no secret; it never reports its status.
    pub wsus: bool,
}

/// The validated filter.
#[derive(Debug, Clone)]
pub struct FilterConfig {
    pub products: Pick,
    pub classifications: Pick,
    pub languages: LanguageSelection,
    /// Compiled rule sets, in the order they apply.
    pub rule_sets: Vec<crate::rules::RuleSet>,
    /// The stages in order.
    pub order: Vec<Stage>,
    /// See `[filter] mass_removal_percent`.
    pub mass_removal_percent: u32,
    /// Filter plugins (`[[plugin]]`), in order.
    pub plugins: Vec<crate::plugin::PluginUse>,
    /// Where compiled WebAssembly plugins are cached (`plugin-cache/` beside the store).
    pub plugin_cache: PathBuf,
}

/// A stage of the filter chain the config orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Every rule set, in `[filter] rules` order.
    Rules,
    /// Product and classification selection.
    BuiltIn,
    /// Every `[[plugin]]`, in the order listed.
    Plugins,
}

/// When a superseded update expires (Configuration Manager's supersedence rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpireAfter {
    Never,
    Immediately,
    /// This many months after the superseding update's creation date.
    Months(u32),
}

impl ExpireAfter {
    /// `never`, `immediately`, `after 3 months`, `3 months` (any case).
    pub fn parse(text: &str) -> Option<ExpireAfter> {
        let t = text.trim().to_ascii_lowercase();
        match t.as_str() {
            "never" => return Some(ExpireAfter::Never),
            "immediately" => return Some(ExpireAfter::Immediately),
            _ => {}
        }
        let t = t.strip_prefix("after ").unwrap_or(&t);
        let (n, unit) = t.split_once(' ')?;
        let n: u32 = n.trim().parse().ok()?;
        matches!(unit.trim(), "month" | "months").then_some(ExpireAfter::Months(n))
    }
}

/// Supersedence and cleanup settings (`[supersedence]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupersedencePolicy {
    pub updates: ExpireAfter,
    pub feature_upgrades: ExpireAfter,
    pub delete_expired_after_days: Option<u32>,
}

impl Default for SupersedencePolicy {
    fn default() -> Self {
        SupersedencePolicy {
            updates: ExpireAfter::Never,
            feature_upgrades: ExpireAfter::Never,
            delete_expired_after_days: None,
        }
    }
}

/// A validated site configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from (or a label for in-memory configs).
    pub file: PathBuf,
    pub site_name: String,
    pub store_path: PathBuf,
    pub log_path: PathBuf,
    /// The sync log rotates past this size, keeping `log_keep` old files.
    pub log_max_bytes: u64,
    pub log_keep: u32,
    pub sources: Vec<SourceConfig>,
    pub filter: FilterConfig,
    pub supersedence: SupersedencePolicy,
    pub import: ImportPolicy,
    pub service: ServiceConfig,
    /// Child sites that sync from this one.
    pub children: Vec<ChildSite>,
}

impl Config {
    /// The source that is this site's parent (a child site has exactly one, and no other).
    pub fn upstream(&self) -> Option<&SourceConfig> {
        self.sources.iter().find(|s| s.kind == SourceKind::Upstream)
    }
}

/// A file the config names, which must exist.
fn existing_file(
    path: &Path,
    key: &str,
    fail: &dyn Fn(Option<std::ops::Range<usize>>, String) -> Error,
    span: std::ops::Range<usize>,
) -> Result<PathBuf> {
    if path.is_file() {
        Ok(path.to_owned())
    } else {
        Err(fail(
            Some(span),
            format!(
                "{key}: {} does not exist; give a PEM file of certificates",
                path.display()
            ),
        ))
    }
}

/// A secret given inline or through an environment variable.
fn secret_from(
    inline: Option<&String>,
    env: Option<&Spanned<String>>,
    key: &str,
    fail: &dyn Fn(Option<std::ops::Range<usize>>, String) -> Error,
    span: std::ops::Range<usize>,
) -> Result<String> {
    match (inline.filter(|s| !s.is_empty()), env) {
        (Some(s), None) => Ok(s.clone()),
        (None, Some(e)) => std::env::var(e.get_ref())
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                fail(
                    Some(e.span()),
                    format!(
                        "{key}_env: the variable {} is not set; set it to the shared secret",
                        e.get_ref()
                    ),
                )
            }),
        (Some(_), Some(e)) => Err(fail(
            Some(e.span()),
            format!("{key} and {key}_env: give one of them, not both"),
        )),
        (None, None) => Err(fail(
            Some(span),
            format!(
                "{key}: a shared secret is needed (`{key} = \"...\"` or `{key}_env = \"VAR\"`)"
            ),
        )),
    }
}

/// How `patchsync serve` runs the site (`[service]`).
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Address the HTTP API binds to (default 127.0.0.1:8530).
    pub listen: String,
    /// When syncs are due; `None`: on request only.
    pub schedule: Option<crate::schedule::Schedule>,
    /// The bearer token mutating API calls need: `token`, or the variable `token_env`
    /// (default `PATCHSYNC_TOKEN`) names. `None`: mutating calls are refused.
    pub token: Option<String>,
    pub token_env: String,
    /// A failed sync is tried again after this long (default 60 minutes) ...
    pub retry_delay: std::time::Duration,
    /// ... this many times (default 3).
    pub retry_attempts: u32,
    /// A sync still running after this long is stopped (its source rolled back).
    pub max_run: Option<std::time::Duration>,
    /// Alerts (a failed sync, no success for `stale_after`) are POSTed here as JSON ...
    pub alert_webhook: Option<String>,
    /// ... and/or run through `sh -c`, with the JSON on stdin.
    pub alert_command: Option<String>,
    pub stale_after: Option<std::time::Duration>,
    /// Serve HTTPS with this certificate chain and key (PEM files).
    pub tls: Option<(PathBuf, PathBuf)>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            listen: "127.0.0.1:8530".into(),
            schedule: None,
            token: None,
            token_env: "PATCHSYNC_TOKEN".into(),
            retry_delay: std::time::Duration::from_secs(3600),
            retry_attempts: 3,
            max_run: None,
            alert_webhook: None,
            alert_command: None,
            stale_after: None,
            tls: None,
        }
    }
}

/// Which export packages `patchsync import` accepts (`[import]`).
#[derive(Debug, Clone, Default)]
pub struct ImportPolicy {
    /// Trusted ed25519 public keys, 32 bytes each.
    pub trusted_keys: Vec<[u8; 32]>,
    pub allow_unsigned: bool,
}

/// The 1-based line of byte `offset` in `text`.
/// A plugin manifest the site config names; an unreadable one is the site config's error.
fn load_manifest(
    path: &Path,
    fail: &dyn Fn(Option<std::ops::Range<usize>>, String) -> Error,
    span: std::ops::Range<usize>,
) -> Result<crate::plugin::Manifest> {
    if !path.is_file() {
        return Err(fail(
            Some(span),
            format!(
                "plugin manifest {} does not exist; give the path of the plugin's .toml",
                path.display()
            ),
        ));
    }
    crate::plugin::Manifest::load(path)
}

pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            file: path.to_owned(),
            line: None,
            message: match e.kind() {
                std::io::ErrorKind::NotFound => {
                    "no such file; create one with `patchsync init`, or pass --config FILE".into()
                }
                _ => format!("cannot read: {e}"),
            },
        })?;
        let base = path.parent().map(Path::to_owned).unwrap_or_default();
        Self::parse(&text, path, &base)
    }

    /// Validates config text; relative paths are resolved against `base`.
    pub fn parse(text: &str, file: &Path, base: &Path) -> Result<Config> {
        let fail = |span: Option<std::ops::Range<usize>>, message: String| Error::Config {
            file: file.to_owned(),
            line: span.map(|s| line_of(text, s.start)),
            message,
        };
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| fail(e.span(), e.message().trim().to_owned()))?;
        let resolve = |p: &str| {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_owned()
            } else {
                base.join(p)
            }
        };

        let site = raw.site.get_ref();
        if site.name.get_ref().trim().is_empty() {
            return Err(fail(
                Some(site.name.span()),
                "[site] name: must not be empty".into(),
            ));
        }
        if site.store.get_ref().trim().is_empty() {
            return Err(fail(
                Some(site.store.span()),
                "[site] store: must name a file, e.g. \"data/patchsync.db\"".into(),
            ));
        }
        let store_path = resolve(site.store.get_ref());
        let log_path = match &site.log {
            Some(l) => resolve(l.get_ref()),
            None => store_path
                .parent()
                .map(|d| d.join("sync.log"))
                .unwrap_or_else(|| PathBuf::from("sync.log")),
        };

        let mut sources = Vec::new();
        for s in &raw.source {
            let s = s.get_ref();
            let name = s.name.get_ref().trim().to_owned();
            if name.is_empty() {
                return Err(fail(
                    Some(s.name.span()),
                    "[[source]] name: must not be empty".into(),
                ));
            }
            if name == crate::package::IMPORT_SOURCE {
                return Err(fail(
                    Some(s.name.span()),
                    format!(
                        "[[source]] name: '{name}' is reserved for the updates `patchsync import` \
                         brings in; choose another name"
                    ),
                ));
            }
            if sources.iter().any(|o: &SourceConfig| o.name == name) {
                return Err(fail(
                    Some(s.name.span()),
                    format!("[[source]] name: '{name}' is used twice; source names must be unique"),
                ));
            }
            let kind = match SourceKind::parse(s.kind.get_ref()) {
                Some(k) => k,
                None => {
                    return Err(fail(
                        Some(s.kind.span()),
                        format!(
                            "[[source]] kind: '{}' is not a known kind; use one of: {}",
                            s.kind.get_ref(),
                            SourceKind::NAMES.join(", ")
                        ),
                    ));
                }
            };
            if s.path.get_ref().trim().is_empty() {
                return Err(fail(
                    Some(s.path.span()),
                    "[[source]] path: must not be empty".into(),
                ));
            }
            let location = Location::parse(s.path.get_ref(), base);
            if matches!(location, Location::Url(_)) && !kind.takes_url() {
                return Err(fail(
                    Some(s.path.span()),
                    format!(
                        "[[source]] path: a '{}' source reads a local file or folder; download it first \
                         (URLs work for wsusscn2 and sdp-catalog)",
                        kind.as_str()
                    ),
                ));
            }
            let sha256 = match &s.sha256 {
                None => None,
                Some(h) => {
                    let v = h.get_ref().trim().to_ascii_lowercase();
                    if v.len() != 64 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(fail(
                            Some(h.span()),
                            "[[source]] sha256: must be 64 hex digits (the output of `sha256sum FILE`)".into(),
                        ));
                    }
                    if !kind.takes_url() {
                        return Err(fail(
                            Some(h.span()),
                            format!(
                                "[[source]] sha256: pins apply to wsusscn2 and sdp-catalog sources, not '{}'",
                                kind.as_str()
                            ),
                        ));
                    }
                    Some(v)
                }
            };
            // The time zone is the service's; checked again below once it is known.
            let tz = raw
                .service
                .as_ref()
                .and_then(|s| s.get_ref().timezone.as_ref())
                .map(|t| t.get_ref().as_str())
                .unwrap_or("UTC");
            let schedule = match &s.schedule {
                Some(text) => Some(
                    crate::schedule::Schedule::parse(text.get_ref(), tz).map_err(|m| {
                        fail(Some(text.span()), format!("[[source]] schedule: {m}"))
                    })?,
                ),
                // Vendor catalogs change rarely: weekly, as Configuration Manager does.
                None if kind == SourceKind::SdpCatalog => {
                    Some(crate::schedule::Schedule::parse("every 7 days", "UTC").expect("valid"))
                }
                None => None,
            };
            let plugin = match (&s.config, kind) {
                (Some(c), k) if k != SourceKind::Plugin => {
                    return Err(fail(
                        Some(c.span()),
                        format!(
                            "[[source]] config: only plugin sources take a config table, not '{}'",
                            k.as_str()
                        ),
                    ));
                }
                (c, SourceKind::Plugin) => {
                    let m = load_manifest(&resolve(s.path.get_ref()), &fail, s.path.span())?;
                    if m.kind != crate::plugin::PluginKind::Source {
                        return Err(fail(
                            Some(s.path.span()),
                            format!(
                                "[[source]] path: plugin '{}' is a filter; list it in [[plugin]], \
                                 not as a source",
                                m.name
                            ),
                        ));
                    }
                    let u = crate::plugin::PluginUse::new(m, c.as_ref().map(|c| c.get_ref()), None);
                    Some((u, crate::plugin::cache_dir(&store_path)))
                }
                _ => None,
            };
            let auth = if matches!(kind, SourceKind::Upstream | SourceKind::WsusServer) {
                if !matches!(location, Location::Url(_)) {
                    return Err(fail(
                        Some(s.path.span()),
                        if kind == SourceKind::Upstream {
                            "[[source]] path: an upstream source is the parent's URL, e.g. \
                             \"http://cas.contoso.com:8530/\""
                        } else {
                            "[[source]] path: a wsus-server source is the server's URL, e.g. \
                             \"https://wsus.contoso.com:8531/\""
                        }
                        .into(),
                    ));
                }
                Some(UpstreamAuth {
                    site: site.name.get_ref().trim().to_owned(),
                    // A WSUS server identifies its downstream servers by name; a secret is
                    // only sent (as HTTP Basic) when one is configured.
                    secret: if kind == SourceKind::WsusServer
                        && s.secret.is_none()
                        && s.secret_env.is_none()
                    {
                        String::new()
                    } else {
                        secret_from(
                            s.secret.as_ref(),
                            s.secret_env.as_ref(),
                            "[[source]] secret",
                            &fail,
                            s.name.span(),
                        )?
                    },
                    tls_ca: match &s.tls_ca {
                        Some(c) => Some(existing_file(
                            &resolve(c.get_ref()),
                            "[[source]] tls_ca",
                            &fail,
                            c.span(),
                        )?),
                        None => None,
                    },
                })
            } else {
                if let Some(e) = &s.secret_env {
                    return Err(fail(
                        Some(e.span()),
                        "[[source]] secret_env: only upstream and wsus-server sources take a secret".into(),
                    ));
                }
                if let Some(c) = &s.tls_ca {
                    return Err(fail(
                        Some(c.span()),
                        "[[source]] tls_ca: only upstream and wsus-server sources take one".into(),
                    ));
                }
                if s.secret.is_some() {
                    return Err(fail(
                        Some(s.name.span()),
                        "[[source]] secret: only upstream and wsus-server sources take a secret"
                            .into(),
                    ));
                }
                None
            };
            sources.push(SourceConfig {
                name,
                kind,
                location,
                sha256,
                schedule,
                plugin,
                auth,
            });
        }

        let f = raw.filter.as_ref();
        let list = |v: Option<&Spanned<Vec<String>>>, key: &str| -> Result<Option<Vec<String>>> {
            match v {
                None => Ok(None),
                Some(v) => {
                    if let Some(bad) = v.get_ref().iter().find(|s| s.trim().is_empty()) {
                        return Err(fail(
                            Some(v.span()),
                            format!("[filter] {key}: empty entry {bad:?}"),
                        ));
                    }
                    Ok(Some(v.get_ref().clone()))
                }
            }
        };
        let products = list(f.and_then(|f| f.products.as_ref()), "products")?.unwrap_or_default();
        let classifications = list(
            f.and_then(|f| f.classifications.as_ref()),
            "classifications",
        )?
        .unwrap_or_else(|| vec!["*".into()]);
        let languages = list(f.and_then(|f| f.languages.as_ref()), "languages")?
            .unwrap_or_else(|| vec!["en".into()]);
        // Rule sets: inline ones by name, files by path, in the order `rules` gives.
        let mut inline: Vec<(String, crate::rules::RuleSet)> = Vec::new();
        for (i, r) in raw.rule_set.into_iter().enumerate() {
            let span = r.span();
            let raw_set = r.into_inner();
            if raw_set.name.is_none() {
                return Err(fail(
                    Some(span),
                    format!(
                        "[[rule_set]] {}: give it a name = \"...\" ([filter] rules lists sets by name)",
                        i + 1
                    ),
                ));
            }
            let set = crate::rules::compile(raw_set, text, file, "inline")?;
            if inline.iter().any(|(n, _)| *n == set.name) {
                return Err(fail(
                    Some(span),
                    format!("[[rule_set]] name: '{}' is used twice", set.name),
                ));
            }
            inline.push((set.name.clone(), set));
        }
        let mut rule_sets = Vec::new();
        match f.and_then(|f| f.rules.as_ref()) {
            None => rule_sets.extend(inline.into_iter().map(|(_, s)| s)),
            Some(list) => {
                for entry in list.get_ref() {
                    if let Some(i) = inline.iter().position(|(n, _)| n == entry) {
                        rule_sets.push(inline.remove(i).1);
                    } else if entry.ends_with(".toml")
                        || entry.contains('/')
                        || entry.contains('\\')
                    {
                        rule_sets.push(crate::rules::load_file(&resolve(entry))?);
                    } else {
                        return Err(fail(
                            Some(list.span()),
                            format!(
                                "[filter] rules: '{entry}' is neither a [[rule_set]] name nor a rule file (*.toml)"
                            ),
                        ));
                    }
                }
                if let Some((n, _)) = inline.first() {
                    return Err(fail(
                        Some(list.span()),
                        format!(
                            "[filter] rules: the [[rule_set]] '{n}' is defined but not listed; add it where it applies"
                        ),
                    ));
                }
            }
        }
        for (i, a) in rule_sets.iter().enumerate() {
            if rule_sets[..i].iter().any(|b| b.name == a.name) {
                return Err(fail(
                    f.and_then(|f| f.rules.as_ref()).map(|l| l.span()),
                    format!(
                        "[filter] rules: two rule sets are named '{}'; set `name` in one of them",
                        a.name
                    ),
                ));
            }
        }
        let mut plugins = Vec::new();
        for p in &raw.plugin {
            let p = p.get_ref();
            let m = load_manifest(&resolve(p.manifest.get_ref()), &fail, p.manifest.span())?;
            if m.kind != crate::plugin::PluginKind::Filter {
                return Err(fail(
                    Some(p.manifest.span()),
                    format!(
                        "[[plugin]] manifest: plugin '{}' is a source; add it as a [[source]] \
                         with kind = \"plugin\"",
                        m.name
                    ),
                ));
            }
            if plugins
                .iter()
                .any(|u: &crate::plugin::PluginUse| u.manifest.name == m.name)
            {
                return Err(fail(
                    Some(p.manifest.span()),
                    format!("[[plugin]] manifest: plugin '{}' is listed twice", m.name),
                ));
            }
            let on_failure = match &p.on_failure {
                None => None,
                Some(o) => Some(crate::plugin::OnFailure::parse(o.get_ref()).ok_or_else(|| {
                    fail(
                        Some(o.span()),
                        format!(
                            "[[plugin]] on_failure: '{}' is not a choice; use \"abort\" or \"skip\"",
                            o.get_ref()
                        ),
                    )
                })?),
            };
            plugins.push(crate::plugin::PluginUse::new(
                m,
                p.config.as_ref(),
                on_failure,
            ));
        }
        let order = match f.and_then(|f| f.order.as_ref()) {
            None => vec![Stage::Rules, Stage::BuiltIn, Stage::Plugins],
            Some(list) => {
                let mut out = Vec::new();
                for s in list.get_ref() {
                    let stage = match s.as_str() {
                        "rules" => Stage::Rules,
                        "built-in" => Stage::BuiltIn,
                        "plugins" => Stage::Plugins,
                        other => {
                            return Err(fail(
                                Some(list.span()),
                                format!(
                                    "[filter] order: '{other}' is not a stage; stages: \"rules\", \"built-in\", \"plugins\""
                                ),
                            ));
                        }
                    };
                    if out.contains(&stage) {
                        return Err(fail(
                            Some(list.span()),
                            format!("[filter] order: '{s}' is listed twice"),
                        ));
                    }
                    out.push(stage);
                }
                out
            }
        };
        if let Some(list) = f.and_then(|f| f.order.as_ref())
            && !plugins.is_empty()
            && !order.contains(&Stage::Plugins)
        {
            return Err(fail(
                Some(list.span()),
                "[filter] order: [[plugin]] filters are configured but \"plugins\" is not in the \
                 order; add it where they should run (e.g. [\"rules\", \"built-in\", \"plugins\"])"
                    .into(),
            ));
        }
        let mass_removal_percent = match f.and_then(|f| f.mass_removal_percent.as_ref()) {
            None => 20,
            Some(p) => u32::try_from(*p.get_ref())
                .ok()
                .filter(|p| *p <= 100)
                .ok_or_else(|| {
                    fail(
                        Some(p.span()),
                        "[filter] mass_removal_percent: a share from 0 to 100".into(),
                    )
                })?,
        };
        let mut supersedence = SupersedencePolicy::default();
        if let Some(raw) = &raw.supersedence {
            let rule = |v: &Spanned<String>, key: &str| {
                ExpireAfter::parse(v.get_ref()).ok_or_else(|| {
                    fail(
                        Some(v.span()),
                        format!(
                            "[supersedence] {key}: '{}' is not \"never\", \"immediately\" or \"after N months\"",
                            v.get_ref()
                        ),
                    )
                })
            };
            if let Some(v) = &raw.expire {
                supersedence.updates = rule(v, "expire")?;
            }
            supersedence.feature_upgrades = match &raw.feature_upgrades {
                Some(v) => rule(v, "feature_upgrades")?,
                None => supersedence.updates,
            };
            if let Some(d) = &raw.delete_expired_after_days {
                let days = u32::try_from(*d.get_ref()).map_err(|_| {
                    fail(
                        Some(d.span()),
                        "[supersedence] delete_expired_after_days: must be 0 or more".into(),
                    )
                })?;
                supersedence.delete_expired_after_days = Some(days);
            }
        }
        let mut import = ImportPolicy::default();
        if let Some(raw) = &raw.import {
            import.allow_unsigned = raw.allow_unsigned.unwrap_or(false);
            if let Some(keys) = &raw.trusted_keys {
                for k in keys.get_ref() {
                    let text = if k
                        .trim_start()
                        .starts_with(crate::package::PUBLIC_KEY_PREFIX)
                    {
                        k.clone()
                    } else {
                        std::fs::read_to_string(resolve(k.trim())).map_err(|e| {
                            fail(
                                Some(keys.span()),
                                format!(
                                    "[import] trusted_keys: '{k}' is neither a key \
                                     (\"{}...\") nor a readable key file: {e}",
                                    crate::package::PUBLIC_KEY_PREFIX
                                ),
                            )
                        })?
                    };
                    let key = crate::package::parse_public_key(&text).map_err(|m| {
                        fail(
                            Some(keys.span()),
                            format!("[import] trusted_keys: '{k}': {m}"),
                        )
                    })?;
                    import.trusted_keys.push(key);
                }
            }
        }
        let log_max_bytes = match &site.log_max_mb {
            None => 10_000_000,
            Some(m) if *m.get_ref() > 0.0 && m.get_ref().is_finite() => (*m.get_ref() * 1e6) as u64,
            Some(m) => {
                return Err(fail(
                    Some(m.span()),
                    "[site] log_max_mb: a positive size in MB".into(),
                ));
            }
        };
        let log_keep = match &site.log_keep {
            None => 5,
            Some(k) => u32::try_from(*k.get_ref())
                .map_err(|_| fail(Some(k.span()), "[site] log_keep: 0 or more".into()))?,
        };
        let mut service = ServiceConfig::default();
        if let Some(raw) = &raw.service {
            let span = raw.span();
            let raw = raw.get_ref();
            if let Some(l) = &raw.listen {
                if l.get_ref().parse::<std::net::SocketAddr>().is_err() {
                    return Err(fail(
                        Some(l.span()),
                        format!(
                            "[service] listen: '{}' is not an address:port such as \"127.0.0.1:8530\"",
                            l.get_ref()
                        ),
                    ));
                }
                service.listen = l.get_ref().clone();
            }
            let tz = raw
                .timezone
                .as_ref()
                .map(|t| t.get_ref().as_str())
                .unwrap_or("UTC");
            if let Some(t) = &raw.timezone {
                crate::schedule::Schedule::parse("daily at 00:00", tz)
                    .map_err(|m| fail(Some(t.span()), format!("[service] timezone: {m}")))?;
            }
            if let Some(s) = &raw.schedule {
                service.schedule = Some(
                    crate::schedule::Schedule::parse(s.get_ref(), tz)
                        .map_err(|m| fail(Some(s.span()), format!("[service] schedule: {m}")))?,
                );
            }
            service.token = raw.token.clone().filter(|t| !t.is_empty());
            if let Some(e) = &raw.token_env {
                service.token_env = e.clone();
            }
            let positive = |v: &Option<Spanned<i64>>, key: &str| -> Result<Option<u64>> {
                match v {
                    None => Ok(None),
                    Some(v) if *v.get_ref() >= 0 => Ok(Some(*v.get_ref() as u64)),
                    Some(v) => Err(fail(
                        Some(v.span()),
                        format!("[service] {key}: must be 0 or more"),
                    )),
                }
            };
            if let Some(m) = positive(&raw.retry_delay_minutes, "retry_delay_minutes")? {
                service.retry_delay = std::time::Duration::from_secs(m * 60);
            }
            if let Some(n) = positive(&raw.retry_attempts, "retry_attempts")? {
                service.retry_attempts = n as u32;
            }
            if let Some(m) = &raw.max_run_minutes {
                let v = *m.get_ref();
                if !(v > 0.0 && v.is_finite()) {
                    return Err(fail(
                        Some(m.span()),
                        "[service] max_run_minutes: a positive number of minutes".into(),
                    ));
                }
                service.max_run = Some(std::time::Duration::from_secs_f64(v * 60.0));
            }
            let _ = span;
            if let Some(w) = &raw.alert_webhook {
                let u = w.get_ref();
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    return Err(fail(
                        Some(w.span()),
                        format!("[service] alert_webhook: '{u}' is not an http(s) URL"),
                    ));
                }
                service.alert_webhook = Some(u.clone());
            }
            service.alert_command = raw.alert_command.clone().filter(|c| !c.trim().is_empty());
            service.tls = match (&raw.tls_cert, &raw.tls_key) {
                (None, None) => None,
                (Some(c), Some(k)) => Some((resolve(c.get_ref()), resolve(k.get_ref()))),
                (Some(x), None) | (None, Some(x)) => {
                    return Err(fail(
                        Some(x.span()),
                        "[service] tls_cert and tls_key go together: give both (PEM files) or neither".into(),
                    ));
                }
            };
            if let Some(h) = &raw.stale_after_hours {
                let v = *h.get_ref();
                if !(v > 0.0 && v.is_finite()) {
                    return Err(fail(
                        Some(h.span()),
                        "[service] stale_after_hours: a positive number of hours".into(),
                    ));
                }
                service.stale_after = Some(std::time::Duration::from_secs_f64(v * 3600.0));
            }
        }
        // A child site syncs everything its parent holds: the selection is the top's.
        if let Some(up) = raw
            .source
            .iter()
            .find(|s| s.get_ref().kind.get_ref() == "upstream")
        {
            if raw.source.len() > 1 {
                return Err(fail(
                    Some(up.span()),
                    "[[source]] kind = \"upstream\": a child site syncs from its parent only; \
                     move the other sources to the top-level site"
                        .into(),
                ));
            }
            let top_only: [(&str, Option<std::ops::Range<usize>>); 4] = [
                (
                    "products",
                    f.and_then(|f| f.products.as_ref()).map(|v| v.span()),
                ),
                (
                    "classifications",
                    f.and_then(|f| f.classifications.as_ref()).map(|v| v.span()),
                ),
                ("rules", f.and_then(|f| f.rules.as_ref()).map(|v| v.span())),
                ("order", f.and_then(|f| f.order.as_ref()).map(|v| v.span())),
            ];
            for (key, span) in top_only {
                if let Some(span) = span {
                    return Err(fail(
                        Some(span),
                        format!(
                            "[filter] {key}: this site syncs from its parent (source '{}'), and \
                             {key} are set only at the top-level site; remove it here (a child \
                             may choose only its languages)",
                            up.get_ref().name.get_ref()
                        ),
                    ));
                }
            }
            if !rule_sets.is_empty() || !plugins.is_empty() {
                return Err(fail(
                    Some(up.span()),
                    "[[rule_set]] / [[plugin]]: rules and filter plugins are set only at the \
                     top-level site; this site syncs everything its parent holds"
                        .into(),
                ));
            }
        }
        let mut children: Vec<ChildSite> = Vec::new();
        for c in &raw.child {
            let span = c.span();
            let c = c.get_ref();
            let name = c.name.get_ref().trim().to_owned();
            if name.is_empty() {
                return Err(fail(
                    Some(c.name.span()),
                    "[[child]] name: must not be empty".into(),
                ));
            }
            if children.iter().any(|o| o.name.eq_ignore_ascii_case(&name)) {
                return Err(fail(
                    Some(c.name.span()),
                    format!("[[child]] name: '{name}' is listed twice"),
                ));
            }
            let wsus = c.wsus.as_ref().is_some_and(|w| *w.get_ref());
            let secret = if wsus {
                if c.secret.is_some() || c.secret_env.is_some() || c.url.is_some() {
                    return Err(fail(
                        Some(span),
                        format!(
                            "[[child]] '{name}': a WSUS downstream server (wsus = true) is known by \
                             its name only: it takes no secret, and no url (it syncs on its own \
                             schedule); remove them, or drop wsus = true for a patchsync site"
                        ),
                    ));
                }
                String::new()
            } else {
                secret_from(
                    c.secret.as_ref(),
                    c.secret_env.as_ref(),
                    "[[child]] secret",
                    &fail,
                    span,
                )?
            };
            let url = match &c.url {
                None => None,
                Some(u) => {
                    let v = u.get_ref().trim().trim_end_matches('/').to_owned();
                    if !(v.starts_with("http://") || v.starts_with("https://")) {
                        return Err(fail(
                            Some(u.span()),
                            format!("[[child]] url: '{v}' is not an http(s) URL"),
                        ));
                    }
                    Some(v)
                }
            };
            let tls_ca = match &c.tls_ca {
                Some(p) => Some(existing_file(
                    &resolve(p.get_ref()),
                    "[[child]] tls_ca",
                    &fail,
                    p.span(),
                )?),
                None => None,
            };
            children.push(ChildSite {
                name,
                secret,
                url,
                tls_ca,
                wsus,
            });
        }
        let plugin_cache = crate::plugin::cache_dir(&store_path);
        let is_child = sources.iter().any(|s| s.kind == SourceKind::Upstream);
        Ok(Config {
            children,
            service,
            import,
            supersedence,
            file: file.to_owned(),
            site_name: site.name.get_ref().trim().to_owned(),
            store_path,
            log_path,
            log_max_bytes,
            log_keep,
            sources,
            filter: FilterConfig {
                // A child takes every product its parent serves.
                products: if is_child {
                    Pick::All
                } else {
                    Pick::from_list(&products)
                },
                classifications: Pick::from_list(&classifications),
                languages: LanguageSelection::new(&languages),
                rule_sets,
                order,
                mass_removal_percent,
                plugins,
                plugin_cache,
            },
        })
    }
}

/// The starter config `patchsync init` writes.
pub const STARTER_CONFIG: &str = r#"# patchsync site configuration.
# Relative paths are relative to this file.

[site]
# Site code, shown in status, logs and (later) the hierarchy.
name = "CAS"
# The SQLite store. Query it with `sqlite3`; engine/docs/schema.md explains the tables.
store = "data/patchsync.db"
# The sync log (like wsyncmgr.log); default: sync.log beside the store.
# log = "data/sync.log"

# Catalog sources, synced in this order. Kinds: wsus-export, directory, wsusscn2,
# sdp-catalog, wsus-server, upstream, plugin (a WebAssembly source plugin: `path` is its manifest). wsusscn2 and sdp-catalog also take an https:// URL as `path`, and any
# file source an optional `sha256 = "..."` pin that rejects a catalog with another digest.
[[source]]
name = "contoso-export"
kind = "wsus-export"            # a `wsusutil export` CAB (package.xml + metadata.txt)
path = "exports/WSUS.cab"

# [[source]]
# name = "hp"
# kind = "sdp-catalog"          # a vendor catalog: .xml, .cab, .zip, or a single .sdp
# path = "https://hpia.hpcloud.hp.com/downloads/sccmcatalog/HpCatalogForSms.latest.cab"

# [[source]]
# name = "hand-picked"
# kind = "directory"            # a folder of update XML files
# path = "updates/"

# A child site has one source, its parent (engine/docs/hierarchy.md), and no products or
# classifications of its own:
# [[source]]
# name = "cas"
# kind = "upstream"             # the parent's `patchsync serve` (or a WSUS server), MS-WSUSSS
# path = "http://cas.contoso.com:8530/"
# secret_env = "PATCHSYNC_PARENT_SECRET"   # equal to the parent's [[child]] secret for this site

# A top-level site can take its catalog from a WSUS server over the same protocol; it asks
# for the [filter] products and classifications only:
# [[source]]
# name = "corp-wsus"
# kind = "wsus-server"
# path = "https://wsus.contoso.com:8531/"

# [[source]]
# name = "contoso"
# kind = "plugin"               # a source plugin (engine/docs/plugins.md)
# path = "plugins/json-feed-source.toml"
# config = { url = "https://updates.contoso.com/feed.json" }

[filter]
# Products by title or GUID; a company or product family selects every product below it.
# "*" selects all. Empty (the default) syncs categories only: run a first sync, look at
# `patchsync categories --kind product`, then choose.
products = []
# Classifications by title or GUID; default "*".
classifications = ["Security Updates", "Critical Updates"]
# Languages whose titles and descriptions are kept; English is always kept.
languages = ["en"]
# Rule sets, applied before the product / classification selection (engine/docs/rules.md):
# rule files, or names of [[rule_set]] tables below. Check one with `patchsync rules check`.
# rules = ["rules/no-previews.toml"]
# order = ["rules", "built-in", "plugins"]
# A sync that would remove more than this share of a source's updates is refused unless
# --allow-mass-removal (`patchsync plan` shows what a change would do first).
# mass_removal_percent = 20

# Filter plugins, after the built-in selection (engine/docs/plugins.md). Each names its
# manifest; `config` overrides keys of the manifest's [config]; on_failure "abort" | "skip".
# [[plugin]]
# manifest = "plugins/severity-filter.toml"
# config = { minimum = "Important" }

# [supersedence]
# When an update superseded by another update in the store expires: "never" (default),
# "immediately", or "after N months" (counted from the superseding update's creation date;
# Configuration Manager's default is 3 months). Pinned updates never expire this way.
# expire = "after 3 months"
# feature_upgrades = "immediately"     # classification Upgrades; default: as `expire`
# Delete updates that have been expired for longer than this (pinned ones are kept).
# delete_expired_after_days = 90

# [service]
# `patchsync serve`: syncs on this schedule ("daily at 03:30", "weekly on Sunday at
# 02:00", "every 6 hours", or cron "30 2 * * 0") and on request; HTTP API, /metrics and a
# status page (engine/docs/service.md).
# listen = "127.0.0.1:8530"
# schedule = "weekly on Sunday at 02:00"
# timezone = "UTC"
# token = "..."                       # or set PATCHSYNC_TOKEN; needed by POST /api/v1/sync
# retry_delay_minutes = 60
# retry_attempts = 3
# max_run_minutes = 240
# alert_webhook = "https://chat.example.com/hooks/patchsync"
# alert_command = "logger -t patchsync"
# stale_after_hours = 192
# tls_cert = "tls/patchsync.pem"      # HTTPS: certificate chain and key, PEM
# tls_key = "tls/patchsync.key"

# Child sites that sync from this one over MS-WSUSSS (engine/docs/hierarchy.md): each
# authenticates with its own secret; `url` is its service, told to sync after each change.
# [[child]]
# name = "PR1"
# secret_env = "PATCHSYNC_PR1_SECRET"
# url = "http://pr1.contoso.com:8530"
# [[child]]
# name = "wsus2.contoso.com"     # a WSUS downstream server: known by its name, no secret
# wsus = true

# [import]
# A disconnected site takes its catalog from `patchsync export` packages of a connected
# site (`patchsync import FILE`). Keys whose signatures it trusts: `ed25519:...` lines as
# `patchsync keygen` writes them in NAME.pub, or paths of such files.
# trusted_keys = ["keys/cas.pub"]
# allow_unsigned = false
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<Config> {
        Config::parse(t, Path::new("/etc/ps/site.toml"), Path::new("/etc/ps"))
    }

    #[test]
    fn starter_config_is_valid() {
        let c = parse(STARTER_CONFIG).unwrap();
        assert_eq!(c.site_name, "CAS");
        assert_eq!(c.store_path, Path::new("/etc/ps/data/patchsync.db"));
        assert_eq!(c.log_path, Path::new("/etc/ps/data/sync.log"));
        assert_eq!(
            c.sources[0].location,
            Location::Path(PathBuf::from("/etc/ps/exports/WSUS.cab"))
        );
        assert_eq!(c.filter.products, Pick::Some(vec![]));
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let t = STARTER_CONFIG.replace(
            "languages = [\"en\"]",
            "languages = [\"en\"]\nlanguage = \"de\"",
        );
        let e = parse(&t).unwrap_err().to_string();
        let line = t.lines().position(|l| l.starts_with("language =")).unwrap() + 1;
        assert!(e.starts_with(&format!("/etc/ps/site.toml:{line}:")), "{e}");
        assert!(e.contains("unknown field `language`"), "{e}");
    }

    #[test]
    fn supersedence_rules_parse_and_explain() {
        assert_eq!(
            ExpireAfter::parse("After 3 Months"),
            Some(ExpireAfter::Months(3))
        );
        assert_eq!(ExpireAfter::parse("1 month"), Some(ExpireAfter::Months(1)));
        assert_eq!(
            ExpireAfter::parse("immediately"),
            Some(ExpireAfter::Immediately)
        );
        assert_eq!(ExpireAfter::parse("soon"), None);
        let t = format!("{STARTER_CONFIG}\n[supersedence]\nexpire = \"after 2 weeks\"\n");
        let e = parse(&t).unwrap_err().to_string();
        assert!(
            e.contains("[supersedence] expire") && e.contains("after N months"),
            "{e}"
        );
        let t = format!("{STARTER_CONFIG}\n[supersedence]\nexpire = \"immediately\"\n");
        let c = parse(&t).unwrap();
        assert_eq!(c.supersedence.feature_upgrades, ExpireAfter::Immediately);
    }

    #[test]
    fn bad_kind_is_explained() {
        let t = STARTER_CONFIG.replace("kind = \"wsus-export\"", "kind = \"wsus\"");
        let e = parse(&t).unwrap_err().to_string();
        let line = t
            .lines()
            .position(|l| l.starts_with("kind = \"wsus\""))
            .unwrap()
            + 1;
        assert!(e.starts_with(&format!("/etc/ps/site.toml:{line}:")), "{e}");
        assert!(
            e.contains("wsus-export, directory, wsusscn2, sdp-catalog"),
            "{e}"
        );
    }
}
