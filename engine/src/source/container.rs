//! A catalog file that may be a zip archive, a CAB, or a plain file: one way to list and
//! read the entries of each, told apart by their first bytes, not their names.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// An opened catalog file.
pub(crate) enum Container {
    /// Not an archive: the file itself is the one entry.
    Plain(PathBuf),
    Zip(Box<zip::ZipArchive<BufReader<File>>>),
    Cab(Box<cab::Cabinet<File>>),
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Container::Plain(_) => "Container::Plain",
            Container::Zip(_) => "Container::Zip",
            Container::Cab(_) => "Container::Cab",
        })
    }
}

impl Container {
    /// Opens `path`, reading its directory if it is an archive. `shown` is how errors name it.
    pub(crate) fn open(source: &str, path: &Path, shown: &str) -> Result<Container> {
        let mut f = File::open(path)
            .map_err(|e| Error::source(source, shown, format!("cannot open the catalog: {e}")))?;
        let mut magic = [0u8; 4];
        let n = read_up_to(&mut f, &mut magic)
            .map_err(|e| Error::source(source, shown, format!("cannot read: {e}")))?;
        drop(f);
        let reopen = || {
            File::open(path).map_err(|e| Error::source(source, shown, format!("cannot open: {e}")))
        };
        match &magic[..n] {
            b"PK\x03\x04" | b"PK\x05\x06" => {
                let z = zip::ZipArchive::new(BufReader::new(reopen()?)).map_err(|e| {
                    Error::source(
                        source,
                        shown,
                        format!(
                            "not a readable zip archive ({e}); the file is probably truncated: download it again"
                        ),
                    )
                })?;
                Ok(Container::Zip(Box::new(z)))
            }
            b"MSCF" => {
                let c = cab::Cabinet::new(reopen()?).map_err(|e| {
                    Error::source(
                        source,
                        shown,
                        format!(
                            "not a readable CAB ({e}); the file is probably truncated: download it again"
                        ),
                    )
                })?;
                Ok(Container::Cab(Box::new(c)))
            }
            _ => Ok(Container::Plain(path.to_owned())),
        }
    }

    /// Entry names, in archive order (the file's own name for a plain file).
    pub(crate) fn names(&self) -> Vec<String> {
        match self {
            Container::Plain(p) => vec![
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ],
            Container::Zip(z) => z
                .file_names()
                .map(str::to_owned)
                .filter(|n| !n.ends_with('/'))
                .collect(),
            Container::Cab(c) => c
                .folder_entries()
                .flat_map(|f| f.file_entries())
                .map(|e| e.name().to_owned())
                .collect(),
        }
    }

    pub(crate) fn is_archive(&self) -> bool {
        !matches!(self, Container::Plain(_))
    }

    /// Opens one entry for streaming.
    pub(crate) fn open_entry(&mut self, name: &str) -> std::io::Result<Box<dyn Read + '_>> {
        match self {
            Container::Plain(p) => Ok(Box::new(File::open(p)?)),
            Container::Zip(z) => z
                .by_name(name)
                .map(|r| Box::new(r) as Box<dyn Read>)
                .map_err(|e| std::io::Error::other(e.to_string())),
            Container::Cab(c) => Ok(Box::new(c.read_file(name)?)),
        }
    }
}

fn read_up_to(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
