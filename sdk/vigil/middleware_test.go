package vigil_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilsec/vigil/sdk/vigil"
	"github.com/vigilsec/vigil/sdk/vigiltest"
)

func TestMiddlewareEvent(t *testing.T) {
	c, rec := newClient(t, func(cfg *vigil.Config) {
		cfg.Service, cfg.Host, cfg.Release = "shop", "web-1", "1.4.2"
		cfg.User = func(r *http.Request) (string, string) { return "42", "alice" }
	})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		vigil.WithRelated(r.Context(), "shop.order:"+r.PathValue("id"))
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "made")
	})
	r := request("POST", "http://shop.example:8443/orders/981?ref=home", "203.0.113.7:51234", "", "User-Agent", "curl/8.5.0")
	serve(c.Middleware(mux), r)

	e := only(t, rec)
	for name, want := range map[string]any{
		"event.action":              "http_request",
		"event.kind":                "event",
		"event.category":            []any{"web"},
		"event.outcome":             "success",
		"log.level":                 "INFO",
		"http.request.method":       "POST",
		"http.response.status_code": 201,
		"http.response.body.bytes":  4,
		"url.path":                  "/orders/981",
		"url.query":                 "ref=home",
		"url.domain":                "shop.example",
		"url.scheme":                "http",
		"source.ip":                 "203.0.113.7",
		"source.port":               51234,
		"user.id":                   "42",
		"user.name":                 "alice",
		"user_agent.original":       "curl/8.5.0",
		"vigil.view":                "POST /orders/{id}",
		"service.name":              "shop",
		"host.name":                 "web-1",
		"labels.release":            "1.4.2",
		"related.objects":           []string{"shop.order:981"},
	} {
		rec.Assert(t, vigiltest.Field(name, want))
	}
	if e.Int("event.duration") <= 0 {
		t.Errorf("event.duration = %d, want > 0", e.Int("event.duration"))
	}
	if e.Critical() {
		t.Error("request events are not critical")
	}
	ts, err := time.Parse(time.RFC3339Nano, e.Str("@timestamp"))
	if err != nil || ts.Location() != time.UTC || time.Since(ts) > time.Minute {
		t.Errorf("@timestamp %q: %v", e.Str("@timestamp"), err)
	}
	if id := e.Str("event.id"); len(id) != 36 || id[14] != '7' {
		t.Errorf("event.id %q is not a UUIDv7", id)
	}
	if e.Has("http.request.headers") || e.Has("http.request.body.content") {
		t.Error("headers or bodies recorded without CaptureHeaders/CaptureBodies")
	}
}

func TestMiddlewareStatusLevels(t *testing.T) {
	for _, tt := range []struct {
		status         int
		level, outcome string
		severity       int64
	}{
		{200, "INFO", "success", 1},
		{302, "INFO", "success", 1},
		{404, "WARNING", "failure", 3},
		{429, "WARNING", "failure", 3},
		{500, "ERROR", "failure", 5},
		{503, "ERROR", "failure", 5},
	} {
		c, rec := newClient(t, nil)
		h := c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(tt.status) }))
		serve(h, request("GET", "/", "192.0.2.1:1", ""))
		e := only(t, rec)
		if e.Str("log.level") != tt.level || e.Str("event.outcome") != tt.outcome || e.Int("event.severity") != tt.severity || e.Int("http.response.status_code") != int64(tt.status) {
			t.Errorf("status %d: %s", tt.status, e.Raw())
		}
	}
}

func TestMiddlewareActorFromContext(t *testing.T) {
	c, rec := newClient(t, nil)
	h := c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// An inner authentication middleware learns who the user is.
		ctx := vigil.WithActor(r.Context(), "7", "bob")
		if err := c.LoginSucceeded(ctx, "bob"); err != nil {
			t.Error(err)
		}
	}))
	serve(h, request("POST", "/login", "192.0.2.1:1", ""))
	rec.Assert(t, vigiltest.Action("http_request"), vigiltest.Field("user.id", "7"), vigiltest.Field("user.name", "bob"))
	rec.Assert(t, vigiltest.Action("authn_login_success"), vigiltest.Field("user.id", "7"), vigiltest.Field("source.ip", "192.0.2.1"))
}

