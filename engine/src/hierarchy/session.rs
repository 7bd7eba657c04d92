//! One child's calls to its parent: the auth sequence (GetAuthConfig → the auth
//! plug-in's GetAuthorizationCookie → GetCookie), the session cookie every server-sync call
//! carries (renewed before it expires, and again when the parent rejects or forgets it), and
//! retries with a doubling delay while the parent is unreachable.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};

use super::server::{AUTH_SERVICE_PATH, PLUGIN_ID, SYNC_SERVICE_PATH};
use super::soap::{self, ErrorCode, Fault, NS_AUTH, NS_SYNC, Node, text};
use crate::config::UpstreamAuth;
use crate::error::{Error, Result};

/// The protocol version this client asks for (as Microsoft's library does).
pub const CLIENT_PROTOCOL_VERSION: &str = "1.7";

/// How calls are retried: transport errors and server faults that invite it, with a
/// doubling delay.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub attempts: u32,
    pub first_delay: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 8,
            first_delay: Duration::from_millis(250),
        }
    }
}

enum CallError {
    Fault(Fault),
    /// Worth a retry: the parent is down, restarting, or the connection broke.
    Transport(String),
    /// Not worth one: the parent's certificate is not trusted.
    Tls(String),
}

/// The link to one parent.
pub struct Session {
    name: String,
    base: String,
    auth: UpstreamAuth,
    agent: ureq::Agent,
    /// A certificate file that cannot be read fails the first call, naming the file.
    agent_error: Option<String>,
    /// The session cookie (`Expiration`, `EncryptedData`) and when to renew it.
    cookie: Option<(String, String, DateTime<Utc>)>,
    pub retry: Retry,
    /// Set when the parent says it changed (`ServerChanged`): the anchors must go.
    pub server_changed: bool,
}

impl Session {
    pub fn new(name: &str, base: &str, auth: UpstreamAuth) -> Session {
        let (agent, agent_error) =
            match super::links::agent(auth.tls_ca.as_deref(), Some(Duration::from_secs(300))) {
                Ok(a) => (a, None),
                Err(m) => (ureq::Agent::new_with_defaults(), Some(m)),
            };
        Session {
            name: name.to_owned(),
            base: base.to_owned(),
            auth,
            agent,
            agent_error,
            cookie: None,
            retry: Retry::default(),
            server_changed: false,
        }
    }

    /// Fails when the link cannot work at all (an unreadable certificate file).
    pub fn usable(&self) -> Result<()> {
        match &self.agent_error {
            Some(m) => Err(self.err("[[source]] tls_ca", m.clone())),
            None => Ok(()),
        }
    }

    pub fn err(&self, item: impl Into<String>, message: impl Into<String>) -> Error {
        Error::source(&self.name, item, message)
    }

    /// One POST of a SOAP body; faults and transport failures apart.
    fn post(
        &self,
        url: &str,
        action: &str,
        body: &str,
        basic: bool,
    ) -> std::result::Result<Node, CallError> {
        self.post_read(url, action, body, basic, soap::body)
    }

