//! Opening a package for import: everything is checked before the store is touched, in
//! the order that gives the most useful message (framing, format version, signature, then
//! each part's digest).

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::{
    END_MAGIC, FOOTER_LEN, FORMAT, FORMAT_VERSION, MAGIC, MANIFEST, Manifest, PARTS, SIGNATURE,
    Signature, key_id, parse_public_key,
};
use crate::config::ImportPolicy;
use crate::error::{Error, Result};

/// The largest manifest or signature read (they are a few KiB).
const SMALL_PART_LIMIT: u64 = 1 << 20;

/// A package whose manifest, signature and parts have been verified.
#[derive(Debug)]
pub struct OpenedPackage {
    pub path: PathBuf,
    pub manifest: Manifest,
    /// `ed25519:...` of the key that signed it, if signed.
    pub signed_by: Option<String>,
    /// Where each part starts in the file, in manifest order.
    offsets: Vec<u64>,
}

pub(crate) fn damaged(path: &Path, part: &str, e: impl std::fmt::Display) -> Error {
    Error::package(
        path,
        format!("{part}: {e}; the package is damaged: copy it again from the exporting site"),
    )
}

fn read_at(f: &mut File, path: &Path, what: &str, at: u64, len: u64) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    f.seek(SeekFrom::Start(at))
        .and_then(|_| f.read_exact(&mut buf))
        .map_err(|e| damaged(path, what, e))?;
    Ok(buf)
}

impl OpenedPackage {
    /// Opens `path` and verifies it against the site's import policy.
    pub fn open(path: &Path, policy: &ImportPolicy) -> Result<OpenedPackage> {
        let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut head = Vec::with_capacity(16);
        (&mut f)
            .take(MAGIC.len() as u64)
            .read_to_end(&mut head)
            .map_err(|e| Error::io(path, e))?;
        if !MAGIC.starts_with(&head) || head.is_empty() {
            return Err(Error::package(
                path,
                "not a patchsync export package (it does not start as one); `patchsync export` \
                 writes them",
            ));
        }
        if len < MAGIC.len() as u64 + FOOTER_LEN {
            return Err(Error::package(
                path,
                format!(
                    "only {len} bytes: the package is truncated; copy it again from the exporting site"
                ),
            ));
        }
        let footer = read_at(&mut f, path, "footer", len - FOOTER_LEN, FOOTER_LEN)?;
        if &footer[48..] != END_MAGIC {
            return Err(Error::package(
                path,
                format!(
                    "it ends without the package's end marker: it is truncated ({len} bytes) or \
                     damaged; copy it again from the exporting site"
                ),
            ));
        }
        let manifest_len = u64::from_le_bytes(footer[..8].try_into().expect("8"));
        let signature_len = u64::from_le_bytes(footer[8..16].try_into().expect("8"));
        if manifest_len > SMALL_PART_LIMIT
            || signature_len > SMALL_PART_LIMIT
            || manifest_len + signature_len + FOOTER_LEN + MAGIC.len() as u64 > len
        {
            return Err(damaged(
                path,
                "footer",
                "the lengths it gives do not fit the file",
            ));
        }
        let manifest_at = len - FOOTER_LEN - signature_len - manifest_len;
        let bytes = read_at(&mut f, path, MANIFEST, manifest_at, manifest_len)?;
        if Sha256::digest(&bytes)[..] != footer[16..48] {
            return Err(damaged(
                path,
                MANIFEST,
                "its SHA-256 is not the one the footer gives",
            ));
        }
        // The format and its version first: a newer format may not parse as this one.
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| damaged(path, MANIFEST, format!("not JSON: {e}")))?;
        if value.get("format").and_then(|v| v.as_str()) != Some(FORMAT) {
            return Err(Error::package(
                path,
                format!(
                    "{MANIFEST} does not say format \"{FORMAT}\": this is not a patchsync export package"
                ),
            ));
        }
        match value.get("format_version").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(FORMAT_VERSION) => {}
            Some(v) => {
                return Err(Error::package(
                    path,
                    format!(
                        "format version {v}; this patchsync reads version {FORMAT_VERSION}: {}",
                        if v > u64::from(FORMAT_VERSION) {
                            "upgrade patchsync on this site, or export with the version it runs"
                        } else {
                            "export it again with a current patchsync"
                        }
                    ),
                ));
            }
            None => return Err(damaged(path, MANIFEST, "format_version is missing")),
        }

        let signed_by = if signature_len > 0 {
            let sig = read_at(
                &mut f,
                path,
                SIGNATURE,
                manifest_at + manifest_len,
                signature_len,
            )?;
            Some(verify_signature(path, &bytes, &sig, policy)?)
        } else if policy.allow_unsigned {
            None
        } else {
            return Err(Error::package(
                path,
                "it is not signed, and this site imports signed packages only: export it with \
                 `--sign KEY` (keys come from `patchsync keygen`), or set [import] \
                 allow_unsigned = true",
            ));
        };
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| damaged(path, MANIFEST, e))?;

        for name in PARTS {
            if manifest.parts.iter().filter(|p| p.name == name).count() != 1 {
                return Err(damaged(
                    path,
                    MANIFEST,
                    format!("it does not list the part {name} once"),
                ));
            }
        }
        let mut offsets = Vec::with_capacity(manifest.parts.len());
        let mut at = MAGIC.len() as u64;
        for p in &manifest.parts {
            offsets.push(at);
            at = at.saturating_add(p.size);
        }
        if at != manifest_at {
            return Err(Error::package(
                path,
                format!(
                    "its parts should fill {} bytes, the file holds {}: it is truncated or damaged; \
                     copy it again from the exporting site",
                    at - MAGIC.len() as u64,
                    manifest_at - MAGIC.len() as u64
                ),
            ));
        }
        let opened = OpenedPackage {
            path: path.to_owned(),
            manifest,
            signed_by,
            offsets,
        };
        for part in &opened.manifest.parts {
            let mut h = Sha256::new();
            let mut r = opened.part(&part.name)?;
            std::io::copy(&mut r, &mut h).map_err(|e| damaged(path, &part.name, e))?;
            let digest = super::write::hex(&h.finalize());
            if digest != part.sha256 {
                return Err(Error::package(
                    path,
                    format!(
                        "{} has SHA-256 {digest}, the manifest says {}: the package was altered or \
                         damaged; copy it again from the exporting site",
                        part.name, part.sha256
                    ),
                ));
            }
        }
        Ok(opened)
    }

    /// A reader of one part's bytes.
    pub(crate) fn part(&self, name: &str) -> Result<impl Read + use<>> {
        let i = self
            .manifest
            .parts
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| damaged(&self.path, MANIFEST, format!("no part {name}")))?;
        let mut f = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        f.seek(SeekFrom::Start(self.offsets[i]))
            .map_err(|e| Error::io(&self.path, e))?;
        Ok(BufReader::with_capacity(
            1 << 20,
            f.take(self.manifest.parts[i].size),
        ))
    }
}

