//! Source for a `wsusutil export` package: a CAB holding `package.xml` and `metadata.txt`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use quick_xml::Reader;
use quick_xml::events::Event;

use super::{CatalogSource, Fetched, Listing, RecordReader};
use crate::error::{Error, Result};
use crate::model::{Identity, UpdateId};
use crate::xml::parse_update_owned;

/// A WSUS export package on disk.
pub struct WsusExportSource {
    name: String,
    path: PathBuf,
}

impl WsusExportSource {
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        WsusExportSource {
            name: name.into(),
            path: path.into(),
        }
    }

    fn err(&self, item: impl Into<String>, message: impl Into<String>) -> Error {
        Error::source(&self.name, item, message)
    }

    /// Checks that the package is a readable CAB holding both members.
    fn open(&self) -> Result<()> {
        let entries = super::cab_stream::entries(&self.path).map_err(|e| {
            let message = if e.kind() == std::io::ErrorKind::InvalidData {
                format!("not a readable CAB archive ({e}); copy the package again or re-run `wsusutil export`")
            } else {
                format!("cannot open the export package: {e}")
            };
            self.err(self.path.display().to_string(), message)
        })?;
        for needed in ["package.xml", "metadata.txt"] {
            if !entries.iter().any(|e| e.name == needed) {
                return Err(self.err(
                    self.path.display().to_string(),
                    format!("the CAB has no {needed}; this is not a `wsusutil export` package"),
                ));
            }
        }
        Ok(())
    }

    /// Calls `read` with the member `name`, decompressed as it is read.
    fn with_member<T>(
        &self,
        name: &str,
        read: impl FnOnce(&mut dyn std::io::BufRead) -> Result<T>,
    ) -> Result<T> {
        super::cab_stream::read_file(&self.path, name, read)
            .map_err(|e| self.err(self.item(name), format!("cannot read: {e}")))?
            .ok_or_else(|| {
                self.err(
                    self.path.display().to_string(),
                    format!("the CAB has no {name}; this is not a `wsusutil export` package"),
                )
            })?
    }

    fn item(&self, member: &str) -> String {
        format!("{} ({member})", self.path.display())
    }

    /// Walks `package.xml`, calling `on_update(id, revision)` for `Updates/Update` (when
    /// `updates` is true) and `on_file(digest, url)` for top-level `Files/File`. Without
    /// `updates` it stops after `Files`, which comes first.
    fn walk_package(
        &self,
        reader: impl std::io::BufRead,
        updates: bool,
        mut on_update: impl FnMut(&str, &str) -> Result<()>,
        mut on_file: impl FnMut(&str, &str) -> Result<()>,
    ) -> Result<()> {
        #[derive(Clone, Copy, PartialEq)]
        enum Tag {
            Root,
            Files,
            Updates,
            Other,
        }
        let item = self.item("package.xml");
        let mut xml = Reader::from_reader(reader);
        let mut buf = Vec::with_capacity(4096);
        let mut path: Vec<Tag> = Vec::new();
        let mut saw_root = false;
        let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
        loop {
            let ev = xml.read_event_into(&mut buf).map_err(|e| {
                self.err(
                    &item,
                    format!(
                        "malformed XML at byte {}: {e}; the package is truncated or corrupt",
                        xml.error_position()
                    ),
                )
            })?;
            match ev {
                Event::Start(ref e) | Event::Empty(ref e) => {
                    let local = e.local_name();
                    let local = local.as_ref();
                    let tag = match (path.last(), local) {
                        (None, b"ExportPackage") => Tag::Root,
                        (None, _) => {
                            return Err(self.err(
                                &item,
                                format!(
                                    "root element is <{}>, expected <ExportPackage>",
                                    text(local)
                                ),
                            ));
                        }
                        (Some(Tag::Root), b"Files") => Tag::Files,
                        (Some(Tag::Root), b"Updates") => Tag::Updates,
                        _ => Tag::Other,
                    };
                    saw_root = true;
                    match (path.last(), local) {
                        (Some(Tag::Updates), b"Update") if updates => {
                            let (mut id, mut rev) = (String::new(), String::new());
                            for a in e.attributes().flatten() {
                                match a.key.local_name().as_ref() {
                                    b"UpdateId" => id = text(&a.value),
                                    b"RevisionNumber" => rev = text(&a.value),
                                    _ => {}
                                }
                            }
                            on_update(&id, &rev)?;
                        }
                        (Some(Tag::Files), b"File") => {
                            let (mut digest, mut url) = (None, None);
                            for a in e.attributes().flatten() {
                                match a.key.local_name().as_ref() {
                                    b"Digest" => digest = Some(a.value),
                                    b"MUUrl" => url = a.unescape_value().ok(),
                                    _ => {}
                                }
                            }
                            let digest = digest.as_deref().map(String::from_utf8_lossy);
                            if let (Some(d), Some(u)) = (digest, url)
                                && !d.is_empty()
                                && !u.is_empty()
                            {
                                on_file(&d, &u)?;
                            }
                        }
                        _ => {}
                    }
                    if matches!(ev, Event::Start(_)) {
                        path.push(tag);
                    }
                }
                Event::End(_) => {
                    let closed = path.pop();
                    if closed == Some(Tag::Files) && !updates {
                        return Ok(());
                    }
                }
                Event::Eof => break,
                _ => {}
            }
            buf.clear();
        }
        if !saw_root || !path.is_empty() {
            return Err(self.err(&item, "the XML ends early; the package is truncated"));
        }
        Ok(())
    }

    /// One pass over `metadata.txt`: every record's identity goes to `listing` (if given),
    /// the records `want` accepts are parsed and handed to `sink` (the others are skipped
    /// unparsed), then the download URLs of their files are read from `package.xml`.
    fn scan(
        &self,
        want: &(dyn Fn(Identity) -> bool + Sync),
        mut listing: Option<&mut Vec<Identity>>,
        sink: &mut dyn FnMut(Fetched) -> Result<()>,
    ) -> Result<()> {
        self.open()?;
        let mut digests: HashSet<String> = HashSet::new();
        self.with_member("metadata.txt", |reader| {
            let mut records = RecordReader::new(reader);
            let item = self.item("metadata.txt");
            let damaged = |m: String| {
                if m.contains("cannot read") || m.contains("file ends inside") {
                    format!(
                        "{m}; the package is truncated or corrupt: copy it again or re-run `wsusutil export`"
                    )
                } else {
                    m
                }
            };
            let bad_id: std::cell::Cell<Option<String>> = std::cell::Cell::new(None);
            let mut decide = |id_text: &str, revision: u32| match UpdateId::parse(id_text) {
                Ok(id) => {
                    let identity = Identity { id, revision };
                    if let Some(l) = listing.as_mut() {
                        l.push(identity);
                    }
                    want(identity)
                }
                Err(m) => {
                    bad_id.set(Some(m));
                    false
                }
            };
            while let Some(mut rec) = records
                .next_record_if(&mut decide)
                .map_err(|m| self.err(&item, damaged(m)))?
            {
                if let Some(m) = bad_id.take() {
                    return Err(self.err(&item, format!("record {}: {m}", rec.index)));
                }
                if rec.xml.is_empty() {
                    continue; // not wanted: skipped unparsed
                }
                let id = UpdateId::parse(&rec.id_text).expect("checked while reading the header");
                let identity = Identity {
                    id,
                    revision: rec.revision,
                };
                let where_ = || {
                    format!(
                        "{item} record {} (update {id} revision {})",
                        rec.index, rec.revision
                    )
                };
                let update = parse_update_owned(std::mem::take(&mut rec.xml))
                    .map_err(|e| self.err(where_(), e.to_string()))?;
                if update.identity != identity {
                    return Err(self.err(
                        where_(),
                        format!(
                            "the record header names {id} revision {} but its XML is {} revision {}",
                            rec.revision, update.identity.id, update.identity.revision
                        ),
                    ));
                }
                digests.extend(update.files.iter().filter_map(|f| f.digest.clone()));
                sink(Fetched::Update {
                    update: Box::new(update),
                    origin: where_(),
                })?;
            }
            Ok(())
        })?;
        if !digests.is_empty() {
            self.with_member("package.xml", |reader| {
                // Handed over as found: a full sync wants every file's URL.
                self.walk_package(
                    reader,
                    false,
                    |_, _| Ok(()),
                    |d, u| {
                        if digests.contains(d) {
                            sink(Fetched::FileUrl {
                                digest: d.to_owned(),
                                url: u.to_owned(),
                            })?;
                        }
                        Ok(())
                    },
                )
            })?;
        }
        Ok(())
    }
}