    /// [`post`](Self::post) with the answer read by `read` (a fault is its `Err`).
    fn post_read<T>(
        &self,
        url: &str,
        action: &str,
        body: &str,
        basic: bool,
        read: fn(&str) -> std::result::Result<T, Fault>,
    ) -> std::result::Result<T, CallError> {
        let mut req = self
            .agent
            .post(url)
            .header("Content-Type", "text/xml; charset=utf-8")
            .header("SOAPAction", &format!("\"{action}\""))
            .header(
                "User-Agent",
                concat!("patchsync/", env!("CARGO_PKG_VERSION")),
            );
        // A WSUS server configured without a secret gets none.
        if basic && !self.auth.secret.is_empty() {
            let cred = B64.encode(format!("{}:{}", self.auth.site, self.auth.secret));
            req = req.header("Authorization", &format!("Basic {cred}"));
        }
        let resp = req.send(soap::envelope(body)).map_err(|e| {
            let m = e.to_string();
            if m.to_ascii_lowercase().contains("certificate") {
                CallError::Tls(format!(
                    "{url}: {m}; give the parent's certificate (or its CA) as tls_ca in the \
                         [[source]]"
                ))
            } else {
                CallError::Transport(format!("cannot reach {url}: {m}"))
            }
        })?;
        let status = resp.status().as_u16();
        let text = resp
            .into_body()
            .with_config()
            .limit(256 << 20)
            .read_to_string()
            .map_err(|e| CallError::Transport(format!("the answer from {url} broke off: {e}")))?;
        match read(&text) {
            Ok(n) if status == 200 => Ok(n),
            Ok(_) => Err(CallError::Transport(format!(
                "{url} answered HTTP {status}"
            ))),
            // Not SOAP at all (a proxy's error page, a server starting up): worth a retry.
            Err(f) if f.code.is_none() && !text.contains("Fault") => Err(CallError::Transport(
                format!("{url} answered HTTP {status}: {}", f.message),
            )),
            Err(f) => Err(CallError::Fault(f)),
        }
    }

    /// GetAuthConfig → GetAuthorizationCookie → GetCookie.
    fn authenticate(&mut self) -> std::result::Result<(), CallError> {
        let sync_url = format!("{}/{SYNC_SERVICE_PATH}", self.base);
        let config = self.post(
            &sync_url,
            &format!("{NS_SYNC}/GetAuthConfig"),
            &format!("<GetAuthConfig xmlns=\"{NS_SYNC}\" />"),
            false,
        )?;
        let plugin = config
            .at(&["GetAuthConfigResult", "AuthInfo"])
            .and_then(|a| {
                a.all("AuthPlugInInfo")
                    .find(|p| p.text_of("PlugInID") == Some(PLUGIN_ID))
            })
            .and_then(|p| p.text_of("ServiceUrl").map(str::to_owned))
            .unwrap_or_else(|| AUTH_SERVICE_PATH.to_owned());
        let auth_url = if plugin.starts_with("http://") || plugin.starts_with("https://") {
            plugin
        } else {
            format!("{}/{}", self.base, plugin.trim_start_matches('/'))
        };
        // A stable GUID for the site, from its name.
        let account_guid = {
            use sha1::Digest;
            let h = sha1::Sha1::digest(self.auth.site.as_bytes());
            let mut b = [0u8; 16];
            b.copy_from_slice(&h[..16]);
            uuid::Uuid::from_bytes(b)
        };
        let auth = self.post(
            &auth_url,
            &format!("{NS_AUTH}/GetAuthorizationCookie"),
            &format!(
                "<GetAuthorizationCookie xmlns=\"{NS_AUTH}\"><accountName>{}</accountName>\
                 <accountGuid>{account_guid}</accountGuid></GetAuthorizationCookie>",
                text(&self.auth.site)
            ),
            true,
        )?;
        let result = auth.child("GetAuthorizationCookieResult");
        let plugin_id = result
            .and_then(|r| r.text_of("PlugInId"))
            .unwrap_or(PLUGIN_ID);
        let data = result
            .and_then(|r| r.text_of("CookieData"))
            .unwrap_or("")
            .to_owned();
        let old = match &self.cookie {
            Some((exp, data, _)) => format!(
                "<oldCookie><Expiration>{exp}</Expiration><EncryptedData>{data}</EncryptedData></oldCookie>"
            ),
            None => String::new(),
        };
        let cookie = self.post(
            &sync_url,
            &format!("{NS_SYNC}/GetCookie"),
            &format!(
                "<GetCookie xmlns=\"{NS_SYNC}\"><authCookies><AuthorizationCookie>\
                 <PlugInId>{}</PlugInId><CookieData>{}</CookieData></AuthorizationCookie></authCookies>\
                 {old}<protocolVersion>{CLIENT_PROTOCOL_VERSION}</protocolVersion></GetCookie>",
                text(plugin_id),
                text(&data)
            ),
            false,
        )?;
        let r = cookie.child("GetCookieResult");
        let expiration = r
            .and_then(|r| r.text_of("Expiration"))
            .unwrap_or("")
            .to_owned();
        let data = r
            .and_then(|r| r.text_of("EncryptedData"))
            .unwrap_or("")
            .to_owned();
        // Renewed a minute before it runs out (MS-WSUSSS 3.2.4.1: never use an expired one).
        let renew = DateTime::parse_from_rfc3339(&expiration)
            .map(|t| t.with_timezone(&Utc) - chrono::Duration::seconds(60))
            .unwrap_or_else(|_| Utc::now() + chrono::Duration::minutes(5));
        self.cookie = Some((expiration, data, renew));
        Ok(())
    }

