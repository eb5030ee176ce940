// Package sqlite is the embedded Store: one SQLite file in WAL mode.
//
// Appends from any number of goroutines go through a bounded queue to one
// writer goroutine, which commits everything queued (up to Options.MaxBatch
// events) in one transaction (group commit). A syncer goroutine fsyncs the
// WAL and then answers each caller, while the writer goes on with the next
// transaction. Reads use a pool of separate connections and never wait for the
// writer.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/store"
)

// Options tune a Store. The zero value is a good default.
type Options struct {
	// MaxBatch is the most events the writer puts in one transaction when
	// it groups queued appends (default 10000). A single Append larger than
	// MaxBatch is still committed whole, in a transaction of its own.
	MaxBatch int
	// QueueSize is how many Append and SetCursor calls may wait for the
	// writer before further calls block (default 1024).
	QueueSize int
	// Readers is the size of the read connection pool (default
	// max(4, GOMAXPROCS)).
	Readers int
	// CacheMB is the page cache of the writer connection in MiB (default
	// 128); each reader gets a quarter of it.
	CacheMB int
	// OnCommit, when set, is called by the syncer once each transaction
	// holding requests is durable, with the time from its start to the end
	// of the fsync and the number of events stored. It must not block.
	OnCommit func(d time.Duration, events int)
}

func (o *Options) setDefaults() {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 10000
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 1024
	}
	if o.Readers <= 0 {
		o.Readers = max(4, runtime.GOMAXPROCS(0))
	}
	if o.CacheMB <= 0 {
		o.CacheMB = 128
	}
}

// Store is a store.Store kept in one SQLite database file.
type Store struct {
	opts Options
	path string

	// mu guards closed and the send side of queue: Append holds it for
	// reading while it queues, Close takes it to stop new requests.
	mu     sync.RWMutex
	closed bool
	queue  chan *request

	w    *writer       // owned by the writer goroutine until done is closed
	done chan struct{} // closed when the writer goroutine has stopped

	syncq    chan syncJob          // committed transactions, from writer to syncer
	syncDone chan struct{}         // closed when the syncer has stopped
	wal      *os.File              // the WAL, opened by the syncer to fsync it
	broken   atomic.Pointer[error] // the first failed fsync; no write succeeds after it
	syncFile func(*os.File) error  // (*os.File).Sync; tests stand in for the disk

	idx *memIndex // postings of the segments not yet in the table
	// legacy is set when the postings table had rows at Open (written
	// before schema version 5): readers look there too. Nothing adds rows
	// to it since.
	legacy bool
	// postingsReads counts the segments whose postings a search read from
	// the tables (for tests).
	postingsReads atomic.Int64
	lastSeq       atomic.Uint64 // highest committed sequence number
	isShut        atomic.Bool   // set by Close; reads answer ErrClosed
	db            *sql.DB       // read connections
	closeMu       sync.Mutex    // serializes Close
}

var _ store.Store = (*Store)(nil)

// Open opens the store in the SQLite database at path, creating it (mode
// 0600, and so its -wal and -shm files) when it does not exist, and migrates
// its schema to the current version.
func Open(path string, opts Options) (*Store, error) {
	opts.setDefaults()
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// SQLite gives its -wal and -shm files the mode of the database file,
	// so creating that file 0600 first keeps all three private.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	// Each connection is used by one goroutine at a time (the writer's by
	// the writer, readers through database/sql), so SQLite's per-call
	// connection mutex is not needed.
	dsn := (&url.URL{Scheme: "file", Path: abs, RawQuery: "_mutex=no"}).String()

	w, err := openWriter(dsn, opts.CacheMB)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	readerCacheKB := opts.CacheMB * 1024 / 4
	drv := &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		_, err := c.Exec(fmt.Sprintf(`PRAGMA busy_timeout = 10000;
			PRAGMA query_only = 1;
			PRAGMA temp_store = MEMORY;
			PRAGMA cache_size = -%d;`, readerCacheKB), nil)
		return err
	}}
	// Readers keep their recently used statements prepared: a search runs
	// the same few queries for each segment it reads, and preparing the
	// postings query cost as much as running it (measured with
	// BenchmarkSearch: a request id lookup went from ~100 to ~78 µs).
	db := sql.OpenDB(connector{drv: drv, dsn: dsn + "&_stmt_cache_size=16"})
	db.SetMaxOpenConns(opts.Readers)
	db.SetMaxIdleConns(opts.Readers)
	db.SetConnMaxIdleTime(0)
	if err := db.Ping(); err != nil {
		_ = db.Close()
		_ = w.close()
		return nil, fmt.Errorf("open store %s: reader: %w", abs, err)
	}

	s := &Store{
		opts:  opts,
		path:  abs,
		queue: make(chan *request, opts.QueueSize),
		w:     w,
		done:  make(chan struct{}),
		db:    db,
		// A few commits may wait for the disk at once; beyond that the
		// writer waits too.
		syncq:    make(chan syncJob, 16),
		syncDone: make(chan struct{}),
		syncFile: (*os.File).Sync,
	}
	s.idx = w.idx
	if s.legacy, err = w.hasLegacyPostings(); err != nil {
		_ = db.Close()
		_ = w.close()
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	s.lastSeq.Store(w.last)
	go s.syncLoop()
	go s.writeLoop()
	return s, nil
}

