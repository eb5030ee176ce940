package shipper

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestConfigErrorsNameTheField(t *testing.T) {
	ok := Config{URL: "http://127.0.0.1:1", Token: testToken}
	cases := []struct {
		name   string
		mutate func(*Config)
		field  string
	}{
		{"no URL", func(c *Config) { c.URL = "" }, "URL"},
		{"ftp URL", func(c *Config) { c.URL = "ftp://x" }, "URL"},
		{"URL with query", func(c *Config) { c.URL = "http://x/?a=1" }, "URL"},
		{"no token", func(c *Config) { c.Token = "" }, "Token"},
		{"token with newline", func(c *Config) { c.Token = "a\nb" }, "Token"},
		{"negative batch", func(c *Config) { c.BatchEvents = -1 }, "BatchEvents"},
		{"tiny batch bytes", func(c *Config) { c.BatchBytes = 10 }, "BatchBytes"},
		{"memory below batch", func(c *Config) { c.MemoryBytes = 1000; c.BatchBytes = 2000 }, "MemoryBytes"},
		{"spool too small", func(c *Config) { c.SpoolDir = t.TempDir(); c.SpoolMaxBytes = 1 << 20 }, "SpoolMaxBytes"},
		{"negative flush", func(c *Config) { c.FlushInterval = -1 }, "FlushInterval"},
		{"backoff order", func(c *Config) { c.MinBackoff = time.Minute; c.MaxBackoff = time.Second }, "MinBackoff"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mutate(&c)
			s, err := New(c)
			if err == nil {
				s.Close(context.Background())
				t.Fatal("New accepted a bad config")
			}
			if !strings.Contains(err.Error(), "field "+tc.field+":") {
				t.Errorf("error %q does not name field %s", err, tc.field)
			}
		})
	}
}

func TestSendRejectsMalformedLines(t *testing.T) {
	f := newFakeVigil(t)
	c := testConfig(t, f.srv.URL)
	c.BatchBytes = 4096
	s := mustNew(t, c)
	ctx := context.Background()
	for _, tc := range []struct {
		line []byte
		want error
	}{
		{nil, ErrBadLine},
		{[]byte("{\"a\":1}\n{\"b\":2}"), ErrBadLine},
		{[]byte(`{"m":"` + strings.Repeat("x", 4096) + `"}`), ErrTooLarge},
	} {
		if err := s.Send(ctx, tc.line, false); !errors.Is(err, tc.want) {
			t.Errorf("Send(%.20q) = %v, want %v", tc.line, err, tc.want)
		}
	}
}

