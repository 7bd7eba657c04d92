//! Work a sync leaves to threads of their own, each on its own connection: copying the WAL
//! into the database file (a checkpoint) and recording the content digest. The sync's
//! caller goes on (reports, tells child sites) while they run; the next sync and dropping
//! the store wait for them.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread::JoinHandle;

use rusqlite::Connection;

use super::{BUSY_TIMEOUT_MS, Store};

/// The threads started after a sync (behind a lock, so a reader holding the store shared
/// can wait for the digest).
#[derive(Default)]
pub(crate) struct Background {
    threads: Mutex<Vec<(&'static str, JoinHandle<()>)>>,
}

impl Background {
    fn threads(&self) -> std::sync::MutexGuard<'_, Vec<(&'static str, JoinHandle<()>)>> {
        self.threads.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for every thread named `name`, or for all.
    pub fn join(&self, name: Option<&str>) {
        let waited: Vec<_> = {
            let mut threads = self.threads();
            let (wait, keep) = threads
                .drain(..)
                .partition(|(n, _)| name.is_none_or(|w| w == *n));
            *threads = keep;
            wait
        };
        for (_, t) in waited {
            let _ = t.join();
        }
    }

    fn running(&self, name: &str) -> bool {
        self.threads()
            .iter()
            .any(|(n, t)| *n == name && !t.is_finished())
    }

    /// Starts `work` on a thread named `patchsync-<name>`; where threads cannot be started,
    /// the work is left undone (both jobs here are only ever early: SQLite checkpoints on
    /// its own, the digest is computed when asked for).
    fn spawn(&self, name: &'static str, work: impl FnOnce() + Send + 'static) {
        let mut threads = self.threads();
        threads.retain(|(_, t)| !t.is_finished());
        if let Ok(t) = std::thread::Builder::new()
            .name(format!("patchsync-{name}"))
            .spawn(work)
        {
            threads.push((name, t));
        }
    }

    /// Copies the committed WAL frames into the database file, unless a copy is running
    /// (it would find the checkpoint lock taken). A checkpoint that fails leaves the WAL to
    /// the next one: nothing is lost either way.
    pub fn checkpoint(&self, path: &Path) {
        if self.running("checkpoint") {
            return;
        }
        let path = path.to_owned();
        self.spawn("checkpoint", move || {
            // The pages copied start out for the disk while the copy goes on, so the sync
            // that ends the checkpoint waits for fewer of them.
            let _flush = super::writeback::Flusher::start(vec![path.clone()]);
            if let Ok(conn) = open(&path) {
                let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            }
        });
    }

    /// Computes the content digest of the committed catalog and records it with its
    /// catalog version, unless a sync committed something since (the version would not
    /// match; status then computes the digest itself).
    pub fn record_digest(&self, path: &Path) {
        let path = path.to_owned();
        self.spawn("digest", move || {
            let _ = record_digest(path);
        });
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.join(None);
    }
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))?;
    Ok(conn)
}

fn record_digest(path: PathBuf) -> crate::error::Result<()> {
    let store = Store::from_connection(open(&path).map_err(|e| super::store_err(&path, e))?, path);
    // One transaction: the digest and the version it is recorded with describe the same
    // catalog. Should a sync have committed meanwhile, taking the write lock fails and
    // nothing is recorded.
    let tx = store
        .conn
        .unchecked_transaction()
        .map_err(|e| store.err(e))?;
    store.record_content_digest()?;
    tx.commit().map_err(|e| store.err(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One active update, and the catalog version that says so, in one commit.
    fn add_update(conn: &Connection, id: &str, version: u64) {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE;
             INSERT INTO updates (id, revision, source, update_type, publication_state, state,
                 is_beta, is_bundle, selected_by, first_version, changed_version)
             VALUES ('{id}', 1, 's', 'Software', 'Published', 'active', 0, 0, 'filter', {version}, {version});
             INSERT INTO meta (key, value) VALUES ('catalog_version', '{version}')
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value;
             COMMIT;"
        ))
        .unwrap();
    }

    #[test]
    fn a_digest_is_recorded_only_under_the_version_it_describes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let store = Store::open(&path).unwrap();
        let other = open(&path).unwrap();
        add_update(&other, "0a51549b-4e86-4a26-97d4-9e3567f24ea1", 1);

        store.record_content_digest_later();
        let digest = store.current_content_digest().unwrap();
        assert_eq!(digest, store.content_digest().unwrap());
        assert_eq!(
            store.meta("content_digest").unwrap(),
            Some(format!("1:{digest}"))
        );

        // A sync commits while the digest is being computed: whichever finishes first,
        // what is recorded is the digest of the version it is recorded with.
        let mut digests = std::collections::HashMap::from([("1".to_owned(), digest)]);
        for (i, id) in [
            "1b51549b-4e86-4a26-97d4-9e3567f24ea1",
            "2c51549b-4e86-4a26-97d4-9e3567f24ea1",
            "3d51549b-4e86-4a26-97d4-9e3567f24ea1",
        ]
        .into_iter()
        .enumerate()
        {
            store.record_content_digest_later();
            add_update(&other, id, i as u64 + 2);
            let now = store.content_digest().unwrap();
            digests.insert((i + 2).to_string(), now.clone());
            store.background.join(None);
            let recorded = store.meta("content_digest").unwrap().unwrap();
            let (at, value) = recorded.split_once(':').unwrap();
            assert_eq!(Some(&value.to_owned()), digests.get(at), "{recorded}");
            assert_eq!(store.current_content_digest().unwrap(), now);
        }
    }
}
