package api

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilsec/vigil/internal/auth"
	"github.com/vigilsec/vigil/internal/event"
)

// Actions of the access events.
const (
	// ActionAPIUnauthenticated: requests without a valid, unexpired token.
	ActionAPIUnauthenticated = "vigil_api_unauthenticated"
)

// AccessLog records in the log itself who used the API: the log is an
// audit trail, and reading an audit trail must leave a trace (PCI DSS
// 10.2.1.3, SOC 2 CC7.2). Requests are summed per token, route, client
// address and outcome over an interval, and each sum becomes one event at
// the end of it:
//
//   - sensitive_read: requests a token made (success), with vigil.access;
//   - authz_fail: requests refused to a token (403);
//   - vigil_api_unauthenticated: requests without a valid token (401).
//
// Sending events (POST /api/v1/events) with a valid token is not recorded:
// the events sent are in the log already. Neither are Prometheus scrapes of
// /metrics with a valid token, nor requests to public routes without a
// token (checkpoints, health): they reveal no event.
// Summing bounds what a client polling the API, or a scan, adds to the
// log: at most one event per key and interval, and at most MaxKeys keys
// (the rest are counted and reported in one event).
type AccessLog struct {
	// Append stores the events (durably, like any audit event).
	Append func(context.Context, []event.Event) error
	// Interval between two flushes (default 1 minute).
	Interval time.Duration
	// MaxKeys bounds the distinct keys summed in one interval (default
	// 10,000).
	MaxKeys int
	Now     func() time.Time
	Log     *slog.Logger
	// Requests, when set, counts every request to the API by route
	// pattern and status code (vigil_api_requests_total), ingest included.
	Requests *prometheus.CounterVec

	mu      sync.Mutex
	m       map[accessKey]*accessSum
	dropped int64
}

// accessOutcome is how the API answered.
type accessOutcome uint8

const (
	accessAllowed         accessOutcome = iota
	accessDenied                        // 403
	accessUnauthenticated               // 401
)

type accessKey struct {
	token, role string // empty without a valid token
	route       string // the route pattern, or method and path when none matched
	ip          string
	outcome     accessOutcome
}

type accessSum struct {
	first, last time.Time
	n           int64
	example     string // the first request's path and query
	reason      string // why a request was refused (the first one's)
}

// maxExample bounds the example request kept per key.
const maxExample = 512

func (a *AccessLog) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *AccessLog) log() *slog.Logger {
	if a.Log != nil {
		return a.Log
	}
	return slog.Default()
}

// Middleware records the API requests next serves. It must wrap the
// ServeMux itself, so that the route pattern the mux matched is known; the
// token comes from auth.Tokens.Require through auth.Track.
func (a *AccessLog) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if !strings.HasPrefix(p, "/api/") && p != "/metrics" && !strings.HasPrefix(p, "/debug/") {
			next.ServeHTTP(w, r)
			return
		}
		ctx, who := auth.Track(r.Context())
		r = r.WithContext(ctx)
		aw := &accessWriter{ResponseWriter: w}
		aw.record = func(status int) {
			if a.Requests != nil {
				a.Requests.WithLabelValues(routeOf(r), strconv.Itoa(status)).Inc()
			}
			a.record(r, who, status)
		}
		next.ServeHTTP(aw, r)
		aw.done()
	})
}

// record adds one answered request.
func (a *AccessLog) record(r *http.Request, who *auth.Tracked, status int) {
	k := accessKey{route: routeOf(r), ip: clientIP(r)}
	reason := ""
	switch {
	case status == http.StatusUnauthorized:
		k.outcome, reason = accessUnauthenticated, who.Refused
	case status == http.StatusForbidden && who.Entry.Name != "":
		k.outcome, reason = accessDenied, who.Refused
	case who.Entry.Name == "":
		return // a public route, no token
	case r.Method == http.MethodPost && r.URL.Path == "/api/v1/events":
		return // the events sent are the record
	case r.URL.Path == "/metrics":
		return // counters, no event: a scraper every 15 s would only add noise
	}
	if who.Entry.Name != "" {
		k.token, k.role = who.Entry.Name, who.Entry.Role
	}
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[accessKey]*accessSum{}
	}
	s := a.m[k]
	if s == nil {
		if len(a.m) >= a.maxKeys() {
			a.dropped++
			return
		}
		ex := r.URL.RequestURI()
		if len(ex) > maxExample {
			ex = strings.ToValidUTF8(ex[:maxExample], "") + "…"
		}
		s = &accessSum{first: now, example: ex, reason: reason}
		a.m[k] = s
	}
	s.n++
	s.last = now
}

func (a *AccessLog) maxKeys() int {
	if a.MaxKeys > 0 {
		return a.MaxKeys
	}
	return 10000
}

// routeOf is the route pattern the mux matched, or "unmatched" (a path
// no route serves: its text would make unbounded labels and keys).
func routeOf(r *http.Request) string {
	if r.Pattern != "" {
		return r.Pattern
	}
	return "unmatched"
}

