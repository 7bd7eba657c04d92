//! Reads a stream ahead on a thread of its own, so that decompressing a large member and
//! parsing it run on two cores side by side.

use std::io::{self, BufRead, Read};
use std::sync::mpsc::{Receiver, Sender, channel, sync_channel};

/// Bytes per hand-over between the threads.
const CHUNK: usize = 1 << 20;
/// Chunks read ahead before the reading thread waits for the consumer.
const AHEAD: usize = 8;

/// Calls `read` with a reader over `source`, which a scoped thread reads ahead.
pub(crate) fn read_ahead<S: Read + Send, T>(source: S, read: impl FnOnce(&mut Ahead) -> T) -> T {
    std::thread::scope(|scope| {
        let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(AHEAD);
        let (back, returned) = channel::<Vec<u8>>();
        let started = std::thread::Builder::new()
            .name("patchsync-inflate".into())
            .spawn_scoped(scope, move || produce(source, &tx, &returned));
        let mut ahead = Ahead {
            rx,
            back,
            current: Vec::new(),
            pos: 0,
            failed: started
                .err()
                .map(|e| format!("cannot start a reading thread: {e}")),
        };
        // `ahead` (and with it the receiver) is dropped before the scope joins the thread,
        // so a consumer that stops early also stops the producer.
        read(&mut ahead)
    })
}

fn produce(
    mut source: impl Read,
    tx: &std::sync::mpsc::SyncSender<io::Result<Vec<u8>>>,
    returned: &Receiver<Vec<u8>>,
) {
    loop {
        let mut buf = returned.try_recv().unwrap_or_default();
        buf.resize(CHUNK, 0);
        let mut n = 0;
        let outcome = loop {
            if n == CHUNK {
                break Ok(());
            }
            match source.read(&mut buf[n..]) {
                Ok(0) => break Ok(()),
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        let last = n < CHUNK || outcome.is_err();
        buf.truncate(n);
        if n > 0 && tx.send(Ok(buf)).is_err() {
            return;
        }
        if let Err(e) = outcome {
            let _ = tx.send(Err(e));
            return;
        }
        if last {
            return;
        }
    }
}

/// The consuming end: a buffered reader over the chunks the thread hands over.
pub(crate) struct Ahead {
    rx: Receiver<io::Result<Vec<u8>>>,
    back: Sender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
    /// A read error, kept so that every later read reports it too.
    failed: Option<String>,
}

impl BufRead for Ahead {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.current.len() {
            if let Some(m) = &self.failed {
                return Err(io::Error::other(m.clone()));
            }
            let done = std::mem::take(&mut self.current);
            if done.capacity() > 0 {
                let _ = self.back.send(done);
            }
            self.pos = 0;
            match self.rx.recv() {
                Ok(Ok(buf)) => self.current = buf,
                Ok(Err(e)) => {
                    self.failed = Some(e.to_string());
                    return Err(io::Error::new(e.kind(), e.to_string()));
                }
                Err(_) => {} // the end of the stream
            }
        }
        Ok(&self.current[self.pos..])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.current.len());
    }
}

impl Read for Ahead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        super::mszip::read_buffered(self, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out `n` bytes, then fails.
    struct FailsAfter(usize);

    impl Read for FailsAfter {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::other("the disk went away"));
            }
            let n = out.len().min(self.0).min(1000);
            out[..n].fill(b'x');
            self.0 -= n;
            Ok(n)
        }
    }

    #[test]
    fn every_byte_arrives_in_order() {
        let data: Vec<u8> = (0..5 * CHUNK + 12_345)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let got = read_ahead(&data[..], |r| {
            let mut v = Vec::new();
            r.read_to_end(&mut v).map(|_| v)
        })
        .unwrap();
        assert_eq!(got, data);
    }

    #[test]
    fn a_read_error_reaches_the_consumer_after_the_bytes_before_it() {
        let (got, err) = read_ahead(FailsAfter(CHUNK + 10), |r| {
            let mut v = Vec::new();
            let e = r.read_to_end(&mut v).unwrap_err();
            (v.len(), e.to_string())
        });
        assert_eq!(got, CHUNK + 10);
        assert!(err.contains("the disk went away"), "{err}");
    }

    #[test]
    fn a_consumer_that_stops_early_stops_the_reader() {
        // An endless source: returning must not wait for it.
        let first = read_ahead(io::repeat(b'y'), |r| r.fill_buf().map(|b| b[0]).unwrap());
        assert_eq!(first, b'y');
    }
}