// Events arrive in order, in batches bounded by BatchEvents, gzipped, with
// the token; the caller may reuse its buffer after Send.
func TestDeliversBatchesInOrder(t *testing.T) {
	f := newFakeVigil(t)
	c := testConfig(t, f.srv.URL)
	c.BatchEvents = 10
	c.Concurrency = 1
	s := mustNew(t, c)
	ctx := context.Background()
	var buf []byte
	var want []string
	for i := range 95 {
		buf = appendEvent(buf[:0], id("e", i), i, i%10 == 0 && false)
		if err := s.Send(ctx, buf, false); err != nil {
			t.Fatal(err)
		}
		want = append(want, id("e", i))
	}
	clear(buf) // the Shipper must have its own copy
	if err := s.Flush(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.Equal(f.order, want) {
		t.Fatalf("received %v, want %v", f.order, want)
	}
	for _, n := range f.sizes {
		if n > 10 {
			t.Errorf("a request carried %d events, BatchEvents is 10", n)
		}
	}
	if f.gzipped != f.requests {
		t.Errorf("%d of %d requests gzipped", f.gzipped, f.requests)
	}
	if st := s.Stats(); st.Sent != 95 || st.Queued != 0 || st.Dropped != 0 {
		t.Errorf("stats %+v", st)
	}
}

// Partial batches go out after FlushInterval without Flush.
func TestFlushIntervalSendsPartialBatch(t *testing.T) {
	f := newFakeVigil(t)
	c := testConfig(t, f.srv.URL)
	c.FlushInterval = 30 * time.Millisecond
	s := mustNew(t, c)
	if err := s.Send(context.Background(), appendEvent(nil, "lonely", 1, false), false); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the lonely event", func() bool { return f.has("lonely") == 1 })
}

// A critical Send returns once Vigil acknowledged the event.
func TestCriticalSendWaitsForAck(t *testing.T) {
	f := newFakeVigil(t)
	c := testConfig(t, f.srv.URL)
	c.FlushInterval = time.Hour // only urgency can send the batch
	s := mustNew(t, c)
	if err := s.Send(context.Background(), appendEvent(nil, "crit", 1, true), true); err != nil {
		t.Fatal(err)
	}
	if f.has("crit") != 1 {
		t.Fatal("Send(critical) returned before Vigil had the event")
	}
}

// On 400, exactly the named lines are dropped and counted; the rest is sent
// again and stored. A refused critical event makes its Send fail.
func TestBadLinesDroppedRestDelivered(t *testing.T) {
	f := newFakeVigil(t)
	f.setAnswer(func(lines [][]byte) (int, map[string]string, string) {
		type bad struct {
			Line  int    `json:"line"`
			Error string `json:"error"`
		}
		var bads []bad
		for i, l := range lines {
			if strings.Contains(string(l), `"bad-`) {
				bads = append(bads, bad{i + 1, "field source.ip: not an IP address"})
			}
		}
		if len(bads) == 0 {
			return 0, nil, ""
		}
		b, _ := json.Marshal(map[string]any{"error": fmt.Sprintf("%d bad line(s)", len(bads)), "lines": bads})
		return 400, nil, string(b)
	})
	c := testConfig(t, f.srv.URL)
	c.FlushInterval = time.Hour
	s := mustNew(t, c)
	ctx := context.Background()
	var want []string
	for i := range 20 {
		name := id("good", i)
		if i%7 == 3 {
			name = id("bad", i)
		} else {
			want = append(want, name)
		}
		if err := s.Send(ctx, appendEvent(nil, name, i, false), false); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Send(ctx, appendEvent(nil, "bad-critical", 99, true), true); !errors.Is(err, ErrRejected) {
		t.Fatalf("Send(bad critical) = %v, want ErrRejected", err)
	}
	if err := s.Send(ctx, appendEvent(nil, "good-critical", 98, true), true); err != nil {
		t.Fatalf("Send(good critical) = %v", err)
	}
	want = append(want, "good-critical")
	f.mu.Lock()
	got := slices.Clone(f.order)
	f.mu.Unlock()
	if !slices.Equal(got, want) {
		t.Errorf("stored %v\nwant %v", got, want)
	}
	if st := s.Stats(); st.Rejected != 4 || st.Sent != uint64(len(want)) {
		t.Errorf("stats: rejected %d sent %d, want 4 and %d", st.Rejected, st.Sent, len(want))
	}
}

// On 413 the batch is split until it fits; a single event that never fits
// is refused, the others arrive.
func TestTooLargeSplitsBatch(t *testing.T) {
	f := newFakeVigil(t)
	f.setAnswer(func(lines [][]byte) (int, map[string]string, string) {
		for _, l := range lines {
			if strings.Contains(string(l), `"huge"`) {
				return 413, nil, `{"error":"body too large"}`
			}
		}
		if len(lines) > 4 {
			return 413, nil, `{"error":"more than 4 events"}`
		}
		return 0, nil, ""
	})
	c := testConfig(t, f.srv.URL)
	c.BatchEvents = 16
	c.FlushInterval = time.Hour
	s := mustNew(t, c)
	ctx := context.Background()
	var want []string
	for i := range 40 {
		s.Send(ctx, appendEvent(nil, id("e", i), i, false), false)
		want = append(want, id("e", i))
		if i == 20 {
			s.Send(ctx, appendEvent(nil, "huge", i, false), false)
		}
	}
	if err := s.Flush(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		if f.has(w) != 1 {
			t.Errorf("event %s arrived %d times", w, f.has(w))
		}
	}
	st := s.Stats()
	if st.Rejected != 1 || f.has("huge") != 0 {
		t.Errorf("huge event: rejected %d, stored %d", st.Rejected, f.has("huge"))
	}
	s.mu.Lock()
	lim := s.limEvents
	s.mu.Unlock()
	if lim > 4 {
		t.Errorf("batch bound after 413s is %d events, want at most 4", lim)
	}
}

// 401 is retried with backoff and reported in LastError; once the token is
// accepted, nothing was lost.
func TestUnauthorizedKeepsEventsUntilFixed(t *testing.T) {
	f := newFakeVigil(t)
	f.setAnswer(func([][]byte) (int, map[string]string, string) {
		return 401, nil, `{"error":"missing or unknown token"}`
	})
	c := testConfig(t, f.srv.URL)
	s := mustNew(t, c)
	for i := range 50 {
		if err := s.Send(context.Background(), appendEvent(nil, id("e", i), i, false), false); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "three retries", func() bool { return s.Stats().Retries >= 3 })
	st := s.Stats()
	if !strings.Contains(st.LastError, "401") || st.LastErrorTime.IsZero() {
		t.Errorf("LastError %q at %v, want the 401", st.LastError, st.LastErrorTime)
	}
	if strings.Contains(st.LastError, testToken) {
		t.Error("LastError shows the token")
	}
	f.up() // the token was fixed on the server
	if err := s.Flush(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if f.has(id("e", i)) != 1 {
			t.Fatalf("event %d lost after 401s", i)
		}
	}
}

// 503 with Retry-After: 1 delays the next attempt by at least a second.
func TestRetryAfterHonoured(t *testing.T) {
	f := newFakeVigil(t)
	var answered atomic.Bool
	f.setAnswer(func([][]byte) (int, map[string]string, string) {
		if !answered.Swap(true) {
			return 503, map[string]string{"Retry-After": "1"}, `{"error":"queue full","retry_after":1}`
		}
		return 0, nil, ""
	})
	c := testConfig(t, f.srv.URL)
	c.MaxBackoff = 5 * time.Second
	s := mustNew(t, c)
	if err := s.Send(context.Background(), appendEvent(nil, "e", 1, true), true); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqTimes) != 2 {
		t.Fatalf("%d requests, want 2", len(f.reqTimes))
	}
	if gap := f.reqTimes[1].Sub(f.reqTimes[0]); gap < 950*time.Millisecond {
		t.Errorf("retried after %v, Retry-After said 1 s", gap)
	}
}

// Without a spool, an outage fills memory: best-effort events past 90 % of
// the bound are dropped and counted, critical ones use the rest, then get
// ErrFull. After the outage the Shipper reports the drops in an event.
func TestMemoryOnlyOutageDropsAndReports(t *testing.T) {
	f := newFakeVigil(t)
	f.down()
	c := testConfig(t, f.srv.URL)
	c.MemoryEvents = 100
	c.CriticalWait = 50 * time.Millisecond
	s := mustNew(t, c)
	ctx := context.Background()
	var accepted, full int
	for i := range 150 {
		switch err := s.Send(ctx, appendEvent(nil, id("be", i), i, false), false); {
		case err == nil:
			accepted++
		case errors.Is(err, ErrFull):
			full++
		default:
			t.Fatal(err)
		}
	}
	if accepted != 90 || full != 60 {
		t.Fatalf("best-effort: %d accepted, %d full; want 90 and 60", accepted, full)
	}
	for i := range 10 {
		// Queued, but with no spool and Vigil down it cannot become durable.
		if err := s.Send(ctx, appendEvent(nil, id("crit", i), i, true), true); !errors.Is(err, ErrNotDurable) {
			t.Fatalf("critical %d: %v, want ErrNotDurable", i, err)
		}
	}
	if err := s.Send(ctx, appendEvent(nil, "crit-too-many", 0, true), true); !errors.Is(err, ErrFull) {
		t.Fatalf("critical past the bound: %v, want ErrFull", err)
	}
	if st := s.Stats(); st.Dropped != 60 || st.Queued != 100 || st.Retries == 0 {
		t.Fatalf("stats during outage: %+v", st)
	}
	f.up()
	if err := s.Close(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	for i := range 90 {
		if f.has(id("be", i)) != 1 {
			t.Errorf("queued best-effort event %d lost", i)
		}
	}
	for i := range 10 {
		if f.has(id("crit", i)) != 1 {
			t.Errorf("critical event %d lost", i)
		}
	}
	var reported uint64
	f.mu.Lock()
	for _, line := range f.events {
		var e struct {
			Action  string `json:"event.action"`
			Dropped uint64 `json:"labels.dropped"`
		}
		json.Unmarshal(line, &e)
		if e.Action == ReportAction {
			reported += e.Dropped
		}
	}
	f.mu.Unlock()
	if st := s.Stats(); reported != 60 || st.Reports != 1 {
		t.Errorf("drop reports say %d dropped in %d events, want 60 in 1", reported, st.Reports)
	}
}

// With a spool, an outage goes to disk: critical Sends return once their
// events are fsynced there; when Vigil returns, the spool is replayed in
// order and deleted.
func TestSpoolOutageReplaysInOrder(t *testing.T) {
	f := newFakeVigil(t)
	f.down()
	dir := filepath.Join(t.TempDir(), "spool")
	c := testConfig(t, f.srv.URL)
	c.SpoolDir = dir
	c.Concurrency = 1
	c.BatchEvents = 50
	s := mustNew(t, c)
	ctx := context.Background()
	var want []string
	for i := range 500 {
		crit := i%10 == 0
		if err := s.Send(ctx, appendEvent(nil, id("e", i), i, crit), crit); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
		want = append(want, id("e", i))
	}
	if err := s.Flush(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Spooled != 500 || st.Queued != 500 || st.SpoolBytes == 0 || st.Sent != 0 {
		t.Fatalf("stats after outage: %+v", st)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("spool dir mode: %v %v", fi.Mode(), err)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) == 0 {
		t.Fatal("no segment files")
	}
	for _, p := range append(segs, filepath.Join(dir, cursorName)) {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode: %v %v", p, fi.Mode(), err)
		}
	}
	f.up()
	eventually(t, "the spool to drain", func() bool { st := s.Stats(); return st.Queued == 0 && st.SpoolBytes == 0 })
	f.mu.Lock()
	got := slices.Clone(f.order)
	f.mu.Unlock()
	if !slices.Equal(got, want) {
		t.Errorf("replayed out of order or incomplete: %d events, first %v", len(got), got[:min(5, len(got))])
	}
	if segs, _ := filepath.Glob(filepath.Join(dir, "*.seg")); len(segs) != 0 {
		t.Errorf("segments left after replay: %v", segs)
	}
}

// Close with Vigil down keeps what is not delivered in the spool; the next
// Shipper on the same directory delivers it.
func TestCloseKeepsUndeliveredInSpool(t *testing.T) {
	f := newFakeVigil(t)
	f.down()
	dir := filepath.Join(t.TempDir(), "spool")
	c := testConfig(t, f.srv.URL)
	c.SpoolDir = dir
	c.AsyncCritical = true
	s, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		s.Send(context.Background(), appendEvent(nil, id("e", i), i, i%2 == 0), i%2 == 0)
	}
	err = s.Close(ctxT(t, 300*time.Millisecond))
	if err == nil || !strings.Contains(err.Error(), "300 events not delivered, kept in spool") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v", err)
	}
	if err := s.Send(context.Background(), []byte(`{}`), true); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close = %v", err)
	}
	f.up()
	s2 := mustNew(t, c)
	if err := s2.Close(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		if f.has(id("e", i)) == 0 {
			t.Fatalf("event %d lost across Close/New", i)
		}
	}
	if st := s2.Stats(); st.Sent != 300 {
		t.Errorf("second shipper sent %d", st.Sent)
	}
}

