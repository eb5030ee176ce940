package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/config"
)

const testToken = "vgl_test-token-0123456789abcdef"

type running struct {
	srv    *Server
	url    string
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, dir string, mutate func(*config.Config)) *running {
	t.Helper()
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = dir
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := New(cfg, Options{AdminToken: testToken, Out: io.Discard, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{srv: srv, url: srv.URL(), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- srv.Run(ctx) }()
	t.Cleanup(r.stop)
	return r
}

func (r *running) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	<-r.done
	r.cancel = nil
}

func post(t *testing.T, base, token, contentType string, hdr map[string]string, body []byte) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/api/v1/events", bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("answer %d is not JSON: %q", resp.StatusCode, b)
	}
	return resp.StatusCode, m
}

func get(t *testing.T, base, path string, v url.Values) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+path+"?"+v.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("answer %d is not JSON: %v", resp.StatusCode, err)
	}
	return resp.StatusCode, m
}

const threeEvents = `{"event":{"id":"e-1","action":"authn_login_fail","outcome":"failure"},"source":{"ip":"203.0.113.7"},"user":{"name":"alice"},"message":"login failed for alice: bad password"}
{"event":{"id":"e-2","action":"authn_login_success","outcome":"success"},"source":{"ip":"198.51.100.20"},"user":{"name":"bob"},"message":"login ok for bob"}
{"event":{"id":"e-3","action":"http_request"},"source.ip":"203.0.113.7","url":{"path":"/.env"},"http":{"request":{"method":"GET"},"response":{"status_code":404}},"message":"GET /.env 404 scanner"}
`

func seqsOf(t *testing.T, m map[string]any) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	evs, _ := m["events"].([]any)
	for _, e := range evs {
		h := e.(map[string]any)
		id := h["event"].(map[string]any)["event"].(map[string]any)["id"].(string)
		out[id] = h["seq"].(float64)
	}
	return out
}

func TestIngestSearchRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	r := start(t, dir, nil)
	code, ans := post(t, r.url, testToken, "application/x-ndjson", nil, []byte(threeEvents))
	if code != 200 || ans["accepted"].(float64) != 3 {
		t.Fatalf("ingest: %d %v", code, ans)
	}
	// Sending the same events again stores nothing new.
	code, ans = post(t, r.url, testToken, "application/x-ndjson", nil, []byte(threeEvents))
	if code != 200 || ans["accepted"].(float64) != 0 || ans["duplicates"].(float64) != 3 {
		t.Fatalf("resend: %d %v", code, ans)
	}
	searches := []struct {
		params url.Values
		want   []string
	}{
		{url.Values{"source.ip": {"203.0.113.7"}}, []string{"e-1", "e-3"}},
		{url.Values{"source.ip": {"203.0.113.0/24"}}, []string{"e-1", "e-3"}},
		{url.Values{"user.name": {"bob"}}, []string{"e-2"}},
		{url.Values{"q": {"scanner"}}, []string{"e-3"}},
		{url.Values{"event.action": {"authn_login_fail"}, "user.name": {"alice"}}, []string{"e-1"}},
		{url.Values{"http.response.status_code": {"404"}}, []string{"e-3"}},
	}
	before := map[string]float64{}
	for _, s := range searches {
		code, m := get(t, r.url, "/api/v1/events", s.params)
		got := seqsOf(t, m)
		if code != 200 || len(got) != len(s.want) {
			t.Fatalf("search %v: %d %v", s.params, code, m)
		}
		for _, id := range s.want {
			if _, ok := got[id]; !ok {
				t.Errorf("search %v: missing %s in %v", s.params, id, got)
			}
			before[id] = got[id]
		}
	}
	_, m := get(t, r.url, "/api/v1/events/top", url.Values{"field": {"source.ip"}})
	b := m["buckets"].([]any)
	if top := b[0].(map[string]any); top["value"] != "203.0.113.7" || top["count"].(float64) != 2 {
		t.Errorf("top source.ip: %v", m)
	}

	r.stop()
	r = start(t, dir, nil)
	_, m = get(t, r.url, "/api/v1/events", url.Values{"limit": {"100"}, "action": {"sensitive_read"}})
	// The reads before the restart are in the log: the access log flushed
	// them at shutdown, one event per token and route.
	reads := map[string]float64{}
	for _, e := range m["events"].([]any) {
		acc := e.(map[string]any)["event"].(map[string]any)["vigil"].(map[string]any)["access"].(map[string]any)
		reads[acc["route"].(string)] = acc["requests"].(float64)
	}
	if reads["GET /api/v1/events"] != float64(len(searches)) || reads["GET /api/v1/events/top"] != 1 || len(reads) != 2 {
		t.Errorf("access events after restart: %v", reads)
	}
	_, m = get(t, r.url, "/api/v1/events", url.Values{"limit": {"100"}})
	after := seqsOf(t, m)
	if len(after) != 3+len(reads) {
		t.Fatalf("after restart: %v", m)
	}
	for id, seq := range before {
		if after[id] != seq {
			t.Errorf("event %s: seq %v before restart, %v after", id, seq, after[id])
		}
	}
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func TestBadInput(t *testing.T) {
	r := start(t, filepath.Join(t.TempDir(), "data"), nil)
	good := []byte(`{"message":"fine"}` + "\n")
	bomb := gzipped(bytes.Repeat([]byte("A"), 32<<20)) // 32 MiB that compresses to ~32 KiB
	huge := []byte(`{"message":"` + strings.Repeat("x", 10<<20) + `"}` + "\n")
	deep := []byte(strings.Repeat("[", 10000) + strings.Repeat("]", 10000))
	deepObj := []byte(`{"a":` + string(deep) + "}\n")

	cases := []struct {
		name        string
		token, ct   string
		hdr         map[string]string
		body        []byte
		status      int
		errContains string
	}{
		{"malformed JSON line", testToken, "application/x-ndjson", nil, []byte("{\"message\":\"ok\"}\n{\"message\": oops}\n"), 400, "line 2"},
		{"10 MiB event", testToken, "application/x-ndjson", nil, huge, 413, "limit"},
		{"10,000-deep nesting", testToken, "application/x-ndjson", nil, deepObj, 400, "nesting is deeper"},
		{"invalid UTF-8", testToken, "application/x-ndjson", nil, []byte("{\"message\":\"bad \xff\xfe\"}\n"), 400, "UTF-8"},
		{"missing token", "", "application/x-ndjson", nil, good, 401, "missing bearer token"},
		{"wrong token", "vgl_wrong-token-xxxxxxxxxxxxxxxx", "application/x-ndjson", nil, good, 401, "invalid token"},
		{"wrong content type", testToken, "text/plain", nil, good, 415, "Content-Type"},
		{"missing content type", testToken, "", nil, good, 415, "Content-Type"},
		{"unsupported encoding", testToken, "application/x-ndjson", map[string]string{"Content-Encoding": "br"}, good, 415, "Content-Encoding"},
		{"gzip bomb", testToken, "application/x-ndjson", map[string]string{"Content-Encoding": "gzip"}, bomb, 413, "decompression"},
		{"corrupt gzip", testToken, "application/x-ndjson", map[string]string{"Content-Encoding": "gzip"}, []byte("not gzip at all"), 400, "gzip"},
		{"not an object", testToken, "application/x-ndjson", nil, []byte("[1,2]\n"), 400, "line 1"},
		{"empty body", testToken, "application/x-ndjson", nil, nil, 400, "no events"},
		{"bad field type", testToken, "application/x-ndjson", nil, []byte(`{"source":{"ip":"999.1.1.1"}}` + "\n"), 400, "source.ip"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, m := post(t, r.url, c.token, c.ct, c.hdr, c.body)
			if code != c.status {
				t.Fatalf("status %d, want %d: %v", code, c.status, m)
			}
			msg, _ := m["error"].(string)
			if !strings.Contains(strings.ToLower(msg+fmt.Sprint(m["lines"])), strings.ToLower(c.errContains)) {
				t.Errorf("error %q does not mention %q", msg+fmt.Sprint(m["lines"]), c.errContains)
			}
			// The server keeps serving, and the bad request stored nothing.
			code, m = post(t, r.url, testToken, "application/x-ndjson", nil, good)
			if code != 200 {
				t.Fatalf("good request after bad one: %d %v", code, m)
			}
		})
	}
	_, m := get(t, r.url, "/api/v1/events/count", nil)
	if m["count"].(float64) != float64(len(cases)) {
		t.Errorf("count = %v, want %d (only the good requests stored)", m["count"], len(cases))
	}
}

