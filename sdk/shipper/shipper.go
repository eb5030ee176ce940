package shipper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a Shipper. Zero fields take the documented defaults.
type Config struct {
	// URL is Vigil's base URL, such as "http://127.0.0.1:8080"; events go to
	// URL + "/api/v1/events".
	URL string
	// Token is the bearer token sent with every request. It is never logged.
	Token string
	// Client sends the requests; nil means a client with a 5 s dial timeout,
	// a 30 s response timeout and keep-alive connections.
	Client *http.Client

	// BatchEvents bounds the events of one request; default 1000.
	BatchEvents int
	// BatchBytes bounds the uncompressed body of one request; default 1 MiB.
	// An event must be shorter than BatchBytes.
	BatchBytes int
	// FlushInterval is how long an event may wait for its batch to fill
	// before the batch is sent anyway; default 200 ms.
	FlushInterval time.Duration
	// DisableGzip sends bodies uncompressed. Otherwise they are gzipped
	// (fastest level); if Vigil answers 415 to gzip, the Shipper stops
	// compressing by itself.
	DisableGzip bool
	// Concurrency is how many requests may be in flight at once while Vigil
	// is healthy; default 2. Replay from the spool uses one.
	Concurrency int

	// MemoryEvents bounds the events held in memory (queued or being
	// sent); default 10000.
	MemoryEvents int
	// MemoryBytes bounds the bytes of those events; default 64 MiB.
	MemoryBytes int

	// SpoolDir is the directory of the disk spool; "" means no spool (memory
	// only). It is created with mode 0700 and must not be readable by other
	// users. One Shipper at a time may use it.
	SpoolDir string
	// SpoolMaxBytes bounds the spool files; default 256 MiB. It must be at
	// least 4 × BatchBytes.
	SpoolMaxBytes int64

	// CriticalWait bounds how long Send blocks for a critical event: for room
	// when memory and spool are full, and, unless AsyncCritical, for the
	// event to become durable. Default 5 s. Negative: never block for room
	// (ErrFull at once) and wait for durability as long as ctx allows.
	CriticalWait time.Duration
	// AsyncCritical makes Send return as soon as a critical event is queued
	// in memory, without waiting for it to be durable. Critical events are
	// then still never dropped for lack of room, but a crash can lose the
	// ones not yet acknowledged or spooled.
	AsyncCritical bool

	// MinBackoff and MaxBackoff bound the wait between attempts while Vigil
	// fails; defaults 100 ms and 30 s. A Retry-After answer is honoured up to
	// MaxBackoff.
	MinBackoff, MaxBackoff time.Duration

	// Logger receives the Shipper's own logs (outages, refused events, spool
	// repairs); nil means none. It never gets the token or event bodies.
	Logger *slog.Logger
	// Now is the clock used for the Shipper's own events and Stats; nil
	// means time.Now.
	Now func() time.Time
	// Service, when set, is the service.name of the Shipper's own events.
	Service string
}

// Errors returned by Send, Flush and Close.
var (
	// ErrFull: the event was not queued. A best-effort event was dropped
	// (and counted in Stats.Dropped); a critical event found memory and spool
	// full for CriticalWait.
	ErrFull = errors.New("shipper: queue full")
	// ErrClosed: Close was called.
	ErrClosed = errors.New("shipper: closed")
	// ErrNotDurable: a critical event was queued but was neither acknowledged
	// by Vigil nor spooled before CriticalWait or ctx ended. It stays queued
	// and is still delivered if it can be, at least once.
	ErrNotDurable = errors.New("shipper: critical event queued but not yet durable")
	// ErrRejected: Vigil refused this critical event as invalid (400); it
	// will never be stored. Its error is logged.
	ErrRejected = errors.New("shipper: event rejected by Vigil")
	// ErrTooLarge: the event is not shorter than Config.BatchBytes.
	ErrTooLarge = errors.New("shipper: event larger than BatchBytes")
	// ErrBadLine: the event is empty or contains a newline (it must be one
	// JSON object on one line).
	ErrBadLine = errors.New("shipper: event must be one non-empty line")
)

