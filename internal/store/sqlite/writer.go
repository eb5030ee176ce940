package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/store"
)

// pageSize is the page size of new databases.
var pageSize = 4096

// maxSeq is the largest sequence number SQLite's INTEGER PRIMARY KEY holds.
const maxSeq = math.MaxInt64

// request is one Append or SetCursor waiting for the writer.
type request struct {
	ctx    context.Context
	events []event.Event // Append
	cursor string        // SetCursor, when events is nil
	// cursorSeq is the position to save under cursor.
	cursorSeq uint64
	reply     chan reply // buffered: the writer never blocks on it

	res store.AppendResult // filled by the writer while in a transaction
}

type reply struct {
	res store.AppendResult
	err error
}

// writeLoop is the writer goroutine: it takes everything queued, up to
// MaxBatch events, commits it in one transaction and answers each request.
// It stops when the queue is closed and drained.
func (s *Store) writeLoop() {
	defer close(s.done)
	var (
		batch []*request
		carry *request // taken from the queue but did not fit the last batch
	)
	for {
		batch = batch[:0]
		n := 0
		if carry != nil {
			batch, n, carry = append(batch, carry), len(carry.events), nil
		} else {
			r, ok := <-s.queue
			if !ok {
				return
			}
			batch, n = append(batch, r), len(r.events)
		}
	fill:
		for n < s.opts.MaxBatch {
			select {
			case r, ok := <-s.queue:
				if !ok {
					break fill
				}
				if n+len(r.events) > s.opts.MaxBatch {
					carry = r
					break fill
				}
				batch, n = append(batch, r), n+len(r.events)
			default:
				break fill
			}
		}
		s.commit(batch)
		clear(batch) // drop references to the events
	}
}

// commit writes batch in one transaction and answers every request in it.
func (s *Store) commit(batch []*request) {
	// A request whose caller gave up while it was queued is answered
	// without being written.
	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.reply <- reply{err: err}
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	start := time.Now()
	first := s.w.last
	stored, err := s.w.write(live)
	if err != nil {
		s.w.last = first // nothing of the transaction is stored
		for _, r := range live {
			r.reply <- reply{err: err}
		}
		return
	}
	s.lastSeq.Store(s.w.last)
	if s.opts.OnCommit != nil {
		s.opts.OnCommit(time.Since(start), stored)
	}
	for _, r := range live {
		r.reply <- reply{res: r.res}
	}
}

// writer owns the one read-write connection and its prepared statements.
type writer struct {
	conn *sqlite3.SQLiteConn
	last uint64 // highest sequence number written, committed or not

	begin, commitTx, rollback driver.Stmt
	insertEvent               driver.Stmt
	lookupSeq                 driver.Stmt
	insertRelated             driver.Stmt
	saveCursor                driver.Stmt
	saveLastSeq               driver.Stmt

	args    [16]driver.NamedValue // insertEvent arguments, reused
	args2   [2]driver.NamedValue  // two-argument statements, reused
	ipBuf   [16]byte
	seqDest [1]driver.Value
}

const insertEventSQL = `INSERT INTO events(seq, event_id, ts, source_ip, user_name, user_id,
	action, category, outcome, method, path, status, request_id, service, message, canonical)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT(event_id) DO NOTHING`

func openWriter(dsn string, cacheMB int) (*writer, error) {
	c, err := (&sqlite3.SQLiteDriver{}).Open(dsn)
	if err != nil {
		return nil, err
	}
	w := &writer{conn: c.(*sqlite3.SQLiteConn)}
	if err := w.init(cacheMB); err != nil {
		_ = w.close()
		return nil, err
	}
	return w, nil
}

