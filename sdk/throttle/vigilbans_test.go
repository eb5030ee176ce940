package throttle_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilsec/vigil/sdk/throttle"
)

// streamServer speaks Vigil's decision stream format (docs/response.md):
// the whole state as "added" lines, a "synced" line, then changes and
// heartbeats. Tests change its state and push changes to the connected
// clients.
type streamServer struct {
	t     *testing.T
	token string
	srv   *httptest.Server

	mu        sync.Mutex
	state     []wireDecision
	status    int    // answer this instead of a stream when not 0
	raw       string // send these lines instead of the state when not ""
	heartbeat int64  // announced, in ms
	silent    bool   // send nothing after the state (no heartbeats)
	conns     int    // streams opened
	clients   map[chan string]bool
	auths     []string // Authorization headers seen
}

type wireDecision struct {
	ID     string    `json:"id"`
	Type   string    `json:"type"`
	Scope  string    `json:"scope"`
	Value  string    `json:"value"`
	Reason string    `json:"reason,omitempty"`
	Origin string    `json:"origin"`
	Until  time.Time `json:"until,omitzero"`
}

func newStreamServer(t *testing.T, state ...wireDecision) *streamServer {
	s := &streamServer{t: t, token: "vgl_sdk-test-token", state: state, heartbeat: 15000, clients: map[chan string]bool{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	t.Cleanup(s.dropAll)
	return s
}

func (s *streamServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != throttle.StreamPath || r.Method != http.MethodGet {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	s.mu.Lock()
	s.auths = append(s.auths, r.Header.Get("Authorization"))
	if r.Header.Get("Authorization") != "Bearer "+s.token {
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":"invalid token"}`)
		return
	}
	if s.status != 0 {
		st := s.status
		s.mu.Unlock()
		http.Error(w, "unavailable", st)
		return
	}
	s.conns++
	ch := make(chan string, 100)
	s.clients[ch] = true
	var b strings.Builder
	if s.raw != "" {
		b.WriteString(s.raw)
	} else {
		enc := json.NewEncoder(&b)
		for _, d := range s.state {
			enc.Encode(map[string]any{"op": "added", "decision": d})
		}
		enc.Encode(map[string]any{"op": "synced", "count": len(s.state), "heartbeat_ms": s.heartbeat, "time": time.Now()})
	}
	silent := s.silent
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.clients, ch)
		s.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "application/x-ndjson")
	io.WriteString(w, b.String())
	w.(http.Flusher).Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case l, ok := <-ch:
			if !ok {
				return // dropped by the test
			}
			if !silent {
				io.WriteString(w, l+"\n")
				w.(http.Flusher).Flush()
			}
		}
	}
}

// push sends a line to every connected client.
func (s *streamServer) push(op string, d wireDecision) {
	b, _ := json.Marshal(map[string]any{"op": op, "decision": d})
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.clients {
		ch <- string(b)
	}
}

// dropAll ends every stream.
func (s *streamServer) dropAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.clients {
		close(ch)
		delete(s.clients, ch)
	}
}

func (s *streamServer) set(f func(s *streamServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *streamServer) connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

var quiet = slog.New(slog.DiscardHandler)

func follow(t *testing.T, s *streamServer, c throttle.FollowConfig) *throttle.VigilBans {
	t.Helper()
	if c.MinBackoff == 0 {
		c.MinBackoff, c.MaxBackoff = time.Millisecond, 10*time.Millisecond
	}
	c.Log = quiet
	v, err := throttle.FollowVigil(t.Context(), s.srv.URL+"/", s.token, c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

func wait(t *testing.T, v *throttle.VigilBans) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := v.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v (stats %+v)", err, v.Stats())
	}
}

// eventually polls cond for up to 10 s: changes arrive in the background.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func banned(v *throttle.VigilBans, ip, user string) string {
	addr, _ := netip.ParseAddr(ip)
	d, ok := v.Check(addr, user, time.Now())
	if !ok {
		return ""
	}
	return d.Type + " " + d.Reason
}