// Stats are the Shipper's counters since New.
type Stats struct {
	Sent       uint64 // events acknowledged by Vigil (including ones it already had and the Shipper's own events)
	Duplicates uint64 // of Sent, events Vigil already had: re-sends after a timeout or a crash
	Dropped    uint64 // best-effort events dropped because memory or spool was full
	Rejected   uint64 // events Vigil refused as invalid (400, or 413 for a single event)
	Spooled    uint64 // events written to the spool
	Retries    uint64 // failed delivery attempts (network errors, 401, 429, 5xx…)
	Lost       uint64 // events still in memory when Close gave up, with no spool to keep them
	Reports    uint64 // events of the Shipper's own reporting drops (event.action vigil_shipper_dropped)

	Queued     int   // events waiting: in memory plus not yet acknowledged in the spool
	SpoolBytes int64 // bytes of the spool files

	LastError     string // the last delivery or spool error ("" when none yet)
	LastErrorTime time.Time
}

const (
	defaultBatchEvents   = 1000
	defaultBatchBytes    = 1 << 20
	defaultFlushInterval = 200 * time.Millisecond
	defaultMemoryEvents  = 10000
	defaultMemoryBytes   = 64 << 20
	defaultSpoolMaxBytes = 256 << 20
	defaultCriticalWait  = 5 * time.Second
	defaultMinBackoff    = 100 * time.Millisecond
	defaultMaxBackoff    = 30 * time.Second
	defaultConcurrency   = 2

	// reportEvery spaces the Shipper's drop reports while drops go on.
	reportEvery = 10 * time.Second
)

// check fills defaults and validates c, naming the first bad field.
func (c Config) check() (Config, error) {
	bad := func(field, format string, a ...any) (Config, error) {
		return c, fmt.Errorf("shipper: field %s: %s", field, fmt.Sprintf(format, a...))
	}
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		return bad("URL", "must not be empty")
	case err != nil:
		return bad("URL", "%v", err)
	case u.Scheme != "http" && u.Scheme != "https":
		return bad("URL", "scheme must be http or https, not %q", u.Scheme)
	case u.Host == "":
		return bad("URL", "has no host")
	case u.RawQuery != "" || u.Fragment != "":
		return bad("URL", "must be a base URL without query or fragment")
	}
	if c.Token == "" {
		return bad("Token", "must not be empty")
	}
	for _, r := range c.Token {
		if r <= ' ' || r >= 0x7f {
			return bad("Token", "must be visible ASCII without spaces")
		}
	}
	type intField struct {
		name string
		v    *int
		def  int
		min  int
	}
	for _, f := range []intField{
		{"BatchEvents", &c.BatchEvents, defaultBatchEvents, 1},
		{"BatchBytes", &c.BatchBytes, defaultBatchBytes, 1024},
		{"Concurrency", &c.Concurrency, defaultConcurrency, 1},
		{"MemoryEvents", &c.MemoryEvents, defaultMemoryEvents, 1},
		{"MemoryBytes", &c.MemoryBytes, defaultMemoryBytes, 1},
	} {
		if *f.v == 0 {
			*f.v = f.def
		}
		if *f.v < f.min {
			return bad(f.name, "%d is below the minimum %d", *f.v, f.min)
		}
	}
	if c.MemoryBytes < c.BatchBytes {
		return bad("MemoryBytes", "%d is below BatchBytes (%d)", c.MemoryBytes, c.BatchBytes)
	}
	if c.SpoolMaxBytes == 0 {
		c.SpoolMaxBytes = defaultSpoolMaxBytes
	}
	if c.SpoolDir != "" && c.SpoolMaxBytes < 4*int64(c.BatchBytes) {
		return bad("SpoolMaxBytes", "%d is below 4 × BatchBytes (%d)", c.SpoolMaxBytes, 4*c.BatchBytes)
	}
	type durField struct {
		name string
		v    *time.Duration
		def  time.Duration
	}
	for _, f := range []durField{
		{"FlushInterval", &c.FlushInterval, defaultFlushInterval},
		{"MinBackoff", &c.MinBackoff, defaultMinBackoff},
		{"MaxBackoff", &c.MaxBackoff, defaultMaxBackoff},
	} {
		if *f.v == 0 {
			*f.v = f.def
		}
		if *f.v < 0 {
			return bad(f.name, "%v is negative", *f.v)
		}
	}
	if c.MinBackoff > c.MaxBackoff {
		return bad("MinBackoff", "%v is above MaxBackoff (%v)", c.MinBackoff, c.MaxBackoff)
	}
	if c.CriticalWait == 0 {
		c.CriticalWait = defaultCriticalWait
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

func defaultClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   conns,
			ForceAttemptHTTP2:     true,
		},
	}
}