func (w *writer) init(cacheMB int) error {
	// journal_mode first: synchronous must be set after it, or entering WAL
	// mode could leave the driver's compiled-in WAL default (NORMAL).
	// FULL in WAL mode fsyncs the WAL at every commit: an acknowledged event
	// survives a power failure, not just a process crash.
	// page_size only takes effect on a new database, before WAL mode.
	if _, err := w.conn.Exec(fmt.Sprintf("PRAGMA page_size = %d", pageSize), nil); err != nil {
		return fmt.Errorf("set page size: %w", err)
	}
	mode, err := queryString(w.conn, "PRAGMA journal_mode = WAL")
	if err != nil {
		return fmt.Errorf("set WAL mode: %w", err)
	}
	if mode != "wal" {
		return fmt.Errorf("set WAL mode: journal mode is %q", mode)
	}
	if _, err := w.conn.Exec(fmt.Sprintf(`PRAGMA synchronous = FULL;
		PRAGMA busy_timeout = 10000;
		PRAGMA temp_store = MEMORY;
		PRAGMA cache_size = -%d;
		PRAGMA foreign_keys = OFF;
		PRAGMA wal_autocheckpoint = 4000;
		PRAGMA journal_size_limit = %d;`, cacheMB*1024, 64<<20), nil); err != nil {
		return fmt.Errorf("set pragmas: %w", err)
	}
	if err := migrate(w.conn); err != nil {
		return err
	}
	for _, p := range []struct {
		stmt *driver.Stmt
		sql  string
	}{
		{&w.begin, "BEGIN IMMEDIATE"},
		{&w.commitTx, "COMMIT"},
		{&w.rollback, "ROLLBACK"},
		{&w.insertEvent, insertEventSQL},
		{&w.lookupSeq, "SELECT seq FROM events WHERE event_id = ?"},
		{&w.insertRelated, "INSERT OR IGNORE INTO related(obj, seq) VALUES (?, ?)"},
		{&w.saveCursor, `INSERT INTO cursors(name, seq) VALUES (?, ?)
			ON CONFLICT(name) DO UPDATE SET seq = excluded.seq`},
		{&w.saveLastSeq, `INSERT INTO meta(key, value) VALUES ('last_seq', ?)
			ON CONFLICT(key) DO UPDATE SET value = excluded.value`},
	} {
		if *p.stmt, err = w.conn.Prepare(p.sql); err != nil {
			return fmt.Errorf("prepare %q: %w", p.sql, err)
		}
	}
	// The last sequence number is also kept in meta so that purging the
	// newest events could never make a number be handed out twice.
	last, err := queryInt(w.conn, `SELECT max(coalesce((SELECT max(seq) FROM events), 0),
		coalesce((SELECT value FROM meta WHERE key = 'last_seq'), 0))`)
	if err != nil {
		return fmt.Errorf("read last sequence number: %w", err)
	}
	w.last = uint64(last)
	for i := range w.args {
		w.args[i].Ordinal = i + 1
	}
	for i := range w.args2 {
		w.args2[i].Ordinal = i + 1
	}
	return nil
}

// write runs one transaction holding every request of batch, filling each
// request's result. It returns the number of events stored; on error the
// transaction is rolled back.
func (w *writer) write(batch []*request) (stored int, err error) {
	if err := execStmt(w.begin, nil); err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			w.forgetArgs()
			// An I/O error may have rolled back already; the error of
			// ROLLBACK then says so and adds nothing.
			_ = execStmt(w.rollback, nil)
		}
	}()
	first := w.last
	for _, r := range batch {
		if r.events == nil {
			w.args2[0].Value = r.cursor
			w.args2[1].Value = int64(r.cursorSeq)
			if err := execStmt(w.saveCursor, w.args2[:]); err != nil {
				return 0, fmt.Errorf("save cursor %q: %w", r.cursor, err)
			}
			continue
		}
		r.res = store.AppendResult{Seqs: make([]uint64, len(r.events))}
		for i := range r.events {
			seq, dup, err := w.insert(&r.events[i])
			if err != nil {
				return 0, err
			}
			r.res.Seqs[i] = seq
			if dup {
				r.res.Duplicates++
			}
		}
	}
	if w.last != first {
		w.args2[0].Value = int64(w.last)
		if err := execStmt(w.saveLastSeq, w.args2[:1]); err != nil {
			return 0, fmt.Errorf("save last sequence number: %w", err)
		}
	}
	if err := execStmt(w.commitTx, nil); err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	w.forgetArgs()
	return int(w.last - first), nil
}

// forgetArgs drops the references the reused arguments hold to the last
// batch's events.
func (w *writer) forgetArgs() {
	for i := range w.args {
		w.args[i].Value = nil
	}
	for i := range w.args2 {
		w.args2[i].Value = nil
	}
}

