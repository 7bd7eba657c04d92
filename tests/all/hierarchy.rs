//! Site hierarchies over MS-WSUSSS with real `patchsync serve` processes on loopback: a
//! top-level site, two children and a grandchild; deltas, expiry, a child that was down, a
//! parent killed mid-transfer, a wrong secret, and the SOAP messages against golden files
//! written from the specification.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use patchsync::hierarchy::soap::{self, Node};

use crate::common::{Site, bin, generated};
use crate::serving::{Service, agent, free_port, get, start};

const TOKEN: &str = "hierarchy-token";

/// One site of a test hierarchy.
struct Member {
    site: Site,
    port: u16,
}

impl Member {
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn start(&self) -> Service {
        start(&self.site, self.port)
    }

    fn status(&self) -> serde_json::Value {
        get(&self.base(), "/api/v1/status").1
    }
}

/// A site named `name`: `source` is its `[[source]]` block, `filter` its `[filter]` block,
/// `children` (name, secret, port) its `[[child]]` entries.
fn member(name: &str, source: &str, filter: &str, children: &[(&str, &str, u16)]) -> Member {
    let site = Site::new();
    let port = free_port();
    write_config(&site, name, port, source, filter, children);
    Member { site, port }
}

fn write_config(
    site: &Site,
    name: &str,
    port: u16,
    source: &str,
    filter: &str,
    children: &[(&str, &str, u16)],
) {
    let mut t = format!(
        "[site]\nname = \"{name}\"\nstore = \"data/patchsync.db\"\n\n{source}\n{filter}\n\
         [service]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"{TOKEN}\"\n"
    );
    for (child, secret, port) in children {
        t.push_str(&format!(
            "\n[[child]]\nname = \"{child}\"\nsecret = \"{secret}\"\nurl = \"http://127.0.0.1:{port}\"\n"
        ));
    }
    std::fs::write(site.config_path(), t).unwrap();
}

fn upstream(parent_port: u16, secret: &str) -> String {
    format!(
        "[[source]]\nname = \"parent\"\nkind = \"upstream\"\npath = \"http://127.0.0.1:{parent_port}/\"\nsecret = \"{secret}\"\n"
    )
}

/// Child "PR1" (secret "s") of the site at `parent`, with `languages`, after one sync from
/// the command line.
fn synced_child(parent: u16, languages: &str) -> Member {
    synced(
        &upstream(parent, "s"),
        &format!("[filter]\nlanguages = [{languages}]\n"),
    )
}

/// Child "PR1" with this source and filter, after one successful sync.
fn synced(source: &str, filter: &str) -> Member {
    let pr1 = member("PR1", source, filter, &[]);
    let out = pr1.site.cli(&["sync"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    pr1
}

/// A top-level site over a generated catalog of `updates`, in English and German.
fn top(updates: usize, children: &[(&str, &str, u16)]) -> (Member, PathBuf) {
    let site = Site::new();
    let cab = generated(site.dir.path(), "catalog.cab", updates, 11);
    let port = free_port();
    write_config(
        &site,
        "CAS",
        port,
        &format!(
            "[[source]]\nname = \"gen\"\nkind = \"wsus-export\"\npath = {:?}\n",
            cab.display().to_string()
        ),
        "[filter]\nproducts = [\"*\"]\nclassifications = [\"*\"]\nlanguages = [\"en\", \"de\"]\n",
        children,
    );
    (Member { site, port }, cab)
}

/// Replaces the catalog with its "next month" (`percent` of it changed).
fn evolve(cab: &Path, seed: u64, percent: u32) {
    let next = cab.with_extension("next.cab");
    let out = bin()
        .args([
            "generate-catalog",
            "--seed",
            &seed.to_string(),
            "--change-percent",
            &percent.to_string(),
        ])
        .arg("--evolve-from")
        .arg(cab)
        .arg("--out")
        .arg(&next)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&next, cab).unwrap();
}

fn trigger(m: &Member) {
    let mut r = agent()
        .post(&format!("{}/api/v1/sync", m.base()))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .send_empty()
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        202,
        "{}",
        r.body_mut().read_to_string().unwrap()
    );
}

fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until every member holds exactly what `top` holds (and none is syncing).
fn wait_converged(top: &Member, others: &[&Member], what: &str) -> String {
    let mut digest = String::new();
    wait_for(what, 120, || {
        let t = top.status();
        if t["service"]["running"] != false {
            return false;
        }
        digest = t["content_digest"].as_str().unwrap_or("").to_owned();
        others.iter().all(|m| {
            let s = m.status();
            s["content_digest"] == t["content_digest"] && s["service"]["running"] == false
        })
    });
    digest
}

/// The newest run that changed the catalog.
fn last_change(m: &Member) -> serde_json::Value {
    let (_, h) = get(&m.base(), "/api/v1/history?limit=50");
    h.as_array()
        .unwrap()
        .iter()
        .find(|r| {
            ["new", "revised", "expired", "removed"]
                .iter()
                .any(|k| r[*k].as_u64().unwrap_or(0) > 0)
        })
        .cloned()
        .unwrap_or_default()
}

fn tree(m: &Member) -> serde_json::Value {
    get(&m.base(), "/api/v1/hierarchy").1
}

fn find<'a>(tree: &'a serde_json::Value, site: &str) -> &'a serde_json::Value {
    fn walk<'a>(t: &'a serde_json::Value, site: &str) -> Option<&'a serde_json::Value> {
        if t["site"] == site {
            return Some(t);
        }
        t["children"].as_array()?.iter().find_map(|c| walk(c, site))
    }
    walk(tree, site).unwrap_or_else(|| panic!("{site} is not in the tree: {tree}"))
}