// A Shipper abandoned without Close (a crash: memory lost, spool left as it
// is, plus a torn record at its tail) is replayed by the next one: every
// critical event whose Send returned is delivered.
func TestCrashReplaysSpool(t *testing.T) {
	f := newFakeVigil(t)
	f.down()
	dir := filepath.Join(t.TempDir(), "spool")
	c := testConfig(t, f.srv.URL)
	c.SpoolDir = dir
	s, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	var crit []string
	for i := range 200 {
		critical := i%4 == 0
		if err := s.Send(context.Background(), appendEvent(nil, id("e", i), i, critical), critical); err != nil {
			t.Fatal(err)
		}
		if critical {
			crit = append(crit, id("e", i))
		}
	}
	s.halt()
	// A torn write at the tail: a header promising more than is there.
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	slices.Sort(segs)
	last := segs[len(segs)-1]
	fh, err := os.OpenFile(last, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	fh.Write(appendRecord(nil, []byte(`{"event.id":"torn","message":"half written"}`), true)[:20])
	fh.Close()

	f.up()
	s2 := mustNew(t, c)
	if err := s2.Close(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	for _, id := range crit {
		if f.has(id) == 0 {
			t.Errorf("critical %s lost in the crash", id)
		}
	}
	if f.has("torn") != 0 {
		t.Error("the torn record was replayed")
	}
}

// When the spool is full too, best-effort events are dropped at 90 % and
// critical ones fill the rest, then block for CriticalWait and get ErrFull.
func TestSpoolFullCriticalGetsErrFull(t *testing.T) {
	f := newFakeVigil(t)
	f.down()
	c := testConfig(t, f.srv.URL)
	c.SpoolDir = filepath.Join(t.TempDir(), "spool")
	c.BatchBytes = 4096
	c.SpoolMaxBytes = 16384
	c.MemoryEvents = 20
	c.CriticalWait = 100 * time.Millisecond
	s := mustNew(t, c)
	ctx := context.Background()
	var critOK, critNotDurable int
	var critErr error
	for i := 0; i < 200 && critErr == nil; i++ {
		s.Send(ctx, appendEvent(nil, id("be", i), i, false), false)
		switch err := s.Send(ctx, appendEvent(nil, id("crit", i), i, true), true); {
		case err == nil:
			critOK++
		case errors.Is(err, ErrNotDurable):
			critNotDurable++
		default:
			critErr = err
		}
	}
	if !errors.Is(critErr, ErrFull) {
		t.Fatalf("critical Sends never got ErrFull: %v", critErr)
	}
	st := s.Stats()
	if st.SpoolBytes > c.SpoolMaxBytes || st.Dropped == 0 || critOK == 0 {
		t.Fatalf("spool %d bytes (bound %d), dropped %d, critical ok %d", st.SpoolBytes, c.SpoolMaxBytes, st.Dropped, critOK)
	}
	t.Logf("critical: %d durable, %d queued not durable, then ErrFull; best-effort dropped %d", critOK, critNotDurable, st.Dropped)
	f.up()
	if err := s.Close(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	for i := range critOK + critNotDurable {
		if f.has(id("crit", i)) == 0 { // copies are fine: Vigil stores an ID once
			t.Errorf("critical %d not delivered", i)
		}
	}
}

func TestSpoolDirLockedAndPrivate(t *testing.T) {
	f := newFakeVigil(t)
	c := testConfig(t, f.srv.URL)
	c.SpoolDir = filepath.Join(t.TempDir(), "spool")
	mustNew(t, c)
	if _, err := New(c); err == nil || !strings.Contains(err.Error(), "in use") || !strings.Contains(err.Error(), "field SpoolDir") {
		t.Errorf("second Shipper on the same spool: %v", err)
	}
	open := filepath.Join(t.TempDir(), "open")
	os.Mkdir(open, 0o755)
	c.SpoolDir = open
	if _, err := New(c); err == nil || !strings.Contains(err.Error(), "chmod 700") {
		t.Errorf("world-readable spool dir: %v", err)
	}
}

// A Vigil that accepts the connection but does not answer must not hold a
// critical Send past CriticalWait when there is a spool: its events are
// spooled while the request hangs.
func TestHangingVigilSpoolsCritical(t *testing.T) {
	f := newFakeVigil(t)
	release := make(chan struct{})
	f.setAnswer(func([][]byte) (int, map[string]string, string) {
		<-release
		return 0, nil, ""
	})
	c := testConfig(t, f.srv.URL)
	c.SpoolDir = filepath.Join(t.TempDir(), "spool")
	c.CriticalWait = 2 * time.Second
	s, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), appendEvent(nil, "crit", 1, true), true); err != nil {
		close(release)
		t.Fatalf("Send(critical) with Vigil hanging: %v", err)
	}
	if st := s.Stats(); st.Spooled != 1 || st.SpoolBytes == 0 {
		t.Errorf("not spooled: %+v", st)
	}
	close(release)
	if err := s.Close(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if f.has("crit") == 0 {
		t.Error("event not delivered")
	}
}
