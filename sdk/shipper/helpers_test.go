package shipper

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const testToken = "vgl_test-token-0123456789abcdef"

// appendEvent appends a realistic event of about 400 bytes: an HTTP request
// log (best-effort) or a login (critical), with its own event.id.
func appendEvent(dst []byte, id string, i int, critical bool) []byte {
	action, outcome, cat := "http_request", "success", "web"
	if critical {
		action, outcome, cat = "authn_login_success", "success", "authentication"
	}
	return fmt.Appendf(dst, `{"@timestamp":"2026-11-23T10:%02d:%02d.%06dZ","event.id":%q,"event.kind":"event","event.category":[%q],"event.action":%q,"event.outcome":%q,"source.ip":"203.0.113.%d","url.path":"/api/v1/orders/%d","http.request.method":"POST","http.response.status_code":201,"user.name":"alice%d","service.name":"shop","message":"POST /api/v1/orders/%d 201 in 12 ms for alice%d"}`,
		i/60%60, i%60, i%1000000, id, cat, action, outcome, i%250+1, i, i%100, i, i%100)
}

// fakeVigil is a stand-in for Vigil's ingest endpoint that records the
// event IDs it receives. answer, when set, can refuse a request.
type fakeVigil struct {
	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	ids      map[string]int // event.id → copies received
	order    []string       // event IDs in the order received (first copies)
	events   map[string][]byte
	requests int
	sizes    []int // events per request
	gzipped  int
	answer   func(lines [][]byte) (status int, hdr map[string]string, body string)
	reqTimes []time.Time
	count    atomic.Int64 // events accepted
}

func newFakeVigil(t testing.TB) *fakeVigil {
	f := &fakeVigil{t: t, ids: map[string]int{}, events: map[string][]byte{}}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeVigil) setAnswer(a func(lines [][]byte) (int, map[string]string, string)) {
	f.mu.Lock()
	f.answer = a
	f.mu.Unlock()
}

// down makes every request fail with 503, no Retry-After.
func (f *fakeVigil) down() {
	f.setAnswer(func([][]byte) (int, map[string]string, string) {
		return 503, nil, `{"error":"down for the test"}`
	})
}

func (f *fakeVigil) up() { f.setAnswer(nil) }

func (f *fakeVigil) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+testToken {
		http.Error(w, `{"error":"missing or unknown token"}`, 401)
		return
	}
	if r.Header.Get("Content-Type") != "application/x-ndjson" {
		http.Error(w, `{"error":"bad content type"}`, 415)
		return
	}
	var body io.Reader = r.Body
	gz := r.Header.Get("Content-Encoding") == "gzip"
	if gz {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, `{"error":"bad gzip"}`, 400)
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, `{"error":"read"}`, 400)
		return
	}
	var lines [][]byte
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		lines = append(lines, bytes.Clone(sc.Bytes()))
	}
	f.mu.Lock()
	f.requests++
	f.reqTimes = append(f.reqTimes, time.Now())
	if gz {
		f.gzipped++
	}
	answer := f.answer
	f.mu.Unlock()
	if answer != nil {
		if status, hdr, msg := answer(lines); status != 0 {
			for k, v := range hdr {
				w.Header().Set(k, v)
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			io.WriteString(w, msg)
			return
		}
	}
	dup := 0
	f.mu.Lock()
	f.sizes = append(f.sizes, len(lines))
	for _, l := range lines {
		var e struct {
			ID string `json:"event.id"`
		}
		if err := json.Unmarshal(l, &e); err != nil || e.ID == "" {
			f.mu.Unlock()
			f.t.Errorf("fake Vigil got a bad line %q: %v", l, err)
			http.Error(w, `{"error":"bad line"}`, 400)
			return
		}
		if f.ids[e.ID] == 0 {
			f.order = append(f.order, e.ID)
			f.events[e.ID] = l
		} else {
			dup++
		}
		f.ids[e.ID]++
	}
	f.mu.Unlock()
	f.count.Add(int64(len(lines)))
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"accepted":%d,"duplicates":%d}`, len(lines)-dup, dup)
}

func (f *fakeVigil) has(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ids[id]
}

// testConfig is a Config for tests: quick timers, a logger to the test log.
func testConfig(t testing.TB, url string) Config {
	return Config{
		URL:           url,
		Token:         testToken,
		FlushInterval: 20 * time.Millisecond,
		MinBackoff:    10 * time.Millisecond,
		MaxBackoff:    100 * time.Millisecond,
		Logger:        slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

func mustNew(t testing.TB, c Config) *Shipper {
	t.Helper()
	s, err := New(c)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Close(ctx)
	})
	return s
}

// eventually polls cond until it holds or 20 s pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func id(prefix string, i int) string { return prefix + "-" + strconv.Itoa(i) }

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