// clientIP is the address the request came from (Vigil's API is not meant
// to sit behind a proxy that rewrites it).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Run flushes every Interval until ctx ends, then once more.
func (a *AccessLog) Run(ctx context.Context) {
	iv := a.Interval
	if iv <= 0 {
		iv = time.Minute
	}
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			a.Flush(context.Background())
			return
		case <-t.C:
			a.Flush(ctx)
		}
	}
}

// Flush appends the events of what was summed since the last flush. Sums
// that could not be stored are kept for the next flush.
func (a *AccessLog) Flush(ctx context.Context) error {
	a.mu.Lock()
	m, dropped := a.m, a.dropped
	a.m, a.dropped = nil, 0
	a.mu.Unlock()
	if len(m) == 0 && dropped == 0 {
		return nil
	}
	evs := make([]event.Event, 0, len(m)+1)
	for k, s := range m {
		e, err := accessEvent(k, s)
		if err != nil {
			a.log().Error("access log: build event", "err", err)
			continue
		}
		evs = append(evs, e)
	}
	if dropped > 0 {
		if e, err := droppedEvent(dropped, a.maxKeys(), a.now()); err == nil {
			evs = append(evs, e)
		}
	}
	if err := a.Append(ctx, evs); err != nil {
		a.log().Error("access log: store the access events; kept for the next flush", "events", len(evs), "err", err)
		a.mu.Lock()
		a.restore(m, dropped)
		a.mu.Unlock()
		return err
	}
	return nil
}

// restore merges sums that could not be stored back (a.mu held).
func (a *AccessLog) restore(m map[accessKey]*accessSum, dropped int64) {
	if a.m == nil {
		a.m = map[accessKey]*accessSum{}
	}
	a.dropped += dropped
	for k, s := range m {
		if cur := a.m[k]; cur != nil {
			cur.n += s.n
			cur.first = s.first
			cur.example, cur.reason = s.example, s.reason
			continue
		}
		if len(a.m) >= a.maxKeys() {
			a.dropped++
			continue
		}
		a.m[k] = s
	}
}

func accessEvent(k accessKey, s *accessSum) (event.Event, error) {
	method, _, _ := strings.Cut(k.route, " ")
	ev := map[string]any{"kind": "event", "start": s.first, "end": s.last}
	var msg string
	who := "token " + k.token
	switch k.outcome {
	case accessAllowed:
		ev["category"], ev["type"], ev["action"], ev["outcome"] = []string{"web"}, []string{"access"}, event.ActionSensitiveRead, "success"
		msg = fmt.Sprintf("API: %s made %d request(s) to %s from %s", who, s.n, k.route, k.ip)
	case accessDenied:
		ev["category"], ev["type"], ev["action"], ev["outcome"] = []string{"web"}, []string{"denied"}, event.ActionAuthzFail, "failure"
		msg = fmt.Sprintf("API: %d request(s) to %s refused to %s (role %s) from %s", s.n, k.route, who, k.role, k.ip)
	default:
		ev["category"], ev["type"], ev["action"], ev["outcome"] = []string{"authentication"}, []string{"denied"}, ActionAPIUnauthenticated, "failure"
		msg = fmt.Sprintf("API: %d request(s) to %s without a valid token from %s", s.n, k.route, k.ip)
	}
	access := map[string]any{"route": k.route, "requests": s.n, "example": s.example}
	if s.reason != "" {
		access["reason"] = s.reason
	}
	if k.role != "" {
		access["role"] = k.role
	}
	doc := map[string]any{
		"@timestamp": s.last,
		"event":      ev,
		"service":    map[string]any{"name": "vigil"},
		"http":       map[string]any{"request": map[string]any{"method": method}},
		"message":    msg,
		"vigil":      map[string]any{"access": access},
	}
	if k.ip != "" {
		doc["source"] = map[string]any{"ip": k.ip}
	}
	if k.token != "" {
		doc["user"] = map[string]any{"name": k.token}
	}
	return event.FromDoc(doc, s.last)
}

func droppedEvent(n int64, max int, now time.Time) (event.Event, error) {
	return event.FromDoc(map[string]any{
		"@timestamp": now,
		"event":      map[string]any{"kind": "event", "category": []string{"web"}, "type": []string{"info"}, "action": event.ActionSensitiveRead, "outcome": "unknown"},
		"service":    map[string]any{"name": "vigil"},
		"message":    fmt.Sprintf("API: %d request(s) of more than %d distinct clients and routes in one interval were not itemised", n, max),
		"vigil":      map[string]any{"access": map[string]any{"not_itemised": n}},
	}, now)
}

// accessWriter calls record once, with the status of the answer, when the
// handler starts answering (a stream is recorded when it starts, not when
// it ends) or, if it never writes, when it returns.
type accessWriter struct {
	http.ResponseWriter
	record  func(status int)
	written bool
}

func (w *accessWriter) note(status int) {
	if !w.written {
		w.written = true
		w.record(status)
	}
}

func (w *accessWriter) WriteHeader(status int) {
	if status >= 200 {
		w.note(status)
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *accessWriter) Write(b []byte) (int, error) {
	w.note(http.StatusOK)
	return w.ResponseWriter.Write(b)
}

// Flush lets streaming handlers flush through the wrapper.
func (w *accessWriter) Flush() {
	w.note(http.StatusOK)
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *accessWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *accessWriter) done() { w.note(http.StatusOK) }