// connector opens read connections with the driver's connect hook, without
// registering a driver name globally.
type connector struct {
	drv *sqlite3.SQLiteDriver
	dsn string
}

func (c connector) Connect(context.Context) (driver.Conn, error) { return c.drv.Open(c.dsn) }
func (c connector) Driver() driver.Driver                        { return c.drv }

// Path returns the database file's absolute path.
func (s *Store) Path() string { return s.path }

// Close stops accepting appends (they return store.ErrClosed), commits those
// already queued, checkpoints the WAL into the database file and closes it.
// Closing twice is harmless.
func (s *Store) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.queue) // no sender can be inside the send: they hold mu.RLock
	s.mu.Unlock()
	<-s.done // the writer has answered everything queued
	s.isShut.Store(true)

	var errs []error
	if err := s.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close readers: %w", err))
	}
	if s.wal != nil {
		if err := s.wal.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close WAL: %w", err))
		}
	}
	if err := s.w.checkpoint(); err != nil {
		errs = append(errs, fmt.Errorf("checkpoint: %w", err))
	}
	if err := s.w.close(); err != nil {
		errs = append(errs, fmt.Errorf("close writer: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close store %s: %w", s.path, err)
	}
	return nil
}

// Append stores events atomically and returns once they are durable (WAL
// fsynced). It waits for room in the writer's queue until ctx is done. Once
// queued, it waits for the writer's answer whatever ctx does, so the answer
// is always true: if ctx is done by the time the writer takes the batch, the
// batch is not written and Append returns ctx's error; otherwise it returns
// the outcome of the transaction. A batch with an event lacking an ID or
// canonical bytes is refused whole. The store keeps the events' canonical
// bytes and strings (the latest are served from memory): the caller may reuse
// the slice, but must not modify those bytes.
func (s *Store) Append(ctx context.Context, events []event.Event) (store.AppendResult, error) {
	if err := ctx.Err(); err != nil {
		return store.AppendResult{}, err
	}
	for i := range events {
		if events[i].ID == "" {
			return store.AppendResult{}, fmt.Errorf("append batch of %d: event %d has no ID", len(events), i)
		}
		if len(events[i].Canonical) == 0 {
			return store.AppendResult{}, fmt.Errorf("append batch of %d: event %d has no canonical bytes", len(events), i)
		}
	}
	if len(events) == 0 {
		return store.AppendResult{Seqs: []uint64{}}, nil
	}
	r := &request{ctx: ctx, events: events, keys: indexKeys(events), reply: make(chan reply, 1)}
	if err := s.enqueue(ctx, r); err != nil {
		return store.AppendResult{}, err
	}
	rep := <-r.reply
	if rep.err != nil {
		return store.AppendResult{}, fmt.Errorf("append batch of %d: %w", len(events), rep.err)
	}
	return rep.res, nil
}

// SetCursor durably saves a consumer's position. It goes through the writer,
// so it shares the next group commit with appends and never competes with
// it for SQLite's single write lock.
func (s *Store) SetCursor(ctx context.Context, name string, seq uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if name == "" {
		return errors.New("set cursor: empty name")
	}
	if seq > maxSeq {
		return fmt.Errorf("set cursor %q: sequence %d out of range", name, seq)
	}
	r := &request{ctx: ctx, cursor: name, cursorSeq: seq, reply: make(chan reply, 1)}
	if err := s.enqueue(ctx, r); err != nil {
		return err
	}
	if rep := <-r.reply; rep.err != nil {
		return fmt.Errorf("set cursor %q: %w", name, rep.err)
	}
	return nil
}

func (s *Store) enqueue(ctx context.Context, r *request) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return store.ErrClosed
	}
	select {
	case s.queue <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// LastSeq returns the highest committed sequence number.
func (s *Store) LastSeq(ctx context.Context) (uint64, error) {
	if err := s.readable(ctx); err != nil {
		return 0, err
	}
	return s.lastSeq.Load(), nil
}

func (s *Store) readable(ctx context.Context) error {
	if s.isShut.Load() {
		return store.ErrClosed
	}
	return ctx.Err()
}

// indexKeys returns the postings keys of each event. It runs in the
// caller's goroutine, so the writer only appends.
//
// The keys of all the events share a few large arrays. When one fills up,
// the next is sized for the rest of the batch at the mean number of keys per
// event so far, and the keys already made stay where they are: growing one
// array by append copied every key again, which was a third of the bytes a
// request allocated.
func indexKeys(events []event.Event) [][]pkey {
	const (
		guessPerEvent = 24 // before the first event is seen
		minFree       = 64 // a new array is started below this much room
	)
	keys := make([][]pkey, len(events))
	var (
		ipBuf [16]byte
		flat  []pkey
		total int
	)
	for i := range events {
		if cap(flat)-len(flat) < minFree {
			per := guessPerEvent
			if i > 0 {
				per = total/i + 1
			}
			flat = make([]pkey, 0, per*(len(events)-i)+minFree)
		}
		start := len(flat)
		flat = eventKeys(&events[i], flat, &ipBuf)
		keys[i] = flat[start:len(flat):len(flat)]
		total += len(keys[i])
	}
	return keys
}
