//! Where a catalog file comes from: a local path, or an http(s) URL that is streamed to a
//! temporary file, checked (complete, and matching the configured `sha256` pin if any), and
//! only then read. A failed or cut-off download leaves nothing behind.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Whole-download time limit; a vendor catalog is tens of MB, an offline scan file ~1 GB.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// Time to connect and to receive the response headers.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A catalog's location as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Path(PathBuf),
    Url(String),
}

impl Location {
    /// `http://` and `https://` are URLs; anything else is a path.
    pub fn parse(text: &str, base: &Path) -> Location {
        let t = text.trim();
        let lower = t.to_ascii_lowercase();
        if lower.starts_with("https://") || lower.starts_with("http://") {
            Location::Url(t.to_owned())
        } else {
            let p = Path::new(t);
            Location::Path(if p.is_absolute() {
                p.to_owned()
            } else {
                base.join(p)
            })
        }
    }

    /// How messages name it.
    pub fn display(&self) -> String {
        match self {
            Location::Path(p) => p.display().to_string(),
            Location::Url(u) => u.clone(),
        }
    }
}

/// A catalog file ready to read: the configured file, or a verified download that is
/// deleted when this is dropped.
#[derive(Debug)]
pub struct LocalCatalog {
    pub path: PathBuf,
    /// Cheap "may have changed" string: size and time for a file, the digest for a download.
    pub fingerprint: String,
    /// What the server said of a download, for the next sync's "changed since?".
    pub validators: Validators,
    _download: Option<tempfile::TempPath>,
}

/// A server's validators for the last download (`ETag`, `Last-Modified`) and the
/// fingerprint that download had. Kept in the source's cursor, so the next sync asks the
/// server whether the catalog changed instead of downloading it again.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub fingerprint: Option<String>,
}

/// One source's catalog file for one sync: downloaded at most once, and not at all when the
/// server says it has not changed since the validators the last sync kept and nothing needs
/// the file's contents.
#[derive(Debug)]
pub struct CatalogFile {
    source: String,
    location: Location,
    pin: Option<String>,
    previous: Validators,
    local: Option<LocalCatalog>,
}