// Shipper sends events to Vigil. It is safe for concurrent use.
type Shipper struct {
	cfg       Config
	url       string
	auth      string
	client    *http.Client
	ownClient bool
	log       *slog.Logger
	host      string
	spool     *spool
	workers   int

	beMemEvents, beMemBytes int           // bounds for best-effort events in memory
	beSpool                 int64         // bound for best-effort events in the spool
	spillAfter              time.Duration // a request carrying synchronous critical events slower than this spools them

	ctx     context.Context // canceled when Close gives up: aborts requests
	cancel  context.CancelFunc
	wake    chan struct{}
	stopCh  chan struct{}
	wg      sync.WaitGroup
	gzipOff atomic.Bool

	mu       sync.Mutex
	cur      *batch   // the batch Send fills
	ready    []*batch // sealed memory batches, oldest first
	free     []*batch
	inflight []*batch // memory batches held by workers
	memEv    int      // events in memory batches
	memBy    int      // their bytes
	seq      uint64   // events admitted
	flushTo  uint64   // seal at once a batch whose first event is at most this
	progress chan struct{}

	closing, stopping, halted bool

	limEvents, limBytes int // batch bounds, lowered when Vigil answers 413
	posting             int // memory batches being posted
	replaying           bool
	spilling            int // memory batches being written to the spool
	spoolFull           bool
	spoolErrUntil       time.Time

	failing   bool // the last attempt failed
	failSince time.Time
	probing   bool // while failing, one attempt is in flight
	notBefore time.Time
	backoff   time.Duration

	st                  Stats
	unreported          uint64 // drops not yet reported by an event
	dropFirst, dropLast time.Time
	lastReport          time.Time
}

// New checks c, opens (and repairs) the spool if there is one, and starts
// delivering, beginning with what an earlier Shipper left in the spool.
func New(c Config) (*Shipper, error) {
	c, err := c.check()
	if err != nil {
		return nil, err
	}
	s := &Shipper{
		cfg:         c,
		url:         strings.TrimRight(c.URL, "/") + "/api/v1/events",
		auth:        "Bearer " + c.Token,
		client:      c.Client,
		log:         c.Logger,
		workers:     max(c.Concurrency, 2),
		beMemEvents: max(c.MemoryEvents-c.MemoryEvents/10, 1),
		beMemBytes:  c.MemoryBytes - c.MemoryBytes/10,
		beSpool:     c.SpoolMaxBytes - c.SpoolMaxBytes/10,
		limEvents:   c.BatchEvents,
		limBytes:    c.BatchBytes,
		progress:    make(chan struct{}),
	}
	s.spillAfter = time.Second
	if c.CriticalWait > 0 {
		s.spillAfter = min(max(c.CriticalWait/4, 10*time.Millisecond), time.Second)
	}
	s.host, _ = os.Hostname()
	if s.client == nil {
		s.client = defaultClient(s.workers)
		s.ownClient = true
	}
	s.gzipOff.Store(c.DisableGzip)
	if c.SpoolDir != "" {
		segMax := min(max(c.SpoolMaxBytes/8, 4<<20), 64<<20)
		segMax = max(min(segMax, c.SpoolMaxBytes/2), int64(c.BatchBytes)+recHdr+magicLen)
		s.spool, err = openSpool(c.SpoolDir, c.SpoolMaxBytes, segMax, s.log)
		if err != nil {
			return nil, fmt.Errorf("shipper: field SpoolDir: %w", err)
		}
		if n := s.spool.pending.Load(); n > 0 {
			s.log.Info("shipper: replaying events left in the spool", "events", n, "bytes", s.spool.size.Load())
		}
	}
	s.cur = s.newBatchLocked()
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wake = make(chan struct{}, s.workers)
	s.stopCh = make(chan struct{})
	s.wg.Add(s.workers)
	for range s.workers {
		go s.work()
	}
	return s, nil
}

