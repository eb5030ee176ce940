package sqlite

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"io"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// migrations bring the schema from version i to version i+1. They run in
// order, each in its own transaction, on Open; the version reached is kept in
// meta under "schema_version". Never edit a released migration: add one.
var migrations = []string{
	// 1: the event log, its indexes, related objects, full-text search on
	// message, consumer cursors.
	`
CREATE TABLE events(
	seq        INTEGER PRIMARY KEY,
	event_id   TEXT NOT NULL UNIQUE,
	ts         INTEGER,  -- @timestamp, Unix nanoseconds
	source_ip  BLOB,     -- 16-byte form, IPv4 as IPv4-mapped IPv6
	user_name  TEXT,
	user_id    TEXT,
	action     TEXT,
	category   TEXT,
	outcome    TEXT,
	method     TEXT,
	path       TEXT,
	status     INTEGER,
	request_id TEXT,
	service    TEXT,
	message    TEXT,     -- content of events_fts
	canonical  BLOB NOT NULL
);
-- Absent fields are stored as NULL and left out of the partial indexes, so an
-- event without a user or a request id costs no insert in those indexes.
-- "col = ?" implies "col IS NOT NULL", so equality queries use them.
CREATE INDEX events_ts ON events(ts);
CREATE INDEX events_source_ip ON events(source_ip) WHERE source_ip IS NOT NULL;
CREATE INDEX events_user_name ON events(user_name) WHERE user_name IS NOT NULL;
CREATE INDEX events_action ON events(action) WHERE action IS NOT NULL;
CREATE INDEX events_path ON events(path) WHERE path IS NOT NULL;
CREATE INDEX events_request_id ON events(request_id) WHERE request_id IS NOT NULL;

CREATE TABLE related(
	obj TEXT NOT NULL,
	seq INTEGER NOT NULL,
	PRIMARY KEY(obj, seq)
) WITHOUT ROWID;

-- External-content FTS4 index over events.message, docid = seq. Kept up to
-- date by a trigger (no extra round trip from Go per event). To delete an
-- event, delete it from events_fts first: FTS4 reads the old content.
CREATE VIRTUAL TABLE events_fts USING fts4(content="events", message, tokenize=unicode61);
CREATE TRIGGER events_fts_insert AFTER INSERT ON events WHEN new.message IS NOT NULL
BEGIN
	INSERT INTO events_fts(docid, message) VALUES (new.seq, new.message);
END;

CREATE TABLE cursors(
	name TEXT PRIMARY KEY,
	seq  INTEGER NOT NULL
) WITHOUT ROWID;
`,
	// 2: indexes on fields with many distinct values become segment-prefixed
	// (measured: ingest at 2 million events went from 7,300 to 22,500
	// events/s); full-text entries are written by the writer, not a trigger.
	`
-- Fields with many distinct values (addresses, users, paths, request ids,
-- related objects) are indexed by segment first: seq >> 16, 65536 events
-- per segment. A plain index on such a field takes each new event at a
-- random place, so every event dirties a different page, and once the index
-- outgrows the page cache every event costs a random read and write: ingest
-- slows down as the log grows. Prefixed by segment, new entries all fall in
-- the current segment's part of the index, a few hundred pages that stay in
-- cache. Queries probe the index once per segment (see segmented in
-- query.go). The same expression, seq >> 16, must be used in queries.
DROP INDEX events_source_ip;
DROP INDEX events_user_name;
DROP INDEX events_path;
DROP INDEX events_request_id;
CREATE INDEX events_source_ip ON events(seq >> 16, source_ip) WHERE source_ip IS NOT NULL;
CREATE INDEX events_user_name ON events(seq >> 16, user_name) WHERE user_name IS NOT NULL;
CREATE INDEX events_path ON events(seq >> 16, path) WHERE path IS NOT NULL;
CREATE INDEX events_request_id ON events(seq >> 16, request_id) WHERE request_id IS NOT NULL;

CREATE TABLE related_v2(
	seg INTEGER NOT NULL, -- seq >> 16
	obj TEXT NOT NULL,
	seq INTEGER NOT NULL,
	PRIMARY KEY(seg, obj, seq)
) WITHOUT ROWID;
INSERT INTO related_v2(seg, obj, seq) SELECT seq >> 16, obj, seq FROM related;
DROP TABLE related;
ALTER TABLE related_v2 RENAME TO related;

-- The writer inserts into events_fts after all the events of a transaction
-- (see writer.write). With the trigger, FTS4 wrote out a segment per event:
-- it flushes its pending terms whenever a statement journal opens.
DROP TRIGGER events_fts_insert;
`,
	// 3: the B-tree indexes and FTS4 give way to postings written by the
	// writer once per segment, in key order, and to per-block time spans
	// (see postings.go and docs/decisions/0004-postings.md). The postings
	// of existing events are built when the store is next opened.
	`
DROP INDEX events_ts;
DROP INDEX events_source_ip;
DROP INDEX events_user_name;
DROP INDEX events_action;
DROP INDEX events_path;
DROP INDEX events_request_id;
DROP TABLE events_fts;
DROP TABLE related;

-- For each segment (seq >> 16) and indexed (field, value): the offsets
-- (seq & 65535) of the events holding the value, as varint deltas.
CREATE TABLE postings(
	seg   INTEGER NOT NULL,
	field INTEGER NOT NULL,
	value BLOB NOT NULL,
	seqs  BLOB NOT NULL,
	PRIMARY KEY(seg, field, value)
) WITHOUT ROWID;

-- For each block of 1024 sequence numbers (seq >> 10): the earliest and the
-- latest @timestamp of its events.
CREATE TABLE timeblocks(
	block  INTEGER PRIMARY KEY,
	min_ts INTEGER NOT NULL,
	max_ts INTEGER NOT NULL
);
INSERT INTO timeblocks(block, min_ts, max_ts)
	SELECT seq >> 10, min(ts), max(ts) FROM events WHERE ts IS NOT NULL GROUP BY seq >> 10;
DELETE FROM meta WHERE key = 'postings_seg';
`,
	// 4: the record of purged events (retention), written in the same
	// transaction as their removal, so that a verifier of the data
	// directory tells a purge from a deletion (see purge.go).
	`
CREATE TABLE purged(
	first INTEGER PRIMARY KEY, -- first sequence number of a run of purged events
	last  INTEGER NOT NULL,    -- last one, inclusive
	run   TEXT NOT NULL        -- the purge run that removed them
);
`,
	// 5: postings rows small enough to stay on their B-tree page (see
	// postings.go): long lists are cut into parts in the lists table, and
	// short lists (at most packMaxOffs events) are packed many keys to a
	// row. A row per key of a field with a new value in almost every event
	// (paths, request ids, words like order numbers) cost the writer more
	// than the event's own row, and a lookup that passed a row of a long
	// list read the whole list (SQLite compares a key that spills onto
	// overflow pages only after reading all of it). Rows already in
	// postings stay there; readers look in all three tables.
	`
-- A closed segment's lists of more than packMaxOffs events, each cut into
-- parts (part 0, 1, …) that each decode on their own.
CREATE TABLE lists(
	seg   INTEGER NOT NULL,
	field INTEGER NOT NULL,
	value BLOB NOT NULL,
	part  INTEGER NOT NULL,
	seqs  BLOB NOT NULL,
	PRIMARY KEY(seg, field, value, part)
) WITHOUT ROWID;

-- For each segment and field: runs of consecutive keys (in key order) with
-- short lists, under the run's first value. A key is in lists or in a pack,
-- never both; its pack is the one of its segment and field with the
-- greatest first value not above it.
CREATE TABLE packs(
	seg   INTEGER NOT NULL,
	field INTEGER NOT NULL,
	first BLOB NOT NULL,
	data  BLOB NOT NULL,
	PRIMARY KEY(seg, field, first)
) WITHOUT ROWID;

-- For each segment written out and field: the least and the greatest value
-- indexed. A lookup outside them skips the segment: values that grow with
-- time (UUIDv7 request ids) are found in one segment, not in all.
CREATE TABLE segfields(
	seg   INTEGER NOT NULL,
	field INTEGER NOT NULL,
	lo    BLOB NOT NULL,
	hi    BLOB NOT NULL,
	PRIMARY KEY(seg, field)
) WITHOUT ROWID;
`,
}