    /// A server-sync call carrying the session cookie, authenticating first when needed,
    /// retried on transport failures and rejected cookies.
    pub fn call(&mut self, op: &str, inner: &str) -> Result<Node> {
        self.call_read(op, inner, soap::body)
    }

    /// [`call`](Self::call) with the answer read by `read` instead of as an element tree.
    pub fn call_read<T>(
        &mut self,
        op: &str,
        inner: &str,
        read: fn(&str) -> std::result::Result<T, Fault>,
    ) -> Result<T> {
        let url = format!("{}/{SYNC_SERVICE_PATH}", self.base);
        let mut delay = self.retry.first_delay;
        let mut last = String::new();
        for attempt in 0..self.retry.attempts.max(1) {
            if attempt > 0 {
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            if self.cookie.as_ref().is_none_or(|s| s.2 <= Utc::now()) {
                match self.authenticate() {
                    Ok(()) => {}
                    Err(CallError::Transport(m)) => {
                        last = m;
                        continue;
                    }
                    Err(CallError::Fault(f)) => return Err(self.refused(op, &f)),
                    Err(CallError::Tls(m)) => return Err(self.err(op, m)),
                }
            }
            let (exp, data, _) = self.cookie.clone().expect("authenticated");
            let body = format!(
                "<{op} xmlns=\"{NS_SYNC}\"><cookie><Expiration>{exp}</Expiration>\
                 <EncryptedData>{data}</EncryptedData></cookie>{inner}</{op}>"
            );
            match self.post_read(&url, &format!("{NS_SYNC}/{op}"), &body, false, read) {
                Ok(n) => return Ok(n),
                Err(CallError::Transport(m)) => last = m,
                Err(CallError::Tls(m)) => return Err(self.err(op, m)),
                Err(CallError::Fault(f)) => match f.code {
                    Some(ErrorCode::InvalidCookie | ErrorCode::InvalidAuthorizationCookie) => {
                        self.cookie = None;
                        last = f.message;
                    }
                    Some(ErrorCode::ServerBusy) => last = f.message,
                    Some(ErrorCode::ServerChanged) => {
                        self.server_changed = true;
                        return Err(self.err(
                            op,
                            "the parent says it changed (ServerChanged); its anchors no longer \
                             apply",
                        ));
                    }
                    _ => return Err(self.refused(op, &f)),
                },
            }
        }
        Err(self.err(
            op,
            format!(
                "gave up after {} attempts: {last}; check that the parent's service runs at {}",
                self.retry.attempts, self.base
            ),
        ))
    }

    fn refused(&self, op: &str, f: &Fault) -> Error {
        let hint = match f.code {
            Some(ErrorCode::InvalidAuthorizationCookie) => format!(
                "; the parent does not accept site '{}' with this secret: the [[source]] secret \
                 here must equal the secret of the [[child]] entry named '{}' on the parent",
                self.auth.site, self.auth.site
            ),
            Some(ErrorCode::IncompatibleProtocolVersion) => {
                "; the parent speaks another protocol version".into()
            }
            _ => String::new(),
        };
        self.err(op, format!("the parent refused: {}{hint}", f.message))
    }
}