// Send queues one event: line is one JSON object, without a newline, that
// should carry its own "event.id" so that re-sends are harmless. Send copies
// line; the caller may reuse it at once.
//
// A best-effort event (critical false) is queued in memory and Send returns
// at once; when memory (past 90 % of its bounds) is full it is dropped,
// counted, and ErrFull is returned.
//
// A critical event may use the whole memory bound. When that is full too,
// Send waits up to CriticalWait for room and then returns ErrFull. Unless
// AsyncCritical, Send then waits until the event is durable, acknowledged by
// Vigil or fsynced in the spool, and returns nil; ErrNotDurable when that
// did not happen within CriticalWait or before ctx ended; ErrRejected when
// Vigil refused the event as invalid.
func (s *Shipper) Send(ctx context.Context, line []byte, critical bool) error {
	if len(line) == 0 {
		return ErrBadLine
	}
	if len(line) >= s.cfg.BatchBytes {
		return ErrTooLarge
	}
	if bytes.IndexByte(line, '\n') >= 0 {
		return ErrBadLine
	}
	var deadline time.Time
	if critical && s.cfg.CriticalWait > 0 {
		deadline = time.Now().Add(s.cfg.CriticalWait)
	}
	n := len(line) + 1
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrClosed
	}
	if !s.roomLocked(n, critical) {
		if !critical {
			s.droppedLocked(1)
			s.mu.Unlock()
			return ErrFull
		}
		if err := s.waitRoomLocked(ctx, n, deadline); err != nil {
			s.mu.Unlock()
			return err
		}
	}
	res, idx, wake := s.addLocked(line, critical, critical && !s.cfg.AsyncCritical)
	s.mu.Unlock()
	if wake {
		s.wakeOne()
	}
	if res == nil {
		return nil
	}
	return s.waitDurable(ctx, res, idx, deadline)
}

func (s *Shipper) roomLocked(n int, critical bool) bool {
	if critical {
		return s.memEv < s.cfg.MemoryEvents && s.memBy+n <= s.cfg.MemoryBytes
	}
	return s.memEv < s.beMemEvents && s.memBy+n <= s.beMemBytes
}

// waitRoomLocked waits, with s.mu held on entry and return, until a critical
// event of n bytes fits in memory.
func (s *Shipper) waitRoomLocked(ctx context.Context, n int, deadline time.Time) error {
	if s.cfg.CriticalWait < 0 {
		return ErrFull
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for !s.roomLocked(n, true) {
		if s.closing {
			return ErrClosed
		}
		ch := s.progress
		s.mu.Unlock()
		select {
		case <-ch:
			s.mu.Lock()
		case <-t.C:
			s.mu.Lock()
			if !s.roomLocked(n, true) {
				return ErrFull
			}
		case <-ctx.Done():
			s.mu.Lock()
			return fmt.Errorf("%w: %w", ErrFull, ctx.Err())
		}
	}
	if s.closing {
		return ErrClosed
	}
	return nil
}

// addLocked appends an event to the open batch. It returns what a
// synchronous caller waits on, and whether to wake a worker.
func (s *Shipper) addLocked(line []byte, critical, sync bool) (*result, int32, bool) {
	n := len(line) + 1
	b := s.cur
	wake := false
	if b.n() > 0 && (b.n() >= s.limEvents || len(b.buf)+n > s.limBytes) {
		s.sealLocked()
		b = s.cur
	}
	if b.n() == 0 {
		b.first = s.seq + 1
		b.born = time.Now()
		wake = true // a worker must time this batch
	}
	s.seq++
	idx := int32(b.n())
	b.add(line, critical, idx)
	b.chEv++
	b.chBy += n
	s.memEv++
	s.memBy += n
	var res *result
	if sync {
		if b.res == nil {
			b.res = &result{done: make(chan struct{}), pending: 1}
		}
		res = b.res
		b.urgent = true
		wake = true
	}
	if b.n() >= s.limEvents || len(b.buf) >= s.limBytes {
		s.sealLocked()
		wake = true
	}
	return res, idx, wake
}

func (s *Shipper) waitDurable(ctx context.Context, res *result, idx int32, deadline time.Time) error {
	var tc <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		tc = t.C
	}
	select {
	case <-res.done:
	case <-tc:
		select {
		case <-res.done:
		default:
			return ErrNotDurable
		}
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrNotDurable, ctx.Err())
	}
	// res is not written after done is closed.
	if slices.Contains(res.rejected, idx) {
		return ErrRejected
	}
	if res.lost {
		return ErrNotDurable
	}
	return nil
}

