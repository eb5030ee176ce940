// Package vigiltest records the events of a vigil.Client in memory, for the
// tests of an application: what django-security-logger's
// capture_security_logs is to Django.
//
//	func TestLoginFailure(t *testing.T) {
//		c, rec := vigiltest.New(t)
//		app := newApp(c)
//		// ... post a bad password ...
//		rec.Assert(t, vigiltest.Action("authn_login_fail"), vigiltest.Field("user.name", "alice"))
//		if rec.Contains("hunter2") {
//			t.Error("the password reached the events")
//		}
//	}
package vigiltest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/vigilsec/vigil/sdk/vigil"
)

// Option changes the Client or the Recorder New makes.
type Option func(*options)

type options struct {
	config func(*vigil.Config)
	checks []func(line []byte) error
}

// Config lets f change the Client's configuration (Service, CaptureBodies,
// TrustedProxies...) before it is made. The Sink is the Recorder.
func Config(f func(*vigil.Config)) Option {
	return func(o *options) { o.config = f }
}

// Check runs check on every line sent to the Recorder; an error fails the
// test. The SDK's own tests check each line with Vigil's parser this way.
func Check(check func(line []byte) error) Option {
	return func(o *options) { o.checks = append(o.checks, check) }
}

// New returns a Client whose events go to the returned Recorder. Each line
// must be a JSON object, or the test fails. The Client is closed when the
// test ends.
func New(t testing.TB, opts ...Option) (*vigil.Client, *Recorder) {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	rec := &Recorder{t: t, checks: o.checks}
	cfg := vigil.Config{Service: "test", Host: "test-host", Sink: rec,
		ErrorLog: slog.New(slog.NewTextHandler(testLog{t}, nil))}
	if o.config != nil {
		o.config(&cfg)
		cfg.Sink = rec
	}
	c, err := vigil.New(cfg)
	if err != nil {
		t.Fatalf("vigiltest: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c, rec
}

// testLog writes the SDK's own log to the test's log.
type testLog struct{ t testing.TB }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// Recorder is a vigil.Sink that keeps every line in memory. It is safe for
// concurrent use.
type Recorder struct {
	t      testing.TB
	checks []func([]byte) error

	mu       sync.Mutex
	lines    [][]byte
	critical []bool
	fail     error
}

// Send records a copy of line; it returns the error given to FailWith, if
// any, without recording.
func (r *Recorder) Send(_ context.Context, line []byte, critical bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	if !json.Valid(line) || len(bytes.TrimSpace(line)) == 0 || bytes.TrimSpace(line)[0] != '{' {
		r.t.Errorf("vigiltest: the SDK sent a line that is not a JSON object: %q", line)
	}
	for _, check := range r.checks {
		if err := check(line); err != nil {
			r.t.Errorf("vigiltest: %v\nline: %s", err, line)
		}
	}
	r.lines = append(r.lines, bytes.Clone(line))
	r.critical = append(r.critical, critical)
	return nil
}

// FailWith makes Send refuse every event with err (a full queue, a closed
// shipper) until FailWith(nil).
func (r *Recorder) FailWith(err error) {
	r.mu.Lock()
	r.fail = err
	r.mu.Unlock()
}

// Lines returns the lines recorded, as sent.
func (r *Recorder) Lines() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([][]byte, len(r.lines))
	for i, l := range r.lines {
		out[i] = bytes.Clone(l)
	}
	return out
}

// Reset forgets the events recorded so far.
func (r *Recorder) Reset() {
	r.mu.Lock()
	r.lines, r.critical = nil, nil
	r.mu.Unlock()
}

// Events returns the events recorded, decoded, in the order they were sent.
func (r *Recorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	events := make([]Event, 0, len(r.lines))
	for i, l := range r.lines {
		ev, err := Decode(l)
		if err != nil {
			r.t.Errorf("vigiltest: %v", err)
			continue
		}
		ev.critical = r.critical[i]
		events = append(events, ev)
	}
	return events
}

// Find returns the events for which match is true.
func (r *Recorder) Find(match func(Event) bool) []Event {
	var out []Event
	for _, e := range r.Events() {
		if match(e) {
			out = append(out, e)
		}
	}
	return out
}

// Contains reports whether s appears in any recorded line, as sent or once
// JSON escapes are undone: for tests that a secret never leaves the
// application.
func (r *Recorder) Contains(s string) bool {
	r.mu.Lock()
	lines := r.lines
	r.mu.Unlock()
	for _, l := range lines {
		if bytes.Contains(l, []byte(s)) {
			return true
		}
	}
	for _, e := range r.Events() {
		for _, v := range e.fields {
			if containsString(v, s) {
				return true
			}
		}
	}
	return false
}

func containsString(v any, s string) bool {
	switch x := v.(type) {
	case string:
		return strings.Contains(x, s)
	case []any:
		for _, e := range x {
			if containsString(e, s) {
				return true
			}
		}
	case map[string]any:
		for k, e := range x {
			if strings.Contains(k, s) || containsString(e, s) {
				return true
			}
		}
	}
	return false
}

// Assert fails the test unless an event matches every matcher, and returns
// the first that does.
func (r *Recorder) Assert(t testing.TB, ms ...Matcher) Event {
	t.Helper()
	events := r.Events()
	for _, e := range events {
		if matchAll(e, ms) {
			return e
		}
	}
	var want []string
	for _, m := range ms {
		want = append(want, m.desc)
	}
	var got strings.Builder
	for i, e := range events {
		fmt.Fprintf(&got, "\n  %d: %s", i, e.summary(ms))
	}
	if len(events) == 0 {
		got.WriteString(" none")
	}
	t.Fatalf("vigiltest: no event with %s; events recorded:%s", strings.Join(want, ", "), got.String())
	return Event{}
}

// AssertNone fails the test if an event matches every matcher.
func (r *Recorder) AssertNone(t testing.TB, ms ...Matcher) {
	t.Helper()
	for _, e := range r.Events() {
		if matchAll(e, ms) {
			t.Fatalf("vigiltest: unexpected event %s", e.Raw())
		}
	}
}

func matchAll(e Event, ms []Matcher) bool {
	for _, m := range ms {
		if !m.match(e) {
			return false
		}
	}
	return true
}

// Matcher selects events, for Assert.
type Matcher struct {
	desc  string
	match func(Event) bool
}

// Action matches events whose event.action is action.
func Action(action string) Matcher {
	return Matcher{"event.action=" + action, func(e Event) bool { return e.Action() == action }}
}

// Field matches events whose field name (dotted: "user.name") has value:
// compared as JSON, so Field("http.response.status_code", 404) matches the
// number 404 and Field("related.objects", []string{"shop.order:1"}) the
// array.
func Field(name string, value any) Matcher {
	want, err := json.Marshal(value)
	if err != nil {
		panic(fmt.Sprintf("vigiltest.Field(%q): %v", name, err))
	}
	return Matcher{fmt.Sprintf("%s=%s", name, want), func(e Event) bool {
		v, ok := e.fields[name]
		if !ok {
			return false
		}
		got, err := json.Marshal(v)
		return err == nil && bytes.Equal(normJSON(got), normJSON(want))
	}}
}

// normJSON re-encodes numbers so that 404 and 404.0 compare equal.
func normJSON(b []byte) []byte {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return b
	}
	out, _ := json.Marshal(v)
	return out
}