// insert stores one event under the next sequence number, or reports the
// sequence number of the stored event with the same ID.
func (w *writer) insert(e *event.Event) (seq uint64, dup bool, err error) {
	if w.last >= maxSeq {
		return 0, false, errors.New("sequence numbers exhausted")
	}
	seq = w.last + 1
	a := &w.args
	a[0].Value = int64(seq)
	a[1].Value = e.ID
	a[2].Value = nullTime(e.Time)
	if e.SourceIP.IsValid() {
		w.ipBuf = e.SourceIP.As16()
		a[3].Value = w.ipBuf[:]
	} else {
		a[3].Value = nil
	}
	a[4].Value = nullString(e.UserName)
	a[5].Value = nullString(e.UserID)
	a[6].Value = nullString(e.Action)
	a[7].Value = nullString(e.Category)
	a[8].Value = nullString(e.Outcome)
	a[9].Value = nullString(e.Method)
	a[10].Value = nullString(e.Path)
	if e.Status != 0 {
		a[11].Value = int64(e.Status)
	} else {
		a[11].Value = nil
	}
	a[12].Value = nullString(e.RequestID)
	a[13].Value = nullString(e.Service)
	a[14].Value = nullString(e.Message)
	a[15].Value = e.Canonical
	res, err := w.insertEvent.(driver.StmtExecContext).ExecContext(context.Background(), a[:])
	if err != nil {
		return 0, false, fmt.Errorf("insert event %q: %w", e.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		seq, err := w.seqOf(e.ID)
		if err != nil {
			return 0, false, fmt.Errorf("look up duplicate event %q: %w", e.ID, err)
		}
		return seq, true, nil
	}
	w.last = seq
	for _, obj := range e.Related {
		if obj == "" {
			continue
		}
		w.args2[0].Value = obj
		w.args2[1].Value = int64(seq)
		if err := execStmt(w.insertRelated, w.args2[:]); err != nil {
			return 0, false, fmt.Errorf("insert related object of event %q: %w", e.ID, err)
		}
	}
	return seq, false, nil
}

func (w *writer) seqOf(id string) (uint64, error) {
	w.args2[0].Value = id
	rows, err := w.lookupSeq.(driver.StmtQueryContext).QueryContext(context.Background(), w.args2[:1])
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	if err := rows.Next(w.seqDest[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return 0, errors.New("not found")
		}
		return 0, err
	}
	seq, ok := w.seqDest[0].(int64)
	if !ok {
		return 0, fmt.Errorf("unexpected %T", w.seqDest[0])
	}
	return uint64(seq), nil
}

// checkpoint copies the WAL into the database file and truncates it.
func (w *writer) checkpoint() error {
	_, err := w.conn.Exec("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA optimize;", nil)
	return err
}

func (w *writer) close() error {
	for _, st := range []driver.Stmt{w.begin, w.commitTx, w.rollback, w.insertEvent,
		w.lookupSeq, w.insertRelated, w.saveCursor, w.saveLastSeq} {
		if st != nil {
			_ = st.Close()
		}
	}
	return w.conn.Close()
}

func execStmt(st driver.Stmt, args []driver.NamedValue) error {
	_, err := st.(driver.StmtExecContext).ExecContext(context.Background(), args)
	return err
}

func nullString(s string) driver.Value {
	if s == "" {
		return nil
	}
	return s
}

// minTime and maxTime bound the times Unix nanoseconds can hold.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

func nullTime(t time.Time) driver.Value {
	if t.IsZero() {
		return nil
	}
	return unixNano(t)
}

// unixNano is t.UnixNano clamped to the representable range.
func unixNano(t time.Time) int64 {
	switch {
	case t.Before(minTime):
		return math.MinInt64
	case t.After(maxTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

func queryString(c *sqlite3.SQLiteConn, query string) (string, error) {
	rows, err := c.Query(query, nil)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	dest := make([]driver.Value, 1)
	if err := rows.Next(dest); err != nil {
		return "", err
	}
	switch v := dest[0].(type) {
	case string:
		return v, nil
	case []byte:
		return string(v), nil
	default:
		return "", fmt.Errorf("unexpected %T from %q", v, query)
	}
}