impl CatalogFile {
    pub fn new(source: &str, location: Location, pin: Option<String>) -> Self {
        CatalogFile {
            source: source.to_owned(),
            location,
            pin,
            previous: Validators::default(),
            local: None,
        }
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// What the last successful sync kept.
    pub fn resume(&mut self, previous: Option<Validators>) {
        self.previous = previous.unwrap_or_default();
    }

    /// The catalog's fingerprint. For a URL with validators from the last sync this is a
    /// conditional request: "not modified" answers with the last fingerprint, downloading
    /// nothing.
    pub fn fingerprint(&mut self) -> Result<String> {
        if let Some(l) = &self.local {
            return Ok(l.fingerprint.clone());
        }
        if let (Location::Url(url), Some(fp)) = (&self.location, &self.previous.fingerprint)
            && (self.previous.etag.is_some() || self.previous.last_modified.is_some())
        {
            match download(&self.source, url, self.pin.as_deref(), Some(&self.previous))? {
                None => {
                    // Not modified: the file is the one the pin (if any) was checked against,
                    // unless the pin itself changed since.
                    if let Some(pin) = &self.pin {
                        let had = fp.trim_start_matches("sha256:");
                        check_pin(&self.source, url, pin, had)?;
                    }
                    return Ok(fp.clone());
                }
                Some(l) => {
                    let fp = l.fingerprint.clone();
                    self.local = Some(l);
                    return Ok(fp);
                }
            }
        }
        Ok(self.local()?.fingerprint.clone())
    }

    /// The file to read, downloaded now if the fingerprint did not need to.
    pub fn local(&mut self) -> Result<&LocalCatalog> {
        if self.local.is_none() {
            self.local = Some(materialize(
                &self.source,
                &self.location,
                self.pin.as_deref(),
            )?);
        }
        Ok(self.local.as_ref().expect("set above"))
    }

    /// The validators to keep for the next sync.
    pub fn validators(&self) -> Option<Validators> {
        match (&self.location, &self.local) {
            (Location::Path(_), _) => None,
            (Location::Url(_), Some(l)) => Some(l.validators.clone()),
            (Location::Url(_), None) => Some(self.previous.clone()),
        }
    }
}

/// Makes `location` readable as a local file, checking the optional SHA-256 pin (hex).
fn materialize(source: &str, location: &Location, pin: Option<&str>) -> Result<LocalCatalog> {
    match location {
        Location::Path(path) => {
            let fingerprint = super::wsus_export::file_fingerprint(path).map_err(|e| {
                Error::source(
                    source,
                    path.display().to_string(),
                    format!("cannot read the catalog: {e}"),
                )
            })?;
            if let Some(pin) = pin {
                let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
                let digest = sha256_of(&mut f).map_err(|e| Error::io(path, e))?;
                check_pin(source, &path.display().to_string(), pin, &digest)?;
            }
            Ok(LocalCatalog {
                path: path.clone(),
                fingerprint,
                validators: Validators::default(),
                _download: None,
            })
        }
        Location::Url(url) => Ok(download(source, url, pin, None)?.expect("unconditional")),
    }
}

fn check_pin(source: &str, item: &str, pin: &str, actual: &str) -> Result<()> {
    if pin.trim().eq_ignore_ascii_case(actual) {
        return Ok(());
    }
    Err(Error::source(
        source,
        item,
        format!(
            "SHA-256 mismatch: the config pins {} but the catalog's digest is {actual}; \
             if the vendor published a new catalog, check it and update `sha256` in the source's config",
            pin.trim().to_ascii_lowercase()
        ),
    ))
}

fn sha256_of(r: &mut dyn Read) -> std::io::Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Downloads `url`; with `since`, asks for it only if it changed and returns `None` when
/// the server answers "not modified".
fn download(
    source: &str,
    url: &str,
    pin: Option<&str>,
    since: Option<&Validators>,
) -> Result<Option<LocalCatalog>> {
    let fail = |m: String| Error::source(source, url, m);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(DOWNLOAD_TIMEOUT))
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_recv_response(Some(CONNECT_TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent.get(url).header(
        "User-Agent",
        concat!("patchsync/", env!("CARGO_PKG_VERSION")),
    );
    if let Some(v) = since {
        if let Some(etag) = &v.etag {
            request = request.header("If-None-Match", etag.as_str());
        }
        if let Some(lm) = &v.last_modified {
            request = request.header("If-Modified-Since", lm.as_str());
        }
    }
    let mut response = request.call().map_err(|e| {
        fail(format!(
            "download failed: {e}; check the URL and the network"
        ))
    })?;
    let status = response.status();
    if since.is_some() && status.as_u16() == 304 {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(fail(format!(
            "the server answered HTTP {}; check the URL (the store is unchanged)",
            status
        )));
    }
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_owned())
    };
    let expected: Option<u64> = header("content-length").and_then(|v| v.parse().ok());
    let (etag, last_modified) = (header("etag"), header("last-modified"));
    let tmp = tempfile::Builder::new()
        .prefix("patchsync-download-")
        .tempfile()
        .map_err(|e| fail(format!("cannot create a temporary file: {e}")))?;
    let (mut file, temp_path) = tmp.into_parts();
    let mut reader = response.body_mut().as_reader();
    let mut hasher = Sha256::new();
    let mut got: u64 = 0;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                return Err(fail(format!(
                    "download cut off after {got} bytes{}: {e}; the store is unchanged, sync again",
                    expected.map(|t| format!(" of {t}")).unwrap_or_default()
                )));
            }
        };
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])
            .map_err(|e| fail(format!("cannot write the download: {e}")))?;
        got += n as u64;
    }
    if let Some(t) = expected
        && t != got
    {
        return Err(fail(format!(
            "download cut off: received {got} of {t} bytes; the store is unchanged, sync again"
        )));
    }
    file.flush()
        .map_err(|e| fail(format!("cannot write the download: {e}")))?;
    let digest = hex(&hasher.finalize());
    if let Some(pin) = pin {
        check_pin(source, url, pin, &digest)?;
    }
    let fingerprint = format!("sha256:{digest}");
    Ok(Some(LocalCatalog {
        path: temp_path.to_path_buf(),
        validators: Validators {
            etag,
            last_modified,
            fingerprint: Some(fingerprint.clone()),
        },
        fingerprint,
        _download: Some(temp_path),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_paths_are_told_apart() {
        let base = Path::new("/etc/patchsync");
        assert_eq!(
            Location::parse("HTTPS://vendor.example/cat.cab", base),
            Location::Url("HTTPS://vendor.example/cat.cab".into())
        );
        assert_eq!(
            Location::parse("data/cat.zip", base),
            Location::Path(PathBuf::from("/etc/patchsync/data/cat.zip"))
        );
    }

    #[test]
    fn a_pin_mismatch_names_both_digests() {
        let e = check_pin("hp", "cat.zip", "AA", "bb")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("aa") && e.contains("bb") && e.contains("'hp'"),
            "{e}"
        );
        assert!(check_pin("hp", "cat.zip", " BB ", "bb").is_ok());
    }
}
