//! The HTTP `fetch` source plugins import: only the hosts the manifest allows, a timeout,
//! and a cap on the body size. Errors say which rule refused the request.

use std::io::Read;

use super::bindings::types::Response;
use super::runtime::HttpPolicy;

/// The `host` or `host:port` of `url`, lower case, and whether it is an http(s) URL.
fn authority(url: &str) -> Option<(String, Option<u16>)> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let auth = rest.split(['/', '?', '#']).next()?;
    let auth = auth.rsplit('@').next()?;
    if auth.is_empty() {
        return None;
    }
    let (host, port) = match auth.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || auth.starts_with('[') => match p.parse() {
            Ok(p) => (h, Some(p)),
            Err(_) => return None,
        },
        _ => (auth, None),
    };
    Some((host.to_ascii_lowercase(), port))
}

/// Whether the manifest's `allowed_hosts` let `url` through: an entry `name` allows any port
/// of that host, `name:port` only that port.
pub(crate) fn allowed(policy: &HttpPolicy, url: &str) -> Result<(), String> {
    let Some((host, port)) = authority(url) else {
        return Err(format!("'{url}' is not an http:// or https:// URL"));
    };
    let ok = policy
        .allowed_hosts
        .iter()
        .any(|a| match a.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => {
                *h == host && port.map(|x| x.to_string()).as_deref() == Some(p)
            }
            _ => *a == host,
        });
    if ok {
        Ok(())
    } else {
        let with_port = port.map(|p| format!("{host}:{p}")).unwrap_or(host);
        Err(format!(
            "host '{with_port}' is not in the manifest's permissions.allowed_hosts ({}); add it \
             there to allow it",
            if policy.allowed_hosts.is_empty() {
                "empty".to_owned()
            } else {
                policy.allowed_hosts.join(", ")
            }
        ))
    }
}

/// One request, as the plugin asked for it, within the policy.
pub(crate) fn fetch(
    policy: &HttpPolicy,
    method: &str,
    url: &str,
    headers: &[(String, String)],
) -> Result<Response, String> {
    allowed(policy, url)?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(policy.timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let method: ureq::http::Method = method
        .to_ascii_uppercase()
        .parse()
        .map_err(|_| format!("'{method}' is not an HTTP method"))?;
    let mut req = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header(
            "User-Agent",
            concat!("patchsync-plugin/", env!("CARGO_PKG_VERSION")),
        );
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req
        .body(())
        .map_err(|e| format!("cannot build the request for {url}: {e}"))?;
    let resp = agent
        .run(req)
        .map_err(|e| format!("GET {url} failed: {e}"))?;
    let status = resp.status().as_u16();
    let headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = Vec::new();
    let cap = policy.max_bytes as u64;
    resp.into_body()
        .into_reader()
        .take(cap + 1)
        .read_to_end(&mut body)
        .map_err(|e| format!("reading {url} failed: {e}"))?;
    if body.len() as u64 > cap {
        return Err(format!(
            "the response of {url} is larger than the limit of {} MB (limits.response_mb)",
            policy.max_bytes >> 20
        ));
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(hosts: &[&str]) -> HttpPolicy {
        HttpPolicy {
            allowed_hosts: hosts.iter().map(|s| s.to_string()).collect(),
            max_bytes: 1 << 20,
            timeout: std::time::Duration::from_secs(1),
        }
    }

    #[test]
    fn only_listed_hosts_and_ports_pass() {
        let p = policy(&["feeds.contoso.com", "127.0.0.1:8080"]);
        assert!(allowed(&p, "https://feeds.contoso.com/a.json").is_ok());
        assert!(allowed(&p, "https://FEEDS.contoso.com:444/a").is_ok());
        assert!(allowed(&p, "http://127.0.0.1:8080/feed").is_ok());
        let e = allowed(&p, "http://127.0.0.1:9090/feed").unwrap_err();
        assert!(
            e.contains("'127.0.0.1:9090'") && e.contains("allowed_hosts"),
            "{e}"
        );
        assert!(allowed(&p, "https://evil.com/?u=feeds.contoso.com").is_err());
        assert!(allowed(&p, "https://feeds.contoso.com@evil.com/").is_err());
        assert!(allowed(&p, "file:///etc/passwd").is_err());
    }
}