fn verify_signature(
    path: &Path,
    manifest: &[u8],
    sig: &[u8],
    policy: &ImportPolicy,
) -> Result<String> {
    let sig: Signature = serde_json::from_slice(sig).map_err(|e| damaged(path, SIGNATURE, e))?;
    if sig.algorithm != "ed25519" {
        return Err(Error::package(
            path,
            format!(
                "signed with '{}'; patchsync verifies ed25519 signatures",
                sig.algorithm
            ),
        ));
    }
    let key = parse_public_key(&sig.public_key).map_err(|m| damaged(path, SIGNATURE, m))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(sig.signature.trim())
        .map_err(|e| damaged(path, SIGNATURE, e))?;
    let valid = super::keys::verify(&key, manifest, &raw);
    if !policy.trusted_keys.contains(&key) {
        return Err(Error::package(
            path,
            format!(
                "signed by key {} (id {}), which this site does not trust{}: if that is the \
                 exporting site's key, add it to [import] trusted_keys",
                sig.public_key,
                key_id(&key),
                if valid {
                    ""
                } else {
                    " (and the signature does not match)"
                }
            ),
        ));
    }
    if !valid {
        return Err(Error::package(
            path,
            format!(
                "the signature of key id {} does not match the manifest: the package was altered \
                 after it was signed; do not import it, get a fresh copy from the exporting site",
                key_id(&key)
            ),
        ));
    }
    Ok(sig.public_key)
}
