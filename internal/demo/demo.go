// Package demo generates the security events of a small simulated web shop,
// "shop", so that Vigil can be shown and tested without a real application.
//
// The traffic is deterministic for a seed and bounded in time: customers
// browse and buy, a few mistype their password, and during the run four
// incidents happen once each:
//
//   - a password brute force against user "alice" from BruteForceIP, about 60
//     failed logins in under two minutes, ending in an account lock;
//   - a vulnerability scanner from ScannerIP probing well-known paths (/.env,
//     /wp-login.php, /.git/config, ...) and trying SQL injection, XSS and path
//     traversal in query strings;
//   - the administrator changing the payment provider (sys_config_change);
//   - a customer trying to open /admin (authz_fail).
//
// Every address is taken from the documentation ranges (RFC 5737 and RFC 3849),
// so the data can never point at a real host.
//
// Events use Elastic Common Schema field names as nested JSON objects and OWASP
// Logging Vocabulary actions. event.severity is on a 0–10 scale: 1 for routine
// activity, 3 for client errors and failed logins, 5 for server errors and
// denied access, 6 and above for attack indicators.
package demo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// The fixed cast of the simulation, for demos and tests that look for them.
const (
	Service        = "shop"         // service.name of every event
	Host           = "shop-web-1"   // host.name of every event
	BruteForceIP   = "203.0.113.66" // source of the brute-force run
	BruteForceUser = "alice"        // account the brute force targets
	ScannerIP      = "198.51.100.23"
	AdminIP        = "192.0.2.10"
	AdminUser      = "admin"
)

// DefaultStart is the simulated start time when Options.Start is zero. A fixed
// default keeps the output identical from one run to the next.
var DefaultStart = time.Date(2026, time.March, 2, 9, 0, 0, 0, time.UTC)

// Limits and defaults of Options.
const (
	DefaultDuration = 10 * time.Minute
	MinDuration     = 5 * time.Minute
	MaxDuration     = 24 * time.Hour
	MaxScale        = 100
)

// Options shape the generated traffic. The zero value is a valid choice:
// seed 0, DefaultStart, DefaultDuration, scale 1.
type Options struct {
	Seed  uint64    // seed of the random source; same seed, same events
	Start time.Time // first possible event time; zero means DefaultStart
	// Duration of simulated time; zero means DefaultDuration. It is clamped to
	// [MinDuration, MaxDuration]. Normal traffic grows with it, the incidents
	// happen once whatever the duration.
	Duration time.Duration
	// Scale multiplies the normal traffic; zero or less means 1, values above
	// MaxScale are clamped. Scale 1 over 10 minutes gives about 2,000 events.
	Scale float64
}

// Event is one generated event.
type Event struct {
	Time   time.Time // @timestamp, millisecond precision
	Action string    // event.action
	Line   []byte    // the event as one compact JSON object, without newline
}

// Generate returns the events of one simulated run, ordered by time (events at
// the same millisecond keep the order in which they happened). All times are in
// [Start, Start+Duration).
func Generate(opts Options) []Event {
	opts = opts.normalized()
	g := &generator{
		rng:   rand.New(rand.NewPCG(opts.Seed, 0x5eed_0f_5b0b)),
		start: opts.Start,
		end:   opts.Start.Add(opts.Duration),
	}
	d := opts.Duration
	customers := g.customers(opts.Scale)

	// Normal traffic: sessions arrive through the whole run, about 160 per
	// 10 minutes at scale 1.
	sessions := int(math.Round(160 * opts.Scale * float64(d) / float64(10*time.Minute)))
	sessions = max(sessions, 1)
	for range sessions {
		c := customers[g.rng.IntN(len(customers))]
		at := g.start.Add(time.Duration(g.rng.Int64N(int64(d))))
		g.session(c, at)
	}

	// Background jobs that run on a schedule, every five minutes.
	for at := g.start.Add(150 * time.Second); at.Before(g.end); at = at.Add(5 * time.Minute) {
		g.job(at, "expire_carts", "default", nil)
	}

	// A returning customer who knows what to buy, so that even a short run
	// has a payment, then the incidents, at fixed fractions of the run.
	g.quickPurchase(customers[1%len(customers)], g.at(d, 0.05))
	g.bruteForce(g.at(d, 0.30), min(2*time.Minute, d/5))
	g.adminChange(g.at(d, 0.45))
	g.scanner(g.at(d, 0.60), min(90*time.Second, d/5))
	g.authzFail(customers[0], g.at(d, 0.75))

	events := g.events[:0]
	for _, e := range g.events {
		if !e.Time.Before(g.start) && e.Time.Before(g.end) {
			events = append(events, e)
		}
	}
	slices.SortStableFunc(events, func(a, b Event) int { return a.Time.Compare(b.Time) })
	return events
}