func TestRequestID(t *testing.T) {
	var seen string
	outgoing := make(chan string, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		outgoing <- r.Header.Get("X-Request-ID")
	}))
	defer backend.Close()

	tests := []struct {
		name, header, want string // want "" means generated
	}{
		{"read from the request", "req-81f2", "req-81f2"},
		{"generated when absent", "", ""},
		{"replaced when it has spaces", "a b", ""},
		{"replaced when too long", strings.Repeat("x", 129), ""},
		{"replaced when not ASCII", "idé", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rec := newClient(t, nil)
			client := &http.Client{Transport: c.Transport(nil)}
			h := c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen = vigil.RequestID(r.Context())
				req, _ := http.NewRequestWithContext(r.Context(), "GET", backend.URL, nil)
				resp, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
			}))
			var hdr []string
			if tt.header != "" {
				hdr = []string{"X-Request-ID", tt.header}
			}
			w := serve(h, request("GET", "/", "192.0.2.1:1", "", hdr...))
			if tt.want != "" && seen != tt.want {
				t.Errorf("RequestID = %q, want %q", seen, tt.want)
			}
			if tt.want == "" && (len(seen) != 36 || seen == tt.header) {
				t.Errorf("generated RequestID = %q, want a UUID", seen)
			}
			if got := w.Header().Get("X-Request-ID"); got != seen {
				t.Errorf("response header = %q, want %q", got, seen)
			}
			if got := <-outgoing; got != seen {
				t.Errorf("outgoing request header = %q, want %q", got, seen)
			}
			rec.Assert(t, vigiltest.Action("http_request"), vigiltest.Field("http.request.id", seen))
			rec.Assert(t, vigiltest.Action("http_request_outgoing"), vigiltest.Field("http.request.id", seen))
		})
	}
}

func TestRequestIDHeaderConfigured(t *testing.T) {
	c, rec := newClient(t, func(cfg *vigil.Config) { cfg.RequestIDHeader = "x-correlation-id" })
	h := c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	w := serve(h, request("GET", "/", "192.0.2.1:1", "", "X-Correlation-Id", "corr-1"))
	if got := w.Header().Get("X-Correlation-Id"); got != "corr-1" {
		t.Errorf("echoed %q", got)
	}
	rec.Assert(t, vigiltest.Field("http.request.id", "corr-1"))
}

func TestWithRequestIDOutsideRequest(t *testing.T) {
	ctx := vigil.WithRequestID(context.Background(), "job-7")
	if got := vigil.RequestID(ctx); got != "job-7" {
		t.Errorf("RequestID = %q", got)
	}
	if got := vigil.RequestID(context.Background()); got != "" {
		t.Errorf("RequestID of a bare context = %q", got)
	}
}

func TestClientIPThroughMiddleware(t *testing.T) {
	c, rec := newClient(t, func(cfg *vigil.Config) {
		cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	})
	var got netip.Addr
	h := c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = vigil.ClientIP(r) }))

	// A client sending its own X-Forwarded-For directly is not believed.
	serve(h, request("GET", "/", "203.0.113.9:1000", "", "X-Forwarded-For", "198.51.100.1"))
	if got.String() != "203.0.113.9" {
		t.Errorf("spoofed header: ClientIP = %v, want the peer", got)
	}
	rec.Assert(t, vigiltest.Field("source.ip", "203.0.113.9"), vigiltest.Field("source.port", 1000))

	// Through the trusted proxy, the forged left part is skipped.
	rec.Reset()
	serve(h, request("GET", "/", "10.0.0.5:80", "", "X-Forwarded-For", "6.6.6.6, 198.51.100.1"))
	if got.String() != "198.51.100.1" {
		t.Errorf("via proxy: ClientIP = %v", got)
	}
	e := rec.Assert(t, vigiltest.Field("source.ip", "198.51.100.1"))
	if e.Has("source.port") {
		t.Error("source.port of the proxy reported as the client's")
	}

	// Without the middleware, ClientIP is the peer.
	r := request("GET", "/", "[2001:db8::1]:443", "")
	if got := vigil.ClientIP(r); got.String() != "2001:db8::1" {
		t.Errorf("bare ClientIP = %v", got)
	}
}

const secretPassword = "hunter2-Sup3rSecret"

