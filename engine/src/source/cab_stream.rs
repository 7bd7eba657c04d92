//! Reads every file of a CAB in one sequential pass per folder.
//!
//! The `cab` crate opens each file by decompressing its folder from the start, which is
//! quadratic for cabinets of many small files (an offline scan file's fragment cabs hold
//! tens of thousands). This module reads the cabinet's file table itself and hands the
//! `cab` crate a view of the cabinet whose file table has one entry per folder spanning the
//! whole folder, so each folder is decompressed once, front to back, and cut into files
//! here. Plain and MSZIP folders are read by `mszip` (twice as fast as the crate's MSZIP);
//! LZX and Quantum stay the `cab` crate's.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::mszip::{FolderStream, Method};

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
const FLAG_RESERVE: u16 = 4;

fn bad(m: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, m.into())
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// One `CFFOLDER`: where its data blocks start, how many, and how they are compressed.
#[derive(Debug, Clone, Copy)]
struct Folder {
    first_block: u32,
    blocks: u16,
    method: Method,
}

/// The cabinet's header, folders and file table.
struct Table {
    header: [u8; HEADER_LEN],
    folder_list: Vec<Folder>,
    data_reserve: u8,
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
    let truncated = || bad("the folder table is cut off: the file is truncated");
    let (mut folder_reserve, mut data_reserve) = (0usize, 0u8);
    if flags & FLAG_RESERVE != 0 {
        let mut r = [0u8; 4];
        f.read_exact(&mut r).map_err(|_| truncated())?;
        f.seek(SeekFrom::Current(u16_at(&r, 0) as i64))?;
        folder_reserve = r[2] as usize;
        data_reserve = r[3];
    }
    let mut folder_list = Vec::with_capacity(folders as usize);
    {
        let mut r = BufReader::new(&mut *f);
        for _ in 0..folders {
            let mut fixed = vec![0u8; 8 + folder_reserve];
            r.read_exact(&mut fixed).map_err(|_| truncated())?;
            folder_list.push(Folder {
                first_block: u32_at(&fixed, 0),
                blocks: u16_at(&fixed, 4),
                method: Method::from_type_compress(u16_at(&fixed, 6)),
            });
        }
    }
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
        folder_list,
        data_reserve,
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

/// The `cab` crate's reader over a view whose file table has one entry per folder, for the
/// folders `mszip` does not read (LZX, Quantum).
fn crate_view(path: &Path, table: &Table) -> io::Result<cab::Cabinet<View>> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut spans = vec![0u64; table.folder_list.len()];
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
    header[28..30].copy_from_slice(&(table.folder_list.len() as u16).to_le_bytes());
    let view = View {
        file,
        len,
        header,
        table: appended,
        pos: 0,
    };
    cab::Cabinet::new(view)
}

/// A plain or MSZIP folder's bytes, front to back.
fn folder_stream(path: &Path, table: &Table, i: u16) -> io::Result<FolderStream<BufReader<File>>> {
    let folder = table.folder_list[i as usize];
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(folder.first_block as u64))?;
    Ok(FolderStream::new(
        BufReader::with_capacity(64 * 1024, file),
        folder.method,
        folder.blocks,
        table.data_reserve,
    ))
}

/// Reads the files of one folder, in offset order, out of `stream`; what `visit` leaves of
/// a file, and the gaps between files, are skipped without being copied.
fn visit_folder(
    stream: &mut dyn BufRead,
    entries: &[&CabEntry],
    visit: &mut dyn FnMut(&CabEntry, &mut dyn BufRead) -> io::Result<()>,
) -> io::Result<()> {
    let mut at: u64 = 0;
    for e in entries.iter() {
        let start = e.offset as u64;
        if start < at {
            return Err(bad(format!("{} overlaps the file before it", e.name)));
        }
        if super::mszip::skip(stream, start - at)? != start - at {
            return Err(cut_off(&e.name));
        }
        let mut part = (&mut *stream).take(e.size as u64);
        visit(e, &mut part)?;
        let left = part.limit();
        super::mszip::skip(&mut part, left)?;
        if part.limit() != 0 {
            return Err(cut_off(&e.name));
        }
        at = start + e.size as u64;
    }
    Ok(())
}