// applicationID marks a SQLite file as a Vigil store ("VGIL").
const applicationID = 0x5647494c

// migrate creates or upgrades the schema on the writer connection.
func migrate(c *sqlite3.SQLiteConn) error {
	if _, err := c.Exec(`CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value ANY) WITHOUT ROWID`, nil); err != nil {
		return fmt.Errorf("create meta table: %w", err)
	}
	version, err := queryInt(c, `SELECT coalesce((SELECT value FROM meta WHERE key = 'schema_version'), 0)`)
	if err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if version > int64(len(migrations)) {
		return fmt.Errorf("database schema version %d is newer than this Vigil supports (%d)", version, len(migrations))
	}
	for v := version; v < int64(len(migrations)); v++ {
		if err := runMigration(c, v+1, migrations[v]); err != nil {
			return fmt.Errorf("migrate schema to version %d: %w", v+1, err)
		}
	}
	return nil
}

func runMigration(c *sqlite3.SQLiteConn, version int64, script string) (err error) {
	if _, err := c.Exec("BEGIN IMMEDIATE", nil); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_, _ = c.Exec("ROLLBACK", nil)
		}
	}()
	if _, err := c.Exec(script, nil); err != nil {
		return err
	}
	if _, err := c.Exec(fmt.Sprintf("PRAGMA application_id = %d", applicationID), nil); err != nil {
		return err
	}
	if _, err := c.Exec(`INSERT INTO meta(key, value) VALUES ('schema_version', ?)
		ON CONFLICT(key) DO UPDATE SET value = excluded.value`, []driver.Value{version}); err != nil {
		return err
	}
	_, err = c.Exec("COMMIT", nil)
	return err
}

// queryInt runs a query returning one integer (NULL reads as 0).
func queryInt(c *sqlite3.SQLiteConn, query string, args ...driver.Value) (int64, error) {
	rows, err := c.Query(query, args)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	dest := make([]driver.Value, 1)
	if err := rows.Next(dest); err != nil {
		if errors.Is(err, io.EOF) {
			return 0, nil
		}
		return 0, err
	}
	switch v := dest[0].(type) {
	case nil:
		return 0, nil
	case int64:
		return v, nil
	default:
		return 0, fmt.Errorf("unexpected %T from %q", v, query)
	}
}
