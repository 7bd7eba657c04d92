//! Reads every file of a CAB in one sequential pass per folder.
//!
//! The `cab` crate opens each file by decompressing its folder from the start, which is
//! quadratic for cabinets of many small files (an offline scan file's fragment cabs hold
//! tens of thousands). This module reads the cabinet's file table itself and hands the
//! `cab` crate a view of the cabinet whose file table has one entry per folder spanning the
//! whole folder, so each folder is decompressed once, front to back, and cut into files
//! here. Decompression (MSZIP, LZX) stays the `cab` crate's.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// One file of a cabinet, as its file table says.
#[derive(Debug, Clone)]
pub(crate) struct CabEntry {
    /// The stored name with `\` turned into `/`.
    pub name: String,
    pub size: u32,
    offset: u32,
    folder: u16,
}

const HEADER_LEN: usize = 36;
const FLAG_PREV: u16 = 1;
const FLAG_NEXT: u16 = 2;

fn bad(m: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, m.into())
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// The cabinet's header and file table.
struct Table {
    header: [u8; HEADER_LEN],
    folders: u16,
    entries: Vec<CabEntry>,
}

fn read_table(f: &mut (impl Read + Seek)) -> io::Result<Table> {
    let mut header = [0u8; HEADER_LEN];
    f.read_exact(&mut header)
        .map_err(|_| bad("shorter than a CAB header: the file is truncated"))?;
    if &header[..4] != b"MSCF" {
        return Err(bad("not a CAB (no MSCF signature)"));
    }
    let flags = u16_at(&header, 30);
    if flags & (FLAG_PREV | FLAG_NEXT) != 0 {
        return Err(bad("a cabinet spanning several files is not supported"));
    }
    let files_at = u32_at(&header, 16) as u64;
    let folders = u16_at(&header, 26);
    let count = u16_at(&header, 28);
    f.seek(SeekFrom::Start(files_at))?;
    let mut r = BufReader::new(f);
    let mut entries = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let mut fixed = [0u8; 16];
        r.read_exact(&mut fixed)
            .map_err(|_| bad("the file table is cut off: the file is truncated"))?;
        let mut name = Vec::new();
        loop {
            let mut b = [0u8; 1];
            r.read_exact(&mut b)
                .map_err(|_| bad("the file table is cut off: the file is truncated"))?;
            if b[0] == 0 {
                break;
            }
            name.push(b[0]);
        }
        let folder = u16_at(&fixed, 8);
        if folder >= 0xFFFD {
            return Err(bad("a file continued across cabinets is not supported"));
        }
        if folder >= folders {
            return Err(bad(format!(
                "file table names folder {folder} of {folders}: the CAB is damaged"
            )));
        }
        entries.push(CabEntry {
            name: String::from_utf8_lossy(&name).replace('\\', "/"),
            size: u32_at(&fixed, 0),
            offset: u32_at(&fixed, 4),
            folder,
        });
    }
    Ok(Table {
        header,
        folders,
        entries,
    })
}

/// The cabinet as the `cab` crate sees it: the real bytes, with a patched header pointing
/// at a file table appended after the end.
struct View {
    file: File,
    len: u64,
    header: [u8; HEADER_LEN],
    table: Vec<u8>,
    pos: u64,
}

impl Read for View {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let p = self.pos;
        let n = if p < HEADER_LEN as u64 {
            let src = &self.header[p as usize..];
            let n = src.len().min(out.len());
            out[..n].copy_from_slice(&src[..n]);
            n
        } else if p < self.len {
            self.file.seek(SeekFrom::Start(p))?;
            let max = ((self.len - p) as usize).min(out.len());
            self.file.read(&mut out[..max])?
        } else {
            let i = (p - self.len) as usize;
            if i >= self.table.len() {
                return Ok(0);
            }
            let src = &self.table[i..];
            let n = src.len().min(out.len());
            out[..n].copy_from_slice(&src[..n]);
            n
        };
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for View {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let end = self.len + self.table.len() as u64;
        let p = match to {
            SeekFrom::Start(p) => p as i64,
            SeekFrom::Current(d) => self.pos as i64 + d,
            SeekFrom::End(d) => end as i64 + d,
        };
        if p < 0 {
            return Err(bad("seek before the start"));
        }
        self.pos = p as u64;
        Ok(self.pos)
    }
}

fn folder_name(i: u16) -> String {
    format!("patchsync-folder-{i}")
}

/// The cabinet's file table, without reading any data.
pub(crate) fn entries(path: &Path) -> io::Result<Vec<CabEntry>> {
    let mut file = File::open(path)?;
    Ok(read_table(&mut file)?.entries)
}

