//! The store's SQL schema and its migrations; `engine/docs/schema.md` explains every table.

/// Migrations in order; `PRAGMA user_version` records how many have run.
pub const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE sources (
    name            TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    fingerprint     TEXT,
    selection_hash  TEXT,
    language_hash   TEXT,
    cursor          TEXT,
    last_synced     TEXT
) WITHOUT ROWID;

CREATE TABLE catalog_items (
    source     TEXT NOT NULL,
    update_id  TEXT NOT NULL,
    revision   INTEGER NOT NULL,
    verdict    TEXT NOT NULL CHECK (verdict IN ('stored', 'excluded')),
    decided_by TEXT,
    reason     TEXT,
    PRIMARY KEY (source, update_id)
) WITHOUT ROWID;

CREATE TABLE updates (
    uid               INTEGER PRIMARY KEY,
    id                TEXT NOT NULL UNIQUE,
    revision          INTEGER NOT NULL,
    source            TEXT NOT NULL,
    update_type       TEXT NOT NULL,
    publication_state TEXT NOT NULL,
    state             TEXT NOT NULL CHECK (state IN ('active', 'expired')),
    creation_date     TEXT,
    default_language  TEXT,
    title             TEXT,
    msrc_severity     TEXT,
    is_beta           INTEGER NOT NULL,
    max_download_size INTEGER,
    more_info_url     TEXT,
    support_url       TEXT,
    is_bundle         INTEGER NOT NULL,
    selected_by       TEXT NOT NULL,
    first_version     INTEGER NOT NULL,
    changed_version   INTEGER NOT NULL,
    expired_version   INTEGER
);

CREATE TABLE update_xml (
    uid INTEGER PRIMARY KEY,
    xml BLOB NOT NULL
);
CREATE INDEX updates_by_type ON updates (update_type, state);
CREATE INDEX updates_by_source ON updates (source, update_type);
CREATE INDEX updates_pending ON updates (uid) WHERE selected_by = 'pending';
CREATE INDEX updates_by_changed_version ON updates (changed_version);

CREATE TABLE update_categories (
    uid         INTEGER NOT NULL,
    category_id TEXT NOT NULL,
    PRIMARY KEY (uid, category_id)
) WITHOUT ROWID;
CREATE INDEX update_categories_by_category ON update_categories (category_id);

CREATE TABLE relations (
    uid            INTEGER NOT NULL,
    kind           TEXT NOT NULL,
    other_id       TEXT NOT NULL,
    other_revision INTEGER
);
CREATE INDEX relations_by_update ON relations (uid);
CREATE INDEX relations_by_other ON relations (other_id, kind);

CREATE TABLE kb_articles (uid INTEGER NOT NULL, kb TEXT NOT NULL);
CREATE INDEX kb_articles_by_update ON kb_articles (uid);
CREATE INDEX kb_articles_by_kb ON kb_articles (kb);

CREATE TABLE cves (uid INTEGER NOT NULL, cve TEXT NOT NULL);
CREATE INDEX cves_by_update ON cves (uid);
CREATE INDEX cves_by_cve ON cves (cve);

CREATE TABLE bulletins (uid INTEGER NOT NULL, bulletin TEXT NOT NULL);
CREATE INDEX bulletins_by_update ON bulletins (uid);

CREATE TABLE localized (
    uid         INTEGER NOT NULL,
    language    TEXT NOT NULL,
    title       TEXT NOT NULL,
    description TEXT,
    PRIMARY KEY (uid, language)
) WITHOUT ROWID;

CREATE TABLE files (
    uid       INTEGER NOT NULL,
    name      TEXT NOT NULL,
    size      INTEGER,
    digest    TEXT,
    sha256    TEXT,
    modified  TEXT
);
CREATE INDEX files_by_update ON files (uid);