#[test]
fn a_sync_at_the_top_reaches_every_site_and_changes_travel_as_deltas() {
    let (p1, p2, s1) = (free_port(), free_port(), free_port());
    let (cas, cab) = top(
        1500,
        &[("PR1", "pr1-secret", p1), ("PR2", "pr2-secret", p2)],
    );
    let mk = |name: &str,
              port: u16,
              parent: u16,
              secret: &str,
              langs: &str,
              children: &[(&str, &str, u16)]| {
        let site = Site::new();
        write_config(
            &site,
            name,
            port,
            &upstream(parent, secret),
            &format!("[filter]\nlanguages = [{langs}]\n"),
            children,
        );
        Member { site, port }
    };
    let pr1 = mk(
        "PR1",
        p1,
        cas.port,
        "pr1-secret",
        "\"en\", \"de\"",
        &[("SEC1", "sec1-secret", s1)],
    );
    // A child may keep a subset of its parent's languages.
    let pr2 = mk("PR2", p2, cas.port, "pr2-secret", "\"en\"", &[]);
    let sec1 = mk("SEC1", s1, p1, "sec1-secret", "\"de\"", &[]);
    let _cas_svc = cas.start();
    let _pr1_svc = pr1.start();
    let mut pr2_svc = Some(pr2.start());
    let _sec1_svc = sec1.start();

    // A top-level sync reaches all four sites.
    trigger(&cas);
    let digest = wait_converged(
        &cas,
        &[&pr1, &pr2, &sec1],
        "the first sync to reach every site",
    );
    assert_eq!(digest.len(), 40, "{digest}");
    for m in [&pr1, &pr2, &sec1] {
        let s = m.status();
        assert_eq!(s["updates_active"], cas.status()["updates_active"], "{s}");
        assert_eq!(s["categories"], cas.status()["categories"], "{s}");
    }
    // Languages: the grandchild keeps German (and English, always), PR2 only English.
    let langs = |m: &Member| -> Vec<String> {
        let c = rusqlite::Connection::open(m.site.db()).unwrap();
        let mut st = c
            .prepare("SELECT DISTINCT language FROM localized ORDER BY 1")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    assert_eq!(langs(&cas), ["de", "en"]);
    assert_eq!(langs(&pr2), ["en"]);
    assert_eq!(langs(&sec1), ["de", "en"]);

    // Status rolls up: the grandchild's report reaches the top through PR1.
    wait_for("the grandchild's status at the top", 60, || {
        let t = tree(&cas);
        find(&t, "SEC1")["content_digest"].as_str() == Some(&digest)
    });
    let t = tree(&cas);
    assert_eq!(t["site"], "CAS");
    let names: Vec<&str> = t["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["site"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["PR1", "PR2"]);
    assert_eq!(find(&t, "PR1")["children"][0]["site"], "SEC1");
    for s in ["PR1", "PR2", "SEC1"] {
        let n = find(&t, s);
        assert_eq!(n["link"]["health"], "healthy", "{n}");
        assert_eq!(n["state"], "succeeded", "{n}");
        assert_eq!(n["parent_version"], n["catalog_version"], "{n}");
    }
    assert_eq!(
        find(&t, "SEC1")["upstream"],
        format!("http://127.0.0.1:{p1}/")
    );
    // So does the status page.
    let page = agent()
        .get(&format!("{}/", cas.base()))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    for site in ["PR1", "PR2", "SEC1"] {
        let row = page
            .split(&format!("<tr data-site=\"{site}\">"))
            .nth(1)
            .unwrap_or_else(|| panic!("{page}"));
        let row = row.split("</tr>").next().unwrap();
        assert!(
            row.contains("link-healthy") && row.contains("succeeded"),
            "{row}"
        );
    }
    // The CLI shows the same tree.
    let out = cas.site.cli(&["status", "--tree"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("CAS ") && text.contains("\n  PR1 ") && text.contains("\n    SEC1 "),
        "{text}"
    );

    // An evolved catalog propagates as a delta: each descendant fetches what changed.
    let total = cas.status()["updates_active"].as_u64().unwrap();
    evolve(&cab, 5, 3);
    trigger(&cas);
    wait_converged(&cas, &[&pr1, &pr2, &sec1], "the delta to reach every site");
    let at_top = last_change(&cas);
    assert!(
        at_top["new"].as_u64().unwrap() > 0 && at_top["expired"].as_u64().unwrap() > 0,
        "{at_top}"
    );
    for m in [&pr1, &pr2, &sec1] {
        let run = last_change(m);
        for k in ["new", "revised", "expired"] {
            assert_eq!(run[k], at_top[k], "{k}: top {at_top}, child {run}");
        }
        assert!(
            run["unchanged"].as_u64().unwrap() < total / 4,
            "not a delta: {run}"
        );
        // Expiry reached the child: the same updates are expired.
        assert_eq!(
            m.status()["updates_expired"],
            cas.status()["updates_expired"]
        );
    }

    // A child that is down during the notification catches up when it starts.
    drop(pr2_svc.take());
    evolve(&cab, 6, 2);
    trigger(&cas);
    wait_converged(
        &cas,
        &[&pr1, &sec1],
        "the second delta to reach PR1 and SEC1",
    );
    wait_for("the failed notification in the tree", 60, || {
        let t = tree(&cas);
        find(&t, "PR2")["link"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("notification"))
    });
    let t = tree(&cas);
    assert_eq!(find(&t, "PR2")["link"]["health"], "degraded", "{t}");
    assert_ne!(
        find(&t, "PR2")["content_digest"],
        find(&t, "PR1")["content_digest"]
    );
    let _pr2_svc = pr2.start();
    wait_converged(&cas, &[&pr2], "PR2 to catch up after its start");
    wait_for("PR2's link to heal", 60, || {
        tree(&cas)
            .pointer("/children/1/link/health")
            .is_some_and(|h| h == "healthy")
    });
}

#[test]
fn a_child_with_a_wrong_secret_gets_nothing_and_the_top_shows_why() {
    let port = free_port();
    let (cas, _) = top(200, &[("PR1", "the-right-secret", port)]);
    let pr1 = member(
        "PR1",
        &upstream(cas.port, "a-wrong-secret"),
        "[filter]\nlanguages = [\"en\"]\n",
        &[],
    );
    assert_eq!(pr1.port, pr1.port);
    // The child's port is the one the parent notifies.
    write_config(
        &pr1.site,
        "PR1",
        port,
        &upstream(cas.port, "a-wrong-secret"),
        "[filter]\nlanguages = [\"en\"]\n",
        &[],
    );
    let pr1 = Member {
        site: pr1.site,
        port,
    };
    let cas_svc = cas.start();
    trigger(&cas);
    wait_for("the top's sync", 60, || {
        cas.status()["catalog_version"] == 1
    });
    let _pr1_svc = pr1.start();
    wait_for("the refusal at the top", 60, || {
        let t = tree(&cas);
        find(&t, "PR1")["link"]["health"] == "error"
    });
    let t = tree(&cas);
    let reason = find(&t, "PR1")["link"]["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(reason.contains("wrong secret"), "{reason}");
    // The child got nothing and says what to fix.
    wait_for("the child's failed sync", 60, || {
        pr1.status()["state"] == "failed"
    });
    let s = pr1.status();
    assert_eq!(s["updates_active"], 0);
    assert_eq!(s["categories"], 0);
    let err = s["last_error"].as_str().unwrap();
    assert!(
        err.contains("InvalidAuthorizationCookie") && err.contains("[[child]]"),
        "{err}"
    );
    drop(cas_svc);

    // A child asking for a language its parent does not keep is told so.
    let fr = member(
        "PR1",
        &upstream(cas.port, "the-right-secret"),
        "[filter]\nlanguages = [\"fr\"]\n",
        &[],
    );
    let _cas_svc = cas.start();
    let out = fr.site.cli(&["sync"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("fr") && err.contains("subset of its parent's languages"),
        "{err}"
    );
}

#[test]
fn a_parent_stopped_in_the_middle_of_a_transfer_is_retried_without_duplicates() {
    let (cas, _) = top(4_000, &[("PR1", "s", free_port())]);
    assert!(cas.site.cli(&["sync"]).status.success());
    let mut svc = cas.start();
    // A slow link (about 4 s for the whole transfer), so the parent stops in its middle.
    let (proxy, seen) = recording_proxy(cas.base(), Duration::from_millis(100));
    let pr1 = member(
        "PR1",
        &upstream(proxy, "s"),
        "[filter]\nlanguages = [\"en\"]\n",
        &[],
    );
    let mut child = bin()
        .arg("--config")
        .arg(pr1.site.config_path())
        .args(["sync", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the parent once the child is well into fetching updates.
    let batches = || {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|(a, _, r)| a.ends_with("/GetUpdateData") && r.contains("GetUpdateDataResult"))
            .count()
    };
    wait_for("the child to fetch", 60, || batches() >= 10);
    assert!(
        child.try_wait().unwrap().is_none(),
        "the transfer ended before the parent stopped"
    );
    svc.child.kill().unwrap();
    svc.child.wait().unwrap();
    drop(svc);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the child gave up at once"
    );
    let before_restart = batches();
    let _svc = cas.start();
    let out = child.wait_with_output().unwrap();
    assert!(
        batches() > before_restart,
        "the transfer went on after the restart"
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["catalog_version"], 1, "{report}");
    // Exactly the parent's catalog, each update once.
    let digest = |s: &Site| s.cli_json(&["status", "--json"])["content_digest"].clone();
    assert_eq!(digest(&pr1.site), digest(&cas.site));
    let (rows, ids): (i64, i64) = {
        let c = rusqlite::Connection::open(pr1.site.db()).unwrap();
        c.query_row(
            "SELECT COUNT(*), COUNT(DISTINCT id) FROM updates",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    assert_eq!(rows, ids);
    assert_eq!(rows, cas.site.sql::<i64>("SELECT COUNT(*) FROM updates"));
}

#[test]
fn a_child_site_takes_its_selection_from_the_top() {
    let dir = tempfile::tempdir().unwrap();
    let parse = |extra: &str| {
        let text = format!(
            "[site]\nname = \"PR1\"\nstore = \"s.db\"\n\n{}{extra}",
            upstream(8530, "s")
        );
        patchsync::Config::parse(&text, &dir.path().join("p.toml"), dir.path())
    };
    let cfg = parse("[filter]\nlanguages = [\"de\"]\n").unwrap();
    assert!(cfg.upstream().is_some());
    for (extra, key) in [
        ("[filter]\nproducts = [\"Windows 11\"]\n", "products"),
        (
            "[filter]\nclassifications = [\"Security Updates\"]\n",
            "classifications",
        ),
    ] {
        let e = parse(extra).unwrap_err().to_string();
        assert!(
            e.contains(&format!("[filter] {key}")) && e.contains("only at the top-level site"),
            "{e}"
        );
        assert!(e.contains("p.toml:"), "the line is named: {e}");
    }
    let e = parse("[[source]]\nname = \"x\"\nkind = \"directory\"\npath = \"d\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("syncs from its parent only"), "{e}");
    let text = "[site]\nname = \"PR1\"\nstore = \"s.db\"\n[[source]]\nname = \"parent\"\nkind = \"upstream\"\npath = \"http://h/\"\n";
    let e = patchsync::Config::parse(text, &dir.path().join("p.toml"), dir.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("shared secret"), "{e}");
    // A WSUS server is a top-level site's source: products and classifications are its
    // own, no secret is needed, other sources may sit beside it; its path is a URL.
    let wsus = "[site]\nname = \"TOP\"\nstore = \"s.db\"\n[[source]]\nname = \"w\"\nkind = \"wsus-server\"\n";
    let cfg = patchsync::Config::parse(
        &format!(
            "{wsus}path = \"https://wsus.contoso.com:8531/\"\n[[source]]\nname = \"d\"\nkind = \"directory\"\npath = \"d\"\n\
             [filter]\nproducts = [\"Windows 11\"]\nclassifications = [\"Security Updates\"]\n"
        ),
        &dir.path().join("p.toml"),
        dir.path(),
    )
    .unwrap();
    assert!(cfg.upstream().is_none(), "not a child");
    assert_eq!(
        cfg.filter.products,
        patchsync::filter::Pick::Some(vec!["Windows 11".into()])
    );
    let e = patchsync::Config::parse(
        &format!("{wsus}path = \"wsus.cab\"\n"),
        &dir.path().join("p.toml"),
        dir.path(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("a wsus-server source is the server's URL"),
        "{e}"
    );
    // A WSUS downstream server is a [[child]] known by name: no secret, no url.
    let top = "[site]\nname = \"TOP\"\nstore = \"s.db\"\n[[child]]\nname = \"wsus2.contoso.com\"\nwsus = true\n";
    let cfg = patchsync::Config::parse(top, &dir.path().join("p.toml"), dir.path()).unwrap();
    assert!(cfg.children[0].wsus && cfg.children[0].secret.is_empty());
    let e = patchsync::Config::parse(
        &format!("{top}secret = \"x\"\n"),
        &dir.path().join("p.toml"),
        dir.path(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("known by its name only"), "{e}");
}

/// What a recording proxy saw: (SOAPAction, request body, response body).
type Exchanges = Arc<Mutex<Vec<(String, String, String)>>>;

/// A loopback HTTP proxy in front of `target` that records every exchange, holding each
/// GetUpdateData answer back for `delay` (a slow link); 502 while `target` is down.
fn recording_proxy(target: String, delay: Duration) -> (u16, Exchanges) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Exchanges = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let mut headers = HashMap::new();
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                }
            }
            let len: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let body = String::from_utf8(body).unwrap();
            let mut req = agent().post(&format!("{target}{path}"));
            for k in ["soapaction", "authorization", "content-type"] {
                if let Some(v) = headers.get(k) {
                    req = req.header(k, v);
                }
            }
            let (status, answer) = match req.send(&body) {
                Ok(mut r) => (
                    r.status().as_u16(),
                    r.body_mut().read_to_string().unwrap_or_default(),
                ),
                Err(e) => (502, format!("the parent is down: {e}")),
            };
            let action = headers.get("soapaction").cloned().unwrap_or_default();
            if action.contains("GetUpdateData") {
                std::thread::sleep(delay);
            }
            log.lock()
                .unwrap()
                .push((action.trim_matches('"').to_owned(), body, answer.clone()));
            let _ = write!(
                conn,
                "HTTP/1.1 {status} X\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (port, seen)
}

/// Compares a message with its golden file: names, namespaces, nesting and order (a run of
/// same-named siblings as one), text unless the golden file says `*`; patchsync's extension
/// elements are skipped.
fn same_shape(golden: &Node, actual: &Node, path: &str) -> Result<(), String> {
    let here = format!("{path}/{}", golden.name);
    if golden.name != actual.name || golden.ns != actual.ns {
        return Err(format!(
            "{here}: found <{}> in {:?}, expected namespace {:?}",
            actual.name, actual.ns, golden.ns
        ));
    }
    let runs = |n: &Node| -> Vec<Node> {
        let mut out: Vec<Node> = Vec::new();
        for c in n.children.iter().filter(|c| c.ns != soap::NS_EXT) {
            if out.last().is_none_or(|l: &Node| l.name != c.name) {
                out.push(c.clone());
            }
        }
        out
    };
    let (g, a) = (runs(golden), runs(actual));
    if g.is_empty() && golden.text.trim() != "*" && golden.text.trim() != actual.text.trim() {
        return Err(format!(
            "{here}: text {:?}, expected {:?}",
            actual.text.trim(),
            golden.text.trim()
        ));
    }
    let names = |v: &[Node]| v.iter().map(|n| n.name.clone()).collect::<Vec<_>>();
    if names(&g) != names(&a) {
        return Err(format!(
            "{here}: children {:?}, expected {:?}",
            names(&a),
            names(&g)
        ));
    }
    for (g, a) in g.iter().zip(a.iter()) {
        same_shape(g, a, &here)?;
    }
    Ok(())
}

fn check_golden(file: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/golden/wsusss")
        .join(file);
    let golden = soap::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let actual = soap::parse(actual).unwrap_or_else(|e| panic!("{file}: {e}: {actual}"));
    if let Err(e) = same_shape(&golden, &actual, "") {
        panic!("{file}: {e}\nmessage: {}", &actual_text(&actual));
    }
}

fn actual_text(n: &Node) -> String {
    format!("{n:?}").chars().take(3000).collect()
}

#[test]
fn soap_messages_match_the_specification() {
    let (cas, _) = top(300, &[("PR1", "s", free_port())]);
    assert!(cas.site.cli(&["sync"]).status.success());
    let _svc = cas.start();
    let (proxy, seen) = recording_proxy(cas.base(), Duration::ZERO);
    synced_child(proxy, "\"en\"");
    let seen = seen.lock().unwrap().clone();
    let first = |op: &str, config: Option<bool>| {
        seen.iter()
            .find(|(a, req, _)| {
                a.ends_with(&format!("/{op}"))
                    && config.is_none_or(|c| req.contains(&format!("<GetConfig>{c}</GetConfig>")))
            })
            .cloned()
            .unwrap_or_else(|| {
                panic!(
                    "no {op} call: {:?}",
                    seen.iter().map(|s| &s.0).collect::<Vec<_>>()
                )
            })
    };
    // The calls come in the protocol's order.
    let order: Vec<&str> = seen
        .iter()
        .map(|(a, _, _)| a.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(
        &order[..6],
        [
            "GetAuthConfig",
            "GetAuthorizationCookie",
            "GetCookie",
            "GetConfigData",
            "GetRevisionIdList",
            "GetUpdateData"
        ]
    );
    for (op, config, stem) in [
        ("GetAuthConfig", None, "GetAuthConfig"),
        ("GetAuthorizationCookie", None, "GetAuthorizationCookie"),
        ("GetCookie", None, "GetCookie"),
        ("GetConfigData", None, "GetConfigData"),
        ("GetRevisionIdList", Some(true), "GetRevisionIdList.config"),
        (
            "GetRevisionIdList",
            Some(false),
            "GetRevisionIdList.updates",
        ),
        ("GetUpdateData", None, "GetUpdateData"),
    ] {
        let (action, req, resp) = first(op, config);
        let ns = if op == "GetAuthorizationCookie" {
            soap::NS_AUTH
        } else {
            soap::NS_SYNC
        };
        assert_eq!(action, format!("{ns}/{op}"));
        check_golden(&format!("{stem}.request.xml"), &req);
        let resp_stem = stem
            .trim_end_matches(".config")
            .trim_end_matches(".updates");
        check_golden(&format!("{resp_stem}.response.xml"), &resp);
    }
    // A bad cookie is a SOAP fault with the protocol's error code.
    let body = soap::envelope(&format!(
        "<GetRevisionIdList xmlns=\"{}\"><cookie><Expiration>2030-01-01T00:00:00Z</Expiration>\
         <EncryptedData>Zm9yZ2Vk</EncryptedData></cookie><filter><GetConfig>true</GetConfig>\
         <Get63LanguageOnly>false</Get63LanguageOnly></filter></GetRevisionIdList>",
        soap::NS_SYNC
    ));
    let mut r = agent()
        .post(&format!(
            "{}/ServerSyncWebService/ServerSyncWebService.asmx",
            cas.base()
        ))
        .header(
            "SOAPAction",
            &format!("\"{}/GetRevisionIdList\"", soap::NS_SYNC),
        )
        .header("Content-Type", "text/xml; charset=utf-8")
        .send(&body)
        .unwrap();
    assert_eq!(r.status().as_u16(), 500);
    check_golden(
        "Fault.InvalidCookie.response.xml",
        &r.body_mut().read_to_string().unwrap(),
    );
    // A SOAPAction that does not match the body is refused; paths match in any case.
    let mut r = agent()
        .post(&format!(
            "{}/serversyncwebservice/serversyncwebservice.asmx",
            cas.base()
        ))
        .header(
            "SOAPAction",
            &format!("\"{}/GetUpdateData\"", soap::NS_SYNC),
        )
        .send(&body)
        .unwrap();
    assert_eq!(r.status().as_u16(), 500);
    let text = r.body_mut().read_to_string().unwrap();
    assert!(
        text.contains("<ErrorCode>InvalidParameters</ErrorCode>"),
        "{text}"
    );
}

#[test]
fn a_child_syncs_from_a_parent_over_https_trusting_the_configured_certificate() {
    let (cas, _) = top(200, &[("PR1", "s", free_port())]);
    let (cert, key) = (cas.site.path("tls/cert.pem"), cas.site.path("tls/key.pem"));
    if !crate::serving::self_signed(&cert, &key) {
        return;
    }
    assert!(cas.site.cli(&["sync"]).status.success());
    let mut t = std::fs::read_to_string(cas.site.config_path()).unwrap();
    t = t.replace(
        "[service]\n",
        "[service]\ntls_cert = \"tls/cert.pem\"\ntls_key = \"tls/key.pem\"\n",
    );
    std::fs::write(cas.site.config_path(), t).unwrap();
    let mut svc = crate::serving::spawn(&cas.site, std::process::Stdio::null());
    let source = format!(
        "[[source]]\nname = \"parent\"\nkind = \"upstream\"\npath = \"https://127.0.0.1:{}/\"\nsecret = \"s\"\n",
        cas.port
    );
    // Without the parent's certificate the child refuses the connection ...
    let untrusting = member("PR1", &source, "", &[]);
    let mut out = untrusting.site.cli(&["sync"]);
    for _ in 0..50 {
        if String::from_utf8_lossy(&out.stderr).contains("certificate") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        out = untrusting.site.cli(&["sync"]);
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("certificate"),
        "{err}"
    );
    // ... and with it syncs the parent's catalog.
    let trusting = synced(
        &format!("{source}tls_ca = {:?}\n", cert.display().to_string()),
        "",
    );
    let digest = |s: &Site| s.cli_json(&["status", "--json"])["content_digest"].clone();
    assert_eq!(digest(&trusting.site), digest(&cas.site));
    let _ = svc.kill();
    let _ = svc.wait();
}

/// The server alone (no HTTP): the auth sequence, then requests a child should not send.
#[test]
fn the_server_answers_bad_requests_with_the_protocols_faults() {
    use patchsync::hierarchy::{Service, UpstreamServer};
    let (cas, cab) = top(300, &[("PR1", "s", free_port())]);
    assert!(cas.site.cli(&["sync"]).status.success());
    let server = UpstreamServer::new(patchsync::Config::load(&cas.site.config_path()).unwrap());
    let call = |service, op: &str, inner: &str, auth: Option<&str>| {
        let ns = if service == Service::DssAuth {
            soap::NS_AUTH
        } else {
            soap::NS_SYNC
        };
        let body = soap::envelope(&format!("<{op} xmlns=\"{ns}\">{inner}</{op}>"));
        let r = server.handle(service, Some(&format!("\"{ns}/{op}\"")), &body, auth);
        (r.status, soap::body(&r.body))
    };
    let code = |r: &(u16, Result<Node, soap::Fault>)| {
        assert_eq!(r.0, 500);
        r.1.as_ref().unwrap_err().code.map(|c| c.as_str())
    };
    let basic = |s: &str| {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    };
    // Unknown site, wrong secret, no credentials.
    for auth in [Some(basic("PR9:s")), Some(basic("PR1:x")), None] {
        let r = call(
            Service::DssAuth,
            "GetAuthorizationCookie",
            "<accountName>PR1</accountName>",
            auth.as_deref(),
        );
        assert_eq!(code(&r), Some("InvalidAuthorizationCookie"), "{auth:?}");
    }
    let r = call(
        Service::DssAuth,
        "GetAuthorizationCookie",
        "<accountName>PR1</accountName>",
        Some(&basic("PR1:s")),
    );
    let auth_cookie =
        r.1.unwrap()
            .at(&["GetAuthorizationCookieResult", "CookieData"])
            .unwrap()
            .text
            .clone();
    let get_cookie = |version: &str, data: &str| {
        call(
            Service::ServerSync,
            "GetCookie",
            &format!(
                "<authCookies><AuthorizationCookie><PlugInId>DssTargeting</PlugInId><CookieData>{data}</CookieData>\
                 </AuthorizationCookie></authCookies><protocolVersion>{version}</protocolVersion>"
            ),
            None,
        )
    };
    assert_eq!(
        code(&get_cookie("2.0", &auth_cookie)),
        Some("IncompatibleProtocolVersion")
    );
    assert_eq!(
        code(&get_cookie("one", &auth_cookie)),
        Some("InvalidParameters")
    );
    assert_eq!(
        code(&get_cookie("1.7", "Zm9yZ2Vk")),
        Some("InvalidAuthorizationCookie")
    );
    let r = get_cookie("1.7", &auth_cookie);
    let result = r.1.unwrap();
    let data = result
        .at(&["GetCookieResult", "EncryptedData"])
        .unwrap()
        .text
        .clone();
    let cookie = format!(
        "<cookie><Expiration>2030-01-01T00:00:00Z</Expiration><EncryptedData>{data}</EncryptedData></cookie>"
    );
    let list = |filter: &str| {
        call(
            Service::ServerSync,
            "GetRevisionIdList",
            &format!("{cookie}<filter>{filter}</filter>"),
            None,
        )
    };

    // An anchor this server did not issue; a filter without classifications.
    let r = list(
        "<Anchor>yesterday</Anchor><GetConfig>true</GetConfig><Get63LanguageOnly>false</Get63LanguageOnly>",
    );
    assert_eq!(code(&r), Some("InvalidParameters"));
    let r = list(
        "<GetConfig>false</GetConfig><Get63LanguageOnly>false</Get63LanguageOnly>\
         <Categories><IdAndDelta><Id>a3c2375d-0c8a-42f9-bce0-28333e198407</Id><Delta>false</Delta></IdAndDelta></Categories>",
    );
    assert_eq!(code(&r), Some("InvalidParameters"));
    // The categories, then nothing new since the anchor they came with.
    let r = list("<GetConfig>true</GetConfig><Get63LanguageOnly>false</Get63LanguageOnly>");
    let res = r.1.unwrap();
    let res = res.child("GetRevisionIdListResult").unwrap();
    let n = res.child("NewRevisions").unwrap().children.len();
    assert_eq!(
        n as u64,
        cas.site.sql::<i64>(
            "SELECT COUNT(*) FROM updates WHERE update_type IN ('Category', 'Detectoid')"
        ) as u64
    );
    let anchor = res.text_of("Anchor").unwrap().to_owned();
    assert!(anchor.starts_with("1,"), "{anchor}");
    let r = list(&format!(
        "<Anchor>{anchor}</Anchor><GetConfig>true</GetConfig><Get63LanguageOnly>false</Get63LanguageOnly>"
    ));
    assert_eq!(
        r.1.unwrap()
            .at(&["GetRevisionIdListResult", "NewRevisions"])
            .unwrap()
            .children
            .len(),
        0
    );
    // More identities than MaxNumberOfUpdatesPerRequest.
    let ids = "<UpdateIdentity><UpdateID>a3c2375d-0c8a-42f9-bce0-28333e198407</UpdateID><RevisionNumber>1</RevisionNumber></UpdateIdentity>".repeat(101);
    let r = call(
        Service::ServerSync,
        "GetUpdateData",
        &format!("{cookie}<updateIds>{ids}</updateIds>"),
        None,
    );
    assert_eq!(code(&r), Some("InvalidParameters"));
    // No cookie; an operation this server does not offer.
    let r = call(Service::ServerSync, "GetConfigData", "", None);
    assert_eq!(code(&r), Some("InvalidCookie"));
    let r = call(Service::ServerSync, "GetDeployments", &cookie, None);
    assert_eq!(code(&r), Some("InvalidParameters"));
    let _ = cab;
}

/// Real catalogs (Microsoft's categories and detectoids from a WSUS export, HP's vendor
/// catalog) through a parent to a child: the child's store holds the same rows.
#[test]
fn real_catalogs_reach_a_child_row_for_row() {
    let (Some(wsus), Some(hp)) = (
        crate::common::shared_data("wsus-export/WSUS.cab"),
        crate::common::shared_data("third-party/HpCatalogForSms.zip"),
    ) else {
        return;
    };
    let site = Site::new();
    let port = free_port();
    write_config(
        &site,
        "CAS",
        port,
        &format!(
            "[[source]]\nname = \"wsus\"\nkind = \"wsus-export\"\npath = {:?}\n\
             [[source]]\nname = \"hp\"\nkind = \"sdp-catalog\"\npath = {:?}\n",
            wsus.display().to_string(),
            hp.display().to_string()
        ),
        "[filter]\nproducts = [\"*\"]\nclassifications = [\"*\"]\nlanguages = [\"*\"]\n",
        &[("PR1", "s", free_port())],
    );
    let cas = Member { site, port };
    assert!(cas.site.cli(&["sync"]).status.success());
    let _svc = cas.start();
    let pr1 = synced_child(cas.port, "\"*\"");
    let (top, child) = (
        crate::common::catalog(&cas.site.db()),
        crate::common::catalog(&pr1.site.db()),
    );
    // 4,087 updates from the export, 1,829 HP packages (and HP's company and products).
    assert_eq!(
        cas.site
            .sql::<i64>("SELECT COUNT(*) FROM updates WHERE source = 'wsus'"),
        4087
    );
    let everything: i64 = cas.site.sql("SELECT COUNT(*) FROM updates");
    assert!(everything > 4087 + 1829, "{everything}");
    assert_eq!(
        pr1.site.sql::<i64>("SELECT COUNT(*) FROM updates"),
        everything
    );
    assert_eq!(child.len(), top.len());
    for (a, b) in top.iter().zip(child.iter()) {
        assert_eq!(a, b);
    }
    let severities = |db: &Path| {
        crate::common::grouped(
            db,
            "SELECT msrc_severity, COUNT(*) FROM updates WHERE msrc_severity IS NOT NULL GROUP BY 1 ORDER BY 1",
        )
    };
    assert_eq!(
        severities(&pr1.site.db()),
        [
            ("Critical".to_owned(), 256),
            ("Important".to_owned(), 494),
            ("Low".to_owned(), 1079)
        ]
    );
    // HP's packages carry metadata over 5,120 bytes: they travelled compressed
    // (XmlUpdateBlobCompressed) and still arrived row for row.
    assert_eq!(
        cas.site.sql::<i64>(
            "SELECT COUNT(*) FROM updates WHERE source = 'hp' AND update_type != 'Category'"
        ),
        1829
    );
    let one: String = cas
        .site
        .sql("SELECT u.id FROM updates u JOIN update_xml x ON x.uid = u.uid WHERE u.source = 'hp' ORDER BY length(x.xml) DESC LIMIT 1");
    let xml = cas.site.cli(&["show", &one, "--xml"]).stdout;
    assert!(xml.len() > 5120, "{}", xml.len());
    let digest = |s: &Site| s.cli_json(&["status", "--json"])["content_digest"].clone();
    assert_eq!(digest(&pr1.site), digest(&cas.site));
}

/// `XmlUpdateBlobCompressed` may be LZX (Windows' choice): the reader takes the real WSUS
/// export's LZX cabinet, and a UTF-16 text with its byte-order mark.
#[test]
fn compressed_blobs_in_lzx_and_utf16_are_read() {
    let Some(cab) = crate::common::shared_data("wsus-export/WSUS.cab") else {
        return;
    };
    let text = patchsync::hierarchy::server::decompress_blob(&std::fs::read(cab).unwrap()).unwrap();
    assert!(
        text.contains("ExportPackage"),
        "{}",
        &text[..200.min(text.len())]
    );
    let mut utf16 = vec![0xFF, 0xFE];
    for u in "<Update>é</Update>".encode_utf16() {
        utf16.extend_from_slice(&u.to_le_bytes());
    }
    assert_eq!(
        patchsync::hierarchy::server::decode_text(&utf16).unwrap(),
        "<Update>é</Update>"
    );
}

/// The top narrows its selection on purpose (`--allow-mass-removal`); its child follows
/// without being stopped by its own guard, and holds what the top holds.
#[test]
fn a_deliberate_narrowing_at_the_top_reaches_the_child() {
    let (cas, _) = top(600, &[("PR1", "s", free_port())]);
    assert!(cas.site.cli(&["sync"]).status.success());
    let _svc = cas.start();
    let pr1 = synced_child(cas.port, "\"en\"");
    let product: String = cas.site.sql(
        "SELECT c.title FROM categories c JOIN update_categories uc ON uc.category_id = c.id
         WHERE c.kind = 'Product' GROUP BY c.id ORDER BY COUNT(*) LIMIT 1",
    );
    let config = std::fs::read_to_string(cas.site.config_path()).unwrap();
    std::fs::write(
        cas.site.config_path(),
        config.replace("products = [\"*\"]", &format!("products = [{product:?}]")),
    )
    .unwrap();
    let refused = cas.site.cli(&["sync"]);
    assert!(
        !refused.status.success(),
        "the top's own guard stops it first"
    );
    assert!(
        cas.site
            .cli(&["sync", "--allow-mass-removal"])
            .status
            .success()
    );
    let report = pr1.site.cli_json(&["sync", "--json"]);
    assert!(report["removed"].as_u64().unwrap() > 100, "{report}");
    let digest = |s: &Site| s.cli_json(&["status", "--json"])["content_digest"].clone();
    assert_eq!(digest(&pr1.site), digest(&cas.site));
}

/// A top-level site whose source is a WSUS server (`kind = "wsus-server"`; here a
/// patchsync site speaking the same protocol) asks it for its own products and
/// classifications only, and a product added later arrives with `Delta = false`: it ends
/// with the same catalog as a site filtering the same package locally. It authenticates
/// as a WSUS downstream server does, by name only (`[[child]] wsus = true` on the server);
/// a name the server does not list gets nothing.
#[test]
fn a_top_level_site_asks_a_wsus_server_for_its_selection_only() {
    let (cas, cab) = top(600, &[]);
    let mut config = std::fs::read_to_string(cas.site.config_path()).unwrap();
    config.push_str("\n[[child]]\nname = \"EDGE\"\nwsus = true\n");
    std::fs::write(cas.site.config_path(), config).unwrap();
    assert!(cas.site.cli(&["sync"]).status.success());
    let _svc = cas.start();
    let products: Vec<String> = {
        let conn = rusqlite::Connection::open(cas.site.db()).unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT c.title FROM categories c JOIN update_categories uc ON uc.category_id = c.id
                 WHERE c.kind = 'Product' GROUP BY c.id ORDER BY COUNT(*), c.title LIMIT 2",
            )
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let filter = |products: &[String]| {
        format!(
            "[filter]\nproducts = {products:?}\nclassifications = [\"Security Updates\", \"Critical Updates\"]\n\
             languages = [\"en\", \"de\"]\n"
        )
    };
    let server = format!(
        "[[source]]\nname = \"wsus\"\nkind = \"wsus-server\"\npath = \"{}/\"\n",
        cas.base()
    );
    let stranger = member("STRANGER", &server, &filter(&products[..1]), &[]);
    let refused = stranger.site.cli(&["sync"]);
    assert!(!refused.status.success());
    let e = String::from_utf8_lossy(&refused.stderr);
    assert!(e.contains("'STRANGER' sent no credentials"), "{e}");
    let local_source = format!(
        "[[source]]\nname = \"wsus\"\nkind = \"wsus-export\"\npath = {:?}\n",
        cab.display().to_string()
    );
    let edge = member("EDGE", &server, &filter(&products[..1]), &[]);
    let local = member("LOCAL", &local_source, &filter(&products[..1]), &[]);
    let digest = |s: &Site| s.cli_json(&["status", "--json"])["content_digest"].clone();
    let first = edge.site.cli_json(&["sync", "--json"]);
    assert!(local.site.cli(&["sync"]).status.success());
    assert!(first["new"].as_u64().unwrap() > 0, "{first}");
    assert_eq!(digest(&edge.site), digest(&local.site));
    // The server listed the selection, not its catalog: no update with categories outside
    // it reached the site (uncategorized ones, bundle leaves here, are always listed), while
    // the local site read and excluded hundreds.
    let excluded_with_categories = |m: &Member| -> i64 {
        let c = rusqlite::Connection::open(m.site.db()).unwrap();
        c.execute(
            "ATTACH DATABASE ?1 AS top",
            [cas.site.db().display().to_string()],
        )
        .unwrap();
        c.query_row(
            "SELECT COUNT(*) FROM catalog_items i JOIN top.updates u ON u.id = i.update_id
             WHERE i.verdict = 'excluded'
               AND EXISTS (SELECT 1 FROM top.update_categories c WHERE c.uid = u.uid)",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(excluded_with_categories(&edge), 0);
    assert!(excluded_with_categories(&local) > 100);

    // A second product: its updates come whole, the first one's as a delta.
    for m in [&edge, &local] {
        let config = std::fs::read_to_string(m.site.config_path()).unwrap();
        std::fs::write(
            m.site.config_path(),
            config.replace(&filter(&products[..1]), &filter(&products)),
        )
        .unwrap();
    }
    let second = edge.site.cli_json(&["sync", "--json"]);
    assert!(local.site.cli(&["sync"]).status.success());
    assert!(second["new"].as_u64().unwrap() > 0, "{second}");
    assert_eq!(digest(&edge.site), digest(&local.site));
    let unchanged = edge.site.cli_json(&["sync", "--json"]);
    assert_eq!(unchanged["new"].as_u64(), Some(0), "{unchanged}");
    assert_eq!(digest(&edge.site), digest(&local.site));
}