/// Opens `path` and calls `visit` with every file in stored order within each folder.
/// `visit` may read its file or not; what it leaves is skipped.
pub(crate) fn for_each_file(
    path: &Path,
    mut visit: impl FnMut(&CabEntry, &mut dyn BufRead) -> io::Result<()>,
) -> io::Result<()> {
    let table = read_table(&mut File::open(path)?)?;
    let mut by_folder: Vec<Vec<&CabEntry>> = vec![Vec::new(); table.folder_list.len()];
    for e in &table.entries {
        by_folder[e.folder as usize].push(e);
    }
    let mut crate_cabinet = None;
    for (i, entries) in by_folder.iter_mut().enumerate() {
        if entries.is_empty() {
            continue;
        }
        entries.sort_by_key(|e| e.offset);
        let i = i as u16;
        if table.folder_list[i as usize].method == Method::Other {
            if crate_cabinet.is_none() {
                crate_cabinet = Some(crate_view(path, &table)?);
            }
            let cabinet = crate_cabinet.as_mut().expect("opened above");
            let mut stream =
                BufReader::with_capacity(256 * 1024, cabinet.read_file(&folder_name(i))?);
            visit_folder(&mut stream, entries, &mut visit)?;
        } else {
            let mut stream = folder_stream(path, &table, i)?;
            let span = entries
                .last()
                .map_or(0, |e| e.offset as u64 + e.size as u64);
            if span >= READ_AHEAD_FROM {
                // Inflated on a second thread while `visit` parses.
                super::prefetch::read_ahead(stream, |r| visit_folder(r, entries, &mut visit))?;
            } else {
                visit_folder(&mut stream, entries, &mut visit)?;
            }
        }
    }
    Ok(())
}

/// Calls `read` with the contents of the file `name` (as the table spells it, `\` or `/`),
/// or returns `None` when the cabinet has no such file. What `read` leaves is not read.
pub(crate) fn read_file<T>(
    path: &Path,
    name: &str,
    read: impl FnOnce(&mut dyn BufRead) -> T,
) -> io::Result<Option<T>> {
    let table = read_table(&mut File::open(path)?)?;
    let wanted = name.replace('\\', "/");
    let Some(entry) = table.entries.iter().find(|e| e.name == wanted) else {
        return Ok(None);
    };
    let size = entry.size as u64;
    if table.folder_list[entry.folder as usize].method == Method::Other {
        // The crate finds the file by its stored name and seeks within the folder itself.
        let mut cabinet = cab::Cabinet::new(File::open(path)?)?;
        let stored = cabinet
            .folder_entries()
            .flat_map(|f| f.file_entries())
            .find(|f| f.name().replace('\\', "/") == wanted)
            .map(|f| f.name().to_owned())
            .ok_or_else(|| bad(format!("{name} is not in the CAB's file table")))?;
        let reader = BufReader::with_capacity(256 * 1024, cabinet.read_file(&stored)?);
        return Ok(Some(read(&mut Exact::new(reader, size, name))));
    }
    // The files before it in the folder are skipped as the stream is first read: for a
    // large member that happens on the thread that inflates it while `read` parses.
    let stream = Skipping {
        inner: folder_stream(path, &table, entry.folder)?,
        skip: entry.offset as u64,
        name,
    };
    if size < READ_AHEAD_FROM {
        return Ok(Some(read(&mut Exact::new(stream, size, name))));
    }
    Ok(Some(super::prefetch::read_ahead(stream, |r| {
        read(&mut Exact::new(r, size, name))
    })))
}

/// Members at least this large are read ahead on a second thread.
const READ_AHEAD_FROM: u64 = 4 << 20;

fn cut_off(name: &str) -> io::Error {
    bad(format!("{name} is cut off: the CAB is truncated"))
}

/// A folder stream that first skips the files before the one wanted.
struct Skipping<'n, R> {
    inner: R,
    skip: u64,
    name: &'n str,
}

impl<R: BufRead> BufRead for Skipping<'_, R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.skip > 0 {
            if super::mszip::skip(&mut self.inner, self.skip)? != self.skip {
                return Err(cut_off(self.name));
            }
            self.skip = 0;
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, n: usize) {
        self.inner.consume(n);
    }
}

impl<R: BufRead> Read for Skipping<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        super::mszip::read_buffered(self, out)
    }
}

/// The first `left` bytes of a reader; an end of input before them is an error.
struct Exact<'n, R> {
    inner: R,
    left: u64,
    name: &'n str,
}