/// Size and modification time: changes whenever the file is replaced.
pub(crate) fn file_fingerprint(path: &Path) -> std::io::Result<String> {
    let m = std::fs::metadata(path)?;
    let mtime = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Ok(format!("size={};mtime={mtime}", m.len()))
}

impl CatalogSource for WsusExportSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn fingerprint(&mut self) -> Result<Option<String>> {
        file_fingerprint(&self.path).map(Some).map_err(|e| {
            self.err(
                self.path.display().to_string(),
                format!("cannot read the export package: {e}"),
            )
        })
    }

    fn list(&mut self) -> Result<Listing> {
        self.open()?;
        let mut entries = Vec::new();
        let item = self.item("package.xml");
        self.with_member("package.xml", |reader| {
            self.walk_package(
                reader,
                true,
                |id, rev| {
                    let id = UpdateId::parse(id)
                        .map_err(|m| self.err(&item, format!("<Update UpdateId>: {m}")))?;
                    let revision = rev.parse::<u32>().map_err(|_| {
                        self.err(
                            &item,
                            format!("update {id}: RevisionNumber '{rev}' is not a number"),
                        )
                    })?;
                    entries.push(Identity { id, revision });
                    Ok(())
                },
                |_, _| Ok(()),
            )
        })?;
        Ok(Listing {
            entries,
            complete: true,
            ..Default::default()
        })
    }

    fn fetch(
        &mut self,
        wanted: &HashSet<Identity>,
        sink: &mut dyn FnMut(Fetched) -> Result<()>,
    ) -> Result<()> {
        if wanted.is_empty() {
            return Ok(());
        }
        self.scan(&|i: Identity| wanted.contains(&i), None, sink)
    }

    fn lists_while_fetching(&self) -> bool {
        true
    }

    fn list_and_fetch(
        &mut self,
        want: &(dyn Fn(Identity) -> bool + Sync),
        sink: &mut dyn FnMut(Fetched) -> Result<()>,
    ) -> Result<Option<Listing>> {
        let mut entries = Vec::new();
        self.scan(want, Some(&mut entries), sink)?;
        Ok(Some(Listing {
            entries,
            complete: true,
            ..Default::default()
        }))
    }
}
