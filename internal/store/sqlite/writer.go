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

// pageSize is the page size of new databases. Measured with
// BenchmarkAppend (8 goroutines, 2 million events): 8 KiB and 16 KiB pages
// ingest about 30% faster than 4 KiB (fewer WAL frames, so fewer write
// calls per byte); 8 KiB keeps index lookups that miss the cache cheaper.
var pageSize = 8192

// checkpointBytes is how much WAL the writer lets accumulate before it
// copies the WAL into the database file (SQLite's autocheckpoint, run by the
// committing connection right after a commit). The copy is done by the
// writer between transactions, so the WAL is fully copied when the next
// transaction begins and SQLite writes it over from its start: its size
// stays near checkpointBytes plus one transaction.
//
// A checkpointer goroutine on a connection of its own was tried: it never
// catches the WAL fully copied at the moment a transaction begins, so the
// WAL grows without end unless the writer stops to finish the copy, and
// with that fixed it ingested no faster while using 30% more CPU in all.
var checkpointBytes = 32 << 20

// checkpointPages is checkpointBytes in pages.
func checkpointPages() int { return max(1, checkpointBytes/pageSize) }

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

// ftsDoc is a message waiting to be indexed under its event's seq.
type ftsDoc struct {
	seq     uint64
	message string
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
	insertFTS                 driver.Stmt
	saveCursor                driver.Stmt
	saveLastSeq               driver.Stmt

	fts     []ftsDoc              // messages of the transaction's events
	args    [16]driver.NamedValue // insertEvent arguments, reused
	args2   [2]driver.NamedValue  // two-argument statements, reused
	ipBuf   [16]byte
	seqDest [1]driver.Value
}

// insertEventSQL stores an event unless its ID is stored. The conflict
// clause names no column on purpose: with a target, a conflict on any other
// constraint (the seq primary key) would abort the statement, so SQLite
// would keep a statement journal for each insert, copying every page it
// touches a second time. Without one, a seq conflict (which would be a bug)
// also inserts nothing; insert then fails to find the event by its ID and the
// transaction fails.
const insertEventSQL = `INSERT INTO events(seq, event_id, ts, source_ip, user_name, user_id,
	action, category, outcome, method, path, status, request_id, service, message, canonical)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT DO NOTHING`

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
	// page_size only takes effect on a new database, before WAL mode.
	if _, err := w.conn.Exec(fmt.Sprintf("PRAGMA page_size = %d", pageSize), nil); err != nil {
		return fmt.Errorf("set page size: %w", err)
	}
	// journal_mode before synchronous: entering WAL mode could otherwise
	// leave the driver's compiled-in WAL default (NORMAL). FULL in WAL mode
	// fsyncs the WAL at every commit: an acknowledged event survives a power
	// failure, not just a process crash.
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
		PRAGMA wal_autocheckpoint = %d;
		PRAGMA journal_size_limit = %d;`, cacheMB*1024, checkpointPages(), 2*checkpointBytes), nil); err != nil {
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
		{&w.insertRelated, "INSERT OR IGNORE INTO related(seg, obj, seq) VALUES (?2 >> 16, ?1, ?2)"},
		{&w.insertFTS, "INSERT INTO events_fts(docid, message) VALUES (?, ?)"},
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
	w.fts = w.fts[:0]
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
	// Full-text entries go in after all events: an INSERT into events opens
	// a statement journal (it may abort halfway through its indexes), and
	// FTS4 writes its pending terms out as a new segment whenever a
	// statement journal opens while it holds some. Interleaving the two
	// would write, and soon merge, one FTS segment per event.
	for _, d := range w.fts {
		w.args2[0].Value = int64(d.seq)
		w.args2[1].Value = d.message
		if err := execStmt(w.insertFTS, w.args2[:]); err != nil {
			return 0, fmt.Errorf("index message of event %d: %w", d.seq, err)
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
	clear(w.fts)
	w.fts = w.fts[:0]
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
	inserted, err := w.execInsert()
	if err != nil {
		return 0, false, fmt.Errorf("insert event %q: %w", e.ID, err)
	}
	if !inserted {
		seq, err := w.seqOf(e.ID)
		if err != nil {
			return 0, false, fmt.Errorf("look up duplicate event %q: %w", e.ID, err)
		}
		return seq, true, nil
	}
	w.last = seq
	if e.Message != "" {
		w.fts = append(w.fts, ftsDoc{seq: seq, message: e.Message})
	}
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

// execInsert runs insertEvent with w.args and reports whether a row was
// inserted (false: the event ID was stored before). (The driver's query
// path, binding all arguments in one cgo call, was tried with RETURNING
// seq: RETURNING costs more than the calls it saves.)
func (w *writer) execInsert() (bool, error) {
	res, err := w.insertEvent.(driver.StmtExecContext).ExecContext(context.Background(), w.args[:])
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
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
			return 0, errors.New("not inserted, yet not found by ID: was its sequence number already taken?")
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
		w.lookupSeq, w.insertRelated, w.insertFTS, w.saveCursor, w.saveLastSeq} {
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