// Flush seals the open batch and returns when every event queued before the
// call is acknowledged by Vigil, spooled, dropped or refused, or when ctx
// ends. With a spool, Flush does not wait for the spool to be replayed.
func (s *Shipper) Flush(ctx context.Context) error {
	s.mu.Lock()
	if s.halted {
		s.mu.Unlock()
		return ErrClosed
	}
	target := s.seq
	s.flushTo = max(s.flushTo, target)
	s.mu.Unlock()
	s.wakeAll()
	return s.waitFor(ctx, func() bool { return s.lowWaterLocked() > target })
}

// waitFor waits until cond, called with s.mu held, is true or ctx ends.
func (s *Shipper) waitFor(ctx context.Context, cond func() bool) error {
	s.mu.Lock()
	for !cond() {
		ch := s.progress
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		s.mu.Lock()
	}
	s.mu.Unlock()
	return nil
}

// lowWaterLocked is the admission number of the oldest event still in memory
// (or the next one to come).
func (s *Shipper) lowWaterLocked() uint64 {
	low := s.seq + 1
	if s.cur.n() > 0 {
		low = min(low, s.cur.first)
	}
	for _, b := range s.ready {
		low = min(low, b.first)
	}
	for _, b := range s.inflight {
		low = min(low, b.first)
	}
	return low
}

func (s *Shipper) memEmptyLocked() bool {
	return s.cur.n() == 0 && len(s.ready) == 0 && len(s.inflight) == 0
}

// Close stops accepting events and delivers what is queued: memory first,
// then the spool, until everything is acknowledged or ctx ends. Then it
// writes what is left in memory to the spool (if there is one) and stops.
// What the spool holds is replayed by the next New with the same SpoolDir.
//
// Close returns nil when everything was delivered. Otherwise its error says
// how many events were kept in the spool or lost (no spool), and wraps
// ctx's error. Like http.Server.Shutdown, a ctx without deadline lets Close
// wait for Vigil as long as it takes.
func (s *Shipper) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closing = true
	s.flushTo = s.seq
	s.mu.Unlock()
	s.wakeAll()

	drainErr := s.waitFor(ctx, func() bool {
		if s.unreported > 0 {
			// Dropped while closing (spilled into a full spool): report it
			// too before stopping.
			s.queueReportLocked()
		}
		return s.memEmptyLocked() && (s.spool == nil || s.spool.pending.Load() == 0)
	})

	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	s.cancel()
	close(s.stopCh)
	s.wakeAll()
	s.wg.Wait()

	s.mu.Lock()
	lost := s.memEv
	if lost > 0 {
		s.st.Lost += uint64(lost)
		s.abandonLocked()
	}
	var kept int64
	if s.spool != nil {
		kept = s.spool.pending.Load()
	}
	s.broadcastLocked()
	s.mu.Unlock()

	var errs []error
	if s.spool != nil {
		if err := s.spool.close(); err != nil {
			errs = append(errs, fmt.Errorf("close spool: %w", err))
		}
	}
	if s.ownClient {
		s.client.CloseIdleConnections()
	}
	if lost > 0 {
		errs = append(errs, fmt.Errorf("%d events not delivered and lost", lost))
	}
	if kept > 0 {
		errs = append(errs, fmt.Errorf("%d events not delivered, kept in spool %s for the next start", kept, s.cfg.SpoolDir))
	}
	if len(errs) == 0 {
		return nil
	}
	if drainErr != nil {
		errs = append(errs, drainErr)
	}
	return fmt.Errorf("shipper: close: %w", errors.Join(errs...))
}

// abandonLocked gives up the memory batches (Close without a spool, or with
// a full or failing one): their synchronous waiters get ErrNotDurable.
func (s *Shipper) abandonLocked() {
	all := append(s.ready, s.inflight...)
	if s.cur.n() > 0 {
		all = append(all, s.cur)
	}
	for _, b := range all {
		if r := b.res; r != nil {
			if !r.closed {
				r.lost = true
				r.finishLocked()
			}
			b.res = nil
		}
	}
	s.ready, s.inflight = nil, nil
	s.cur = s.newBatchLocked()
	s.memEv, s.memBy = 0, 0
}

// halt stops the Shipper the way a crash would: no flush, memory lost, spool
// left as it is. For tests.
func (s *Shipper) halt() {
	s.mu.Lock()
	s.halted, s.closing, s.stopping = true, true, true
	s.mu.Unlock()
	s.cancel()
	close(s.stopCh)
	s.wakeAll()
	s.wg.Wait()
	if s.spool != nil {
		s.spool.close()
	}
}

