package vigil

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
)

// Limits of what the middleware keeps from one request.
const (
	bodyCaptureLimit = 64 << 10 // bytes of a body kept before redaction and truncation
	maxStackBytes    = 8 << 10  // of a panic's stack trace
	maxRequestIDLen  = 128
)

// Middleware returns a handler that records every request next serves as
// one http_request event (docs/sdk.md lists its fields), sets the request
// ID, recovers panics and counts the metrics served by Metrics.
//
// The route: wrap next's handlers with Route, which records the pattern
// and the route's options in the request's context, so it is seen whatever
// other middleware copies the request. Without Route, the middleware reads
// r.Pattern of the request it passed on after next returns: a
// *http.ServeMux sets it there when next is the mux itself.
//
// A panic in next is recorded as an error event with its value and stack,
// counted in http_panics_total, and answered with 500 when nothing was
// written yet; the middleware then returns normally, unless
// Config.RepanicOnPanic is set. http.ErrAbortHandler is always re-panicked,
// as net/http expects.
func (c *Client) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.serveHTTP(next, w, r)
	})
}

func (c *Client) ignoredPath(p string) bool {
	for _, prefix := range c.cfg.IgnorePaths {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return false
}

func (c *Client) ignoredIP(ip netip.Addr) bool {
	for _, p := range c.cfg.IgnoreIPs {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// validRequestID reports whether a request ID read from a header can be
// used: 1 to 128 bytes of visible ASCII.
func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < '!' || id[i] > '~' {
			return false
		}
	}
	return true
}

func (c *Client) serveHTTP(next http.Handler, w http.ResponseWriter, r *http.Request) {
	if len(c.cfg.IgnorePaths) > 0 && c.ignoredPath(r.URL.Path) {
		next.ServeHTTP(w, r)
		return
	}
	ip, port := c.clientAddr(r)
	if len(c.cfg.IgnoreIPs) > 0 && c.ignoredIP(ip) {
		next.ServeHTTP(w, r)
		return
	}
	start := c.now()
	c.metrics.inFlight.Add(1)

	rc := &reqCtx{Context: r.Context()}
	st := &rc.st
	st.root = st
	st.method, st.path, st.ip, st.port, st.inRequest = r.Method, r.URL.Path, ip, port, true
	if v := r.Header[c.reqIDKey]; len(v) > 0 && validRequestID(v[0]) {
		st.id = v[0]
	} else {
		st.setGeneratedID(appendUUIDv7(st.idBuf[:0], start))
	}
	st.idHdr[0] = st.id
	w.Header()[c.reqIDKey] = st.idHdr[:]

	r2 := r.WithContext(rc)
	rw := getWriter(w, c)
	var reqBody *bodyCapture
	if c.cfg.CaptureBodies && r.Body != nil && r.Body != http.NoBody && c.captureRequest(r.Header) {
		reqBody = &bodyCapture{rc: r.Body, limit: max(bodyCaptureLimit, c.cfg.MaxBody)}
		r2.Body = reqBody
	}

	p, stack := c.run(next, rw, r2)
	if p != nil && !rw.wroteHeader && !rw.hijacked && p != http.ErrAbortHandler {
		rw.WriteHeader(http.StatusInternalServerError)
	}
	status := rw.status
	if !rw.wroteHeader {
		status = http.StatusOK
		if rw.hijacked {
			status = http.StatusSwitchingProtocols
		}
	}
	dur := c.since(start)

	st.mu.Lock()
	rt, actorID, actor, related := st.rt, st.actorID, st.actor, st.related
	st.mu.Unlock()
	if rt == nil {
		rt = &noRoute
	}
	route, view, exempt, hideReq, hideResp := rt.pattern, rt.slug, rt.exempt, rt.hideReq, rt.hideResp
	if route == "" {
		route = r2.Pattern
	}
	c.metrics.observe(r.Method, route, status, dur, p != nil && p != http.ErrAbortHandler)
	c.metrics.inFlight.Add(-1)

	if !exempt {
		if c.cfg.User != nil {
			if id, name := c.cfg.User(r2); id != "" || name != "" {
				actorID, actor = id, name
			}
		}
		if view == "" {
			view = route
		}
		e := getEnc()
		c.begin(e, start, "http_request", `["web"]`)
		e.b = append(e.b, c.release...)
		switch {
		case p != nil || status >= 500:
			e.b = append(e.b, `,"event.outcome":"failure","event.severity":5,"log.level":"ERROR"`...)
		case status >= 400:
			e.b = append(e.b, `,"event.outcome":"failure","event.severity":3,"log.level":"WARNING"`...)
		default:
			e.b = append(e.b, `,"event.outcome":"success","event.severity":1,"log.level":"INFO"`...)
		}
		e.int("event.duration", int64(dur))
		e.str("http.request.id", st.id)
		e.str("http.request.method", r.Method)
		if status >= 100 && status <= 599 {
			e.int("http.response.status_code", int64(status))
		} else {
			e.int("labels.status_code", int64(status))
		}
		e.int("http.response.body.bytes", rw.bytes)
		if r.ContentLength > 0 {
			e.int("http.request.body.bytes", r.ContentLength)
		}
		e.str("url.path", r.URL.Path)
		if r.URL.RawQuery != "" {
			e.str("url.query", c.red.URL(r.URL.RawQuery))
		}
		if h := hostOnly(r.Host); h != "" {
			e.str("url.domain", h)
		}
		if r.TLS != nil {
			e.b = append(e.b, `,"url.scheme":"https"`...)
		} else {
			e.b = append(e.b, `,"url.scheme":"http"`...)
		}
		e.addr(ip, port)
		e.strNZ("user.id", actorID)
		e.strNZ("user.name", actor)
		if ua := r.Header["User-Agent"]; len(ua) > 0 && ua[0] != "" {
			e.str("user_agent.original", ua[0])
		}
		e.strNZ("vigil.view", view)
		if len(related) > 0 {
			e.strs("related.objects", related)
		}
		if c.cfg.CaptureHeaders {
			e.headers("http.request.headers", c.red.Headers(r.Header))
			e.headers("http.response.headers", c.red.Headers(rw.w.Header()))
		}
		if reqBody != nil && !hideReq && len(reqBody.buf) > 0 {
			e.bytes("http.request.body.content", c.prepareBody(reqBody.buf))
		}
		if rw.capture > 0 && !rw.streaming && !hideResp && len(rw.body) > 0 {
			e.bytes("http.response.body.content", c.prepareBody(rw.body))
		}
		if p != nil {
			e.str("error.type", "panic")
			e.str("error.message", c.red.Text(panicText(p)))
			e.bytes("error.stack_trace", stack)
		}
		c.send(context.Background(), e, false)
		putEnc(e)
	}
	putWriter(rw)
	if p == http.ErrAbortHandler || (p != nil && c.cfg.RepanicOnPanic) {
		panic(p)
	}
}

// run serves r with next, recovering a panic.
func (c *Client) run(next http.Handler, w *respWriter, r *http.Request) (p any, stack []byte) {
	defer func() {
		if v := recover(); v != nil {
			p = v
			if v != http.ErrAbortHandler {
				stack = debug.Stack()
				if len(stack) > maxStackBytes {
					stack = stack[:maxStackBytes]
				}
			}
		}
	}()
	next.ServeHTTP(w, r)
	return nil, nil
}

func panicText(p any) string {
	switch v := p.(type) {
	case error:
		return v.Error()
	case string:
		return v
	}
	return fmt.Sprint(p)
}

// prepareBody hides secrets in a captured body, then truncates it, in
// django-security-logger's order.
func (c *Client) prepareBody(b []byte) []byte {
	return c.red.Prepare(b, c.cfg.MaxBody, c.cfg.MaxString)
}

// hostOnly returns the host of a Host header, without the port.
func hostOnly(h string) string {
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i > 0 {
			return h[1:i]
		}
		return ""
	}
	if i := strings.IndexByte(h, ':'); i >= 0 && strings.IndexByte(h[i+1:], ':') < 0 {
		return h[:i]
	}
	return h
}