func TestRedactionEndToEnd(t *testing.T) {
	c, rec := newClient(t, func(cfg *vigil.Config) { cfg.CaptureBodies, cfg.CaptureHeaders = true, true })
	h := c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Set-Cookie", "session=sess-"+secretPassword)
		io.WriteString(w, `{"ok":true,"token":"tok-`+secretPassword+`"}`)
	}))
	for _, r := range []*http.Request{
		request("POST", "/login", "192.0.2.1:1", `{"username":"alice","password":"`+secretPassword+`"}`, "Content-Type", "application/json"),
		request("POST", "/login", "192.0.2.1:1", "username=alice&password="+secretPassword, "Content-Type", "application/x-www-form-urlencoded"),
		request("GET", "/api?token="+secretPassword+"&page=2", "192.0.2.1:1", "", "Authorization", "Bearer "+secretPassword),
		request("GET", "/", "192.0.2.1:1", "", "Cookie", "session="+secretPassword),
	} {
		serve(h, r)
	}
	if n := len(rec.Events()); n != 4 {
		t.Fatalf("%d events, want 4", n)
	}
	if rec.Contains(secretPassword) {
		for _, l := range rec.Lines() {
			t.Log(string(l))
		}
		t.Fatal("a secret reached the events")
	}
	// What is not secret is kept.
	rec.Assert(t, vigiltest.Match("body with the user name", func(e vigiltest.Event) bool {
		return strings.Contains(e.Str("http.request.body.content"), "alice")
	}))
	rec.Assert(t, vigiltest.Match("query keeps page=2", func(e vigiltest.Event) bool {
		return strings.Contains(e.Str("url.query"), "page=2")
	}))
}

func TestBodyCapture(t *testing.T) {
	long := `{"items":["` + strings.Repeat("a", 300) + `","` + strings.Repeat("b", 900) + `"]}`
	tests := []struct {
		name          string
		reqType, body string
		respType      string
		resp          string
		flush         bool
		wantReq       string // "" means absent; "~x" means contains x
		wantResp      string
	}{
		{"json both ways", "application/json", `{"q":1}`, "application/json", `{"a":2}`, false, `{"q":1}`, `{"a":2}`},
		{"problem+json", "application/problem+json", `{"q":1}`, "application/problem+json; charset=utf-8", `{"a":2}`, false, `{"q":1}`, `{"a":2}`},
		{"xml csv html", "text/xml", `<a/>`, "text/html", `<p>hi</p>`, false, `<a/>`, `<p>hi</p>`},
		{"csv response", "text/csv", "a,b", "text/csv", "1,2", false, "a,b", "1,2"},
		{"form request", "application/x-www-form-urlencoded", "q=1", "text/plain", "ok", false, "q=1", ""},
		{"binary not captured", "application/octet-stream", "\x00\x01", "image/png", "\x89PNG", false, "", ""},
		{"multipart not captured", "multipart/form-data; boundary=x", "--x--", "application/json", "{}", false, "", "{}"},
		{"sniffed html response", "application/json", "{}", "", "<html><body>hi</body></html>", false, "{}", "~<html>"},
		{"streaming response not captured", "application/json", "{}", "application/json", `{"chunk":1}`, true, "{}", ""},
		{"json truncated per string", "application/json", long, "application/json", long, false, "~" + strings.Repeat("b", 240), "~" + strings.Repeat("a", 240)},
		{"text truncated", "text/xml", "<x>" + strings.Repeat("y", 3000) + "</x>", "text/xml", "<x/>", false, "~" + strings.Repeat("y", 990), "<x/>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rec := newClient(t, func(cfg *vigil.Config) { cfg.CaptureBodies = true })
			h := c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.ReadAll(r.Body)
				if tt.respType != "" {
					w.Header().Set("Content-Type", tt.respType)
				}
				io.WriteString(w, tt.resp)
				if tt.flush {
					w.(http.Flusher).Flush()
					io.WriteString(w, "more")
				}
			}))
			serve(h, request("POST", "/", "192.0.2.1:1", tt.body, "Content-Type", tt.reqType))
			e := only(t, rec)
			check := func(field, want string) {
				got, has := e.Str(field), e.Has(field)
				switch {
				case want == "":
					if has {
						t.Errorf("%s = %q, want none", field, got)
					}
				case strings.HasPrefix(want, "~"):
					if !strings.Contains(got, want[1:]) {
						t.Errorf("%s = %q, want it to contain %q", field, got, want[1:])
					}
				case got != want:
					t.Errorf("%s = %q, want %q", field, got, want)
				}
				if len([]rune(got)) > 1000+20 {
					t.Errorf("%s has %d characters, more than MaxBody", field, len([]rune(got)))
				}
			}
			check("http.request.body.content", tt.wantReq)
			check("http.response.body.content", tt.wantResp)
		})
	}
}