func TestFollowVigil(t *testing.T) {
	hour := time.Now().Add(time.Hour)
	s := newStreamServer(t,
		wireDecision{ID: "d1", Type: "ban", Scope: "ip", Value: "203.0.113.7", Reason: "brute force", Origin: "r"},
		wireDecision{ID: "d2", Type: "throttle", Scope: "user", Value: "eve", Reason: "scraping", Origin: "r", Until: hour},
		wireDecision{ID: "d3", Type: "ban", Scope: "ip", Value: "203.0.113.8", Reason: "expired", Origin: "r", Until: time.Now().Add(-time.Minute)},
	)
	v := follow(t, s, throttle.FollowConfig{})
	wait(t, v)
	checks := []struct{ ip, user, want string }{
		{"203.0.113.7", "", "ban brute force"},
		{"::ffff:203.0.113.7", "", "ban brute force"},
		{"198.51.100.1", "Eve", "throttle scraping"},
		{"203.0.113.8", "", ""}, // its end has passed
		{"198.51.100.1", "bob", ""},
	}
	for _, c := range checks {
		if got := banned(v, c.ip, c.user); got != c.want {
			t.Errorf("Check(%s, %q) = %q; want %q", c.ip, c.user, got, c.want)
		}
	}
	if st := v.Stats(); !st.Ready || !st.Connected || st.Syncs != 1 || st.Decisions != 3 {
		t.Errorf("stats %+v", st)
	}

	s.push("added", wireDecision{ID: "d4", Type: "ban", Scope: "range", Value: "198.51.100.0/24", Reason: "scanner", Origin: "r"})
	s.push("removed", wireDecision{ID: "d1", Type: "ban", Scope: "ip", Value: "203.0.113.7"})
	// A removal of an older decision on the same value must not remove
	// the newer one.
	s.push("added", wireDecision{ID: "d5", Type: "ban", Scope: "user", Value: "mallory", Reason: "new", Origin: "r"})
	s.push("removed", wireDecision{ID: "d0-old", Type: "ban", Scope: "user", Value: "mallory"})
	eventually(t, "the changes", func() bool { st := v.Stats(); return st.Added == 2 && st.Removed == 2 })
	for _, c := range []struct{ ip, user, want string }{
		{"203.0.113.7", "", ""},
		{"198.51.100.77", "", "ban scanner"},
		{"192.0.2.1", "mallory", "ban new"},
	} {
		if got := banned(v, c.ip, c.user); got != c.want {
			t.Errorf("after changes Check(%s, %q) = %q; want %q", c.ip, c.user, got, c.want)
		}
	}
	s.set(func(s *streamServer) {
		if a := s.auths[0]; a != "Bearer "+s.token {
			t.Errorf("Authorization %q", a)
		}
	})
}

// TestFollowVigilReconnects: the state is kept while the server is away,
// and replaced whole when it comes back.
func TestFollowVigilReconnects(t *testing.T) {
	s := newStreamServer(t,
		wireDecision{ID: "d1", Type: "ban", Scope: "ip", Value: "203.0.113.7", Reason: "old", Origin: "r"},
		wireDecision{ID: "d2", Type: "ban", Scope: "ip", Value: "203.0.113.9", Reason: "kept", Origin: "r"},
	)
	v := follow(t, s, throttle.FollowConfig{})
	wait(t, v)

	s.set(func(s *streamServer) { s.status = http.StatusServiceUnavailable })
	s.dropAll()
	eventually(t, "failed reconnections", func() bool { return v.Stats().Failures >= 3 })
	if st := v.Stats(); st.Connected || !strings.Contains(st.LastError, "503") {
		t.Errorf("stats while the server is away: %+v", st)
	}
	if got := banned(v, "203.0.113.7", ""); got != "ban old" {
		t.Errorf("while disconnected Check = %q; want the last known ban", got)
	}

	// Meanwhile d1 was removed and d3 made.
	s.set(func(s *streamServer) {
		s.status = 0
		s.state = []wireDecision{s.state[1], {ID: "d3", Type: "ban", Scope: "user", Value: "eve", Reason: "new", Origin: "r"}}
	})
	eventually(t, "the second whole state", func() bool { return v.Stats().Syncs == 2 })
	for _, c := range []struct{ ip, user, want string }{
		{"203.0.113.7", "", ""},
		{"203.0.113.9", "", "ban kept"},
		{"", "eve", "ban new"},
	} {
		if got := banned(v, c.ip, c.user); got != c.want {
			t.Errorf("after reconnecting Check(%s, %q) = %q; want %q", c.ip, c.user, got, c.want)
		}
	}
	if st := v.Stats(); !st.Connected || st.Decisions != 2 {
		t.Errorf("stats after reconnecting: %+v", st)
	}
}