impl<'n, R: Read> Exact<'n, R> {
    fn new(inner: R, left: u64, name: &'n str) -> Self {
        Exact { inner, left, name }
    }
}

impl<R: BufRead> BufRead for Exact<'_, R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.left == 0 {
            return Ok(&[]);
        }
        let (left, name) = (self.left, self.name);
        let avail = self.inner.fill_buf()?;
        if avail.is_empty() {
            return Err(cut_off(name));
        }
        let n = (avail.len() as u64).min(left) as usize;
        Ok(&avail[..n])
    }

    fn consume(&mut self, n: usize) {
        self.inner.consume(n);
        self.left -= n as u64;
    }
}

impl<R: BufRead> Read for Exact<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        super::mszip::read_buffered(self, out)
    }
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

    /// Text that repeats with variations, so deflate refers back across 32 KiB blocks.
    fn text(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let line = format!(
                "<Update id=\"{:08x}\" rev=\"{}\">KB{}</Update>\r\n",
                x >> 40,
                x % 300,
                x % 9000
            );
            out.extend_from_slice(line.as_bytes());
        }
        out.truncate(len);
        out
    }

    #[test]
    fn a_member_reads_whole_whether_small_or_read_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.cab");
        // Three files in one MSZIP folder; the last is large enough to be read ahead.
        let members = [
            ("package.xml", text(300_000, 1)),
            ("small.txt", text(70_001, 2)),
            (
                "metadata.txt",
                text(READ_AHEAD_FROM as usize + 1_234_567, 3),
            ),
        ];
        build(
            &p,
            &members
                .iter()
                .map(|(n, b)| (*n, b.clone()))
                .collect::<Vec<_>>(),
            1,
        );
        for (name, bytes) in &members {
            let got = read_file(&p, name, |r| {
                let mut v = Vec::new();
                r.read_to_end(&mut v).map(|_| v)
            })
            .unwrap()
            .unwrap()
            .unwrap();
            assert!(got == *bytes, "{name} differs");
        }
        assert!(read_file(&p, "absent.txt", |_| ()).unwrap().is_none());
    }

    #[test]
    fn a_block_whose_size_field_lies_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.cab");
        build(&p, &[("a", text(200_000, 6))], 1);
        let good = std::fs::read(&p).unwrap();
        // The first CFDATA, where the folder says; its checksum zeroed (not checked), so
        // only the inflating can tell.
        let first = u32::from_le_bytes(good[36..40].try_into().unwrap()) as usize;
        let said = u16::from_le_bytes([good[first + 6], good[first + 7]]);
        for (lie, expected) in [
            (
                said - 1,
                format!("it inflates to more than the {} bytes it says", said - 1),
            ),
            (
                said + 1,
                format!("inflates to {said} bytes, not the {} it says", said + 1),
            ),
        ] {
            let mut bytes = good.clone();
            bytes[first..first + 4].fill(0);
            bytes[first + 6..first + 8].copy_from_slice(&lie.to_le_bytes());
            std::fs::write(&p, &bytes).unwrap();
            let err = read_file(&p, "a", |r| {
                let mut v = Vec::new();
                r.read_to_end(&mut v).map(|_| ())
            })
            .unwrap()
            .unwrap()
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("data block 1")
                    && err.contains(&expected)
                    && err.contains("the CAB is damaged"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_flipped_byte_in_the_data_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.cab");
        let big = READ_AHEAD_FROM as usize + 100_000;
        build(&p, &[("a", text(500_000, 4)), ("b", text(big, 5))], 1);
        let good = std::fs::read(&p).unwrap();
        // In the skipped file, in the file read directly and in the one read ahead.
        for (at, name) in [
            (good.len() / 20, "b"),
            (good.len() / 20, "a"),
            (good.len() * 2 / 3, "b"),
        ] {
            let mut bytes = good.clone();
            bytes[at] ^= 0x10;
            std::fs::write(&p, &bytes).unwrap();
            let err = match read_file(&p, name, |r| {
                let mut v = Vec::new();
                r.read_to_end(&mut v).map(|_| ())
            }) {
                Err(e) | Ok(Some(Err(e))) => e.to_string(),
                Ok(other) => panic!("{name}: {other:?}"),
            };
            assert!(
                err.contains("fails its checksum") && err.contains("the CAB is damaged"),
                "{err}"
            );
        }
    }
}