func TestBodyTruncationKeepsJSON(t *testing.T) {
	c, rec := newClient(t, func(cfg *vigil.Config) { cfg.CaptureBodies = true })
	h := c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.ReadAll(r.Body) }))
	body := `{"note":"` + strings.Repeat("n", 2000) + `","password":"` + secretPassword + `","qty":2}`
	serve(h, request("POST", "/", "192.0.2.1:1", body, "Content-Type", "application/json"))
	got := only(t, rec).Str("http.request.body.content")
	var v map[string]any
	if err := json.Unmarshal([]byte(got), &v); err != nil {
		t.Fatalf("truncated JSON body no longer parses (%v): %s", err, got)
	}
	if n := len([]rune(v["note"].(string))); n > 251 || n < 200 {
		t.Errorf("long string cut to %d characters, want 250 and an ellipsis", n)
	}
	if v["qty"] != 2.0 || v["password"] != "[Filtered]" {
		t.Errorf("fields: %v", v)
	}
}

func TestBodyNotReadNotCaptured(t *testing.T) {
	c, rec := newClient(t, func(cfg *vigil.Config) { cfg.CaptureBodies = true })
	h := c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	serve(h, request("POST", "/", "192.0.2.1:1", `{"a":1}`, "Content-Type", "application/json"))
	if e := only(t, rec); e.Has("http.request.body.content") {
		t.Errorf("a body the handler did not read was captured: %s", e.Raw())
	}
}

func TestPanic(t *testing.T) {
	c, rec := newClient(t, nil)
	h := c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic("boom: password=" + secretPassword)
	}))
	w := serve(h, request("GET", "/explode", "192.0.2.1:1", ""))
	if w.Code != 500 {
		t.Errorf("status %d, want 500", w.Code)
	}
	e := rec.Assert(t, vigiltest.Action("http_request"), vigiltest.Field("error.type", "panic"),
		vigiltest.Field("http.response.status_code", 500), vigiltest.Field("log.level", "ERROR"))
	if !strings.Contains(e.Str("error.message"), "boom") {
		t.Errorf("error.message = %q", e.Str("error.message"))
	}
	if st := e.Str("error.stack_trace"); !strings.Contains(st, "TestPanic") || len(st) > 8<<10 {
		t.Errorf("stack trace of %d bytes: %.200s", len(st), st)
	}
	if rec.Contains(secretPassword) {
		t.Error("the panic message was not redacted")
	}
	if !strings.Contains(string(metricsText(t, c)), `http_panics_total{route="other"} 1`) {
		t.Error("panic not counted")
	}
}

func TestPanicAfterWrite(t *testing.T) {
	c, rec := newClient(t, nil)
	h := c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		panic(errors.New("late"))
	}))
	w := serve(h, request("GET", "/", "192.0.2.1:1", ""))
	if w.Code != http.StatusAccepted {
		t.Errorf("status %d changed after it was sent", w.Code)
	}
	rec.Assert(t, vigiltest.Field("error.message", "late"), vigiltest.Field("http.response.status_code", 202), vigiltest.Field("event.outcome", "failure"))
}

func TestRepanic(t *testing.T) {
	c, rec := newClient(t, func(cfg *vigil.Config) { cfg.RepanicOnPanic = true })
	h := c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic("again") }))
	func() {
		defer func() {
			if v := recover(); v != "again" {
				t.Errorf("recovered %v, want the handler's panic", v)
			}
		}()
		serve(h, request("GET", "/", "192.0.2.1:1", ""))
	}()
	rec.Assert(t, vigiltest.Field("error.message", "again"))
}

func TestAbortHandlerRepanics(t *testing.T) {
	c, _ := newClient(t, nil)
	h := c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) }))
	defer func() {
		if v := recover(); v != http.ErrAbortHandler {
			t.Errorf("recovered %v, want http.ErrAbortHandler", v)
		}
	}()
	serve(h, request("GET", "/", "192.0.2.1:1", ""))
}