// Has matches events that have field name.
func Has(name string) Matcher {
	return Matcher{"has " + name, func(e Event) bool { return e.Has(name) }}
}

// Critical matches events sent as critical (audit events).
func Critical() Matcher {
	return Matcher{"critical", func(e Event) bool { return e.critical }}
}

// Match matches events for which f is true; desc says what for failure
// messages.
func Match(desc string, f func(Event) bool) Matcher { return Matcher{desc, f} }

// Event is one recorded event. Its fields are addressed by their dotted
// names whether the SDK wrote them dotted or nested: e.Str("user.name").
type Event struct {
	raw      []byte
	fields   map[string]any // dotted name → value (strings, json.Number, bools, nil, []any)
	critical bool
}

// Decode decodes one event line.
func Decode(line []byte) (Event, error) {
	d := json.NewDecoder(bytes.NewReader(line))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return Event{}, fmt.Errorf("decode event %s: %w", line, err)
	}
	ev := Event{raw: bytes.Clone(line), fields: map[string]any{}}
	flattenInto(ev.fields, "", m)
	return ev, nil
}

func flattenInto(dst map[string]any, prefix string, m map[string]any) {
	for k, v := range m {
		name := prefix + k
		if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
			flattenInto(dst, name+".", sub)
			continue
		}
		dst[name] = v
	}
}

// Raw returns the line as sent.
func (e Event) Raw() string { return string(e.raw) }

// Critical reports whether the event was sent as critical.
func (e Event) Critical() bool { return e.critical }

// Fields returns the event's fields by dotted name.
func (e Event) Fields() map[string]any { return e.fields }

// Has reports whether the event has field name, or fields under it.
func (e Event) Has(name string) bool {
	if _, ok := e.fields[name]; ok {
		return true
	}
	for k := range e.fields {
		if strings.HasPrefix(k, name+".") {
			return true
		}
	}
	return false
}

// Get returns the value of field name (strings, json.Number, bools, []any).
func (e Event) Get(name string) any { return e.fields[name] }

// Str returns field name as a string, "" when absent or not a string.
func (e Event) Str(name string) string {
	s, _ := e.fields[name].(string)
	return s
}

// Int returns field name as an integer, 0 when absent or not one.
func (e Event) Int(name string) int64 {
	n, _ := e.fields[name].(json.Number)
	v, _ := n.Int64()
	return v
}

// Bool returns field name as a boolean.
func (e Event) Bool(name string) bool {
	b, _ := e.fields[name].(bool)
	return b
}

// Strings returns field name as strings: an array of strings, or a single
// string.
func (e Event) Strings(name string) []string {
	switch v := e.fields[name].(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// Object returns the fields under name ("labels", "vigil.change.new") as a
// map of the names below it.
func (e Event) Object(name string) map[string]any {
	out := map[string]any{}
	for k, v := range e.fields {
		if rest, ok := strings.CutPrefix(k, name+"."); ok {
			out[rest] = v
		}
	}
	return out
}

// Action returns event.action.
func (e Event) Action() string { return e.Str("event.action") }

// summary describes e for a failed Assert: its action and the fields the
// matchers looked at.
func (e Event) summary(ms []Matcher) string {
	var b strings.Builder
	b.WriteString(e.Action())
	if b.Len() == 0 {
		b.WriteString("(no action)")
	}
	for _, name := range []string{"event.outcome", "user.name", "message"} {
		if v, ok := e.fields[name]; ok {
			fmt.Fprintf(&b, " %s=%v", name, v)
		}
	}
	for _, m := range ms {
		if name, _, ok := strings.Cut(m.desc, "="); ok && !strings.Contains(name, " ") {
			if v, ok := e.fields[name]; ok {
				fmt.Fprintf(&b, " %s=%v", name, v)
			}
		}
	}
	return b.String()
}
