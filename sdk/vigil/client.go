package vigil

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vigilsec/vigil/sdk/redact"
	"github.com/vigilsec/vigil/sdk/shipper"
)

// Sink receives events, one JSON object per call, without a newline. A
// *shipper.Shipper is one; vigiltest provides one that records in memory.
//
// critical is true for audit events: the sink should try harder to keep
// them (the shipper waits for room instead of dropping). Send must not keep
// line after it returns.
type Sink interface {
	Send(ctx context.Context, line []byte, critical bool) error
}

// Config configures a Client. Only Sink is required.
type Config struct {
	Service string // service.name; default: the program's name
	Release string // labels.release when set: the version of the application
	Host    string // host.name; default: os.Hostname

	Sink Sink // where events go (required)

	// Redactor hides secrets in bodies, headers, queries and texts before
	// anything leaves the process; nil means redact.Default().
	Redactor *redact.Redactor

	// MaxBody bounds a captured body, in characters (default 1000), and
	// MaxString each string of a JSON body longer than that (default 250):
	// django-security-logger's truncation (redact.Truncate).
	MaxBody, MaxString int

	// CaptureBodies records request and response bodies whose content type
	// is in BodyContentTypes; CaptureHeaders records request and response
	// headers. Both are redacted. Both are off by default.
	CaptureBodies, CaptureHeaders bool

	// BodyContentTypes lists the content types whose bodies are captured:
	// a subtype ("json" matches application/json and application/problem+json)
	// or a full media type ("text/plain"). Default: json, xml, csv, html,
	// xhtml. Request bodies of HTML forms (application/x-www-form-urlencoded)
	// are captured as well, since that is where logins arrive.
	BodyContentTypes []string

	// RequestIDHeader is the header read for the request ID, set on the
	// response and on outgoing requests. Default: X-Request-ID.
	RequestIDHeader string

	// TrustedProxies are the peers whose ProxyHeader is believed. Empty:
	// the peer is the client, whatever the headers say.
	TrustedProxies []netip.Prefix
	// ProxyHeader is the header the proxies write: HeaderXForwardedFor
	// (default), HeaderForwarded (RFC 7239) or HeaderXRealIP. Only one is
	// read: a proxy that appends to one header passes the other through
	// untouched, so reading both would let a client forge its address.
	ProxyHeader string

	// User returns the user a request is made by. It is called after the
	// handler ran, with the request the middleware passed on. When nil, or
	// when it returns no ID and no name, the actor recorded with WithActor is
	// used.
	User func(*http.Request) (id, name string)

	IgnorePaths []string       // URL path prefixes the middleware does not record
	IgnoreIPs   []netip.Prefix // client addresses the middleware does not record

	// CriticalFail makes an audit call return the error when its event
	// could not be handed to the sink, so that the caller can fail the
	// request. When false, audit calls return nil and the failure is logged
	// to ErrorLog and counted.
	CriticalFail bool

	// RepanicOnPanic makes the middleware panic again after recording a
	// handler's panic, for an outer recovery. By default the middleware
	// answers 500 (when nothing was written yet) and returns.
	RepanicOnPanic bool

	// MaxRoutes bounds the route label of the metrics (default 200); routes
	// beyond it count as "other".
	MaxRoutes int

	Now      func() time.Time // default time.Now
	ErrorLog *slog.Logger     // the SDK's own problems; default slog.Default()
}

// Defaults.
const (
	DefaultRequestIDHeader = "X-Request-ID"
	DefaultMaxRoutes       = 200
)

// DefaultBodyContentTypes are the subtypes whose bodies are captured by
// default, as django-security-logger does.
var DefaultBodyContentTypes = []string{"json", "xml", "csv", "html", "xhtml"}

// Client records security events of one application. It is safe for
// concurrent use.
type Client struct {
	cfg         Config
	red         *redact.Redactor
	sink        Sink
	now         func() time.Time
	static      []byte // ,"service.name":...,"host.name":...
	release     []byte // ,"labels.release":...
	reqIDKey    string // canonical form of RequestIDHeader
	proxyHeader string
	trusted     []netip.Prefix
	bodyTypes   []string
	metrics     *metrics
	realClock   bool // Now is time.Now: durations can use the monotonic clock alone

	sent, failed atomic.Uint64
	lastErrLog   atomic.Int64
}

// ErrNoSink is returned by New without Config.Sink.
var ErrNoSink = errors.New("vigil: Config.Sink is required")