func TestBackpressure(t *testing.T) {
	r := start(t, filepath.Join(t.TempDir(), "data"), func(c *config.Config) {
		c.Ingest.MaxConcurrent = 1
	})
	// Hold the only ingest slot with a request whose body never finishes,
	// written by hand: net/http's client may keep the headers of a body it
	// is still reading in its buffer. The request is refused itself when it
	// arrives while a request of the loop below holds the slot (the server
	// answers at once); then it is sent again.
	host := strings.TrimPrefix(r.url, "http://")
	hold := func() net.Conn {
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "POST /api/v1/events HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"+
			"Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n11\r\n{\"message\":\"slow\"\r\n", host, testToken)
		return c
	}
	answered := func(c net.Conn) bool {
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		var b [1]byte
		n, _ := c.Read(b[:])
		return n > 0
	}
	slow := hold()
	defer func() { slow.Close() }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if answered(slow) {
			slow.Close()
			slow = hold()
		}
		code, m := post(t, r.url, testToken, "application/x-ndjson", nil, []byte("{\"message\":\"x\"}\n"))
		if code == 429 {
			if m["retry_after"] == nil {
				t.Errorf("429 without retry_after: %v", m)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never got 429, last %d %v", code, m)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAuthOnEveryReadRoute(t *testing.T) {
	r := start(t, filepath.Join(t.TempDir(), "data"), nil)
	for _, p := range []string{"/api/v1/events", "/api/v1/events/count", "/api/v1/events/top?field=source.ip", "/metrics"} {
		resp, err := http.Get(r.url + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("GET %s without token: %d, want 401", p, resp.StatusCode)
		}
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(r.url + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: %d, want 200", p, resp.StatusCode)
		}
	}
}

func TestMetrics(t *testing.T) {
	r := start(t, filepath.Join(t.TempDir(), "data"), nil)
	post(t, r.url, testToken, "application/x-ndjson", nil, []byte(threeEvents))
	post(t, r.url, "", "application/x-ndjson", nil, []byte(threeEvents))
	metrics := func() []byte {
		req, _ := http.NewRequest("GET", r.url+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return b
	}
	// Detection follows the log: it is caught up once it evaluated the 3
	// events and its lag is back to 0.
	var b []byte
	caughtUp := []byte("vigil_detect_lag_events 0\n")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		b = metrics()
		if bytes.Contains(b, caughtUp) && bytes.Contains(b, []byte("vigil_detect_events_total 3\n")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("detection did not catch up:\n%s", b)
		}
	}
	for _, want := range []string{
		`vigil_ingest_events_total{receiver="http"} 3`,
		`vigil_ingest_rejected_total{reason="unauthorized",receiver="http"} 1`,
		`vigil_store_commit_seconds_count`,
		`vigil_ingest_queued_events 0`,
		`vigil_ingest_bytes_total{receiver="http"}`,
		`vigil_store_last_seq 3`,
		`vigil_decisions_queued 0`,
	} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestDataDirPermissions(t *testing.T) {
	dir := t.TempDir()
	if err := PrepareDataDir(filepath.Join(dir, "new"), false); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "new")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("new data dir: %v, %v; want mode 0700", fi.Mode(), err)
	}
	open := filepath.Join(dir, "open")
	if err := PrepareDataDir(open, false); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o755); err != nil {
		t.Fatal(err)
	}
	err := PrepareDataDir(open, false)
	if err == nil || !strings.Contains(err.Error(), "chmod 700") || !strings.Contains(err.Error(), "--allow-open-data-dir") {
		t.Fatalf("open data dir accepted: %v", err)
	}
	if err := PrepareDataDir(open, true); err != nil {
		t.Fatalf("open data dir with the override: %v", err)
	}
}

// TestLongPoll is what vigil tail -f relies on: a search with wait= returns
// as soon as a new event is stored.
func TestLongPoll(t *testing.T) {
	r := start(t, filepath.Join(t.TempDir(), "data"), nil)
	post(t, r.url, testToken, "application/x-ndjson", nil, []byte(`{"event":{"id":"first"}}`+"\n"))
	type result struct {
		m    map[string]any
		took time.Duration
	}
	done := make(chan result, 1)
	go func() {
		t0 := time.Now()
		_, m := get(t, r.url, "/api/v1/events", url.Values{"after": {"1"}, "wait": {"20s"}, "user.name": {"zed"}})
		done <- result{m, time.Since(t0)}
	}()
	time.Sleep(200 * time.Millisecond)
	// An event that does not match keeps the poll waiting; a matching one ends it.
	post(t, r.url, testToken, "application/x-ndjson", nil, []byte(`{"event":{"id":"other"},"user":{"name":"amy"}}`+"\n"))
	select {
	case res := <-done:
		t.Fatalf("poll returned for a non-matching event: %v", res.m)
	case <-time.After(300 * time.Millisecond):
	}
	post(t, r.url, testToken, "application/x-ndjson", nil, []byte(`{"event":{"id":"second"},"user":{"name":"zed"}}`+"\n"))
	res := <-done
	got := seqsOf(t, res.m)
	if len(got) != 1 || got["second"] != 3 || res.took > 10*time.Second {
		t.Fatalf("long poll answered %v after %v", res.m, res.took)
	}
	if res.m["next_after"].(float64) != 3 {
		t.Errorf("next_after %v", res.m["next_after"])
	}
}
