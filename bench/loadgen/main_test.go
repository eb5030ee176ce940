package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
)

func TestEventsURL(t *testing.T) {
	tests := []struct {
		raw     string
		want    string // "" when refused
		errPart string
	}{
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080/api/v1/events", ""},
		{"http://127.0.0.1:8080/", "http://127.0.0.1:8080/api/v1/events", ""},
		{"http://127.8.9.10:1/custom/path", "http://127.8.9.10:1/custom/path", ""},
		{"https://[::1]:8443", "https://[::1]:8443/api/v1/events", ""},
		{"http://[::ffff:127.0.0.1]:80", "http://[::ffff:127.0.0.1]:80/api/v1/events", ""},
		{"http://localhost:8080", "http://localhost:8080/api/v1/events", ""},
		{"http://LocalHost", "http://LocalHost/api/v1/events", ""},
		{"http://10.0.0.1:8080", "", "not a loopback address"},
		{"http://192.0.2.1", "", "not a loopback address"},
		{"http://0.0.0.0:8080", "", "not a loopback address"},
		{"http://[::]:8080", "", "not a loopback address"},
		{"http://example.com", "", "not a loopback address"},
		{"http://localhost.example.com", "", "not a loopback address"},
		{"http://127.0.0.1.nip.io", "", "not a loopback address"},
		{"ftp://127.0.0.1", "", "scheme"},
		{"http://user:secret@127.0.0.1", "", "credentials"},
		{"127.0.0.1:8080", "", ""},
		{"http://", "", "no host"},
	}
	for _, tt := range tests {
		u, err := eventsURL(tt.raw)
		switch {
		case tt.want != "" && err != nil:
			t.Errorf("eventsURL(%q): %v", tt.raw, err)
		case tt.want != "" && u.String() != tt.want:
			t.Errorf("eventsURL(%q) = %s, want %s", tt.raw, u, tt.want)
		case tt.want == "" && err == nil:
			t.Errorf("eventsURL(%q) = %s, want an error", tt.raw, u)
		case tt.want == "" && !strings.Contains(err.Error(), tt.errPart):
			t.Errorf("eventsURL(%q): error %q does not mention %q", tt.raw, err, tt.errPart)
		}
	}
}

func TestLoopbackOnlyDial(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:80": true, "127.255.0.1:1": true, "[::1]:8080": true,
		"10.0.0.1:80": false, "[2001:db8::1]:80": false, "192.0.2.1:443": false,
	} {
		if err := loopbackOnly("tcp", addr, nil); (err == nil) != ok {
			t.Errorf("loopbackOnly(%s) = %v, want allowed %v", addr, err, ok)
		}
	}
}

func TestPercentile(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name   string
		values []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"single", []time.Duration{7 * ms}, 99, 7 * ms},
		{"median of 1..100ms", seq(1, 100, ms), 50, 50 * ms},
		{"p90 of 1..100ms", seq(1, 100, ms), 90, 90 * ms},
		{"p99 of 1..100ms", seq(1, 100, ms), 99, 99 * ms},
		{"p100 is the max", seq(1, 100, ms), 100, 100 * ms},
		{"nearest rank rounds up", seq(1, 10, ms), 91, 10 * ms},
		{"small values are exact", seq(1, 100, time.Microsecond), 50, 50 * time.Microsecond},
		{"one outlier", append(seq(1, 99, time.Microsecond), 2*time.Second), 99, 99 * time.Microsecond},
		{"outlier at p100", append(seq(1, 99, time.Microsecond), 2*time.Second), 100, 2 * time.Second},
	}
	for _, tt := range tests {
		var h histogram
		for _, v := range tt.values {
			h.record(v)
		}
		got := h.percentile(tt.p)
		if diff := (got - tt.want).Abs(); float64(diff) > 0.004*float64(tt.want) {
			t.Errorf("%s: p%v = %s, want %s (±0.4%%)", tt.name, tt.p, got, tt.want)
		}
	}
}

func seq(from, to int, unit time.Duration) []time.Duration {
	var out []time.Duration
	for i := from; i <= to; i++ {
		out = append(out, time.Duration(i)*unit)
	}
	return out
}

