//! Signing keys for export packages: ed25519 key pairs as `patchsync keygen` writes them.
//!
//! `NAME.key` holds the secret key (a PKCS#8 document, PEM), readable by its owner only;
//! `NAME.pub` holds one line, `ed25519:<base64 of the 32-byte public key>`, which the
//! importing site lists in `[import] trusted_keys`.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// How a public key starts, in `NAME.pub`, in the config and in package signatures.
pub const PUBLIC_KEY_PREFIX: &str = "ed25519:";

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";

/// A secret key that signs package manifests.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    path: PathBuf,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.public_text())
    }
}

/// The files `keygen` wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GeneratedKey {
    pub secret_key: PathBuf,
    pub public_key: PathBuf,
    /// `ed25519:...`, as it goes into `[import] trusted_keys`.
    pub public_text: String,
}

/// `ed25519:<base64>` for a raw public key.
pub fn public_key_text(key: &[u8]) -> String {
    format!("{PUBLIC_KEY_PREFIX}{}", STANDARD.encode(key))
}

/// A short id for messages: the first 16 hex digits of the key's SHA-256.
pub fn key_id(key: &[u8]) -> String {
    let d = Sha256::digest(key);
    d[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a public key line (`ed25519:<base64>`; surrounding whitespace and `#` comment
/// lines are ignored).
pub fn parse_public_key(text: &str) -> std::result::Result<[u8; 32], String> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or("");
    let b64 = line.strip_prefix(PUBLIC_KEY_PREFIX).ok_or_else(|| {
        format!("a public key starts with '{PUBLIC_KEY_PREFIX}' (as `patchsync keygen` writes it in NAME.pub)")
    })?;
    let bytes = STANDARD
        .decode(b64.trim())
        .map_err(|e| format!("the key is not base64: {e}"))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("an ed25519 public key has 32 bytes, this one {}", b.len()))
}

impl SigningKey {
    /// Reads `NAME.key` as `keygen` wrote it.
    pub fn load(path: &Path) -> Result<SigningKey> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let bad = |m: String| Error::package(path, m);
        let body: String = text
            .lines()
            .map(str::trim)
            .skip_while(|l| *l != PEM_BEGIN)
            .skip(1)
            .take_while(|l| *l != PEM_END)
            .collect();
        if body.is_empty() {
            return Err(bad(format!(
                "not a secret key: expected a '{PEM_BEGIN}' block as `patchsync keygen` writes it \
                 (did you pass the .pub file? --sign takes NAME.key)"
            )));
        }
        let der = STANDARD
            .decode(body)
            .map_err(|e| bad(format!("the key block is not base64: {e}")))?;
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
            .map_err(|e| bad(format!("not an ed25519 secret key ({e})")))?;
        Ok(SigningKey {
            pair,
            path: path.to_owned(),
        })
    }

    /// Makes a new key pair and writes `<base>.key` (mode 0600) and `<base>.pub`. Refuses to
    /// overwrite either.
    pub fn generate(base: &Path) -> Result<GeneratedKey> {
        let with_ext = |ext: &str| {
            let mut p = base.as_os_str().to_owned();
            p.push(ext);
            PathBuf::from(p)
        };
        let (secret, public) = (with_ext(".key"), with_ext(".pub"));
        for p in [&secret, &public] {
            if p.exists() {
                return Err(Error::package(
                    p,
                    "already exists; keygen never overwrites a key (choose another name)",
                ));
            }
        }
        let rng = ring::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| Error::package(&secret, "the system random generator failed"))?;
        let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref())
            .map_err(|e| Error::package(&secret, e.to_string()))?;
        let b64 = STANDARD.encode(doc.as_ref());
        let mut pem = format!("{PEM_BEGIN}\n");
        for chunk in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str(PEM_END);
        pem.push('\n');
        if let Some(dir) = secret.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        write_private(&secret, pem.as_bytes())?;
        let public_text = public_key_text(pair.public_key().as_ref());
        std::fs::write(&public, format!("{public_text}\n")).map_err(|e| Error::io(&public, e))?;
        Ok(GeneratedKey {
            secret_key: secret,
            public_key: public,
            public_text,
        })
    }

    pub fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    pub fn public_text(&self) -> String {
        public_key_text(self.public_key())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }
}

/// Whether `signature` is `key`'s signature of `message`.
pub fn verify(key: &[u8; 32], message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ED25519, key)
        .verify(message, signature)
        .is_ok()
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_signs_what_its_public_half_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let g = SigningKey::generate(&dir.path().join("cas")).unwrap();
        let key = SigningKey::load(&g.secret_key).unwrap();
        let public = parse_public_key(&std::fs::read_to_string(&g.public_key).unwrap()).unwrap();
        assert_eq!(public, key.public_key());
        let sig = key.sign(b"manifest");
        assert!(verify(&public, b"manifest", &sig));
        assert!(!verify(&public, b"manifesT", &sig));
        let e = SigningKey::generate(&dir.path().join("cas"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("already exists"), "{e}");
        let e = SigningKey::load(&g.public_key).unwrap_err().to_string();
        assert!(e.contains("--sign takes NAME.key"), "{e}");
    }
}