// Stats returns the counters.
func (s *Shipper) Stats() Stats {
	s.mu.Lock()
	st := s.st
	st.Queued = s.memEv
	s.mu.Unlock()
	if s.spool != nil {
		st.Queued += int(s.spool.pending.Load())
		st.SpoolBytes = s.spool.size.Load()
	}
	return st
}

// droppedLocked counts n dropped best-effort events.
func (s *Shipper) droppedLocked(n int) {
	now := s.cfg.Now()
	s.st.Dropped += uint64(n)
	if s.unreported == 0 {
		s.dropFirst = now
	}
	s.unreported += uint64(n)
	s.dropLast = now
}

func (s *Shipper) errorLocked(msg string) {
	s.st.LastError = msg
	s.st.LastErrorTime = s.cfg.Now()
}

func (s *Shipper) broadcastLocked() {
	close(s.progress)
	s.progress = make(chan struct{})
}

func (s *Shipper) wakeOne() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Shipper) wakeAll() {
	for range s.workers {
		s.wakeOne()
	}
}

// Batches and their memory accounting.

func (s *Shipper) newBatchLocked() *batch {
	if n := len(s.free); n > 0 {
		b := s.free[n-1]
		s.free = s.free[:n-1]
		return b
	}
	return &batch{}
}

func (s *Shipper) recycleLocked(b *batch) {
	b.reset()
	if cap(b.buf) > 2*s.cfg.BatchBytes || len(s.free) >= s.workers+4 {
		return
	}
	s.free = append(s.free, b)
}

// sealLocked moves the open batch to the ready queue.
func (s *Shipper) sealLocked() {
	if s.cur.n() == 0 {
		return
	}
	s.ready = append(s.ready, s.cur)
	s.cur = s.newBatchLocked()
}

// popLocked takes the oldest memory batch ready to go, sealing the open one
// if it is due; otherwise it lowers *wait to when the open one will be due.
func (s *Shipper) popLocked(now time.Time, wait *time.Duration) *batch {
	if len(s.ready) == 0 {
		b := s.cur
		if b.n() == 0 {
			return nil
		}
		age := now.Sub(b.born)
		if !b.urgent && b.first > s.flushTo && !s.closing && age < s.cfg.FlushInterval {
			*wait = minWait(*wait, s.cfg.FlushInterval-age)
			return nil
		}
		s.sealLocked()
	}
	b := s.ready[0]
	copy(s.ready, s.ready[1:])
	s.ready[len(s.ready)-1] = nil
	s.ready = s.ready[:len(s.ready)-1]
	s.inflight = append(s.inflight, b)
	return b
}

func minWait(a, b time.Duration) time.Duration {
	if a < 0 || b < a {
		return max(b, 0)
	}
	return a
}

func (s *Shipper) removeInflightLocked(b *batch) {
	if i := slices.Index(s.inflight, b); i >= 0 {
		s.inflight = slices.Delete(s.inflight, i, i+1)
	}
}

// rechargeLocked makes the memory accounting match b's contents.
func (s *Shipper) rechargeLocked(b *batch) {
	s.memEv += b.n() - b.chEv
	s.memBy += len(b.buf) - b.chBy
	b.chEv, b.chBy = b.n(), len(b.buf)
}

// doneMemLocked finishes a memory batch: delivered, spooled or refused.
func (s *Shipper) doneMemLocked(b *batch) {
	s.removeInflightLocked(b)
	b.buf, b.ends = b.buf[:0], b.ends[:0]
	s.rechargeLocked(b)
	if b.res != nil {
		s.resultDoneLocked(b)
	}
	s.recycleLocked(b)
	s.broadcastLocked()
}

func (s *Shipper) resultDoneLocked(b *batch) {
	b.res.pending--
	if b.res.pending == 0 {
		b.res.finishLocked()
	}
	b.res = nil
}

// requeueLocked puts memory batches, taken by a worker, back at the head of
// the ready queue in the given order.
func (s *Shipper) requeueLocked(bs ...*batch) {
	for _, b := range bs {
		s.removeInflightLocked(b)
		s.rechargeLocked(b)
	}
	s.ready = slices.Insert(s.ready, 0, bs...)
	s.broadcastLocked()
}