CREATE TABLE file_urls (
    digest TEXT PRIMARY KEY,
    url    TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE categories (
    id            TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    parent_id     TEXT,
    title         TEXT NOT NULL,
    display_order INTEGER
) WITHOUT ROWID;
CREATE INDEX categories_by_kind ON categories (kind);

CREATE TABLE revisions (
    update_id    TEXT NOT NULL,
    revision     INTEGER NOT NULL,
    source       TEXT NOT NULL,
    seen_version INTEGER NOT NULL,
    PRIMARY KEY (update_id, revision)
) WITHOUT ROWID;

CREATE TABLE sync_runs (
    id              INTEGER PRIMARY KEY,
    started         TEXT NOT NULL,
    finished        TEXT,
    status          TEXT NOT NULL,
    full            INTEGER NOT NULL,
    pid             INTEGER NOT NULL,
    catalog_version INTEGER,
    new             INTEGER,
    revised         INTEGER,
    expired         INTEGER,
    removed         INTEGER,
    unchanged       INTEGER,
    categories      INTEGER,
    detectoids      INTEGER,
    duration_ms     INTEGER,
    error           TEXT,
    report          TEXT
);
"#,
    // 2: updates pinned by `import-update`, kept whatever the filter says until `unpin`.
    r#"
CREATE TABLE pins (
    update_id TEXT PRIMARY KEY,
    source    TEXT NOT NULL,
    pinned_at TEXT NOT NULL
) WITHOUT ROWID;
"#,
    // 3: `files.uid` held the update's GUID instead of its integer uid in stores written
    // before this migration; point those rows at their update and drop the ones a rewrite
    // left behind.
    r#"
UPDATE files SET uid = (SELECT u.uid FROM updates u WHERE u.id = files.uid)
 WHERE typeof(uid) = 'text';
DELETE FROM files WHERE uid IS NULL OR typeof(uid) = 'text';
DELETE FROM files WHERE rowid NOT IN (
    SELECT MIN(rowid) FROM files GROUP BY uid, name, digest, size
);
"#,
    // 4: when an update expired, for the cleanup of long-expired updates.
    r#"
ALTER TABLE updates ADD COLUMN expired_at TEXT;
UPDATE updates SET expired_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now') WHERE state = 'expired';
"#,
    // 5: what incremental export packages need: the updates deleted from the catalog (and
    // the catalog version that deleted them), and the site's identity (a package's lineage).
    r#"
CREATE TABLE removed_updates (
    update_id       TEXT PRIMARY KEY,
    removed_version INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX removed_updates_by_version ON removed_updates (removed_version);
INSERT INTO meta (key, value) VALUES ('site_id',
    lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-'
          || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2) || '-'
          || hex(randomblob(6))));
INSERT INTO meta (key, value) SELECT 'removals_since', value FROM meta WHERE key = 'catalog_version';
"#,
    // 6: the kind of a failed run's error, as a number (`Error::code`).
    r#"
ALTER TABLE sync_runs ADD COLUMN error_code INTEGER;
"#,
    // 7: a source's active updates counted from the index alone (the mass-removal guard
    // counts them on every changing sync; through the table that was random reads).
    r#"
DROP INDEX updates_by_source;
CREATE INDEX updates_by_source ON updates (source, update_type, state);
"#,
    // 8: a complete listing's sync finds the source's active ids not listed any more from
    // the index alone (through the table that was 500,000 random reads, half a second).
    // `uid` before `id` keeps the entries in insertion order, so a full sync appends to
    // the index instead of inserting at random GUID positions.
    r#"
DROP INDEX updates_by_source;
CREATE INDEX updates_by_source ON updates (source, update_type, state, uid, id);
"#,
    // 9: the content digest (active ids and revisions) read from the index alone, a third
    // of the table's pages; a revision changes in place (same uid), so a revised update
    // touches the same index page.
    r#"
DROP INDEX updates_by_source;
CREATE INDEX updates_by_source ON updates (source, update_type, state, uid, id, revision);
"#,
];