/// Opens `path` and calls `visit` with every file in stored order within each folder.
/// `visit` may read its file or not; what it leaves is skipped.
pub(crate) fn for_each_file(
    path: &Path,
    mut visit: impl FnMut(&CabEntry, &mut dyn Read) -> io::Result<()>,
) -> io::Result<()> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let table = read_table(&mut file)?;
    let mut spans = vec![0u64; table.folders as usize];
    for e in &table.entries {
        let end = e.offset as u64 + e.size as u64;
        let s = &mut spans[e.folder as usize];
        *s = (*s).max(end);
    }
    let mut appended = Vec::new();
    for (i, span) in spans.iter().enumerate() {
        let span = u32::try_from(*span).map_err(|_| bad("a folder larger than 4 GiB"))?;
        appended.extend_from_slice(&span.to_le_bytes());
        appended.extend_from_slice(&0u32.to_le_bytes());
        appended.extend_from_slice(&(i as u16).to_le_bytes());
        appended.extend_from_slice(&0x21u16.to_le_bytes()); // 1980-01-01
        appended.extend_from_slice(&0u16.to_le_bytes());
        appended.extend_from_slice(&0x20u16.to_le_bytes());
        appended.extend_from_slice(folder_name(i as u16).as_bytes());
        appended.push(0);
    }
    let mut header = table.header;
    let total = len + appended.len() as u64;
    header[8..12].copy_from_slice(&(total.min(u32::MAX as u64) as u32).to_le_bytes());
    header[16..20].copy_from_slice(
        &u32::try_from(len)
            .map_err(|_| bad("a CAB larger than 4 GiB"))?
            .to_le_bytes(),
    );
    header[28..30].copy_from_slice(&table.folders.to_le_bytes());
    let view = View {
        file,
        len,
        header,
        table: appended,
        pos: 0,
    };
    let mut cabinet = cab::Cabinet::new(view)?;
    let mut by_folder: Vec<Vec<&CabEntry>> = vec![Vec::new(); table.folders as usize];
    for e in &table.entries {
        by_folder[e.folder as usize].push(e);
    }
    for (i, entries) in by_folder.iter_mut().enumerate() {
        if entries.is_empty() {
            continue;
        }
        entries.sort_by_key(|e| e.offset);
        let mut stream = cabinet.read_file(&folder_name(i as u16))?;
        let mut at: u64 = 0;
        for e in entries.iter() {
            let start = e.offset as u64;
            if start < at {
                return Err(bad(format!("{} overlaps the file before it", e.name)));
            }
            let cut = || bad(format!("{} is cut off: the CAB is truncated", e.name));
            if io::copy(&mut (&mut stream).take(start - at), &mut io::sink())? != start - at {
                return Err(cut());
            }
            let mut part = (&mut stream).take(e.size as u64);
            visit(e, &mut part)?;
            io::copy(&mut part, &mut io::sink())?;
            if part.limit() != 0 {
                return Err(cut());
            }
            at = start + e.size as u64;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(path: &Path, members: &[(&str, Vec<u8>)], folders: usize) {
        let mut b = cab::CabinetBuilder::new();
        let per = members.len().div_ceil(folders);
        for chunk in members.chunks(per) {
            let f = b.add_folder(cab::CompressionType::MsZip);
            for (name, _) in chunk {
                f.add_file(*name);
            }
        }
        let mut w = b.build(File::create(path).unwrap()).unwrap();
        let mut i = 0;
        while let Some(mut fw) = w.next_file().unwrap() {
            std::io::Write::write_all(&mut fw, &members[i].1).unwrap();
            i += 1;
        }
        w.finish().unwrap();
    }

    #[test]
    fn every_file_comes_out_whole_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.cab");
        let members: Vec<(String, Vec<u8>)> = (0..300)
            .map(|i| {
                (
                    format!("c\\{i}"),
                    format!("<x n=\"{i}\">{}</x>", "y".repeat(i * 37 % 5000)).into_bytes(),
                )
            })
            .collect();
        let refs: Vec<(&str, Vec<u8>)> = members
            .iter()
            .map(|(n, b)| (n.as_str(), b.clone()))
            .collect();
        build(&p, &refs, 3);
        let mut seen = Vec::new();
        for_each_file(&p, |e, r| {
            let mut b = Vec::new();
            if e.name.ends_with('7') {
                return Ok(()); // skipped files do not disturb the next ones
            }
            r.read_to_end(&mut b)?;
            seen.push((e.name.clone(), b));
            Ok(())
        })
        .unwrap();
        let expected: Vec<(String, Vec<u8>)> = members
            .iter()
            .filter(|(n, _)| !n.ends_with('7'))
            .map(|(n, b)| (n.replace('\\', "/"), b.clone()))
            .collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn a_truncated_cab_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.cab");
        build(
            &p,
            &[("a", vec![7u8; 100_000]), ("b", vec![8u8; 100_000])],
            1,
        );
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        let r = for_each_file(&p, |_, r| {
            let mut b = Vec::new();
            r.read_to_end(&mut b).map(|_| ())
        });
        assert!(r.is_err());
    }
}