func TestHistogramBucketsAndMerge(t *testing.T) {
	for d := time.Microsecond; d < time.Hour; d = d*13/10 + 7*time.Microsecond {
		mid := bucketMid(bucketOf(d))
		if diff := (mid - d).Abs(); diff > time.Microsecond+d/256 { // half a bucket, plus truncation to µs
			t.Errorf("%s falls in a bucket whose middle is %s", d, mid)
		}
	}
	var a, b, all histogram
	for i, v := range seq(1, 1000, 37*time.Microsecond) {
		all.record(v)
		if i%3 == 0 {
			a.record(v)
		} else {
			b.record(v)
		}
	}
	a.merge(&b)
	if a.summary() != all.summary() {
		t.Errorf("merged %+v, recorded together %+v", a.summary(), all.summary())
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := map[string]time.Duration{
		"0":                             0,
		"3":                             3 * time.Second,
		"":                              time.Second,
		"soon":                          time.Second,
		"-5":                            time.Second,
		"Thu, 01 Jan 2026 12:00:10 GMT": 10 * time.Second,
		"Thu, 01 Jan 2026 11:00:00 GMT": 0,
	}
	for v, want := range tests {
		if got := retryAfter(v, now); got != want {
			t.Errorf("retryAfter(%q) = %s, want %s", v, got, want)
		}
	}
}

// checkBody parses an NDJSON body and returns its event ids, failing on any
// line that is not a complete web event.
func checkBody(t *testing.T, body []byte) []string {
	t.Helper()
	if len(body) == 0 || body[len(body)-1] != '\n' {
		t.Fatalf("body does not end with a newline")
	}
	var ids []string
	for line := range bytes.Lines(body) {
		var e struct {
			Timestamp string                                               `json:"@timestamp"`
			Event     struct{ ID, Kind, Category, Action, Outcome string } `json:"event"`
			Source    struct{ IP string }                                  `json:"source"`
			HTTP      struct {
				Request  struct{ Method string }
				Response struct {
					StatusCode int `json:"status_code"`
				}
			} `json:"http"`
			URL     struct{ Path string } `json:"url"`
			Message string                `json:"message"`
		}
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatalf("line is not JSON: %v\n%s", err, line)
		}
		if _, err := time.Parse(time.RFC3339, e.Timestamp); err != nil {
			t.Fatalf("@timestamp: %v", err)
		}
		if e.Event.ID == "" || e.Event.Kind != "event" || e.Event.Category != "web" || e.Event.Action != "http_request" ||
			e.Event.Outcome == "" || e.Source.IP == "" || e.HTTP.Request.Method == "" || e.HTTP.Response.StatusCode == 0 ||
			e.URL.Path == "" || e.Message == "" {
			t.Fatalf("event lacks a required field: %s", line)
		}
		ids = append(ids, e.Event.ID)
	}
	return ids
}

func TestPrepare(t *testing.T) {
	const runID = "00112233aabbccdd"
	tests := []struct {
		name        string
		n           int64
		batch       int
		gzip        bool
		mem         int64
		wantPatched bool
	}{
		{"unique bodies", 2500, 1000, false, 1 << 30, false},
		{"unique gzip bodies", 2500, 1000, true, 1 << 30, false},
		{"one short batch", 7, 1000, false, 1 << 30, false},
		{"patched bodies", 5300, 500, false, 600 * 500, true},
		{"patched gzip bodies", 5300, 500, true, 50_000, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := bodyGen{runID: runID, seed: 9, size: 400, base: time.Now()}
			b, err := prepare(context.Background(), g, tt.n, tt.batch, tt.gzip, tt.mem)
			if err != nil {
				t.Fatal(err)
			}
			if b.patched != tt.wantPatched {
				t.Fatalf("patched = %v, want %v", b.patched, tt.wantPatched)
			}
			if want := (tt.n + int64(tt.batch) - 1) / int64(tt.batch); b.requests() != want {
				t.Fatalf("%d requests, want %d", b.requests(), want)
			}
			seen := map[string]bool{}
			var s scratch
			var total int64
			for k := range b.requests() {
				body, events, rawLen := b.get(k, &s)
				if tt.gzip {
					body = gunzip(t, body)
				}
				if len(body) != rawLen {
					t.Fatalf("batch %d: %d bytes, reported %d", k, len(body), rawLen)
				}
				ids := checkBody(t, body)
				if len(ids) != events {
					t.Fatalf("batch %d: %d events, reported %d", k, len(ids), events)
				}
				for i, id := range ids {
					if want := eventID(runID, uint64(k)*uint64(tt.batch)+uint64(i)); id != want {
						t.Fatalf("batch %d event %d: id %s, want %s", k, i, id, want)
					}
					if seen[id] {
						t.Fatalf("id %s repeated", id)
					}
					seen[id] = true
				}
				total += int64(events)
			}
			if total != tt.n {
				t.Errorf("%d events in all, want %d", total, tt.n)
			}
			if m := b.meanEventBytes(); m < 300 || m > 600 {
				t.Errorf("mean event size %.0f bytes for -size 400", m)
			}
		})
	}
}

