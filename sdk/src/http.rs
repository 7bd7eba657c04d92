//! HTTP for source plugins, through the host: only the hosts the manifest's
//! `permissions.allowed_hosts` lists, with the manifest's size cap and timeout. On the host
//! (plain `cargo test`), requests go to the responder set with [`crate::testing::respond_with`].

/// One HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str, String> {
        std::str::from_utf8(&self.body).map_err(|e| format!("the response is not UTF-8: {e}"))
    }

    /// A header's value (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends a request; an error is the host's refusal (a host not allowed, a limit) or a
/// network failure, in words.
pub fn fetch(method: &str, url: &str, headers: &[(&str, &str)]) -> Result<Response, String> {
    #[cfg(target_arch = "wasm32")]
    {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        crate::bindings::source::patchsync::plugin::http::fetch(method, url, &headers).map(|r| {
            Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
            }
        })
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        crate::testing::respond(method, url, headers)
    }
}

/// `GET url`; a status other than 2xx is an error naming it.
pub fn get(url: &str) -> Result<Response, String> {
    let r = fetch("GET", url, &[])?;
    if !(200..300).contains(&r.status) {
        return Err(format!("GET {url} answered HTTP {}", r.status));
    }
    Ok(r)
}