// addr appends source.ip and source.port.
func (e *enc) addr(ip netip.Addr, port uint16) {
	if !ip.IsValid() {
		return
	}
	e.key("source.ip")
	e.b = append(e.b, '"')
	e.b = ip.WithZone("").AppendTo(e.b)
	e.b = append(e.b, '"')
	if port != 0 {
		e.int("source.port", int64(port))
	}
}

// headers appends a header object: lower-case names (dots made
// underscores, so that Vigil does not read them as nested fields), sorted.
func (e *enc) headers(k string, h map[string]string) {
	names := make([]string, 0, len(h))
	for n := range h {
		names = append(names, n)
	}
	slices.Sort(names)
	e.key(k)
	e.b = append(e.b, '{')
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		key := validUTF8(strings.ReplaceAll(strings.ToLower(n), ".", "_"))
		if seen[key] {
			continue
		}
		seen[key] = true
		if len(seen) > 1 {
			e.b = append(e.b, ',')
		}
		e.b = appendJSONString(e.b, key)
		e.b = append(e.b, ':')
		e.b = appendStr(e, e.b, h[n])
	}
	e.b = append(e.b, '}')
}

// captureRequest reports whether a request body is captured.
func (c *Client) captureRequest(h http.Header) bool {
	if len(h["Content-Encoding"]) > 0 {
		return false
	}
	ct := h["Content-Type"]
	if len(ct) == 0 {
		return false
	}
	mt := mediaType(ct[0])
	return strings.EqualFold(mt, "application/x-www-form-urlencoded") || c.listedType(mt)
}