func TestEventSize(t *testing.T) {
	for _, size := range []int{600, 1000, 4000} {
		g := bodyGen{runID: "0123456789abcdef", seed: 1, size: size, base: time.Now()}
		body, _ := g.batch(0, 500, 500, false)
		checkBody(t, body)
		if mean := float64(len(body)) / 500; mean < 0.9*float64(size) || mean > 1.1*float64(size) {
			t.Errorf("-size %d: mean event size %.0f", size, mean)
		}
	}
}

func gunzip(t *testing.T, body []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	return raw
}

// fakeVigil imitates the events endpoint: it checks each request, stores
// event ids once, and answers as told by busy.
type fakeVigil struct {
	t     *testing.T
	token string

	mu       sync.Mutex
	ids      map[string]int // id → times received
	seq      uint64
	requests int
	// answer decides the answer to request number i (from 0): a status and a
	// Retry-After value; 0 means handle the batch normally.
	answer func(i int) (status int, retryAfter string)
}

func newFakeVigil(t *testing.T, answer func(int) (int, string)) (*fakeVigil, *httptest.Server) {
	f := &fakeVigil{t: t, token: "s3cret", ids: map[string]int{}, answer: answer}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeVigil) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":%q}`, msg)
	}
	if r.Method != http.MethodPost || r.URL.Path != "/api/v1/events" {
		fail(http.StatusNotFound, "no such endpoint")
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		fail(http.StatusUnauthorized, "bad token")
		return
	}
	if r.Header.Get("Content-Type") != "application/x-ndjson" {
		fail(http.StatusUnsupportedMediaType, "want application/x-ndjson")
		return
	}
	f.mu.Lock()
	i := f.requests
	f.requests++
	f.mu.Unlock()
	if status, after := f.answer(i); status != 0 {
		if after != "" {
			w.Header().Set("Retry-After", after)
		}
		fail(status, "busy")
		return
	}

	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			fail(http.StatusBadRequest, "bad gzip")
			return
		}
		body = zr
	}
	var ids []string
	sc := bufio.NewScanner(body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e struct {
			Event struct{ ID string } `json:"event"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Event.ID == "" {
			fail(http.StatusBadRequest, "bad event")
			return
		}
		ids = append(ids, e.Event.ID)
	}
	if err := sc.Err(); err != nil {
		fail(http.StatusBadRequest, err.Error())
		return
	}
	f.mu.Lock()
	var accepted, dups int
	first := f.seq + 1
	for _, id := range ids {
		if f.ids[id] > 0 {
			dups++
		} else {
			accepted++
			f.seq++
		}
		f.ids[id]++
	}
	last := f.seq
	f.mu.Unlock()
	fmt.Fprintf(w, `{"accepted":%d,"duplicates":%d,"first_seq":%d,"last_seq":%d}`, accepted, dups, first, last)
}

// testDeps uses the real clock but records sleeps instead of sleeping.
type testDeps struct {
	mu     sync.Mutex
	sleeps []time.Duration
}

func (td *testDeps) deps() deps {
	return deps{
		client: newClient(4),
		sleep: func(ctx context.Context, d time.Duration) error {
			td.mu.Lock()
			td.sleeps = append(td.sleeps, d)
			td.mu.Unlock()
			return ctx.Err()
		},
		now: time.Now,
	}
}

func testConfig(t *testing.T, srv *httptest.Server, n int64, batch int) config {
	t.Helper()
	target, err := eventsURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return config{
		Target: target, Token: "s3cret", Events: n, Conns: 4, Batch: batch, Duration: time.Minute,
		Size: 400, Seed: 3, RunID: "feedfacecafebeef", MemLimit: 1 << 30, Timeout: 10 * time.Second,
	}
}

func TestRunRetriesAndCounts(t *testing.T) {
	// The first three requests are told to come back in 2 s, the fourth gets
	// a 503 without Retry-After (one second), then all is accepted.
	answer := func(i int) (int, string) {
		switch {
		case i < 3:
			return http.StatusTooManyRequests, "2"
		case i == 3:
			return http.StatusServiceUnavailable, ""
		}
		return 0, ""
	}
	for _, gz := range []bool{false, true} {
		for _, mem := range []int64{1 << 30, 50_000} { // unique, then patched bodies
			t.Run(fmt.Sprintf("gzip=%v,mem=%d", gz, mem), func(t *testing.T) {
				f, srv := newFakeVigil(t, answer)
				cfg := testConfig(t, srv, 10_050, 500)
				cfg.Gzip, cfg.MemLimit = gz, mem
				var td testDeps
				rep, err := loadgen(context.Background(), cfg, td.deps())
				if err != nil {
					t.Fatal(err)
				}
				if rep.Stopped != "completed" || rep.Errors != 0 {
					t.Fatalf("stopped %q with %d errors: %+v", rep.Stopped, rep.Errors, rep)
				}
				if rep.Accepted != 10_050 || rep.Duplicates != 0 || rep.EventsSent != 10_050 {
					t.Errorf("accepted %d, duplicates %d, sent %d; want 10050, 0, 10050", rep.Accepted, rep.Duplicates, rep.EventsSent)
				}
				if rep.Requests != 21 || rep.Attempts != 25 || rep.Latency.Count != 21 {
					t.Errorf("requests %d, attempts %d, latencies %d; want 21, 25, 21", rep.Requests, rep.Attempts, rep.Latency.Count)
				}
				if rep.Retries != 4 || rep.RetriesByStatus["429"] != 3 || rep.RetriesByStatus["503"] != 1 {
					t.Errorf("retries %d %v, want 4 (429: 3, 503: 1)", rep.Retries, rep.RetriesByStatus)
				}
				slices.Sort(td.sleeps)
				if want := []time.Duration{time.Second, 2 * time.Second, 2 * time.Second, 2 * time.Second}; !slices.Equal(td.sleeps, want) {
					t.Errorf("waited %v, want %v", td.sleeps, want)
				}
				if wantMode := map[bool]string{true: "patched", false: "unique"}[mem < 1<<20]; rep.BodyMode != wantMode {
					t.Errorf("body mode %s, want %s", rep.BodyMode, wantMode)
				}
				if len(f.ids) != 10_050 {
					t.Errorf("server stored %d distinct ids, want 10050", len(f.ids))
				}
				for id, n := range f.ids {
					if n != 1 {
						t.Fatalf("id %s received %d times", id, n)
					}
				}
				if rep.AcceptedPerSecond <= 0 || rep.MBPerSecond <= 0 || rep.Latency.Max <= 0 {
					t.Errorf("throughput or latency missing: %+v", rep)
				}
			})
		}
	}
}

func TestRunSameRunIDGivesDuplicates(t *testing.T) {
	_, srv := newFakeVigil(t, func(int) (int, string) { return 0, "" })
	cfg := testConfig(t, srv, 3000, 1000)
	var td testDeps
	for i, want := range []struct{ accepted, dups int64 }{{3000, 0}, {0, 3000}} {
		rep, err := loadgen(context.Background(), cfg, td.deps())
		if err != nil {
			t.Fatal(err)
		}
		if rep.Accepted != want.accepted || rep.Duplicates != want.dups || rep.AckMismatches != 0 {
			t.Errorf("run %d: accepted %d, duplicates %d, mismatches %d; want %d, %d, 0",
				i+1, rep.Accepted, rep.Duplicates, rep.AckMismatches, want.accepted, want.dups)
		}
	}
}

func TestRunCountsErrors(t *testing.T) {
	// Every third request is refused as bad; those batches are given up.
	_, srv := newFakeVigil(t, func(i int) (int, string) {
		if i%3 == 2 {
			return http.StatusBadRequest, ""
		}
		if i%3 == 1 {
			return http.StatusInternalServerError, ""
		}
		return 0, ""
	})
	cfg := testConfig(t, srv, 9000, 1000)
	var td testDeps
	rep, err := loadgen(context.Background(), cfg, td.deps())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Errors != 6 || rep.ErrorsByStatus["400"] != 3 || rep.ErrorsByStatus["500"] != 3 {
		t.Errorf("errors %d %v, want 6 (400: 3, 500: 3)", rep.Errors, rep.ErrorsByStatus)
	}
	if rep.Accepted != 3000 || rep.EventsSent != 9000 || rep.Retries != 0 {
		t.Errorf("accepted %d, sent %d, retries %d; want 3000, 9000, 0", rep.Accepted, rep.EventsSent, rep.Retries)
	}
	if !strings.Contains(rep.SampleError, "busy") {
		t.Errorf("sample error %q does not carry the server's message", rep.SampleError)
	}
}

func TestRunPaced(t *testing.T) {
	_, srv := newFakeVigil(t, func(int) (int, string) { return 0, "" })
	cfg := testConfig(t, srv, 5000, 500)
	cfg.Rate = 1000 // a batch every half second
	var td testDeps
	rep, err := loadgen(context.Background(), cfg, td.deps())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Accepted != 5000 || rep.LatencyFromSchedule == nil || rep.LatencyFromSchedule.Count != 10 {
		t.Fatalf("accepted %d, latency from schedule %+v", rep.Accepted, rep.LatencyFromSchedule)
	}
	// The test clock does not sleep, so each batch waits for its slot: the
	// last one planned 4.5 s after the start.
	if longest := slices.Max(td.sleeps); longest < 4*time.Second || longest > 4500*time.Millisecond {
		t.Errorf("longest pacing wait %s, want about 4.5s", longest)
	}
}

func TestRunStopsAtDuration(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // hang until the client gives up
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	cfg := testConfig(t, srv, 4000, 1000)
	cfg.Duration = 200 * time.Millisecond
	var td testDeps
	rep, err := loadgen(context.Background(), cfg, td.deps())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Stopped != "duration" || rep.Unfinished != 4 || rep.Errors != 0 || rep.Accepted != 0 {
		t.Errorf("stopped %q, unfinished %d, errors %d, accepted %d; want duration, 4, 0, 0",
			rep.Stopped, rep.Unfinished, rep.Errors, rep.Accepted)
	}
}

func TestMainJSONAndAbort(t *testing.T) {
	_, srv := newFakeVigil(t, func(int) (int, string) { return 0, "" })
	tests := []struct {
		name        string
		args        []string
		env         string
		wantCode    int
		wantStopped string
		wantStderr  string
	}{
		{"token from env", []string{"-n", "2500", "-batch", "1000", "-c", "2"}, "s3cret", 0, "completed", ""},
		{"token flag wins", []string{"-n", "2500", "-token", "s3cret"}, "wrong", 0, "completed", ""},
		{"bad token aborts", []string{"-n", "50000", "-batch", "100", "-token", "wrong"}, "", 1, "aborted", ""},
		{"remote target refused", []string{"-n", "10", "-url", "http://192.0.2.7:8080"}, "s3cret", 2, "", "not a loopback address"},
		{"n required", []string{}, "s3cret", 2, "", "-n 0"},
		{"n bounded", []string{"-n", "100000001"}, "s3cret", 2, "", "-n 100000001"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"-url", srv.URL, "-json", "-progress", "0"}, tt.args...)
			var stdout, stderr bytes.Buffer
			code := mainErr(context.Background(), args, tt.env, &stdout, &stderr)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr %q does not mention %q", stderr.String(), tt.wantStderr)
			}
			if tt.wantStopped == "" {
				return
			}
			var rep report
			if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
				t.Fatalf("-json output: %v\n%s", err, stdout.String())
			}
			if rep.Stopped != tt.wantStopped {
				t.Errorf("stopped %q, want %q", rep.Stopped, tt.wantStopped)
			}
			if tt.wantStopped == "aborted" {
				if !strings.Contains(rep.AbortReason, "token") || rep.EventsSent >= 50000 {
					t.Errorf("abort reason %q after %d events; want a token error, early", rep.AbortReason, rep.EventsSent)
				}
			} else if rep.Accepted != 2500 {
				t.Errorf("accepted %d, want 2500", rep.Accepted)
			}
		})
	}
}

func TestTextReport(t *testing.T) {
	r := report{URL: "http://127.0.0.1:8080/api/v1/events", Stopped: "completed", EventsRequested: 10, EventsSent: 10,
		Accepted: 10, ErrorsByStatus: map[string]int64{"500": 1, "400": 2}, Errors: 3, Latency: latency{P50: 1.5}}
	var b bytes.Buffer
	r.printText(&b)
	for _, want := range []string{"accepted:     10", "errors:       3 (400: 2, 500: 1)", "p50 1.50ms", "stopped:      completed"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}

// TestBodiesAreValidEvents checks that Vigil's own parser accepts every
// generated event, so a benchmark never measures refusals.
func TestBodiesAreValidEvents(t *testing.T) {
	g := bodyGen{runID: "00112233aabbccdd", seed: 3, size: 400, base: time.Now()}
	for k := int64(0); k < 20; k++ {
		body, _ := g.batch(k, 1000, 1000, false)
		for i, line := range bytes.Split(bytes.TrimSuffix(body, []byte("\n")), []byte("\n")) {
			if _, err := event.Parse(line, event.DefaultLimits, time.Now()); err != nil {
				t.Fatalf("batch %d line %d: %v\n%s", k, i+1, err, line)
			}
		}
	}
}