func TestFollowVigilIdleTimeout(t *testing.T) {
	s := newStreamServer(t)
	s.set(func(s *streamServer) { s.heartbeat, s.silent = 10, true })
	v := follow(t, s, throttle.FollowConfig{})
	wait(t, v)
	// Heartbeats every 10 ms are announced, none comes: after 30 ms the
	// client gives up on the connection and makes another.
	eventually(t, "a reconnection", func() bool { return s.connections() >= 3 })
	if st := v.Stats(); !strings.Contains(st.LastError, "nothing received for 30ms") {
		t.Errorf("last error %q", st.LastError)
	}
}

func TestFollowVigilRefusesBadStreams(t *testing.T) {
	tests := []struct {
		name  string
		raw   string
		token string
		cfg   throttle.FollowConfig
		want  string
	}{
		{"wrong token", "", "vgl_wrong", throttle.FollowConfig{}, `401 Unauthorized: invalid token`},
		{"count mismatch", `{"op":"added","decision":{"id":"a","type":"ban","scope":"ip","value":"192.0.2.1"}}` + "\n" + `{"op":"synced","count":2}` + "\n", "", throttle.FollowConfig{}, "announced 2 decisions and sent 1"},
		{"not JSON", "{nope\n", "", throttle.FollowConfig{}, "stream line"},
		{"bad decision", `{"op":"added","decision":{"id":"a","type":"ban","scope":"ip","value":"not-an-ip"}}` + "\n" + `{"op":"synced","count":1}` + "\n", "", throttle.FollowConfig{}, `not an IP address`},
		{"no decision", `{"op":"added"}` + "\n", "", throttle.FollowConfig{}, "without a decision"},
		{"removal first", `{"op":"removed","decision":{"id":"a","type":"ban","scope":"ip","value":"192.0.2.1"}}` + "\n", "", throttle.FollowConfig{}, "removal before"},
		{"too many", strings.Repeat(`{"op":"added","decision":{"id":"a","type":"ban","scope":"ip","value":"192.0.2.1"}}`+"\n", 3), "", throttle.FollowConfig{MaxDecisions: 2}, "more than 2 decisions"},
		{"line too long", `{"op":"added","decision":{"id":"a","type":"ban","scope":"ip","value":"192.0.2.1","reason":"` + strings.Repeat("x", 300) + `"}}` + "\n", "", throttle.FollowConfig{MaxLineBytes: 256}, "longer than 256 bytes"},
		{"server error line", `{"op":"synced","count":0}` + "\n" + `{"op":"error","error":"too slow"}` + "\n", "", throttle.FollowConfig{}, "vigil ended the stream: too slow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStreamServer(t)
			s.set(func(s *streamServer) { s.raw = tt.raw })
			tok := s.token
			if tt.token != "" {
				tok = tt.token
			}
			tt.cfg.MinBackoff, tt.cfg.MaxBackoff, tt.cfg.Log = time.Millisecond, 5*time.Millisecond, quiet
			v, err := throttle.FollowVigil(t.Context(), s.srv.URL, tok, tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			eventually(t, "a failure", func() bool { return v.Stats().Failures >= 2 })
			st := v.Stats()
			if !strings.Contains(st.LastError, tt.want) {
				t.Errorf("last error %q; want %q", st.LastError, tt.want)
			}
			if tt.name != "server error line" && (st.Ready || st.Decisions != 0) {
				t.Errorf("a bad stream was taken: %+v", st)
			}
		})
	}
}

func TestFollowVigilBadURL(t *testing.T) {
	for _, u := range []string{"", "vigil:8080", "ftp://vigil", "http://"} {
		if _, err := throttle.FollowVigil(t.Context(), u, "t", throttle.FollowConfig{}); err == nil {
			t.Errorf("FollowVigil(%q) succeeded", u)
		}
	}
}

