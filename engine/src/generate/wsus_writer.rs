//! Writes a `wsusutil export`-style package (CAB with `package.xml` and `metadata.txt`),
//! streaming: records go to temporary files beside the output, then into the CAB.

use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::error::{Error, Result};

/// Escapes text for XML content and attribute values.
pub fn xml_escape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"', '\'']) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c => o.push(c),
        }
    }
    std::borrow::Cow::Owned(o)
}

/// What `package.xml` says of one update.
#[derive(Debug, Default, Clone)]
pub struct PackageEntry {
    pub file_digests: Vec<String>,
    pub categories: Vec<String>,
    pub classifications: Vec<String>,
}

/// Streams records into a WSUS export package.
pub struct WsusExportWriter {
    out: PathBuf,
    metadata: BufWriter<NamedTempFile>,
    updates: BufWriter<NamedTempFile>,
    files: BufWriter<NamedTempFile>,
    languages: Vec<(u32, String, String)>,
    records: u64,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

impl WsusExportWriter {
    /// Starts a package that will be written to `out`. `languages` are (LCID, short, long).
    pub fn create(out: &Path, languages: Vec<(u32, String, String)>) -> Result<Self> {
        let dir = out
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let tmp = || {
            NamedTempFile::new_in(dir)
                .map(|f| BufWriter::with_capacity(1 << 20, f))
                .map_err(io(dir))
        };
        Ok(WsusExportWriter {
            out: out.to_owned(),
            metadata: tmp()?,
            updates: tmp()?,
            files: tmp()?,
            languages,
            records: 0,
        })
    }

    /// Adds one update revision: its record in `metadata.txt` and its entry in `package.xml`.
    pub fn add_update(
        &mut self,
        id: &str,
        revision: u32,
        xml: &str,
        entry: &PackageEntry,
    ) -> Result<()> {
        let out = self.out.clone();
        let units: usize = xml.chars().map(char::len_utf16).sum();
        write!(self.metadata, "{id},{revision:08x},{units:08x},{xml}\r\n").map_err(io(&out))?;
        let u = &mut self.updates;
        write!(
            u,
            "<Update UpdateId=\"{id}\" RevisionNumber=\"{revision}\">"
        )
        .map_err(io(&out))?;
        let list = |u: &mut BufWriter<NamedTempFile>,
                    outer: &str,
                    inner: &str,
                    attr: &str,
                    vals: &[String]| {
            if vals.is_empty() {
                write!(u, "<{outer} />")
            } else {
                write!(u, "<{outer}>")?;
                for v in vals {
                    write!(u, "<{inner} {attr}=\"{}\" />", xml_escape(v))?;
                }
                write!(u, "</{outer}>")
            }
        };
        list(u, "Files", "File", "Digest", &entry.file_digests).map_err(io(&out))?;
        list(u, "Categories", "Category", "Value", &entry.categories).map_err(io(&out))?;
        list(
            u,
            "Classifications",
            "Classification",
            "Value",
            &entry.classifications,
        )
        .map_err(io(&out))?;
        write!(u, "</Update>").map_err(io(&out))?;
        self.records += 1;
        Ok(())
    }

    /// Adds a file's download URL (joined to updates by digest).
    pub fn add_file(&mut self, digest: &str, url: &str, name: &str) -> Result<()> {
        write!(
            self.files,
            "<File Digest=\"{}\" MUUrl=\"{}\" Name=\"{}\" />",
            xml_escape(digest),
            xml_escape(url),
            xml_escape(name)
        )
        .map_err(io(&self.out))
    }

    pub fn records(&self) -> u64 {
        self.records
    }

    /// Assembles `package.xml` and writes the CAB (MSZIP). Returns the records written.
    pub fn finish(self, server_id: &str, creation_time: &str) -> Result<u64> {
        let out = self.out.clone();
        let dir = out
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned();
        let finish = |w: BufWriter<NamedTempFile>| -> Result<NamedTempFile> {
            let mut f = w
                .into_inner()
                .map_err(|e| Error::io(&out, e.into_error()))?;
            f.as_file_mut().seek(SeekFrom::Start(0)).map_err(io(&out))?;
            Ok(f)
        };
        let metadata = finish(self.metadata)?;
        let mut files = finish(self.files)?;
        let mut updates = finish(self.updates)?;
        let mut package = BufWriter::new(NamedTempFile::new_in(&dir).map_err(io(&dir))?);
        write!(
            package,
            "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?><ExportPackage ServerID=\"{server_id}\" CreationTime=\"{creation_time}\" FormatVersion=\"1.0\" ProtocolVersion=\"1.20\"><Languages>"
        )
        .map_err(io(&out))?;
        for (lcid, short, long) in &self.languages {
            write!(
                package,
                "<Language Id=\"{lcid}\" ShortName=\"{short}\" LongName=\"{long}\" Enabled=\"1\" />"
            )
            .map_err(io(&out))?;
        }
        write!(package, "</Languages><Files>").map_err(io(&out))?;
        std::io::copy(files.as_file_mut(), &mut package).map_err(io(&out))?;
        write!(package, "</Files><Updates>").map_err(io(&out))?;
        std::io::copy(updates.as_file_mut(), &mut package).map_err(io(&out))?;
        write!(package, "</Updates></ExportPackage>").map_err(io(&out))?;
        let package = finish(package)?;

        let mut builder = cab::CabinetBuilder::new();
        {
            let folder = builder.add_folder(cab::CompressionType::MsZip);
            folder.add_file("package.xml");
            folder.add_file("metadata.txt");
        }
        let tmp_out = NamedTempFile::new_in(&dir).map_err(io(&dir))?;
        let mut writer = builder.build(tmp_out).map_err(io(&out))?;
        let mut sources = [package, metadata];
        let mut i = 0;
        while let Some(mut w) = writer.next_file().map_err(io(&out))? {
            std::io::copy(sources[i].as_file_mut(), &mut w).map_err(io(&out))?;
            i += 1;
        }
        let done = writer.finish().map_err(io(&out))?;
        done.persist(&out).map_err(|e| Error::io(&out, e.error))?;
        // Temporary files are private; the package is an ordinary file.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644))
                .map_err(io(&out))?;
        }
        Ok(self.records)
    }
}