func TestIgnore(t *testing.T) {
	c, rec := newClient(t, func(cfg *vigil.Config) {
		cfg.IgnorePaths = []string{"/healthz", "/static/"}
		cfg.IgnoreIPs = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	})
	calls := 0
	h := c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls++ }))
	serve(h, request("GET", "/healthz", "203.0.113.1:1", ""))
	serve(h, request("GET", "/static/app.js", "203.0.113.1:1", ""))
	serve(h, request("GET", "/orders", "192.0.2.77:1", ""))
	serve(h, request("GET", "/orders", "203.0.113.1:1", ""))
	if calls != 4 {
		t.Errorf("handler ran %d times, want 4", calls)
	}
	e := only(t, rec)
	if e.Str("url.path") != "/orders" || e.Str("source.ip") != "203.0.113.1" {
		t.Errorf("recorded %s", e.Raw())
	}
}

func TestRouteOptions(t *testing.T) {
	c, rec := newClient(t, func(cfg *vigil.Config) { cfg.CaptureBodies = true })
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", c.Route("GET /healthz", echo, vigil.Exempt()))
	mux.Handle("POST /upload", c.Route("POST /upload", echo, vigil.HideRequestBody()))
	mux.Handle("POST /orders/{id}", c.Route("POST /orders/{id}", echo, vigil.Slug("order-detail")))
	// Another middleware inside copies the request: the route is still seen.
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), struct{}{}, 1)))
	})
	h := c.Middleware(inner)

	serve(h, request("GET", "/healthz", "192.0.2.1:1", ""))
	serve(h, request("POST", "/upload", "192.0.2.1:1", `{"file":"x"}`, "Content-Type", "application/json"))
	serve(h, request("POST", "/orders/9", "192.0.2.1:1", `{"qty":2}`, "Content-Type", "application/json"))

	rec.AssertNone(t, vigiltest.Field("url.path", "/healthz"))
	up := rec.Assert(t, vigiltest.Field("url.path", "/upload"), vigiltest.Field("vigil.view", "POST /upload"))
	if up.Has("http.request.body.content") || up.Str("http.response.body.content") != `{"file":"x"}` {
		t.Errorf("HideRequestBody: %s", up.Raw())
	}
	rec.Assert(t, vigiltest.Field("url.path", "/orders/9"), vigiltest.Field("vigil.view", "order-detail"),
		vigiltest.Field("http.request.body.content", `{"qty":2}`))

	text := string(metricsText(t, c))
	for _, want := range []string{
		`http_requests_total{method="GET",route="GET /healthz",status="200"} 1`,
		`http_requests_total{method="POST",route="POST /orders/{id}",status="200"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestResponseWriterInterfaces(t *testing.T) {
	c, rec := newClient(t, nil)
	h := c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Second)); err != nil {
			t.Errorf("ResponseController through the wrapper: %v", err)
		}
		conn, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		conn.Close()
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n")
	line, _ := bufio.NewReader(conn).ReadString('\n')
	if !strings.HasPrefix(line, "HTTP/1.1 101") {
		t.Errorf("read %q", line)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(rec.Events()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	rec.Assert(t, vigiltest.Field("http.response.status_code", 101))
}

func TestConcurrentRequests(t *testing.T) {
	c, rec := newClient(t, func(cfg *vigil.Config) { cfg.CaptureBodies, cfg.CaptureHeaders = true, true })
	mux := http.NewServeMux()
	mux.Handle("POST /items/{id}", c.Route("POST /items/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		var wg sync.WaitGroup
		for i := 0; i < 3; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				vigil.WithRelated(ctx, "item:"+r.PathValue("id"))
				c.AuthzFailed(ctx, "item", "write")
			}()
		}
		wg.Wait()
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})))
	h := c.Middleware(mux)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				serve(h, request("POST", fmt.Sprintf("/items/%d", g), "192.0.2.1:1", `{"n":1}`, "Content-Type", "application/json"))
				metricsText(t, c)
			}
		}()
	}
	wg.Wait()
	reqs := rec.Find(func(e vigiltest.Event) bool { return e.Action() == "http_request" })
	if len(reqs) != 200 {
		t.Fatalf("%d request events, want 200", len(reqs))
	}
	for _, e := range reqs {
		if objs := e.Strings("related.objects"); len(objs) != 1 || objs[0] != "item:"+strings.TrimPrefix(e.Str("url.path"), "/items/") {
			t.Fatalf("related objects mixed between requests: %s", e.Raw())
		}
		if e.Str("http.response.body.content") != `{"n":1}` {
			t.Fatalf("body: %s", e.Raw())
		}
	}
	if n := len(rec.Find(func(e vigiltest.Event) bool { return e.Action() == "authz_fail" })); n != 600 {
		t.Errorf("%d audit events, want 600", n)
	}
}
