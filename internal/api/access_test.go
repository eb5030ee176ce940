package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/vigilsec/vigil/internal/auth"
	"github.com/vigilsec/vigil/internal/event"
)

// accessFixture serves a mux with token-protected and public routes behind
// an AccessLog whose events land in got.
type accessFixture struct {
	a      *AccessLog
	srv    *httptest.Server
	mu     sync.Mutex
	got    []map[string]any
	fail   error
	stream chan struct{}
}

const (
	adminTok  = "vgl_access-admin-0123456789abcdef"
	readTok   = "vgl_access-read-0123456789abcdef"
	ingestTok = "vgl_access-ingest-0123456789abcdef"
)

func newAccessFixture(t *testing.T) *accessFixture {
	t.Helper()
	tokens, err := auth.Load(filepath.Join(t.TempDir(), "tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"admin": adminTok, "auditor": readTok, "shop": ingestTok} {
		role := map[string]string{"admin": "admin", "auditor": "read", "shop": "ingest"}[name]
		if err := tokens.Add(name, role, tok); err != nil {
			t.Fatal(err)
		}
	}
	f := &accessFixture{stream: make(chan struct{})}
	f.a = &AccessLog{Requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "r"}, []string{"route", "code"}), Append: func(_ context.Context, evs []event.Event) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.fail != nil {
			return f.fail
		}
		for _, e := range evs {
			var m map[string]any
			if err := json.Unmarshal(e.Canonical, &m); err != nil {
				t.Error(err)
			}
			f.got = append(f.got, m)
		}
		return nil
	}}
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("{}")) })
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/events", tokens.Require(ok, nil))
	mux.Handle("POST /api/v1/events", tokens.Require(ok, nil))
	mux.Handle("GET /api/v1/alerts/{fp}", tokens.Require(ok, nil))
	mux.Handle("POST /api/v1/tokens", tokens.Require(ok, nil))
	mux.Handle("GET /api/v1/ledger/checkpoint", ok)
	mux.Handle("GET /metrics", tokens.Require(ok, nil))
	mux.Handle("GET /api/v1/stream", tokens.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("data: 1\n\n"))
		w.(http.Flusher).Flush()
		<-f.stream
	}), nil))
	f.srv = httptest.NewServer(f.a.Middleware(mux))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *accessFixture) do(t *testing.T, method, path, tok string) int {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, strings.NewReader("{}"))
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// byAction indexes the flushed events by action and route.
func (f *accessFixture) byAction() map[string]map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]map[string]any{}
	for _, m := range f.got {
		ev := m["event"].(map[string]any)
		route := ""
		if v, ok := m["vigil"].(map[string]any)["access"].(map[string]any)["route"].(string); ok {
			route = v
		}
		out[ev["action"].(string)+" "+route] = m
	}
	return out
}

func access(m map[string]any) map[string]any {
	return m["vigil"].(map[string]any)["access"].(map[string]any)
}

