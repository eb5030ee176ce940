package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sync/atomic"
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
// copies the WAL into the database file. The copy is done by the writer
// between transactions, so the WAL is fully copied when the next
// transaction begins and SQLite writes it over from its start: its size
// stays near checkpointBytes plus one transaction.
//
// The writer copies when it has nothing queued (idleCheckpoint), so that
// the copy, and its two fsyncs, fill the gaps between group commits rather
// than lengthen a commit that requests wait on: at peak, commits spent half
// their time in the checkpoint SQLite runs after a commit, and the writer
// waited for requests a fifth of the time. SQLite's own checkpoint after a
// commit stays as a backstop at four times the size, for a writer that is
// never idle.
//
// The copy stalls the writer, and every request waiting on it: measured at
// half the peak rate (batches of 100), ack p99 was 58–67 ms with 32 MiB and
// 47–53 ms with 4 MiB, at the same CPU cost per event.
//
// A checkpointer goroutine on a connection of its own was tried: it never
// catches the WAL fully copied at the moment a transaction begins, so the
// WAL grows without end unless the writer stops to finish the copy, and
// with that fixed it ingested no faster while using 30% more CPU in all.
var checkpointBytes = 4 << 20

// checkpointPages is checkpointBytes in pages.
func checkpointPages() int { return max(1, checkpointBytes/pageSize) }

// maxSeq is the largest sequence number SQLite's INTEGER PRIMARY KEY holds.
const maxSeq = math.MaxInt64