// New returns a Client for c.
func New(c Config) (*Client, error) {
	if c.Sink == nil {
		return nil, ErrNoSink
	}
	if c.Service == "" {
		c.Service = filepath.Base(os.Args[0])
	}
	if c.Host == "" {
		c.Host, _ = os.Hostname()
	}
	if c.MaxBody <= 0 {
		c.MaxBody = redact.DefaultMaxBody
	}
	if c.MaxString <= 0 {
		c.MaxString = redact.DefaultMaxString
	}
	if c.BodyContentTypes == nil {
		c.BodyContentTypes = DefaultBodyContentTypes
	}
	if c.RequestIDHeader == "" {
		c.RequestIDHeader = DefaultRequestIDHeader
	}
	if c.ProxyHeader == "" {
		c.ProxyHeader = HeaderXForwardedFor
	}
	if c.MaxRoutes <= 0 {
		c.MaxRoutes = DefaultMaxRoutes
	}
	realClock := c.Now == nil
	if realClock {
		c.Now = time.Now
	}
	if c.ErrorLog == nil {
		c.ErrorLog = slog.Default()
	}
	proxy := textproto.CanonicalMIMEHeaderKey(c.ProxyHeader)
	switch proxy {
	case HeaderXForwardedFor, HeaderForwarded, HeaderXRealIP:
	default:
		return nil, fmt.Errorf("vigil: Config.ProxyHeader %q: want %s, %s or %s", c.ProxyHeader, HeaderXForwardedFor, HeaderForwarded, HeaderXRealIP)
	}
	for i, p := range c.TrustedProxies {
		if !p.IsValid() {
			return nil, fmt.Errorf("vigil: Config.TrustedProxies[%d] is not a valid prefix", i)
		}
	}
	for i, p := range c.IgnoreIPs {
		if !p.IsValid() {
			return nil, fmt.Errorf("vigil: Config.IgnoreIPs[%d] is not a valid prefix", i)
		}
	}
	cl := &Client{
		cfg:         c,
		red:         c.Redactor,
		sink:        c.Sink,
		now:         c.Now,
		reqIDKey:    textproto.CanonicalMIMEHeaderKey(c.RequestIDHeader),
		proxyHeader: proxy,
		metrics:     newMetrics(c.MaxRoutes),
		realClock:   realClock,
	}
	if cl.red == nil {
		cl.red = redact.Default()
	}
	for _, p := range c.TrustedProxies {
		cl.trusted = append(cl.trusted, p.Masked())
	}
	for _, t := range c.BodyContentTypes {
		cl.bodyTypes = append(cl.bodyTypes, strings.ToLower(strings.TrimSpace(t)))
	}
	var e enc
	e.budget = maxEventBudget
	e.str("service.name", c.Service)
	e.strNZ("host.name", c.Host)
	cl.static = e.b
	if c.Release != "" {
		e = enc{budget: maxEventBudget}
		e.str("labels.release", c.Release)
		cl.release = e.b
	}
	return cl, nil
}

// Flush asks the sink to deliver what it holds, when it can (a
// *shipper.Shipper can).
func (c *Client) Flush(ctx context.Context) error {
	if f, ok := c.sink.(interface{ Flush(context.Context) error }); ok {
		return f.Flush(ctx)
	}
	return nil
}

// Close closes the sink, when it can be closed, delivering what it holds
// within ctx's deadline.
func (c *Client) Close(ctx context.Context) error {
	if f, ok := c.sink.(interface{ Close(context.Context) error }); ok {
		return f.Close(ctx)
	}
	return nil
}

// since returns the time elapsed since start.
func (c *Client) since(start time.Time) time.Duration {
	if c.realClock {
		return time.Since(start) // reads the monotonic clock only
	}
	return c.now().Sub(start)
}

// Redactor returns the redactor the client applies.
func (c *Client) Redactor() *redact.Redactor { return c.red }

// begin starts an event at time t with the fields every event carries.
// category is a JSON array written by this package, or "".
func (c *Client) begin(e *enc, t time.Time, action, category string) {
	e.b = append(e.b, `{"@timestamp":`...)
	e.b = appendTime(e.b, t)
	e.b = append(e.b, `,"event.id":"`...)
	e.b = appendUUIDv7(e.b, t)
	e.b = append(e.b, `","event.kind":"event"`...)
	if category != "" {
		e.raw("event.category", category)
	}
	if action != "" {
		e.str("event.action", action)
	}
	e.b = append(e.b, c.static...)
}

// send ends the event in e and hands it to the sink.
func (c *Client) send(ctx context.Context, e *enc, critical bool) error {
	e.b = append(e.b, '}')
	err := c.sink.Send(ctx, e.b, critical)
	if errors.Is(err, shipper.ErrNotDurable) {
		// Queued, and delivered if it can be: not a refusal.
		c.sent.Add(1)
		c.logError("vigil: critical event queued but not yet durable", err)
		return err
	}
	if err != nil {
		c.failed.Add(1)
		c.logError("vigil: event not queued", err)
		return err
	}
	c.sent.Add(1)
	return nil
}

// logError logs the SDK's own problems, at most once every ten seconds.
func (c *Client) logError(msg string, err error) {
	now := time.Now().UnixNano()
	last := c.lastErrLog.Load()
	if now-last < int64(10*time.Second) || !c.lastErrLog.CompareAndSwap(last, now) {
		return
	}
	c.cfg.ErrorLog.Warn(msg, "err", err, "failed_total", c.failed.Load())
}

// Severity of events, on the 0–10 scale of Vigil's demo data: 1 routine,
// 3 client errors and failed logins, 5 server errors and denied access,
// 6 and above attack indicators.
const (
	sevInfo    = 1
	sevNotice  = 2
	sevWarning = 3
	sevChange  = 4
	sevError   = 5
)

// levelOf returns log.level for a severity.
func levelOf(sev int) string {
	switch {
	case sev >= sevError:
		return "ERROR"
	case sev >= sevWarning:
		return "WARNING"
	}
	return "INFO"
}

// statusLevel maps an HTTP status as django-security-logger does.
func statusLevel(status int) (level string, sev int64, outcome string) {
	switch {
	case status >= 500:
		return "ERROR", sevError, "failure"
	case status >= 400:
		return "WARNING", sevWarning, "failure"
	}
	return "INFO", sevInfo, "success"
}