func TestAccessLog(t *testing.T) {
	f := newAccessFixture(t)
	for range 3 {
		if c := f.do(t, "GET", "/api/v1/events?user.name=carol", adminTok); c != 200 {
			t.Fatalf("admin search: %d", c)
		}
	}
	f.do(t, "GET", "/api/v1/alerts/abc", readTok)
	f.do(t, "GET", "/api/v1/alerts/def", readTok)
	if c := f.do(t, "POST", "/api/v1/tokens", readTok); c != 403 {
		t.Fatalf("read token creating a token: %d", c)
	}
	if c := f.do(t, "GET", "/api/v1/events", "vgl_guess"); c != 401 {
		t.Fatalf("a guessed token: %d", c)
	}
	f.do(t, "GET", "/api/v1/events", "")
	f.do(t, "POST", "/api/v1/events", ingestTok)    // sending: not recorded
	f.do(t, "GET", "/api/v1/ledger/checkpoint", "") // public: not recorded
	f.do(t, "GET", "/metrics", readTok)             // a scrape: not recorded
	if err := f.a.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		route, code string
		want        float64
	}{
		{"GET /api/v1/events", "200", 3}, {"GET /api/v1/events", "401", 2}, {"POST /api/v1/tokens", "403", 1},
		{"POST /api/v1/events", "200", 1}, {"GET /api/v1/alerts/{fp}", "200", 2},
	} {
		var m dto.Metric
		if err := f.a.Requests.WithLabelValues(c.route, c.code).Write(&m); err != nil {
			t.Fatal(err)
		}
		if got := m.GetCounter().GetValue(); got != c.want {
			t.Errorf("vigil_api_requests_total{route=%q,code=%s} = %v, want %v", c.route, c.code, got, c.want)
		}
	}
	got := f.byAction()
	if len(got) != 4 {
		t.Fatalf("%d access events: %v", len(f.got), got)
	}
	search := got["sensitive_read GET /api/v1/events"]
	if search == nil || access(search)["requests"] != 3.0 || search["user"].(map[string]any)["name"] != "admin" ||
		search["source"].(map[string]any)["ip"] != "127.0.0.1" || access(search)["example"] != "/api/v1/events?user.name=carol" {
		t.Errorf("search: %v", search)
	}
	if alerts := got["sensitive_read GET /api/v1/alerts/{fp}"]; alerts == nil || access(alerts)["requests"] != 2.0 || access(alerts)["role"] != "read" {
		t.Errorf("alerts, summed by route pattern: %v", alerts)
	}
	if denied := got["authz_fail POST /api/v1/tokens"]; denied == nil || denied["user"].(map[string]any)["name"] != "auditor" ||
		!strings.Contains(access(denied)["reason"].(string), "may not POST") || denied["event"].(map[string]any)["outcome"] != "failure" {
		t.Errorf("denied: %v", denied)
	}
	if unauth := got[ActionAPIUnauthenticated+" GET /api/v1/events"]; unauth == nil || access(unauth)["requests"] != 2.0 || unauth["user"] != nil {
		t.Errorf("unauthenticated: %v", unauth)
	}
	// Nothing new: nothing flushed.
	n := len(f.got)
	f.a.Flush(context.Background())
	if len(f.got) != n {
		t.Errorf("an empty flush appended %d events", len(f.got)-n)
	}
}

// TestAccessLogStream: a stream is recorded when it starts answering, not
// when it ends.
func TestAccessLogStream(t *testing.T) {
	f := newAccessFixture(t)
	done := make(chan int)
	go func() { done <- f.do(t, "GET", "/api/v1/stream", readTok) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.a.mu.Lock()
		n := len(f.a.m)
		f.a.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the open stream was not recorded")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(f.stream)
	if c := <-done; c != 200 {
		t.Fatalf("stream: %d", c)
	}
	f.a.Flush(context.Background())
	if s := f.byAction()["sensitive_read GET /api/v1/stream"]; s == nil || access(s)["requests"] != 1.0 {
		t.Errorf("stream: %v", f.got)
	}
}

// TestAccessLogBounds: past MaxKeys distinct keys requests are counted in
// one event, and sums that could not be stored are kept for the next flush.
func TestAccessLogBounds(t *testing.T) {
	f := newAccessFixture(t)
	f.a.MaxKeys = 2
	// Four keys (two tokens, two routes); a token on a path no route
	// matches is not recorded (nothing was served).
	f.do(t, "GET", "/api/v1/events", adminTok)
	f.do(t, "GET", "/api/v1/alerts/a", adminTok)
	f.do(t, "GET", "/api/v1/events", readTok)
	f.do(t, "GET", "/api/v1/alerts/b", readTok)
	f.do(t, "GET", "/api/v1/nope", adminTok)
	f.mu.Lock()
	f.fail = errors.New("disk full")
	f.mu.Unlock()
	if err := f.a.Flush(context.Background()); err == nil {
		t.Fatal("the failed flush reported no error")
	}
	f.do(t, "GET", "/api/v1/events", adminTok)
	f.mu.Lock()
	f.fail = nil
	f.mu.Unlock()
	if err := f.a.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := f.byAction()
	if len(f.got) != 3 {
		t.Fatalf("%d events: %v", len(f.got), got)
	}
	if e := got["sensitive_read GET /api/v1/events"]; e == nil || access(e)["requests"] != 2.0 {
		t.Errorf("kept across the failed flush: %v", e)
	}
	var notItemised float64
	for _, m := range f.got {
		if v, ok := access(m)["not_itemised"].(float64); ok {
			notItemised = v
		}
	}
	if notItemised != 2 {
		t.Errorf("not itemised: %v", notItemised)
	}
}
