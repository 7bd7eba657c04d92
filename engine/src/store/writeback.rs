//! Early writeback: asks the kernel to start writing a file's dirty pages to disk while the
//! writer goes on, so that the `fsync` which makes them durable later waits only for the
//! tail. A hint only (Linux `sync_file_range`; nothing elsewhere): durability still comes
//! from SQLite's own syncs and the callers' `sync_all`.

use std::fs::File;
use std::path::PathBuf;
use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often a [`Flusher`] asks for the files' dirty pages to go out.
const EVERY: Duration = Duration::from_millis(50);

/// Starts writing `len` bytes at `offset` of `file` to disk without waiting (`len` 0: to
/// the end of the file).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub(crate) fn start(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on an open descriptor this thread owns; no memory is passed.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn start(_: &File, _: u64, _: u64) {}

/// Starts the writeback of some files every 50 ms on a thread of its own, until dropped:
/// while a sync fills the WAL (the checkpoint after it then syncs a WAL that is mostly on
/// disk already) and while a checkpoint copies pages into the database file (its closing
/// sync waits for fewer of them). The disk is otherwise idle while a sync parses.
pub(crate) struct Flusher {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    /// Files that cannot be opened (a WAL not created yet) are tried again on each round.
    pub fn start(paths: Vec<PathBuf>) -> Flusher {
        if !cfg!(target_os = "linux") {
            return Flusher {
                stop: None,
                thread: None,
            };
        }
        let (stop, stopped) = channel::<()>();
        let thread = std::thread::Builder::new()
            .name("patchsync-flush".into())
            .spawn(move || {
                let mut files: Vec<Option<File>> = paths.iter().map(|_| None).collect();
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
                    for (path, file) in paths.iter().zip(files.iter_mut()) {
                        if file.is_none() {
                            *file = File::open(path).ok();
                        }
                        if let Some(f) = file {
                            start(f, 0, 0);
                        }
                    }
                }
            })
            .ok();
        Flusher {
            stop: Some(stop),
            thread,
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_flusher_waits_for_files_to_appear_and_stops_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let later = dir.path().join("later");
        let flusher = Flusher::start(vec![dir.path().join("never"), later.clone()]);
        std::thread::sleep(EVERY * 2);
        let mut f = File::create(&later).unwrap();
        let data = vec![7u8; 3 << 20];
        f.write_all(&data).unwrap();
        std::thread::sleep(EVERY * 3);
        // Dropping joins its thread; what it touched is left as written.
        drop(flusher);
        assert_eq!(std::fs::read(&later).unwrap(), data);
        assert!(!dir.path().join("never").exists());
    }
}
