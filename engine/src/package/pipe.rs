//! The export's writer thread: it hashes each part and writes it to the package file while
//! the exporting thread goes on reading the store, so reading and writing overlap.

use std::fs::File;
use std::io::{self, Seek, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

use super::Part;
use super::write::hex;

/// Bytes handed to the writer thread at a time.
const CHUNK: usize = 1 << 20;
/// Chunks in flight (memory: about `(QUEUE + 2) * CHUNK`).
const QUEUE: usize = 4;
/// Written bytes after which the thread asks the kernel to start writing them to disk, so
/// the final flush waits only for the tail.
const WRITEBACK: u64 = 32 << 20;

enum Msg {
    Data(Vec<u8>),
    /// The part written since the last cut is complete: record it under this name.
    Cut(&'static str),
}

type Outcome = io::Result<(File, Vec<Part>)>;

/// A `Write` whose bytes the writer thread hashes (per part) and appends to the file.
pub(crate) struct PartWriter {
    buf: Vec<u8>,
    tx: Option<SyncSender<Msg>>,
    /// Chunks the writer thread is done with, for reuse.
    spare: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<Outcome>>,
}

impl PartWriter {
    /// Starts the writer thread on `file`, which it appends to from its current position.
    pub fn start(file: File) -> io::Result<PartWriter> {
        let (tx, rx) = sync_channel(QUEUE);
        let (spare_tx, spare) = sync_channel(QUEUE + 1);
        let thread = std::thread::Builder::new()
            .name("patchsync-export".into())
            .spawn(move || run(file, rx, spare_tx))?;
        Ok(PartWriter {
            buf: Vec::with_capacity(CHUNK),
            tx: Some(tx),
            spare,
            thread: Some(thread),
        })
    }

    /// Ends the current part: the bytes written since the last cut are recorded as `name`.
    pub fn cut(&mut self, name: &'static str) -> io::Result<()> {
        self.send_buf()?;
        self.send(Msg::Cut(name))
    }

    /// Writes what is buffered, stops the thread and gives back the file (positioned after
    /// the last byte) and the parts, in the order they were cut.
    pub fn finish(mut self) -> Outcome {
        self.send_buf()?;
        self.tx = None;
        self.join()
    }

    fn send_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let next = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        let full = std::mem::replace(&mut self.buf, next);
        self.send(Msg::Data(full))
    }

    fn send(&mut self, m: Msg) -> io::Result<()> {
        let sent = self.tx.as_ref().map(|tx| tx.send(m).is_ok());
        if sent == Some(true) {
            return Ok(());
        }
        // The thread stopped on an error: that error is the one to report.
        self.tx = None;
        Err(match self.join() {
            Err(e) => e,
            Ok(_) => io::Error::other("the package writer stopped early"),
        })
    }

    fn join(&mut self) -> Outcome {
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the package writer panicked"))),
            None => Err(io::Error::other("the package writer already stopped")),
        }
    }
}

impl Write for PartWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send_buf()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for PartWriter {
    fn drop(&mut self) {
        // Abandoned (an error on the reading side): let the thread end before the caller
        // removes the file.
        self.tx = None;
        if self.thread.is_some() {
            let _ = self.join();
        }
    }
}

fn run(mut file: File, rx: Receiver<Msg>, spare: SyncSender<Vec<u8>>) -> Outcome {
    let mut parts = Vec::new();
    let (mut hash, mut size) = (Sha256::new(), 0u64);
    let mut pos = file.stream_position()?;
    let mut flushed = pos;
    for m in rx {
        match m {
            Msg::Data(mut chunk) => {
                hash.update(&chunk);
                file.write_all(&chunk)?;
                size += chunk.len() as u64;
                pos += chunk.len() as u64;
                if pos - flushed >= WRITEBACK {
                    crate::store::writeback::start(&file, flushed, pos - flushed);
                    flushed = pos;
                }
                chunk.clear();
                let _ = spare.try_send(chunk);
            }
            Msg::Cut(name) => {
                parts.push(Part {
                    name: name.to_owned(),
                    size,
                    sha256: hex(&std::mem::take(&mut hash).finalize()),
                });
                size = 0;
            }
        }
    }
    Ok((file, parts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn parts_are_hashed_and_written_in_order() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"HEAD").unwrap();
        let mut w = PartWriter::start(f).unwrap();
        let big = vec![7u8; CHUNK * 2 + 5];
        w.write_all(&big).unwrap();
        w.cut("a").unwrap();
        w.cut("empty").unwrap();
        w.write_all(b"tail").unwrap();
        w.cut("b").unwrap();
        let (mut f, parts) = w.finish().unwrap();
        let names: Vec<_> = parts.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "empty", "b"]);
        assert_eq!(parts[0].size, big.len() as u64);
        assert_eq!(parts[0].sha256, hex(&Sha256::digest(&big)));
        assert_eq!(parts[1].sha256, hex(&Sha256::digest(b"")));
        assert_eq!(parts[2].sha256, hex(&Sha256::digest(b"tail")));
        f.rewind().unwrap();
        let mut all = Vec::new();
        f.read_to_end(&mut all).unwrap();
        assert_eq!(all.len(), 4 + big.len() + 4);
        assert_eq!(&all[..4], b"HEAD");
        assert_eq!(&all[all.len() - 4..], b"tail");
    }

    #[test]
    fn a_write_error_is_reported_to_the_writer() {
        // A file opened read-only: the thread's first write fails.
        let tmp = tempfile::NamedTempFile::new().unwrap();
        let f = File::open(tmp.path()).unwrap();
        let mut w = PartWriter::start(f).unwrap();
        let r = w
            .write_all(&vec![1u8; CHUNK * (QUEUE + 3)])
            .and_then(|_| w.cut("a"));
        let e = r.err().or_else(|| w.finish().err()).expect("an error");
        assert_ne!(e.to_string(), "the package writer stopped early", "{e}");
    }
}