// listedType reports whether media type mt is one of Config.BodyContentTypes.
func (c *Client) listedType(mt string) bool {
	slash := strings.IndexByte(mt, '/')
	if slash < 0 {
		return false
	}
	sub := mt[slash+1:]
	for _, t := range c.bodyTypes {
		if strings.IndexByte(t, '/') >= 0 {
			if strings.EqualFold(mt, t) {
				return true
			}
			continue
		}
		if strings.EqualFold(sub, t) ||
			len(sub) > len(t) && sub[len(sub)-len(t)-1] == '+' && strings.EqualFold(sub[len(sub)-len(t):], t) {
			return true
		}
	}
	return false
}

// mediaType returns the media type of a Content-Type value, without
// parameters.
func mediaType(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.TrimSpace(ct)
}

// bodyCapture keeps the first bytes of a request body as the handler reads
// it. The middleware never reads a body itself: what the handler did not
// read is not captured.
type bodyCapture struct {
	rc    io.ReadCloser
	buf   []byte
	limit int
}

func (b *bodyCapture) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if room := b.limit - len(b.buf); room > 0 && n > 0 {
		b.buf = append(b.buf, p[:min(n, room)]...)
	}
	return n, err
}

func (b *bodyCapture) Close() error { return b.rc.Close() }

// Route wraps the handler of one route: it records pattern (the route of
// the request event and of the metrics) and opts in the request's context
// before calling h. Register it with the mux under the same pattern:
//
//	mux.Handle("GET /orders/{id}", c.Route("GET /orders/{id}", orderHandler, vigil.Slug("order-detail")))
func (c *Client) Route(pattern string, h http.Handler, opts ...RouteOption) http.Handler {
	rt := &route{pattern: pattern, h: h}
	for _, o := range opts {
		o(rt)
	}
	return rt
}

// RouteOption changes how the requests of a route are recorded.
type RouteOption func(*route)

// Exempt stops the requests of the route from being recorded as events
// (health checks); they are still counted in the metrics.
func Exempt() RouteOption { return func(r *route) { r.exempt = true } }

// HideRequestBody keeps the request bodies of the route out of the events
// (a file upload, a password form whose redaction is not trusted).
func HideRequestBody() RouteOption { return func(r *route) { r.hideReq = true } }

