package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	_ "github.com/mattn/go-sqlite3" // registers the "sqlite3" driver

	"golang.org/x/mod/sumdb/tlog"
)

// DBFile is the name of the ledger's database in the data directory.
const DBFile = "ledger.db"

// hashesPerPage is how many stored hashes one row of the hashes table holds.
// The stored hashes form one dense array in tlog.StoredHashIndex order that
// only grows at its end, so it is kept in pages of 256 hashes (8 KiB): a
// batch of 10,000 events writes about 80 rows rather than 20,000.
const hashesPerPage = 256

const pageBytes = hashesPerPage * tlog.HashSize

// maxCachedPages bounds the pages a hashReader keeps (2 MiB).
const maxCachedPages = 256

// schemaVersion is the newest ledger.db schema this Vigil reads. Version 2
// (set by the first key rotation) added the rotations table; version 1
// files get the table, empty, and keep their version until a rotation, so
// that an older Vigil still opens them.
const schemaVersion = 2

// schema is the ledger.db schema.
const schema = `
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value ANY) WITHOUT ROWID;
-- Row page holds the stored hashes page*256 … page*256+255 (32 bytes each,
-- in tlog.StoredHashIndex order); the last page may be partial.
CREATE TABLE IF NOT EXISTS hashes(page INTEGER PRIMARY KEY, data BLOB NOT NULL);
-- The signed checkpoints, keyed by tree size: the signed note as served.
-- Old ones are thinned (thin.go).
CREATE TABLE IF NOT EXISTS checkpoints(size INTEGER PRIMARY KEY, note TEXT NOT NULL);
-- The key rotation statements (keychain.go), oldest first. Never thinned.
CREATE TABLE IF NOT EXISTS rotations(n INTEGER PRIMARY KEY, size INTEGER NOT NULL, note TEXT NOT NULL);
INSERT INTO meta(key, value) VALUES ('schema_version', 1) ON CONFLICT(key) DO NOTHING;
INSERT INTO meta(key, value) VALUES ('tree_size', 0) ON CONFLICT(key) DO NOTHING;
`

// applicationID marks a SQLite file as a Vigil ledger ("VGLD").
const applicationID = 0x56474c44

// openDB opens ledger.db at path for writing (creating it with mode 0600),
// in WAL mode with synchronous=FULL, or read-only.
func openDB(path string, readOnly bool) (*sql.DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	q.Set("_busy_timeout", "10000")
	if readOnly {
		if _, err := os.Stat(abs); err != nil {
			return nil, err
		}
		q.Set("mode", "ro")
	} else {
		// SQLite gives the -wal and -shm files the database file's mode.
		f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, err
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
		q.Set("_journal_mode", "WAL")
		q.Set("_synchronous", "FULL")
		q.Set("_txlock", "immediate")
	}
	dsn := (&url.URL{Scheme: "file", Path: abs, RawQuery: q.Encode()}).String()
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// migrate creates the schema of a new ledger.db and checks an existing one.
func migrate(ctx context.Context, db *sql.DB) error {
	var version int64
	err := db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'schema_version'`).Scan(&version)
	if err == nil && version > schemaVersion {
		return fmt.Errorf("ledger.db schema version %d is newer than this Vigil supports (%d)", version, schemaVersion)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, schema); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA application_id = %d", applicationID)); err != nil {
		return err
	}
	return tx.Commit()
}

// rowQuerier is a *sql.DB or a *sql.Tx.
type rowQuerier interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}

func readMeta(ctx context.Context, q rowQuerier, k string) (string, bool, error) {
	var v sql.NullString
	err := q.QueryRowContext(ctx, `SELECT CAST(value AS TEXT) FROM meta WHERE key = ?`, k).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return v.String, v.Valid, nil
}

// hashReader reads stored hashes from the hashes table. It implements
// tlog.HashReader for tree sizes up to size, caching the pages it read.
type hashReader struct {
	ctx   context.Context
	db    rowQuerier
	limit int64 // number of stored hashes readable: tlog.StoredHashCount(size)
	pages map[int64][]byte
}

func newHashReader(ctx context.Context, db rowQuerier, size int64) *hashReader {
	return &hashReader{ctx: ctx, db: db, limit: tlog.StoredHashCount(size), pages: map[int64][]byte{}}
}

// ReadHashes implements tlog.HashReader.
func (r *hashReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= r.limit {
			return nil, fmt.Errorf("stored hash %d is beyond the tree (%d hashes)", x, r.limit)
		}
		page := x / hashesPerPage
		data, ok := r.pages[page]
		if !ok {
			if len(r.pages) >= maxCachedPages {
				clear(r.pages)
			}
			err := r.db.QueryRowContext(r.ctx, `SELECT data FROM hashes WHERE page = ?`, page).Scan(&data)
			if errors.Is(err, sql.ErrNoRows) {
				return nil, fmt.Errorf("page %d of the tree hashes is missing from %s", page, DBFile)
			}
			if err != nil {
				return nil, fmt.Errorf("read tree hashes page %d: %w", page, err)
			}
			r.pages[page] = data
		}
		off := int(x%hashesPerPage) * tlog.HashSize
		if off+tlog.HashSize > len(data) {
			return nil, fmt.Errorf("page %d of the tree hashes is truncated (%d bytes)", page, len(data))
		}
		copy(out[i][:], data[off:])
	}
	return out, nil
}

// hashStream reads the stored hashes in index order, page by page, for a
// verifier that walks the whole tree.
type hashStream struct {
	rows  *sql.Rows
	next  int64 // index of the next hash to return
	page  []byte
	pageN int64 // page number of page
	err   error
}

func newHashStream(ctx context.Context, db *sql.DB) (*hashStream, error) {
	rows, err := db.QueryContext(ctx, `SELECT page, data FROM hashes ORDER BY page`)
	if err != nil {
		return nil, fmt.Errorf("read tree hashes: %w", err)
	}
	return &hashStream{rows: rows, pageN: -1}, nil
}

// read returns the next stored hash, or ok false when the table has none at
// this index (a missing or short page).
func (s *hashStream) read() (h tlog.Hash, ok bool) {
	want := s.next / hashesPerPage
	for s.pageN < want {
		if !s.rows.Next() {
			s.err = s.rows.Err()
			return h, false
		}
		var n int64
		var data []byte
		if err := s.rows.Scan(&n, &data); err != nil {
			s.err = err
			return h, false
		}
		s.pageN, s.page = n, data
	}
	if s.pageN != want {
		return h, false // the page is missing
	}
	off := int(s.next%hashesPerPage) * tlog.HashSize
	if off+tlog.HashSize > len(s.page) {
		return h, false
	}
	copy(h[:], s.page[off:])
	s.next++
	return h, true
}

func (s *hashStream) close() error { return s.rows.Close() }

// readRotations returns the key rotation statements of ledger.db, oldest
// first; none when the table does not exist (a file an older Vigil made,
// opened read-only).
func readRotations(ctx context.Context, db *sql.DB) ([]string, error) {
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'rotations'`).Scan(&n); err != nil {
		return nil, fmt.Errorf("read key rotations: %w", err)
	}
	if n == 0 {
		return nil, nil
	}
	rows, err := db.QueryContext(ctx, `SELECT note FROM rotations ORDER BY n LIMIT ?`, MaxRotations+1)
	if err != nil {
		return nil, fmt.Errorf("read key rotations: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("read key rotations: %w", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read key rotations: %w", err)
	}
	return out, nil
}