// NDJSON joins events into newline-delimited JSON, each line ending in "\n":
// the body of a POST /api/v1/events request.
func NDJSON(events []Event) []byte {
	n := 0
	for _, e := range events {
		n += len(e.Line) + 1
	}
	b := make([]byte, 0, n)
	for _, e := range events {
		b = append(b, e.Line...)
		b = append(b, '\n')
	}
	return b
}

func (o Options) normalized() Options {
	if o.Start.IsZero() {
		o.Start = DefaultStart
	}
	o.Start = o.Start.Truncate(time.Millisecond)
	if o.Duration == 0 {
		o.Duration = DefaultDuration
	}
	o.Duration = min(max(o.Duration, MinDuration), MaxDuration)
	if !(o.Scale > 0) { // also catches NaN
		o.Scale = 1
	}
	o.Scale = min(o.Scale, MaxScale)
	return o
}

// generator accumulates events; scenarios may emit them out of order and
// Generate sorts them at the end.
type generator struct {
	rng        *rand.Rand
	start, end time.Time
	events     []Event
	orders     int // last order number handed out
}

// at returns the time at fraction f of a run of length d.
func (g *generator) at(d time.Duration, f float64) time.Time {
	return g.start.Add(time.Duration(float64(d) * f))
}

// fields is an event under construction: nested objects, built with set.
type fields map[string]any

// set stores v under a dotted ECS path, creating the nested objects on the way:
// set("source.ip", ip) gives {"source":{"ip":ip}}.
func (f fields) set(path string, v any) fields {
	m := map[string]any(f)
	for {
		head, rest, nested := strings.Cut(path, ".")
		if !nested {
			m[head] = v
			return f
		}
		child, ok := m[head].(map[string]any)
		if !ok {
			child = map[string]any{}
			m[head] = child
		}
		m, path = child, rest
	}
}

// timeLayout is RFC 3339 with milliseconds, always three digits.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// base starts an event with the fields every event carries.
func (g *generator) base(at time.Time, category, typ, action, outcome string, severity int) fields {
	f := fields{}
	f.set("event.id", g.uuid())
	f.set("event.kind", "event")
	f.set("event.category", category)
	f.set("event.type", typ)
	f.set("event.action", action)
	f.set("event.outcome", outcome)
	f.set("event.severity", severity)
	f.set("service.name", Service)
	f.set("host.name", Host)
	f.set("@timestamp", at.Truncate(time.Millisecond).Format(timeLayout))
	return f
}

// emit encodes f, whose @timestamp must be set by base, and keeps it.
func (g *generator) emit(f fields) {
	t, err := time.Parse(time.RFC3339Nano, f["@timestamp"].(string))
	if err != nil {
		panic(fmt.Sprintf("demo: bad @timestamp: %v", err)) // a bug in this package
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep "<script>" readable; the JSON is valid either way
	if err := enc.Encode(map[string]any(f)); err != nil {
		panic(fmt.Sprintf("demo: encode event: %v", err)) // only plain values are stored
	}
	action := f["event"].(map[string]any)["action"].(string)
	g.events = append(g.events, Event{Time: t, Action: action, Line: bytes.TrimSuffix(buf.Bytes(), []byte("\n"))})
}

// uuid returns a random version 4 UUID drawn from the seeded source.
func (g *generator) uuid() string {
	hi, lo := g.rng.Uint64(), g.rng.Uint64()
	hi = hi&^0xf000 | 0x4000     // version 4
	lo = lo&^(0xc<<60) | 0x8<<60 // RFC 4122 variant
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", hi>>32, hi>>16&0xffff, hi&0xffff, lo>>48, lo&0xffffffffffff)
}

// requestID returns a request id as django-log-request-id makes them: 32 hex digits.
func (g *generator) requestID() string {
	return fmt.Sprintf("%016x%016x", g.rng.Uint64(), g.rng.Uint64())
}

func (g *generator) port() int { return 49152 + g.rng.IntN(16384) }

// between returns a random duration in [lo, hi).
func (g *generator) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(g.rng.Int64N(int64(hi-lo)))
}

func (g *generator) pick(xs []string) string { return xs[g.rng.IntN(len(xs))] }
