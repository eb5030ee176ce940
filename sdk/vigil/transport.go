package vigil

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// TransportOption changes what a Transport records and sends.
type TransportOption func(*transport)

// TransportSlug names the service called ("payment-provider"), written to
// vigil.slug of the events; a slug set with WithSlug on the request's
// context takes precedence.
func TransportSlug(slug string) TransportOption { return func(t *transport) { t.slug = slug } }

// WithoutRequestID stops the Transport from sending the request ID to the
// service called (a third party that need not see it). The event still
// records it.
func WithoutRequestID() TransportOption { return func(t *transport) { t.noRequestID = true } }

// HideBodies keeps the bodies of these requests and responses out of the
// events, whatever Config.CaptureBodies says.
func HideBodies() TransportOption { return func(t *transport) { t.hideBodies = true } }

// Transport returns a RoundTripper that sends requests with base
// (http.DefaultTransport when nil) and records each as an
// http_request_outgoing event: method, url.full (query redacted, no user
// information), url.domain, url.path, url.query, status, duration, error,
// request ID, slug and related objects of the request's context.
//
// The request ID of the context is sent in Config.RequestIDHeader, unless
// the request has that header already or WithoutRequestID is given.
//
// With Config.CaptureBodies, the request body is captured when the request
// can be replayed (GetBody is set, as http.NewRequest does for byte and
// string readers), and the response body as the caller reads it: the event
// is then recorded when the body is closed or read to its end. Otherwise the
// event is recorded when RoundTrip returns.
func (c *Client) Transport(base http.RoundTripper, opts ...TransportOption) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	t := &transport{c: c, base: base}
	for _, o := range opts {
		o(t)
	}
	return t
}

type transport struct {
	c           *Client
	base        http.RoundTripper
	slug        string
	noRequestID bool
	hideBodies  bool
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	c := t.c
	ctx := req.Context()
	var snap snapshot
	if st := stateOf(ctx); st != nil {
		snap = st.snapshot()
	}
	out := req
	if snap.id != "" && !t.noRequestID && len(req.Header[c.reqIDKey]) == 0 {
		out = req.Clone(ctx) // a RoundTripper must not change the request
		out.Header[c.reqIDKey] = []string{snap.id}
	}
	capture := c.cfg.CaptureBodies && !t.hideBodies
	var reqBody []byte
	if capture && req.GetBody != nil && req.Body != nil && req.Body != http.NoBody && c.captureRequest(req.Header) {
		if body, err := req.GetBody(); err == nil {
			reqBody, _ = io.ReadAll(io.LimitReader(body, int64(max(bodyCaptureLimit, c.cfg.MaxBody))))
			body.Close()
		}
	}
	start := c.now()
	resp, err := t.base.RoundTrip(out)
	rec := &outgoing{t: t, ctx: ctx, req: out, snap: snap, start: start, dur: c.since(start), reqBody: reqBody, err: err, resp: resp}
	if err == nil && resp != nil && capture && resp.Body != nil && resp.Body != http.NoBody &&
		len(resp.Header["Content-Encoding"]) == 0 && c.listedType(mediaType(resp.Header.Get("Content-Type"))) {
		rec.body = resp.Body
		resp.Body = rec
		return resp, err
	}
	rec.record()
	return resp, err
}

// outgoing is the record of one outgoing request; when the response body is
// captured, it is also the body handed to the caller.
type outgoing struct {
	t       *transport
	ctx     context.Context
	req     *http.Request
	resp    *http.Response
	snap    snapshot
	start   time.Time
	dur     time.Duration
	reqBody []byte
	err     error

	mu       sync.Mutex
	body     io.ReadCloser
	captured []byte
	done     bool
}

func (o *outgoing) Read(p []byte) (int, error) {
	n, err := o.body.Read(p)
	o.mu.Lock()
	if room := max(bodyCaptureLimit, o.t.c.cfg.MaxBody) - len(o.captured); room > 0 && n > 0 {
		o.captured = append(o.captured, p[:min(n, room)]...)
	}
	o.mu.Unlock()
	if err == io.EOF {
		o.record()
	}
	return n, err
}

func (o *outgoing) Close() error {
	err := o.body.Close()
	o.record()
	return err
}

// record sends the event, once.
func (o *outgoing) record() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.done {
		return
	}
	o.done = true
	c := o.t.c
	req := o.req
	e := getEnc()
	defer putEnc(e)
	c.begin(e, o.start, "http_request_outgoing", `["web"]`)
	e.raw("event.type", `["connection"]`)
	e.b = append(e.b, c.release...)
	level, sev, outcome := "ERROR", int64(sevError), "failure"
	if o.err == nil && o.resp != nil {
		level, sev, outcome = statusLevel(o.resp.StatusCode)
	}
	e.str("event.outcome", outcome)
	e.int("event.severity", sev)
	e.str("log.level", level)
	e.int("event.duration", int64(o.dur))
	e.strNZ("http.request.id", o.snap.id)
	e.str("http.request.method", methodOf(req))
	u := req.URL
	query := ""
	if u.RawQuery != "" {
		query = c.red.URL(u.RawQuery)
	}
	full := u.Scheme + "://" + u.Host + u.EscapedPath()
	if query != "" {
		full += "?" + query
	}
	e.str("url.full", full)
	e.str("url.scheme", u.Scheme)
	e.strNZ("url.domain", u.Hostname())
	e.str("url.path", u.Path)
	e.strNZ("url.query", query)
	if o.resp != nil && o.resp.StatusCode >= 100 && o.resp.StatusCode <= 599 {
		e.int("http.response.status_code", int64(o.resp.StatusCode))
	}
	if o.err != nil {
		msg := o.err.Error()
		if u.RawQuery != "" {
			msg = strings.ReplaceAll(msg, u.RawQuery, query)
		}
		e.str("error.message", c.red.Text(msg))
	}
	slug := o.snap.slug
	if slug == "" {
		slug = o.t.slug
	}
	e.strNZ("vigil.slug", slug)
	if len(o.snap.related) > 0 {
		e.strs("related.objects", o.snap.related)
	}
	if c.cfg.CaptureHeaders {
		e.headers("http.request.headers", c.red.Headers(req.Header))
		if o.resp != nil {
			e.headers("http.response.headers", c.red.Headers(o.resp.Header))
		}
	}
	if len(o.reqBody) > 0 {
		e.bytes("http.request.body.content", c.prepareBody(o.reqBody))
	}
	if len(o.captured) > 0 {
		e.bytes("http.response.body.content", c.prepareBody(o.captured))
	}
	c.send(context.WithoutCancel(o.ctx), e, false)
}

func methodOf(r *http.Request) string {
	if r.Method == "" {
		return http.MethodGet
	}
	return r.Method
}