func TestFollowVigilClose(t *testing.T) {
	s := newStreamServer(t)
	s.set(func(s *streamServer) { s.status = http.StatusServiceUnavailable })
	v := follow(t, s, throttle.FollowConfig{})
	done := make(chan error)
	go func() { done <- v.Wait(context.Background()) }()
	v.Close()
	if err := <-done; err != throttle.ErrClosed {
		t.Errorf("Wait after Close: %v", err)
	}
	// Stopping the context given to FollowVigil stops it too.
	ctx, cancel := context.WithCancel(t.Context())
	v2, err := throttle.FollowVigil(ctx, s.srv.URL, s.token, throttle.FollowConfig{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := v2.Wait(context.Background()); err != throttle.ErrClosed {
		t.Errorf("Wait after cancel: %v", err)
	}
}

// TestFollowVigilWithLimiter: a Limiter enforcing a VigilBans answers 403
// to a banned address as soon as the ban arrives.
func TestFollowVigilWithLimiter(t *testing.T) {
	s := newStreamServer(t)
	v := follow(t, s, throttle.FollowConfig{})
	wait(t, v)
	lim, err := throttle.New(throttle.Config{Enforcer: v, Validators: []throttle.Validator{}})
	if err != nil {
		t.Fatal(err)
	}
	app := lim.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	get := func() int {
		req := httptest.NewRequest("GET", "/", nil)
		req.RemoteAddr = "203.0.113.7:5555"
		rec := httptest.NewRecorder()
		app.ServeHTTP(rec, req)
		return rec.Code
	}
	if code := get(); code != 200 {
		t.Fatalf("before the ban: %d", code)
	}
	s.push("added", wireDecision{ID: "d1", Type: "ban", Scope: "ip", Value: "203.0.113.7", Origin: "r"})
	eventually(t, "the ban", func() bool { return get() == http.StatusForbidden })
	s.push("removed", wireDecision{ID: "d1", Type: "ban", Scope: "ip", Value: "203.0.113.7"})
	eventually(t, "the unban", func() bool { return get() == 200 })
}

func ExampleFollowVigil() {
	ctx := context.Background()
	bans, err := throttle.FollowVigil(ctx, "http://127.0.0.1:8080", "vgl_…", throttle.FollowConfig{})
	if err != nil {
		panic(err)
	}
	defer bans.Close()
	// Optionally wait for the first state before serving.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := bans.Wait(wctx); err != nil {
		fmt.Println("serving without Vigil's decisions for now:", err)
	}
	lim, err := throttle.New(throttle.Config{Enforcer: bans})
	if err != nil {
		panic(err)
	}
	_ = lim.Middleware(http.NotFoundHandler()) // pass to http.ListenAndServe
}

// bodyTransport answers every request with 200 and body, without a network.
type bodyTransport []byte

func (b bodyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: 200, Status: "200 OK", Header: http.Header{"Content-Type": {"application/x-ndjson"}},
		Body: io.NopCloser(strings.NewReader(string(b))), Request: r,
	}, nil
}

// FuzzFollowStream: the stream comes from the network. Whatever it holds,
// VigilBans must not panic, must hold no more decisions than it was sent,
// and must take a whole state only when it is complete and valid.
func FuzzFollowStream(f *testing.F) {
	for _, s := range []string{
		`{"op":"added","decision":{"id":"a","type":"ban","scope":"ip","value":"192.0.2.1"}}` + "\n" + `{"op":"synced","count":1,"heartbeat_ms":15000}` + "\n" + `{"op":"removed","decision":{"id":"a","type":"ban","scope":"ip","value":"192.0.2.1"}}` + "\n",
		`{"op":"synced","count":0}` + "\n" + `{"op":"added","decision":{"id":"b","type":"throttle","scope":"range","value":"10.0.0.0/8","until":"2030-01-01T00:00:00Z"}}` + "\n" + `{"op":"heartbeat","time":"2025-01-01T00:00:00Z"}` + "\n",
		`{"op":"added","decision":{"id":"c","type":"ban","scope":"user","value":"Eve"}}` + "\n" + `{"op":"synced","count":1}` + "\n" + `{"op":"synced","count":0}` + "\n",
		`{"op":"added","decision":{"id":"d","type":"ban","scope":"ip","value":"x"}}` + "\n" + `{"op":"synced","count":1}` + "\n",
		`{"op":"error","error":"too slow"}` + "\n",
		`{"op":"future","x":1}` + "\n" + `{"op":"synced","count":0}`,
		"\n\n{}\n[1]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := throttle.FollowVigil(context.Background(), "http://vigil.invalid", "t", throttle.FollowConfig{
			Client: &http.Client{Transport: bodyTransport(data)}, MinBackoff: time.Hour, MaxLineBytes: 4096, MaxDecisions: 100, Log: quiet,
		})
		if err != nil {
			t.Fatal(err)
		}
		defer v.Close()
		deadline := time.Now().Add(5 * time.Second)
		for v.Stats().Failures == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the stream never ended")
			}
			time.Sleep(10 * time.Microsecond)
		}
		st := v.Stats()
		lines := strings.Count(string(data), "\n") + 1
		if st.Decisions > lines {
			t.Fatalf("%d decisions from %d lines", st.Decisions, lines)
		}
		if !st.Ready && st.Decisions != 0 {
			t.Fatalf("decisions taken without a whole state: %+v", st)
		}
		v.Check(netip.MustParseAddr("192.0.2.1"), "eve", time.Now())
	})
}