// request is one Append or SetCursor waiting for the writer.
type request struct {
	ctx    context.Context
	events []event.Event // Append
	keys   [][]pkey      // Append: the index keys of each event
	cursor string        // SetCursor, when events is nil
	purge  *purgeJob     // Purge, when set
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
// MaxBatch events, commits it in one transaction and hands the transaction
// to the syncer, which answers each request once the WAL is fsynced. It
// stops when the queue is closed and drained, after the syncer.
func (s *Store) writeLoop() {
	defer func() {
		close(s.syncq)
		<-s.syncDone
		close(s.done)
	}()
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
			var (
				r  *request
				ok bool
			)
			if s.w.walSince.Load() >= int64(checkpointBytes) && len(s.queue) == 0 && s.broken.Load() == nil {
				s.w.idleCheckpoint()
				continue
			}
			if s.w.flushPending() {
				// Idle with postings to write out: write a chunk in a
				// transaction of its own rather than wait for appends.
				select {
				case r, ok = <-s.queue:
				default:
					s.commit(nil)
					continue
				}
			} else {
				select {
				case r, ok = <-s.queue:
				case <-s.w.wake:
					continue // a closed segment's keys are sorted
				}
			}
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

// commit writes batch in one transaction and passes its requests to the
// syncer, which answers them once the transaction is durable.
func (s *Store) commit(batch []*request) {
	// A request whose caller gave up while it was queued is answered
	// without being written, and so is every request once a sync failed.
	broken := s.broken.Load()
	live := batch[:0]
	for _, r := range batch {
		if broken != nil {
			r.reply <- reply{err: *broken}
			continue
		}
		if err := r.ctx.Err(); err != nil {
			r.reply <- reply{err: err}
			continue
		}
		live = append(live, r)
	}
	if broken != nil || len(live) == 0 && (len(batch) > 0 || !s.w.flushPending()) {
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
	s.w.published()
	if len(live) == 0 {
		return // postings written out: rebuilt from the events if lost
	}
	s.syncq <- syncJob{reqs: slices.Clone(live), last: s.w.last, start: start, stored: stored}
}

// syncJob is a committed transaction whose requests wait for the WAL to be
// fsynced.
type syncJob struct {
	reqs   []*request
	last   uint64 // the store's last sequence number once it is durable
	start  time.Time
	stored int
}

// syncLoop is the syncer goroutine. The writer connection commits with
// synchronous=NORMAL, so COMMIT only writes the WAL; the syncer fsyncs it
// and then answers the requests of every transaction the fsync covered and
// makes their events readable (lastSeq). While it waits for the disk, the
// writer already builds the next transaction: the fsync of one group commit
// overlaps the inserts of the next, and one fsync can cover several
// commits. An event is still acknowledged only once it is on disk.
//
// After a failed fsync the kernel may have dropped the unwritten pages, so
// what SQLite believes written may not be: every request waiting, and every
// later one, is answered with the error (callers retry; the event ID makes
// that harmless once the store is reopened).
func (s *Store) syncLoop() {
	defer close(s.syncDone)
	var jobs []syncJob
	for j := range s.syncq {
		jobs = append(jobs[:0], j)
	drain:
		for {
			select {
			case j, ok := <-s.syncq:
				if !ok {
					break drain
				}
				jobs = append(jobs, j)
			default:
				break drain
			}
		}
		err := s.syncWAL()
		if err != nil {
			s.broken.CompareAndSwap(nil, &err)
		}
		for _, j := range jobs {
			if err == nil {
				// Readable before answered: a caller may read what it
				// appended as soon as Append returns.
				s.lastSeq.Store(j.last)
				if s.opts.OnCommit != nil {
					s.opts.OnCommit(time.Since(j.start), j.stored)
				}
			}
			for _, r := range j.reqs {
				if err != nil {
					r.reply <- reply{err: err}
				} else {
					r.reply <- reply{res: r.res}
				}
			}
		}
		clear(jobs)
	}
}

// syncWAL fsyncs the WAL file. It is opened once, on the first sync (SQLite
// creates it with the first transaction), and checked to still be the file
// at the WAL's path: SQLite deletes the WAL only when its last connection
// closes, which the writer's connection prevents, but an fsync of a stale
// file would silently acknowledge nothing durable.
func (s *Store) syncWAL() error {
	name := s.path + "-wal"
	if s.wal == nil {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("open WAL to sync it: %w", err)
		}
		s.wal = f
	}
	held, err := s.wal.Stat()
	if err != nil {
		return fmt.Errorf("sync WAL: %w", err)
	}
	if cur, err := os.Stat(name); err != nil || !os.SameFile(held, cur) {
		return fmt.Errorf("sync WAL: %s is no longer the file the store opened (%v)", name, err)
	}
	if err := s.syncFile(s.wal); err != nil {
		return fmt.Errorf("sync WAL: %w", err)
	}
	return nil
}

// writer owns the one read-write connection and its prepared statements.
type writer struct {
	conn *sqlite3.SQLiteConn
	last uint64 // highest sequence number written, committed or not

	begin, commitTx, rollback driver.Stmt
	insertEvent               driver.Stmt
	lookupSeq                 driver.Stmt
	insertList                driver.Stmt
	insertPack                driver.Stmt
	saveBounds                driver.Stmt
	upsertBlock               driver.Stmt
	saveCursor                driver.Stmt
	saveFlushed               driver.Stmt
	saveLastSeq               driver.Stmt

	idx *memIndex // the in-memory postings; only the writer changes them
	// committed is the highest sequence number committed (w.last less
	// the events of the transaction being written).
	committed uint64
	encBuf    []byte
	packBuf   []byte
	bounds    *segBounds // of the segment whose last chunk is being written

	// Of the transaction being written: the events stored, their keys,
	// and the time span of each block they fall in.
	newSeqs []uint64
	newKeys [][]pkey
	newEvs  []event.Event
	recent  *recentCache  // the latest committed events
	wake    chan struct{} // a sort the writer waits for is done
	blocks  []timeBlock
	// walSince estimates the WAL written since the last checkpoint, in
	// bytes (rows and index entries, not page overhead). Atomic only for
	// tests that run a commit beside the idle writer goroutine.
	walSince atomic.Int64
	// flushTo is how far the transaction writes out the oldest closed
	// segment's keys, when flushing.
	flushTo  int
	flushing bool

	args    [5]driver.NamedValue // insertEvent (and flushChunk) arguments, reused
	args2   [2]driver.NamedValue // two-argument statements, reused
	seqDest [1]driver.Value
}

// insertEventSQL stores an event unless its ID is stored. The conflict
// clause names no column on purpose: with a target, a conflict on any other
// constraint (the seq primary key) would abort the statement, so SQLite
// would keep a statement journal for each insert, copying every page it
// touches a second time. Without one, a seq conflict (which would be a bug)
// also inserts nothing; insert then fails to find the event by its ID and the
// transaction fails.
//
// Only the columns something reads are written: the ID (its unique index
// is the deduplication), the time (time-range searches check it inside a
// block) and the canonical bytes. The other columns of the table (source_ip,
// user_name, …, message) date from the B-tree indexes of schema versions 1
// and 2 and stay NULL: the postings are built from the canonical bytes.
// Binding them cost 12 cgo calls and ~200 bytes of WAL per event.
const insertEventSQL = `INSERT INTO events(seq, event_id, ts, canonical)
	VALUES (?, ?, ?, ?)
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
	// leave the driver's compiled-in WAL default. NORMAL in WAL mode: a
	// COMMIT writes the WAL without fsyncing it (checkpoints still fsync
	// the WAL before copying it and the database after), and the store's
	// syncer fsyncs the WAL before any request of the transaction is
	// answered (see syncLoop), so an acknowledged event survives a power
	// failure, not just a process crash. A crash may lose a committed but
	// unacknowledged transaction: WAL recovery stops at the last intact
	// commit, and nothing after it was acknowledged or readable.
	mode, err := queryString(w.conn, "PRAGMA journal_mode = WAL")
	if err != nil {
		return fmt.Errorf("set WAL mode: %w", err)
	}
	if mode != "wal" {
		return fmt.Errorf("set WAL mode: journal mode is %q", mode)
	}
	if _, err := w.conn.Exec(fmt.Sprintf(`PRAGMA synchronous = NORMAL;
		PRAGMA busy_timeout = 10000;
		PRAGMA temp_store = MEMORY;
		PRAGMA cache_size = -%d;
		PRAGMA foreign_keys = OFF;
		PRAGMA wal_autocheckpoint = %d;
		PRAGMA journal_size_limit = %d;`, cacheMB*1024, 4*checkpointPages(), 5*checkpointBytes), nil); err != nil {
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
		{&w.insertList, "INSERT OR REPLACE INTO lists(seg, field, value, part, seqs) VALUES (?, ?, ?, ?, ?)"},
		{&w.insertPack, "INSERT OR REPLACE INTO packs(seg, field, first, data) VALUES (?, ?, ?, ?)"},
		{&w.saveBounds, "INSERT OR REPLACE INTO segfields(seg, field, lo, hi) VALUES (?, ?, ?, ?)"},
		{&w.upsertBlock, `INSERT INTO timeblocks(block, min_ts, max_ts) VALUES (?, ?, ?)
			ON CONFLICT(block) DO UPDATE SET min_ts = min(min_ts, excluded.min_ts), max_ts = max(max_ts, excluded.max_ts)`},
		{&w.saveFlushed, `INSERT INTO meta(key, value) VALUES ('postings_seg', ?)
			ON CONFLICT(key) DO UPDATE SET value = excluded.value`},
		{&w.saveCursor, `INSERT INTO cursors(name, seq) VALUES (?, ?)
			ON CONFLICT(name) DO UPDATE SET seq = excluded.seq`},
		{&w.saveLastSeq, `INSERT INTO meta(key, value) VALUES ('last_seq', ?)
			ON CONFLICT(key) DO UPDATE SET value = excluded.value`},
	} {
		if *p.stmt, err = w.conn.Prepare(p.sql); err != nil {
			return fmt.Errorf("prepare %q: %w", p.sql, err)
		}
	}
	// The last sequence number is also kept in meta by every purge, so that
	// purging the newest events could never make a number be handed out
	// twice.
	last, err := queryInt(w.conn, `SELECT max(coalesce((SELECT max(seq) FROM events), 0),
		coalesce((SELECT value FROM meta WHERE key = 'last_seq'), 0))`)
	if err != nil {
		return fmt.Errorf("read last sequence number: %w", err)
	}
	w.last = uint64(last)
	w.committed = w.last
	w.recent = &recentCache{}
	w.wake = make(chan struct{}, 1)
	if err := w.loadIndex(); err != nil {
		return err
	}
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
			clear(w.newKeys)
			clear(w.newEvs)
			w.newKeys, w.newSeqs, w.newEvs, w.flushing = w.newKeys[:0], w.newSeqs[:0], w.newEvs[:0], false
			// An I/O error may have rolled back already; the error of
			// ROLLBACK then says so and adds nothing.
			_ = execStmt(w.rollback, nil)
		}
	}()
	first := w.last
	purged := false
	w.newSeqs, w.newKeys, w.blocks, w.flushing = w.newSeqs[:0], w.newKeys[:0], w.blocks[:0], false
	for _, r := range batch {
		if r.purge != nil {
			if err := w.purge(r.purge); err != nil {
				return 0, err
			}
			purged = true
			continue
		}
		if r.events == nil {
			w.args2[0].Value = r.cursor
			w.args2[1].Value = int64(r.cursorSeq)
			if err := execStmt(w.saveCursor, w.args2[:]); err != nil {
				return 0, fmt.Errorf("save cursor %q: %w", r.cursor, err)
			}
			continue
		}
		r.res = store.AppendResult{Seqs: make([]uint64, len(r.events))}
		if len(r.keys) != len(r.events) {
			r.keys = indexKeys(r.events)
		}
		for i := range r.events {
			seq, dup, err := w.insert(&r.events[i])
			if err != nil {
				return 0, err
			}
			r.res.Seqs[i] = seq
			if dup {
				r.res.Duplicates++
				continue
			}
			w.newSeqs = append(w.newSeqs, seq)
			w.newKeys = append(w.newKeys, r.keys[i])
			w.newEvs = append(w.newEvs, r.events[i]) // a copy: callers may reuse their slice
			w.noteTime(seq, r.events[i].Time)
		}
	}
	for _, b := range w.blocks {
		w.args[0].Value, w.args[1].Value, w.args[2].Value = int64(b.block), b.min, b.max
		if err := execStmt(w.upsertBlock, w.args[:3]); err != nil {
			return 0, fmt.Errorf("save time span of block %d: %w", b.block, err)
		}
	}
	if err := w.flushChunk(); err != nil {
		return 0, err
	}
	// The highest number handed out is max(seq) of the events as long as
	// nothing was removed; a purge, which may remove the newest events,
	// records it in meta. (Saved by every transaction, it cost a page of
	// WAL per commit.)
	if purged {
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
	a[3].Value = e.Canonical
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
	w.walSince.Add(int64(len(e.Canonical) + 2*len(e.ID) + 32))
	return seq, false, nil
}

// execInsert runs insertEvent with w.args and reports whether a row was
// inserted (false: the event ID was stored before). (The driver's query
// path, binding all arguments in one cgo call, was tried with RETURNING
// seq: RETURNING costs more than the calls it saves.)
func (w *writer) execInsert() (bool, error) {
	res, err := w.insertEvent.(driver.StmtExecContext).ExecContext(context.Background(), w.args[:4])
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

// idleCheckpoint copies the WAL into the database file between
// transactions (see checkpointBytes). A failure is left to the next one, or
// to SQLite's own checkpoint: nothing depends on this one.
func (w *writer) idleCheckpoint() {
	_, _ = w.conn.Exec("PRAGMA wal_checkpoint(PASSIVE)", nil)
	w.walSince.Store(0)
}

// checkpoint copies the WAL into the database file and truncates it.
func (w *writer) checkpoint() error {
	_, err := w.conn.Exec("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA optimize;", nil)
	return err
}

func (w *writer) close() error {
	for _, st := range []driver.Stmt{w.begin, w.commitTx, w.rollback, w.insertEvent,
		w.lookupSeq, w.insertList, w.insertPack, w.saveBounds, w.upsertBlock, w.saveCursor, w.saveFlushed, w.saveLastSeq} {
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

// blockShift gives an event's time block: seq >> blockShift. The timeblocks
// table keeps the earliest and latest @timestamp of each block, so a time
// range search reads only the blocks it overlaps.
const blockShift = 10

// timeBlock is the time span of the events of one block written by a
// transaction.
type timeBlock struct {
	block    uint64
	min, max int64
}

// noteTime widens the time span of seq's block in the transaction.
func (w *writer) noteTime(seq uint64, t time.Time) {
	if t.IsZero() {
		return
	}
	ts := unixNano(t)
	b := seq >> blockShift
	if n := len(w.blocks); n > 0 && w.blocks[n-1].block == b {
		w.blocks[n-1].min = min(w.blocks[n-1].min, ts)
		w.blocks[n-1].max = max(w.blocks[n-1].max, ts)
		return
	}
	w.blocks = append(w.blocks, timeBlock{block: b, min: ts, max: ts})
}

// flushPending tells whether a closed segment's postings wait to be written
// out.
func (w *writer) flushPending() bool {
	segs := w.idx.segs
	closed := len(segs) > 1 || len(segs) == 1 && segs[0].seg < (w.committed+1)>>segShift
	return closed && segs[0].sortedKeys(w.idx, w.wake)
}

// flushChunk writes the next chunk of the oldest closed segment's postings
// in the transaction, in key order, and, with the last chunk, the segment
// number from which postings are in memory. More closed segments waiting
// make bigger chunks, so the flush keeps up with any ingest rate. Short
// lists go into packs, long ones into parts; a chunk ends only where no
// pack is open (see packMaxOffs).
func (w *writer) flushChunk() error {
	if !w.flushPending() {
		return nil
	}
	x := w.idx.segs[0] // its keys are sorted: flushPending said so
	limit := x.next + flushChunkKeys*len(w.idx.segs)
	a := &w.args
	a[0].Value = int64(x.seg)
	var (
		pack      = w.packBuf[:0]
		packField uint8
		packFirst string
	)
	writePack := func() error {
		a[1].Value, a[2].Value, a[3].Value = int64(packField), []byte(packFirst), pack
		if err := execStmt(w.insertPack, a[:4]); err != nil {
			return fmt.Errorf("write postings of segment %d: %w", x.seg, err)
		}
		w.walSince.Add(int64(len(packFirst) + len(pack) + 16))
		pack = pack[:0]
		return nil
	}
	if x.next == 0 {
		// Rows a version before packs wrote before a crash: the segment is
		// written out again into lists and packs.
		if _, err := w.conn.Exec(`DELETE FROM postings WHERE seg = ?`, []driver.Value{int64(x.seg)}); err != nil {
			return fmt.Errorf("write postings of segment %d: %w", x.seg, err)
		}
	}
	end := x.next
	for ; end < len(x.keys); end++ {
		k := x.keys[end]
		p := x.lists[k.f][k.v]
		if p == nil {
			continue // purged while the keys were being sorted
		}
		small := len(p.offs) <= packMaxOffs
		if len(pack) > 0 && (k.f != packField ||
			small && len(packFirst)+len(pack)+packedSize(k.v, p.offs) > listRowBytes) {
			if err := writePack(); err != nil {
				return err
			}
		}
		if len(pack) == 0 && end >= limit {
			break
		}
		if small {
			if len(pack) == 0 {
				packField, packFirst = k.f, k.v
			}
			pack = appendPacked(pack, k.v, p.offs)
			continue
		}
		a[1].Value, a[2].Value = int64(k.f), []byte(k.v)
		for part, offs := 0, p.offs; len(offs) > 0; part++ {
			var n int
			w.encBuf, n = encodePart(w.encBuf[:0], offs, listRowBytes-len(k.v)-32)
			offs = offs[n:]
			a[3].Value, a[4].Value = int64(part), w.encBuf
			if err := execStmt(w.insertList, a[:5]); err != nil {
				return fmt.Errorf("write postings of segment %d: %w", x.seg, err)
			}
			w.walSince.Add(int64(len(k.v) + len(w.encBuf) + 16))
		}
	}
	if len(pack) > 0 { // the segment's last keys
		if err := writePack(); err != nil {
			return err
		}
	}
	w.packBuf = pack
	if end == len(x.keys) {
		w.bounds = boundsOf(x.keys)
		for f, fb := range w.bounds {
			if !fb.ok {
				continue
			}
			a[1].Value, a[2].Value, a[3].Value = int64(f), []byte(fb.lo), []byte(fb.hi)
			if err := execStmt(w.saveBounds, a[:4]); err != nil {
				return fmt.Errorf("write postings of segment %d: %w", x.seg, err)
			}
		}
		w.args2[0].Value = int64(x.seg + 1)
		if err := execStmt(w.saveFlushed, w.args2[:1]); err != nil {
			return fmt.Errorf("write postings of segment %d: %w", x.seg, err)
		}
	}
	w.flushTo, w.flushing = end, true
	return nil
}

// published puts the committed transaction's events in the in-memory
// index and the recent-events cache, and lets a segment whose postings are
// now all in the table leave the index. Readers see the events once the
// syncer advances lastSeq past them.
func (w *writer) published() {
	m := w.idx
	w.recent.add(w.newSeqs, w.newEvs)
	clear(w.newEvs)
	w.newEvs = w.newEvs[:0]
	m.mu.Lock()
	m.add(w.newSeqs, w.newKeys)
	if w.flushing {
		x := m.segs[0]
		x.next = w.flushTo
		if x.next == len(x.keys) {
			m.segs[0] = nil
			m.segs = m.segs[1:]
			m.flushed = x.seg + 1
			m.bounds[x.seg] = w.bounds
		}
	}
	m.mu.Unlock()
	w.committed = w.last
	w.flushing = false
	clear(w.newKeys)
}

// loadBounds reads the value bounds of the segments written out.
func (w *writer) loadBounds() error {
	rows, err := w.conn.Query(`SELECT seg, field, lo, hi FROM segfields`, nil)
	if err != nil {
		return fmt.Errorf("read segment bounds: %w", err)
	}
	defer rows.Close()
	dest := make([]driver.Value, 4)
	for {
		if err := rows.Next(dest); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read segment bounds: %w", err)
		}
		seg, _ := dest[0].(int64)
		f, _ := dest[1].(int64)
		lo, _ := dest[2].([]byte)
		hi, _ := dest[3].([]byte)
		if f < 0 || f >= numFields {
			return fmt.Errorf("read segment bounds: field %d of segment %d", f, seg)
		}
		b := w.idx.bounds[uint64(seg)]
		if b == nil {
			b = new(segBounds)
			w.idx.bounds[uint64(seg)] = b
		}
		b[f].lo, b[f].hi, b[f].ok = string(lo), string(hi), true
	}
}

// hasLegacyPostings tells whether the postings table has rows.
func (w *writer) hasLegacyPostings() (bool, error) {
	n, err := queryInt(w.conn, `SELECT EXISTS (SELECT 1 FROM postings)`)
	if err != nil {
		return false, fmt.Errorf("read postings state: %w", err)
	}
	return n != 0, nil
}

// loadIndex builds the in-memory postings of every segment not yet written
// out, from the events' canonical bytes. At most a little more than one
// segment is read, unless the store comes from a version of Vigil before
// postings (then every segment is, once).
func (w *writer) loadIndex() error {
	flushed, err := queryInt(w.conn, `SELECT coalesce((SELECT value FROM meta WHERE key = 'postings_seg'), 0)`)
	if err != nil {
		return fmt.Errorf("read postings state: %w", err)
	}
	w.idx = &memIndex{flushed: uint64(flushed), bounds: map[uint64]*segBounds{}}
	if err := w.loadBounds(); err != nil {
		return err
	}
	rows, err := w.conn.Query(`SELECT seq, CAST(canonical AS BLOB) FROM events WHERE seq >= ? ORDER BY seq`,
		[]driver.Value{int64(flushed << segShift)})
	if err != nil {
		return fmt.Errorf("index stored events: %w", err)
	}
	defer rows.Close()
	var (
		dest  = make([]driver.Value, 2)
		keys  []pkey
		ipBuf [16]byte
		seq   [1]uint64
		kk    [1][]pkey
	)
	for {
		if err := rows.Next(dest); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("index stored events: %w", err)
		}
		n, _ := dest[0].(int64)
		canon, _ := dest[1].([]byte)
		e, err := event.ParseStored(canon)
		if err != nil {
			return fmt.Errorf("index stored event %d: %w", n, err)
		}
		keys = eventKeys(&e, keys[:0], &ipBuf)
		seq[0], kk[0] = uint64(n), keys
		w.idx.add(seq[:], kk[:])
	}
}