// HideResponseBody keeps the response bodies of the route out of the events.
func HideResponseBody() RouteOption { return func(r *route) { r.hideResp = true } }

// Slug names the route (django-security-logger's view slug, "order-detail"):
// vigil.view of its events, instead of the pattern.
func Slug(name string) RouteOption { return func(r *route) { r.slug = name } }

// noRoute stands for the options of a request no Route saw.
var noRoute route

type route struct {
	pattern           string
	h                 http.Handler
	slug              string
	exempt            bool
	hideReq, hideResp bool
}

func (rt *route) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if st := stateOf(r.Context()); st != nil && st.root != nil && st.root.inRequest {
		root := st.root
		root.mu.Lock()
		root.rt = rt
		root.mu.Unlock()
	}
	rt.h.ServeHTTP(w, r)
}

// respWriter records what a handler answers. It is pooled: a handler must
// not use it after returning, as net/http requires of every ResponseWriter.
type respWriter struct {
	w           http.ResponseWriter
	c           *Client
	status      int
	bytes       int64
	wroteHeader bool
	hijacked    bool
	streaming   bool // Flush was called: the body is not captured
	capture     int8 // 0 undecided, 1 capturing, -1 not capturing
	body        []byte
}

var writerPool = sync.Pool{New: func() any { return new(respWriter) }}

func getWriter(w http.ResponseWriter, c *Client) *respWriter {
	rw := writerPool.Get().(*respWriter)
	body := rw.body[:0]
	*rw = respWriter{w: w, c: c, body: body}
	if !c.cfg.CaptureBodies {
		rw.capture = -1
	}
	return rw
}

func putWriter(rw *respWriter) {
	if cap(rw.body) > bodyCaptureLimit {
		rw.body = nil
	}
	rw.w, rw.c = nil, nil
	writerPool.Put(rw)
}

func (w *respWriter) Header() http.Header { return w.w.Header() }

func (w *respWriter) WriteHeader(code int) {
	if !w.wroteHeader && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status, w.wroteHeader = code, true
		if w.capture == 0 {
			if ct := w.w.Header()["Content-Type"]; len(ct) > 0 {
				w.decide(ct[0])
			}
		}
	}
	w.w.WriteHeader(code)
}

// decide settles whether the response body is captured, from its content
// type.
func (w *respWriter) decide(ct string) {
	w.capture = -1
	if len(w.w.Header()["Content-Encoding"]) == 0 && w.c.listedType(mediaType(ct)) {
		w.capture = 1
	}
}

func (w *respWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = http.StatusOK, true
	}
	if w.capture == 0 {
		if ct := w.w.Header()["Content-Type"]; len(ct) > 0 {
			w.decide(ct[0])
		} else {
			w.decide(http.DetectContentType(p)) // as net/http will
		}
	}
	if w.capture > 0 && !w.streaming {
		if room := max(bodyCaptureLimit, w.c.cfg.MaxBody) - len(w.body); room > 0 {
			w.body = append(w.body, p[:min(len(p), room)]...)
		}
	}
	n, err := w.w.Write(p)
	w.bytes += int64(n)
	return n, err
}

// Flush sends what was written; the response is streaming and its body is
// not captured.
func (w *respWriter) Flush() {
	w.FlushError()
}

// FlushError is Flush for http.ResponseController.
func (w *respWriter) FlushError() error {
	if !w.wroteHeader {
		w.status, w.wroteHeader = http.StatusOK, true
	}
	w.streaming = true
	w.body = w.body[:0]
	return http.NewResponseController(w.w).Flush()
}

// Hijack hands the connection over (a WebSocket upgrade).
func (w *respWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(w.w).Hijack()
	if err == nil {
		w.hijacked = true
	}
	return conn, rw, err
}

// Unwrap gives http.ResponseController the ResponseWriter underneath.
func (w *respWriter) Unwrap() http.ResponseWriter { return w.w }

var _ interface {
	http.Flusher
	http.Hijacker
} = (*respWriter)(nil)
