package respond

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// serve starts the API of env's manager on 127.0.0.1. The caller is
// "alice".
func serve(t *testing.T, env *testEnv, o HandlerOptions) *httptest.Server {
	t.Helper()
	o.Actor = func(*http.Request) string { return "alice" }
	o.Log = quiet
	srv := httptest.NewServer(NewHandler(env.m, o))
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAPI(t *testing.T) {
	env := newEnv(t, Config{Allowlist: Allowlist{IPs: []string{"192.0.2.0/24"}, Users: []string{"admin"}}})
	srv := serve(t, env, HandlerOptions{})
	u := srv.URL + "/api/v1/decisions"
	var first AddAnswer

	steps := []struct {
		method, path, body string
		status             int
		want               []string // substrings of the body
	}{
		{"POST", "", `{"scope":"ip","value":"203.0.113.7","ttl":"1h","reason":"brute force"}`, 201,
			[]string{`"result":"added"`, `"origin":"manual:alice"`, `"until":"2025-03-01T13:00:00Z"`, `"value":"203.0.113.7"`, `"type":"ban"`}},
		{"POST", "", `{"scope":"ip","value":"::ffff:203.0.113.7","ttl":"2h"}`, 200, []string{`"result":"extended"`, `"until":"2025-03-01T14:00:00Z"`}},
		{"POST", "", `{"scope":"ip","value":"203.0.113.7","ttl":"5m"}`, 200, []string{`"result":"kept"`, `"until":"2025-03-01T14:00:00Z"`}},
		{"POST", "", `{"type":"throttle","scope":"range","value":"198.51.100.0/24","ttl":"7d"}`, 201, []string{`"until":"2025-03-08T12:00:00Z"`}},
		{"POST", "", `{"scope":"user","value":"Mallory"}`, 201, []string{`"value":"mallory"`}},
		{"POST", "", `{"scope":"ip","value":"192.0.2.9"}`, 409, []string{"allowlist", "192.0.2.0/24"}},
		{"POST", "", `{"scope":"range","value":"192.0.0.0/16"}`, 409, []string{"covers the allowlist entry 192.0.2.0/24"}},
		{"POST", "", `{"scope":"user","value":"ADMIN"}`, 409, []string{"allowlist"}},
		{"POST", "", `{"scope":"host","value":"x"}`, 400, []string{"field scope"}},
		{"POST", "", `{"scope":"ip","value":"1.2.3"}`, 400, []string{"field value", "not an IP address"}},
		{"POST", "", `{"scope":"ip"}`, 400, []string{"field value: missing"}},
		{"POST", "", `{"scope":"ip","value":"1.2.3.4","ttl":"forever"}`, 400, []string{"field ttl"}},
		{"POST", "", `{"scope":"ip","value":"1.2.3.4","ttl":"20y"}`, 400, []string{"field ttl"}},
		{"POST", "", `{"scope":"ip","value":"1.2.3.4","ttl":"-1h"}`, 400, []string{"field ttl"}},
		{"POST", "", `{"scope":"ip","value":"1.2.3.4","type":"block"}`, 400, []string{"field type"}},
		{"POST", "", `{"scope":"ip","value":1234}`, 400, []string{"field value: want a string"}},
		{"POST", "", `{"scope":"ip","value":"1.2.3.4","colour":"red"}`, 400, []string{"field colour: unknown"}},
		{"POST", "", `{"scope":"ip","value":"1.2.3.4","reason":"` + strings.Repeat("x", 1025) + `"}`, 400, []string{"field reason"}},
		{"POST", "", `{"scope":"ip","value":"1.2.3.4"} {}`, 400, []string{"more than one"}},
		{"POST", "", ``, 400, []string{"empty body"}},
		{"POST", "", `[1]`, 400, []string{"not a JSON object"}},
		{"POST", "", `{"reason":"` + strings.Repeat("x", MaxBodyBytes) + `"}`, 413, []string{"body over"}},
		{"POST", "?dry=1", `{"scope":"ip","value":"1.2.3.4"}`, 400, []string{"unknown parameter"}},
		{"GET", "", "", 200, []string{`"total":3`, "203.0.113.7", "198.51.100.0/24", "mallory"}},
		{"GET", "?scope=range", "", 200, []string{`"total":1`, "198.51.100.0/24"}},
		{"GET", "?ip=198.51.100.9", "", 200, []string{`"total":1`, "198.51.100.0/24"}},
		{"GET", "?ip=203.0.113.7&type=ban", "", 200, []string{`"total":1`}},
		{"GET", "?user=MALLORY", "", 200, []string{`"total":1`}},
		{"GET", "?scope=ip&value=::ffff:203.0.113.7", "", 200, []string{`"total":1`}},
		{"GET", "?origin=manual:", "", 200, []string{`"total":3`}},
		{"GET", "?limit=1", "", 200, []string{`"total":3`, "mallory"}},
		{"GET", "?ipp=1.2.3.4", "", 400, []string{`unknown parameter \"ipp\"`}},
		{"GET", "?ip=nope", "", 400, []string{"parameter ip"}},
		{"GET", "?value=1.2.3.4", "", 400, []string{"parameter value: needs scope"}},
		{"GET", "?scope=ip&value=nope", "", 400, []string{"parameter value"}},
		{"GET", "?limit=0", "", 400, []string{"parameter limit"}},
		{"GET", "?state=gone", "", 400, []string{"parameter state"}},
		{"PUT", "", "", 405, []string{"use GET or POST or DELETE"}},
		{"DELETE", "", "", 400, []string{"needs the parameters scope and value"}},
		{"DELETE", "?scope=user&value=MALLORY", "", 200, []string{`"removed_by":"manual:alice"`}},
		{"DELETE", "?scope=user&value=mallory", "", 404, []string{"no such active decision"}},
		{"DELETE", "/nope", "", 404, []string{"no such active decision"}},
		{"GET", "/nope", "", 404, []string{"no decision"}},
		{"GET", "?state=all", "", 200, []string{`"total":3`, `"removed_by":"manual:alice"`}},
		{"POST", "/stream", "", 405, []string{"use GET"}},
		{"GET", "/stream?x=1", "", 400, []string{"unknown parameter"}},
		{"GET", "/export", "", 400, []string{"parameter format"}},
		{"GET", "/export?format=pf", "", 400, []string{"parameter format"}},
		{"GET", "/export?format=plain&type=all", "", 400, []string{"parameter type"}},
		{"GET", "/export?format=plain", "", 200, []string{"203.0.113.7\n"}},
		{"GET", "/export?format=plain&type=throttle", "", 200, []string{"198.51.100.0/24\n"}},
		{"GET", "/export?format=nginx&type=any", "", 200, []string{"deny 198.51.100.0/24;\ndeny 203.0.113.7;\n"}},
		{"GET", "/a/b", "", 404, []string{"no route"}},
	}
	for i, s := range steps {
		status, body := do(t, s.method, u+s.path, s.body)
		if status != s.status {
			t.Errorf("step %d: %s %s: %d %s; want %d", i, s.method, s.path, status, body, s.status)
			continue
		}
		for _, w := range s.want {
			if !strings.Contains(body, w) {
				t.Errorf("step %d: %s %s: body lacks %q:\n%s", i, s.method, s.path, w, body)
			}
		}
		if i == 0 {
			json.Unmarshal([]byte(body), &first)
		}
		if s.status >= 400 && s.status != 405 && !strings.HasPrefix(body, `{"error":`) {
			t.Errorf("step %d: error body is not JSON: %s", i, body)
		}
	}
	status, body := do(t, "GET", u+"/"+first.Decision.ID, "")
	if status != 200 || !strings.Contains(body, `"reason":"brute force"`) {
		t.Errorf("GET by ID: %d %s", status, body)
	}
	status, body = do(t, "DELETE", u+"/"+first.Decision.ID, "")
	if status != 200 || !strings.Contains(body, `"removed_at":"2025-03-01T12:00:00Z"`) {
		t.Errorf("DELETE by ID: %d %s", status, body)
	}
	if status, body := do(t, "GET", u+"/export?format=plain", ""); status != 200 || body != "" {
		t.Errorf("export after removal: %d %q", status, body)
	}
}

// streamClient reads the decision stream line by line.
type streamClient struct {
	t    *testing.T
	resp *http.Response
	sc   *bufio.Scanner
}

type line struct {
	Op          string   `json:"op"`
	Decision    Decision `json:"decision"`
	Count       int      `json:"count"`
	HeartbeatMS int64    `json:"heartbeat_ms"`
	Error       string   `json:"error"`
}

func openStream(t *testing.T, url string) *streamClient {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", url+"/api/v1/decisions/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != StreamContentType {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	t.Cleanup(func() { resp.Body.Close() })
	return &streamClient{t: t, resp: resp, sc: bufio.NewScanner(resp.Body)}
}

// next returns the next line that is not a heartbeat (unless heartbeats).
func (c *streamClient) next(heartbeats bool) line {
	c.t.Helper()
	for c.sc.Scan() {
		var l line
		if err := json.Unmarshal(c.sc.Bytes(), &l); err != nil {
			c.t.Fatalf("stream line %q: %v", c.sc.Text(), err)
		}
		if l.Op != OpHeartbeat || heartbeats {
			return l
		}
	}
	c.t.Fatalf("stream ended: %v", c.sc.Err())
	return line{}
}

func TestStream(t *testing.T) {
	env := newEnv(t, Config{})
	a := mustAdd(t, env.m, Decision{Scope: "ip", Value: "203.0.113.7"})
	env.clock.Advance(time.Second)
	b := mustAdd(t, env.m, Decision{Type: "throttle", Scope: "user", Value: "eve", Until: t0.Add(time.Hour)})
	srv := serve(t, env, HandlerOptions{Heartbeat: 20 * time.Millisecond})

	// Several subscribers each get the whole state, then every change.
	var clients []*streamClient
	for range 5 {
		c := openStream(t, srv.URL)
		for i, want := range []Decision{a, b} {
			if l := c.next(false); l.Op != OpAdded || l.Decision.ID != want.ID {
				t.Fatalf("initial line %d: %+v; want added %s", i, l, want.ID)
			}
		}
		if l := c.next(false); l.Op != OpSynced || l.Count != 2 || l.HeartbeatMS != 20 {
			t.Fatalf("after the initial state: %+v; want synced, count 2", l)
		}
		clients = append(clients, c)
	}
	waitFor(t, "5 subscribers", func() bool { return env.metric(t, "vigil_decision_stream_subscribers") == 5 })
	c3 := mustAdd(t, env.m, Decision{Scope: "range", Value: "198.51.100.0/24"})
	if _, err := env.m.Remove(t.Context(), a.ID, "manual:bob"); err != nil {
		t.Fatal(err)
	}
	for i, c := range clients {
		if l := c.next(false); l.Op != OpAdded || l.Decision.ID != c3.ID {
			t.Errorf("client %d: %+v; want added %s", i, l, c3.ID)
		}
		if l := c.next(false); l.Op != OpRemoved || l.Decision.ID != a.ID || l.Decision.RemovedBy != "manual:bob" {
			t.Errorf("client %d: %+v; want removed %s", i, l, a.ID)
		}
	}
	// Heartbeats come when nothing changes.
	if l := clients[0].next(true); l.Op != OpHeartbeat {
		t.Errorf("idle stream sent %+v; want a heartbeat", l)
	}
	for _, c := range clients {
		c.resp.Body.Close()
	}
	waitFor(t, "subscribers to leave", func() bool { return env.metric(t, "vigil_decision_stream_subscribers") == 0 })
}

// TestStreamOutlivesReadTimeout: the server's ReadTimeout must not end a
// stream (net/http cancels a request's context when the read deadline of
// its connection passes).
func TestStreamOutlivesReadTimeout(t *testing.T) {
	env := newEnv(t, Config{})
	srv := httptest.NewUnstartedServer(NewHandler(env.m, HandlerOptions{Heartbeat: 10 * time.Millisecond, Log: quiet}))
	srv.Config.ReadTimeout = 30 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	c := openStream(t, srv.URL)
	if l := c.next(false); l.Op != OpSynced {
		t.Fatalf("first line %+v", l)
	}
	for range 15 { // 150 ms: five times the read timeout
		if l := c.next(true); l.Op != OpHeartbeat {
			t.Fatalf("line %+v", l)
		}
	}
	d := mustAdd(t, env.m, Decision{Scope: "ip", Value: "203.0.113.1"})
	if l := c.next(false); l.Decision.ID != d.ID {
		t.Errorf("change after the read timeout: %+v", l)
	}
}

// TestStreamSlowClient: a client that stops reading is disconnected once
// its queue is full, and gets the whole state again when it reconnects.
func TestStreamSlowClient(t *testing.T) {
	env := newEnv(t, Config{StreamBuffer: 16})
	h := NewHandler(env.m, HandlerOptions{Heartbeat: time.Hour, WriteTimeout: 200 * time.Millisecond, Log: quiet})
	srv := httptest.NewUnstartedServer(h)
	// Small socket buffers, so that the kernel does not absorb megabytes
	// for the client that does not read.
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if tc, ok := c.(*net.TCPConn); ok && s == http.StateNew {
			tc.SetWriteBuffer(4096)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(conn, "GET /api/v1/decisions/stream HTTP/1.1\r\nHost: vigil\r\n\r\n")
	waitFor(t, "the subscriber", func() bool { return env.metric(t, "vigil_decision_stream_subscribers") == 1 })

	reason := strings.Repeat("r", 1000)
	for i := 0; env.metric(t, "vigil_decision_stream_subscribers") == 1; i++ {
		if i == 5000 {
			t.Fatal("5000 changes of 1 kB sent to a client that reads nothing, and it is still connected")
		}
		mustAdd(t, env.m, Decision{Scope: "user", Value: fmt.Sprintf("u%d", i), Reason: reason})
	}
	// The server closed the connection: reading what it sent ends.
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, conn); err != nil {
		t.Errorf("the slow client's connection was not closed: %v", err)
	}
	// Reconnecting gives the whole state.
	c := openStream(t, srv.URL)
	n := 0
	for l := c.next(false); l.Op != OpSynced; l = c.next(false) {
		n++
	}
	if want := env.m.Len(); n != want {
		t.Errorf("reconnected client got %d decisions; want %d", n, want)
	}
}

// TestCloseStreams: at shutdown every stream ends with an error line, so
// that the server's graceful shutdown does not wait for them.
func TestCloseStreams(t *testing.T) {
	env := newEnv(t, Config{})
	h := NewHandler(env.m, HandlerOptions{Heartbeat: time.Hour, Log: quiet})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c := openStream(t, srv.URL)
	if l := c.next(false); l.Op != OpSynced {
		t.Fatalf("first line %+v", l)
	}
	h.CloseStreams()
	if l := c.next(false); l.Op != OpError || !strings.Contains(l.Error, "shutting down") {
		t.Errorf("after CloseStreams: %+v", l)
	}
	if c.sc.Scan() {
		t.Errorf("the stream goes on after CloseStreams: %s", c.sc.Text())
	}
	// New streams end at once too.
	c = openStream(t, srv.URL)
	if l := c.next(false); l.Op != OpSynced {
		t.Fatalf("first line %+v", l)
	}
	if l := c.next(false); l.Op != OpError {
		t.Errorf("a stream opened after CloseStreams: %+v", l)
	}
}
