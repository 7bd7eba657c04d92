//! Helpers shared by the integration tests: temporary sites, the CLI, shared data, CABs.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use patchsync::{Config, Engine, SyncOptions, SyncReport};
use sha1::{Digest, Sha1};

/// A file from `../shared/data`, or `None` (with a message) when it is not there. On CI
/// (`CI=true`) a missing file fails the test instead.
pub fn shared_data(rel: &str) -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    let p = root.join(rel);
    if p.exists() {
        return Some(p);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{} is missing: CI must run beside ../shared", p.display());
    }
    eprintln!(
        "SKIPPED: {} not found (tests that need ../shared/data skip outside CI)",
        p.display()
    );
    None
}

/// The `patchsync` program built with these tests.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_patchsync"))
}

/// A site in a temporary folder.
pub struct Site {
    pub dir: tempfile::TempDir,
}

impl Site {
    pub fn new() -> Site {
        Site {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn config_path(&self) -> PathBuf {
        self.path("patchsync.toml")
    }

    pub fn db(&self) -> PathBuf {
        self.path("data/patchsync.db")
    }

    /// Writes the config: `sources` as (name, kind, path) and the filter lists.
    pub fn write_config(
        &self,
        sources: &[(&str, &str, &Path)],
        products: &[&str],
        classifications: &[&str],
        languages: &[&str],
    ) {
        let list = |v: &[&str]| {
            v.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut t = String::from("[site]\nname = \"TST\"\nstore = \"data/patchsync.db\"\n\n");
        for (name, kind, path) in sources {
            t.push_str(&format!(
                "[[source]]\nname = {name:?}\nkind = {kind:?}\npath = {:?}\n\n",
                path.display().to_string()
            ));
        }
        t.push_str(&format!(
            "[filter]\nproducts = [{}]\nclassifications = [{}]\nlanguages = [{}]\n",
            list(products),
            list(classifications),
            list(languages)
        ));
        std::fs::write(self.config_path(), t).expect("write config");
    }

    pub fn engine(&self) -> Engine {
        Engine::open(Config::load(&self.config_path()).expect("config")).expect("engine")
    }

    pub fn sync(&self) -> SyncReport {
        self.engine()
            .sync(SyncOptions::default(), &mut |_| {})
            .expect("sync")
    }

    /// A sync after a deliberate filter change that removes much of the catalog.
    pub fn sync_allowing_mass_removal(&self) -> SyncReport {
        let options = SyncOptions {
            allow_mass_removal: true,
            ..Default::default()
        };
        self.engine().sync(options, &mut |_| {}).expect("sync")
    }

    pub fn try_sync(&self) -> patchsync::Result<SyncReport> {
        self.engine().sync(SyncOptions::default(), &mut |_| {})
    }

    /// Runs the CLI against this site.
    pub fn cli(&self, args: &[&str]) -> Output {
        bin()
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .output()
            .expect("run patchsync")
    }

    /// Runs the CLI and parses its stdout as JSON; panics with stderr on failure.
    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "patchsync {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
    }

    pub fn sql<T: rusqlite::types::FromSql>(&self, sql: &str) -> T {
        let c = rusqlite::Connection::open(self.db()).expect("open db");
        c.query_row(sql, [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// A digest of every catalog table (not the sync history), to prove a failed sync
    /// changed nothing.
    pub fn snapshot(&self) -> String {
        let c = rusqlite::Connection::open(self.db()).expect("open db");
        let mut h = Sha1::new();
        for t in [
            "meta",
            "sources",
            "catalog_items",
            "updates",
            "update_categories",
            "relations",
            "kb_articles",
            "cves",
            "bulletins",
            "localized",
            "files",
            "file_urls",
            "categories",
            "revisions",
            "schema",
        ] {
            // The schema without root page numbers: every table and index is still there.
            let sql = match t {
                "schema" => {
                    "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY 1, 2".into()
                }
                _ => format!("SELECT * FROM {t} ORDER BY 1, 2"),
            };
            let mut s = c.prepare(&sql).expect("prepare");
            let n = s.column_count();
            let mut rows = s.query([]).expect("query");
            h.update(t.as_bytes());
            while let Some(r) = rows.next().expect("row") {
                for i in 0..n {
                    h.update(format!("{:?}", r.get_ref(i).expect("col")).as_bytes());
                }
            }
        }
        format!("{:x}", h.finalize())
    }
}

/// Writes a CAB holding the given members (MSZIP), for hand-made packages.
pub fn write_cab(path: &Path, members: &[(&str, &[u8])]) {
    let mut b = cab::CabinetBuilder::new();
    {
        let f = b.add_folder(cab::CompressionType::MsZip);
        for (name, _) in members {
            f.add_file(*name);
        }
    }
    let file = std::fs::File::create(path).expect("create cab");
    let mut w = b.build(file).expect("build cab");
    let mut i = 0;
    while let Some(mut fw) = w.next_file().expect("next") {
        std::io::Write::write_all(&mut fw, members[i].1).expect("write member");
        i += 1;
    }
    w.finish().expect("finish cab");
}

/// A `metadata.txt` record with a correct length field.
pub fn record(id: &str, rev: u32, xml: &str) -> String {
    let n: usize = xml.chars().map(char::len_utf16).sum();
    format!("{id},{rev:08x},{n:08x},{xml}\r\n")
}

/// A minimal `package.xml` listing `(id, rev)`.
pub fn package_xml(entries: &[(&str, u32)]) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><ExportPackage ServerID=\"x\" CreationTime=\"2024-01-01T00:00:00Z\" FormatVersion=\"1.0\" ProtocolVersion=\"1.20\"><Languages /><Files /><Updates>",
    );
    for (id, rev) in entries {
        s.push_str(&format!("<Update UpdateId=\"{id}\" RevisionNumber=\"{rev}\"><Files /><Categories /><Classifications /></Update>"));
    }
    s.push_str("</Updates></ExportPackage>");
    s
}

const NS: &str = "http://schemas.microsoft.com/msus/2002/12/Update";

/// Update XML for hand-made catalogs.
pub fn update_xml(
    id: &str,
    rev: u32,
    kind: &str,
    title: &str,
    categories: &[&str],
    bundled: &[&str],
    extra: &str,
) -> String {
    let mut x = format!(
        "<upd:Update xmlns:upd=\"{NS}\" xmlns:cat=\"http://schemas.microsoft.com/msus/2002/12/UpdateHandlers/Category\"><upd:UpdateIdentity UpdateID=\"{id}\" RevisionNumber=\"{rev}\" /><upd:Properties UpdateType=\"{}\" PublicationState=\"Published\" CreationDate=\"2024-03-12T17:00:00Z\" DefaultPropertiesLanguage=\"en\">{extra}</upd:Properties><upd:LocalizedPropertiesCollection><upd:LocalizedProperties><upd:Language>en</upd:Language><upd:Title>{title}</upd:Title></upd:LocalizedProperties><upd:LocalizedProperties><upd:Language>de</upd:Language><upd:Title>DE {title}</upd:Title></upd:LocalizedProperties><upd:LocalizedProperties><upd:Language>fr</upd:Language><upd:Title>FR {title}</upd:Title></upd:LocalizedProperties></upd:LocalizedPropertiesCollection><upd:Relationships><upd:Prerequisites>",
        if kind.starts_with("Category:") {
            "Category"
        } else {
            kind
        }
    );
    for c in categories {
        x.push_str(&format!("<upd:AtLeastOne IsCategory=\"true\"><upd:UpdateIdentity UpdateID=\"{c}\" /></upd:AtLeastOne>"));
    }
    x.push_str("</upd:Prerequisites>");
    if !bundled.is_empty() {
        x.push_str("<upd:BundledUpdates>");
        for b in bundled {
            x.push_str(&format!(
                "<upd:UpdateIdentity UpdateID=\"{b}\" RevisionNumber=\"1\" />"
            ));
        }
        x.push_str("</upd:BundledUpdates>");
    }
    x.push_str("</upd:Relationships>");
    if let Some(k) = kind.strip_prefix("Category:") {
        x.push_str(&format!("<upd:HandlerSpecificData><cat:CategoryInformation CategoryType=\"{k}\" /></upd:HandlerSpecificData>"));
    }
    x.push_str("</upd:Update>");
    x
}

/// Generates a synthetic package with the built-in category tree.
pub fn generated(dir: &Path, name: &str, updates: usize, seed: u64) -> PathBuf {
    let p = dir.join(name);
    patchsync::generate::generate(
        &p,
        &patchsync::generate::GenerateOptions {
            updates,
            seed,
            categories_from: None,
        },
    )
    .expect("generate");
    p
}

/// How the loopback HTTP server answers.
#[derive(Clone)]
pub enum Serve {
    /// 200 with this body.
    Body(Vec<u8>),
    /// This status and a short body.
    Status(u16),
    /// Announces the whole body's length, sends `cut` bytes, then closes.
    CutOff(Vec<u8>, usize),
    /// 200 with this body and ETag, or 304 to a request that names the ETag.
    Cached(Vec<u8>, String),
}

/// A real HTTP/1.1 server on 127.0.0.1 answering every request the same way, until dropped.
pub struct HttpServer {
    pub url: String,
    /// Responses that carried a body (not 304).
    pub bodies: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl HttpServer {
    pub fn start(path: &str, answer: Serve) -> HttpServer {
        use std::io::{BufRead, BufReader, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}{path}", listener.local_addr().unwrap());
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let bodies = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = bodies.clone();
        let handle = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let (mut sock, _) = match listener.accept() {
                    Ok(s) => s,
                    Err(_) => {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        continue;
                    }
                };
                sock.set_nonblocking(false).ok();
                let mut r = BufReader::new(sock.try_clone().expect("clone"));
                let mut line = String::new();
                let mut if_none_match = None;
                while r.read_line(&mut line).is_ok_and(|n| n > 2) {
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("if-none-match:") {
                        if_none_match = Some(v.trim().to_owned());
                    }
                    line.clear();
                }
                let mut extra = String::new();
                let (status, body, send) = match &answer {
                    Serve::Body(b) => (200, b.clone(), b.len()),
                    Serve::Status(s) => (*s, b"no such catalog".to_vec(), 15),
                    Serve::CutOff(b, cut) => (200, b.clone(), *cut),
                    Serve::Cached(b, etag) => {
                        extra = format!("ETag: {etag}\r\n");
                        if if_none_match.as_deref() == Some(etag.to_ascii_lowercase().as_str()) {
                            (304, Vec::new(), 0)
                        } else {
                            (200, b.clone(), b.len())
                        }
                    }
                };
                if status != 304 {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
                let head = format!(
                    "HTTP/1.1 {status} X\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes());
                let _ = sock.write_all(&body[..send]);
                let _ = sock.flush();
            }
        });
        HttpServer {
            url,
            bodies,
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Counts rows of a two-column `SELECT key, COUNT(*) ... GROUP BY key` query.
pub fn grouped(db: &Path, sql: &str) -> Vec<(String, i64)> {
    let c = rusqlite::Connection::open(db).expect("open db");
    let mut s = c.prepare(sql).expect("prepare");
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .map(Result::unwrap)
        .collect()
}

/// Every active update with what a site stores of it, one line each.
pub fn catalog(db: &Path) -> Vec<String> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut s = c
        .prepare(
            "SELECT u.id, u.revision, u.update_type, COALESCE(u.title, ''), u.publication_state,
                    COALESCE(u.msrc_severity, ''), u.is_bundle, COALESCE(u.creation_date, ''), COALESCE(u.default_language, ''), u.is_beta, COALESCE(u.max_download_size, 0), COALESCE(u.more_info_url, ''),
                    (SELECT group_concat(category_id) FROM (SELECT category_id FROM update_categories uc WHERE uc.uid = u.uid ORDER BY 1)),
                    (SELECT group_concat(k) FROM (SELECT r.kind || '>' || r.other_id AS k FROM relations r WHERE r.uid = u.uid ORDER BY 1)),
                    (SELECT group_concat(k) FROM (SELECT f.name || '@' || COALESCE(fu.url, '') AS k FROM files f LEFT JOIN file_urls fu ON fu.digest = f.digest WHERE f.uid = u.uid ORDER BY 1)),
                    (SELECT group_concat(k) FROM (SELECT l.language || '=' || l.title AS k FROM localized l WHERE l.uid = u.uid ORDER BY 1)),
                    (SELECT group_concat(kb) FROM (SELECT kb FROM kb_articles k WHERE k.uid = u.uid ORDER BY 1))
             FROM updates u WHERE u.state = 'active' ORDER BY u.id",
        )
        .unwrap();
    s.query_map([], |r| {
        let mut line = String::new();
        for i in 0..17 {
            match r.get_ref(i)? {
                rusqlite::types::ValueRef::Text(t) => line.push_str(&String::from_utf8_lossy(t)),
                v => line.push_str(&format!("{v:?}")),
            }
            line.push('|');
        }
        Ok(line)
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}
