package throttle

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a settable clock for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var ok = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })

// do sends one request from ip through h and returns the recorder.
func do(h http.Handler, method, target, ip string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	r.RemoteAddr = ip + ":40000"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func mustNew(t *testing.T, c Config) *Limiter {
	t.Helper()
	l, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestTwentyFirstRequestInAMinuteIsRefused(t *testing.T) {
	clk := newClock()
	var limited []string
	l := mustNew(t, Config{Now: clk.Now, OnLimit: func(r *http.Request, v string, wait time.Duration) {
		limited = append(limited, v)
	}})
	h := l.Middleware(ok)
	for i := range 20 {
		if w := do(h, "GET", "/", "203.0.113.7"); w.Code != 200 {
			t.Fatalf("request %d: %d", i+1, w.Code)
		}
		clk.Add(time.Second)
	}
	w := do(h, "GET", "/", "203.0.113.7")
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("21st request: %d, want 429", w.Code)
	}
	ra, err := strconv.Atoi(w.Header().Get("Retry-After"))
	// The first request (at 0 s) leaves the window about 60 s after it; we
	// are at 20 s.
	if err != nil || ra < 40 || ra > 43 {
		t.Errorf("Retry-After = %q, want about 40", w.Header().Get("Retry-After"))
	}
	var body struct {
		Error      string `json:"error"`
		RetryAfter int    `json:"retry_after"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error != "too many requests" || body.RetryAfter != ra {
		t.Errorf("body %q (err %v)", w.Body, err)
	}
	if w.Header().Get("Content-Type") != "application/json" {
		t.Errorf("Content-Type %q", w.Header().Get("Content-Type"))
	}
	if len(limited) != 1 || limited[0] != "per_ip:20/1m" {
		t.Errorf("OnLimit calls: %v", limited)
	}

	// Another address is not affected.
	if w := do(h, "GET", "/", "198.51.100.1"); w.Code != 200 {
		t.Errorf("other IP: %d", w.Code)
	}
	// Still refused just before Retry-After, allowed after it.
	clk.Add(time.Duration(ra)*time.Second - 2*time.Second)
	if w := do(h, "GET", "/", "203.0.113.7"); w.Code != 429 {
		t.Errorf("before Retry-After: %d, want 429", w.Code)
	}
	clk.Add(2 * time.Second)
	if w := do(h, "GET", "/", "203.0.113.7"); w.Code != 200 {
		t.Errorf("after Retry-After: %d, want 200", w.Code)
	}
	// And a whole window later everything is forgotten.
	clk.Add(2 * time.Minute)
	for i := range 20 {
		if w := do(h, "GET", "/", "203.0.113.7"); w.Code != 200 {
			t.Fatalf("next window, request %d: %d", i+1, w.Code)
		}
	}
}

func TestHourlyLimit(t *testing.T) {
	clk := newClock()
	h := mustNew(t, Config{Now: clk.Now}).Middleware(ok)
	// 1,000 requests in 3,100 s, spread so that the minute limit (20 in
	// 62 s at most, with 2-second buckets) never bites.
	for i := range 1000 {
		if w := do(h, "GET", "/", "[2001:db8::7]"); w.Code != 200 {
			t.Fatalf("request %d: %d", i+1, w.Code)
		}
		clk.Add(3100 * time.Millisecond)
	}
	w := do(h, "GET", "/", "[2001:db8::7]")
	if w.Code != 429 {
		t.Fatalf("1001st request in an hour: %d", w.Code)
	}
	// The first request's 2-minute bucket leaves the window at 62 min; we
	// are at 51 min 40 s.
	if ra, _ := strconv.Atoi(w.Header().Get("Retry-After")); ra != 620 {
		t.Errorf("Retry-After %d s, want 620", ra)
	}
}

func TestRoutes(t *testing.T) {
	clk := newClock()
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", ok)
	mux.Handle("POST /login", ok)
	mux.Handle("GET /items/{id}", ok)
	mux.Handle("/", ok)
	l := mustNew(t, Config{
		Now:        clk.Now,
		Validators: []Validator{PerIP(3, time.Minute)},
		Routes: map[string]RouteConfig{
			"GET /healthz":    {Exempt: true},
			"POST /login":     {Validators: []Validator{PerIPRoute(1, time.Minute)}},
			"GET /items/{id}": {Validators: []Validator{PerIPRoute(5, time.Minute)}},
			"/static/app.js":  {Exempt: true}, // keyed by path
		},
	})
	h := l.Middleware(mux)
	ip := "192.0.2.10"
	for i := range 10 {
		if w := do(h, "GET", "/healthz", ip); w.Code != 200 {
			t.Fatalf("exempt route, request %d: %d", i+1, w.Code)
		}
		if w := do(h, "GET", "/static/app.js", ip); w.Code != 200 {
			t.Fatalf("exempt path, request %d: %d", i+1, w.Code)
		}
	}
	if w := do(h, "POST", "/login", ip); w.Code != 200 {
		t.Fatalf("first login: %d", w.Code)
	}
	if w := do(h, "POST", "/login", ip); w.Code != 429 {
		t.Errorf("second login in a minute: %d, want 429 (route override)", w.Code)
	}
	// The pattern with a wildcard is found through the mux; PerIPRoute
	// counts each path apart.
	for i := range 5 {
		if w := do(h, "GET", "/items/1", ip); w.Code != 200 {
			t.Fatalf("items/1, request %d: %d", i+1, w.Code)
		}
	}
	if w := do(h, "GET", "/items/1", ip); w.Code != 429 {
		t.Errorf("6th items/1: %d, want 429", w.Code)
	}
	if w := do(h, "GET", "/items/2", ip); w.Code != 200 {
		t.Errorf("items/2: %d, want 200", w.Code)
	}
	// The global limit (3) applies to other routes, untouched so far.
	for i := range 3 {
		if w := do(h, "GET", "/other", ip); w.Code != 200 {
			t.Fatalf("other, request %d: %d", i+1, w.Code)
		}
	}
	if w := do(h, "GET", "/other", ip); w.Code != 429 {
		t.Errorf("4th other: %d, want 429", w.Code)
	}
}

func TestRouteWrapper(t *testing.T) {
	clk := newClock()
	var routes []string
	v := &recordingValidator{routes: &routes}
	l := mustNew(t, Config{
		Now:        clk.Now,
		Validators: []Validator{v},
		Routes:     map[string]RouteConfig{"POST /login": {Validators: []Validator{PerIP(1, time.Minute)}}},
	})
	mux := http.NewServeMux()
	mux.Handle("POST /login", l.Route("POST /login", ok))
	mux.Handle("GET /users/{id}", l.Route("GET /users/{id}", ok))
	if w := do(mux, "POST", "/login", "192.0.2.1"); w.Code != 200 {
		t.Fatal(w.Code)
	}
	if w := do(mux, "POST", "/login", "192.0.2.1"); w.Code != 429 {
		t.Errorf("second login: %d", w.Code)
	}
	do(mux, "GET", "/users/7", "192.0.2.1")
	if len(routes) != 1 || routes[0] != "GET /users/{id}" {
		t.Errorf("routes seen by the global validator: %v", routes)
	}
}

type recordingValidator struct{ routes *[]string }

func (v *recordingValidator) Name() string { return "recording" }
func (v *recordingValidator) Allow(r Request, now time.Time) (time.Duration, bool) {
	return 0, true
}
func (v *recordingValidator) Record(r Request, now time.Time) { *v.routes = append(*v.routes, r.Route) }

func TestExemptIPs(t *testing.T) {
	clk := newClock()
	l := mustNew(t, Config{
		Now:        clk.Now,
		Validators: []Validator{PerIP(1, time.Hour)},
		ExemptIPs:  []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:1::/48")},
	})
	h := l.Middleware(ok)
	for _, ip := range []string{"10.1.2.3", "[2001:db8:1::5]", "[::ffff:10.9.9.9]"} {
		for i := range 50 {
			if w := do(h, "GET", "/", ip); w.Code != 200 {
				t.Fatalf("exempt %s, request %d: %d", ip, i+1, w.Code)
			}
		}
	}
	do(h, "GET", "/", "11.0.0.1")
	if w := do(h, "GET", "/", "11.0.0.1"); w.Code != 429 {
		t.Errorf("non-exempt: %d", w.Code)
	}
}

func TestBansInMiddleware(t *testing.T) {
	clk := newClock()
	bans := &StaticBans{}
	until := clk.Now().Add(10 * time.Minute)
	for _, d := range []Decision{
		{Type: "ban", Scope: "ip", Value: "203.0.113.9", Reason: "scanner", Until: until},
		{Type: "ban", Scope: "range", Value: "198.51.100.0/24", Reason: "botnet", Until: until},
		{Type: "ban", Scope: "user", Value: "Mallory", Until: until},
		{Type: "throttle", Scope: "ip", Value: "192.0.2.50", Until: clk.Now().Add(90 * time.Second)},
	} {
		if err := bans.Add(d); err != nil {
			t.Fatal(err)
		}
	}
	var banned []Decision
	l := mustNew(t, Config{
		Now:       clk.Now,
		Enforcer:  bans,
		ExemptIPs: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}, // exempt from limits, not bans
		User:      func(r *http.Request) string { return r.Header.Get("X-User") },
		OnBan:     func(r *http.Request, d Decision) { banned = append(banned, d) },
	})
	h := l.Middleware(ok)
	check := func(name, ip, user string, want int) {
		t.Helper()
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = ip + ":1234"
		r.Header.Set("X-User", user)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("%s: %d, want %d", name, w.Code, want)
		}
		if want == 403 && strings.TrimSpace(w.Body.String()) != `{"error":"forbidden"}` {
			t.Errorf("%s: body %q", name, w.Body)
		}
	}
	check("banned IP", "203.0.113.9", "", 403)
	check("IP in banned range", "198.51.100.77", "", 403)
	check("banned user, other case", "192.0.2.1", "mallory", 403)
	check("throttled IP", "192.0.2.50", "", 429)
	check("free IP", "192.0.2.2", "alice", 200)
	if len(banned) != 4 || banned[0].Reason != "scanner" || banned[1].Reason != "botnet" {
		t.Errorf("OnBan calls: %+v", banned)
	}
	clk.Add(10 * time.Minute)
	check("ban expired, IP", "203.0.113.9", "", 200)
	check("ban expired, range", "198.51.100.77", "", 200)
	check("ban expired, user", "192.0.2.1", "mallory", 200)
	check("throttle expired", "192.0.2.50", "", 200)
}

func TestCustomAnswersAndHelpers(t *testing.T) {
	clk := newClock()
	var gotWait time.Duration
	var gotBy string
	l := mustNew(t, Config{
		Now:        clk.Now,
		Validators: []Validator{PerIP(1, time.Minute)},
		Limited: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			gotWait, _ = RetryAfter(r)
			gotBy, _ = RefusedBy(r)
			w.WriteHeader(503)
		}),
	})
	h := l.Middleware(ok)
	do(h, "GET", "/", "192.0.2.1")
	if w := do(h, "GET", "/", "192.0.2.1"); w.Code != 503 {
		t.Errorf("custom Limited not used: %d", w.Code)
	}
	if gotWait <= 0 || gotWait > 62*time.Second || gotBy != "per_ip:1/1m" {
		t.Errorf("RetryAfter %v, RefusedBy %q", gotWait, gotBy)
	}
	if _, ok := RetryAfter(httptest.NewRequest("GET", "/", nil)); ok {
		t.Error("RetryAfter outside a refusal")
	}
}

func TestCheck(t *testing.T) {
	clk := newClock()
	l := mustNew(t, Config{Now: clk.Now, Validators: []Validator{PerIP(2, time.Minute)}})
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "192.0.2.1:1"
	for i := range 2 {
		if _, _, ok := l.Check(r); !ok {
			t.Fatalf("check %d refused", i+1)
		}
	}
	wait, v, ok := l.Check(r)
	if ok || v != "per_ip:2/1m" || wait <= 0 {
		t.Errorf("third check: %v %q %v", wait, v, ok)
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int{0: 1, -time.Second: 1, time.Millisecond: 1, time.Second: 1, 1001 * time.Millisecond: 2, time.Minute: 60} {
		if got := RetryAfterSeconds(d); got != want {
			t.Errorf("RetryAfterSeconds(%v) = %d, want %d", d, got, want)
		}
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		c    Config
		want string
	}{
		{Config{Validators: []Validator{nil}}, "Validators[0] is nil"},
		{Config{Routes: map[string]RouteConfig{"/a": {Exempt: true, Validators: []Validator{}}}}, `Routes["/a"]: both`},
		{Config{Routes: map[string]RouteConfig{"/b": {Validators: []Validator{PerIP(1, time.Second), nil}}}}, `Routes["/b"].Validators[1] is nil`},
		{Config{Routes: map[string]RouteConfig{"": {}}}, "empty key"},
		{Config{ExemptIPs: []netip.Prefix{{}}}, "ExemptIPs[0]"},
	}
	for _, tt := range tests {
		if _, err := New(tt.c); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New: error %v, want %q", err, tt.want)
		}
	}
}

func TestRemoteIP(t *testing.T) {
	for addr, want := range map[string]string{
		"192.0.2.1:80":         "192.0.2.1",
		"[2001:db8::1]:80":     "2001:db8::1",
		"[::ffff:192.0.2.1]:1": "192.0.2.1",
		"192.0.2.3":            "192.0.2.3",
		"@":                    "invalid IP",
	} {
		r := &http.Request{RemoteAddr: addr}
		if got := RemoteIP(r).String(); got != want {
			t.Errorf("RemoteIP(%q) = %s, want %s", addr, got, want)
		}
	}
}
