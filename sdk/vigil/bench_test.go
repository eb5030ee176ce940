package vigil_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/vigilsec/vigil/sdk/vigil"
)

// discardSink drops every event: the benchmarks measure the SDK, not a
// sink.
type discardSink struct{}

func (discardSink) Send(context.Context, []byte, bool) error { return nil }

// benchWriter is a ResponseWriter that keeps nothing, with a header map
// reused between requests, as net/http's own is per connection.
type benchWriter struct{ h http.Header }

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *benchWriter) WriteHeader(int)             {}

var page = []byte(`{"id":981,"status":"paid"}`)

// app is the handler measured: it sets a content type and writes a small
// JSON body, reading the request body when there is one.
var app = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if r.Body != nil {
		io.Copy(io.Discard, r.Body)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(page)
})

func benchRequest() *http.Request {
	r := httptest.NewRequest("GET", "/orders/981", nil)
	r.RemoteAddr = "203.0.113.7:51234"
	r.Header.Set("User-Agent", "Mozilla/5.0")
	r.Header.Set("X-Request-ID", "0195519c-4f2a-7b3e-9c1d-2e8f6a7b5c4d")
	return r
}

func runBench(b *testing.B, h http.Handler, r *http.Request, body string) {
	w := &benchWriter{h: make(http.Header)}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		clear(w.h)
		if body != "" {
			r.Body = io.NopCloser(strings.NewReader(body))
		}
		h.ServeHTTP(w, r)
	}
}

func BenchmarkBare(b *testing.B) {
	runBench(b, app, benchRequest(), "")
}

func BenchmarkMiddleware(b *testing.B) {
	c, err := vigil.New(vigil.Config{Service: "shop", Host: "web-1", Sink: discardSink{}})
	if err != nil {
		b.Fatal(err)
	}
	runBench(b, c.Middleware(app), benchRequest(), "")
}

// BenchmarkMiddlewareNewID is BenchmarkMiddleware for a request without an
// ID: the middleware makes one.
func BenchmarkMiddlewareNewID(b *testing.B) {
	c, _ := vigil.New(vigil.Config{Service: "shop", Host: "web-1", Sink: discardSink{}})
	r := benchRequest()
	r.Header.Del("X-Request-ID")
	runBench(b, c.Middleware(app), r, "")
}

// BenchmarkMiddlewareQuery adds a query string, which is redacted.
func BenchmarkMiddlewareQuery(b *testing.B) {
	c, _ := vigil.New(vigil.Config{Service: "shop", Host: "web-1", Sink: discardSink{}})
	r := benchRequest()
	r.URL.RawQuery = "page=2&sort=date"
	runBench(b, c.Middleware(app), r, "")
}

func BenchmarkMiddlewareBodies(b *testing.B) {
	c, _ := vigil.New(vigil.Config{Service: "shop", Host: "web-1", Sink: discardSink{}, CaptureBodies: true})
	r := benchRequest()
	r.Method = "POST"
	r.Header.Set("Content-Type", "application/json")
	runBench(b, c.Middleware(app), r, `{"sku":"A-1","qty":2,"password":"hunter2"}`)
}

func BenchmarkLoginFailed(b *testing.B) {
	c, _ := vigil.New(vigil.Config{Service: "shop", Host: "web-1", Sink: discardSink{}})
	ctx := vigil.WithActor(vigil.WithRequestID(context.Background(), "req-1"), "42", "alice")
	b.ReportAllocs()
	for b.Loop() {
		c.LoginFailed(ctx, "alice", "bad password")
	}
}
