//! Authorization cookies and session cookies: claims signed with HMAC-SHA256 under a key
//! the upstream server makes when it starts. They are opaque to the child (MS-WSUSSS
//! 2.2.4.7 / 2.2.4.8); a restarted server no longer accepts old ones, and the child
//! authenticates again.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::hmac;
use serde::{Deserialize, Serialize};

/// What a cookie says about its holder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// `auth` (from GetAuthorizationCookie) or `session` (from GetCookie).
    pub kind: String,
    /// The child site's name (the `accountName` it authenticated as).
    pub site: String,
    /// Unix seconds after which the cookie is refused.
    pub expires: i64,
    /// The protocol version the child asked for (session cookies).
    #[serde(default)]
    pub protocol: String,
}

/// Why a cookie was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Not base64, not ours, or signed with another key (another server, or this one
    /// before a restart).
    Unreadable,
    Expired,
}

/// Signs and checks cookies.
pub struct Signer {
    key: hmac::Key,
}

impl Signer {
    /// A signer with a fresh random key.
    pub fn random() -> Signer {
        let rng = ring::rand::SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).expect("system randomness");
        Signer { key }
    }

    /// The claims, signed, base64.
    pub fn issue(&self, claims: &Claims) -> String {
        let body = serde_json::to_vec(claims).expect("claims serialize");
        let tag = hmac::sign(&self.key, &body);
        let mut all = body;
        all.extend_from_slice(tag.as_ref());
        B64.encode(all)
    }

    /// The claims of a cookie this signer issued and that has not expired.
    pub fn check(&self, data: &str, kind: &str, now: i64) -> Result<Claims, Refused> {
        let raw = B64
            .decode(data.trim().as_bytes())
            .map_err(|_| Refused::Unreadable)?;
        if raw.len() < 32 {
            return Err(Refused::Unreadable);
        }
        let (body, tag) = raw.split_at(raw.len() - 32);
        hmac::verify(&self.key, body, tag).map_err(|_| Refused::Unreadable)?;
        let claims: Claims = serde_json::from_slice(body).map_err(|_| Refused::Unreadable)?;
        if claims.kind != kind {
            return Err(Refused::Unreadable);
        }
        if claims.expires <= now {
            return Err(Refused::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_signed_typed_and_expire() {
        let s = Signer::random();
        let c = Claims {
            kind: "session".into(),
            site: "PR1".into(),
            expires: 1000,
            protocol: "1.7".into(),
        };
        let data = s.issue(&c);
        assert_eq!(s.check(&data, "session", 999), Ok(c));
        assert_eq!(s.check(&data, "session", 1000), Err(Refused::Expired));
        assert_eq!(s.check(&data, "auth", 10), Err(Refused::Unreadable));
        // Another server (or this one after a restart) does not accept it.
        assert_eq!(
            Signer::random().check(&data, "session", 10),
            Err(Refused::Unreadable)
        );
        // A changed claim breaks the signature.
        let mut raw = B64.decode(&data).unwrap();
        let i = raw.iter().position(|b| *b == b'P').unwrap();
        raw[i] = b'Q';
        assert_eq!(
            s.check(&B64.encode(raw), "session", 10),
            Err(Refused::Unreadable)
        );
    }
}
