//! Source for a directory of update XML files (one `Update` document per `*.xml` file).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};

use super::{CatalogSource, Fetched, Listing};
use crate::error::{Error, Result};
use crate::model::Identity;
use crate::xml::parse_update;

/// A folder of `*.xml` update documents, searched recursively.
pub struct DirectorySource {
    name: String,
    root: PathBuf,
    files: HashMap<Identity, PathBuf>,
}

impl DirectorySource {
    pub fn new(name: impl Into<String>, root: impl Into<PathBuf>) -> Self {
        DirectorySource {
            name: name.into(),
            root: root.into(),
            files: HashMap::new(),
        }
    }

    fn xml_files(&self) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let rd = std::fs::read_dir(&dir).map_err(|e| {
                Error::source(
                    &self.name,
                    dir.display().to_string(),
                    format!("cannot read the directory: {e}"),
                )
            })?;
            for entry in rd {
                let entry = entry.map_err(|e| {
                    Error::source(&self.name, dir.display().to_string(), e.to_string())
                })?;
                let p = entry.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x.eq_ignore_ascii_case("xml")) {
                    out.push(p);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn read(&self, path: &Path) -> Result<String> {
        let bytes = std::fs::read(path).map_err(|e| {
            Error::source(
                &self.name,
                path.display().to_string(),
                format!("cannot read: {e}"),
            )
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            Error::source(
                &self.name,
                path.display().to_string(),
                format!("not UTF-8 text: {e}"),
            )
        })?;
        Ok(text.trim_start_matches('\u{feff}').to_owned())
    }
}

impl CatalogSource for DirectorySource {
    fn name(&self) -> &str {
        &self.name
    }

    fn fingerprint(&mut self) -> Result<Option<String>> {
        let mut h = Sha1::new();
        for p in self.xml_files()? {
            let fp = super::wsus_export::file_fingerprint(&p)
                .map_err(|e| Error::source(&self.name, p.display().to_string(), e.to_string()))?;
            h.update(p.to_string_lossy().as_bytes());
            h.update(fp.as_bytes());
        }
        Ok(Some(format!("{:x}", h.finalize())))
    }

    fn list(&mut self) -> Result<Listing> {
        self.files.clear();
        for p in self.xml_files()? {
            let text = self.read(&p)?;
            let u = parse_update(&text)
                .map_err(|e| Error::source(&self.name, p.display().to_string(), e.to_string()))?;
            if let Some(other) = self.files.insert(u.identity, p.clone()) {
                return Err(Error::source(
                    &self.name,
                    p.display().to_string(),
                    format!(
                        "update {} revision {} is also in {}; keep one file per revision",
                        u.identity.id,
                        u.identity.revision,
                        other.display()
                    ),
                ));
            }
        }
        let mut entries: Vec<Identity> = self.files.keys().copied().collect();
        entries.sort();
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
        if self.files.is_empty() {
            self.list()?;
        }
        let mut paths: Vec<(&Identity, &PathBuf)> = self
            .files
            .iter()
            .filter(|(i, _)| wanted.contains(i))
            .collect();
        paths.sort_by(|a, b| a.1.cmp(b.1));
        for (_, p) in paths {
            let text = self.read(p)?;
            let update = parse_update(&text)
                .map_err(|e| Error::source(&self.name, p.display().to_string(), e.to_string()))?;
            sink(Fetched::Update {
                update: Box::new(update),
                origin: p.display().to_string(),
            })?;
        }
        Ok(())
    }
}
