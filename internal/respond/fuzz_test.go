package respond

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/sdk/throttle"
)

// FuzzParseEvent: decision events come from the store, where anyone with an
// ingest token can put look-alikes. ParseEvent must never panic, and what
// it accepts must be a valid decision that survives a round trip.
func FuzzParseEvent(f *testing.F) {
	key := []byte("fuzz key")
	for _, c := range []Change{
		{ActionDecisionAdded, sample, t0},
		{ActionDecisionRemoved, func() Decision { d := sample; d.RemovedAt, d.RemovedBy = t0, "manual:a"; return d }(), t0},
		{ActionDecisionExpired, func() Decision { d := sample; d.Scope, d.Value, d.RemovedAt = "user", "éve", t0; return d }(), t0},
	} {
		for _, k := range [][]byte{nil, key} {
			ev, err := NewEvent(c, k)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(ev.Canonical)
		}
	}
	f.Add([]byte(`{"event":{"action":"vigil_decision_added"},"vigil":{"decision":{"id":"x","type":"ban","scope":"range","value":"10.0.0.0/8","origin":"r","created_at":"2025-03-01T12:00:00Z"}}}`))
	f.Add([]byte(`{"event":{"action":"vigil_decision_added"},"vigil":{"decision":null}}`))
	f.Add([]byte(`{"event":{"action":"vigil_decision_removed"},"vigil":{"decision":{"id":"x","removed_at":"9999-12-31T23:59:59Z"}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := event.Parse(data, event.Limits{}, t0)
		if err != nil {
			return
		}
		for _, k := range [][]byte{nil, key} {
			c, err := ParseEvent(&ev, k)
			if err != nil {
				continue
			}
			if n, err := normalize(c.Decision); err != nil || n.Value != c.Decision.Value {
				t.Fatalf("accepted a decision that does not normalize to itself: %+v: %v", c.Decision, err)
			}
			ev2, err := NewEvent(c, k)
			if err != nil {
				t.Fatalf("NewEvent of an accepted change: %v", err)
			}
			c2, err := ParseEvent(&ev2, k)
			if err != nil {
				t.Fatalf("round trip: %v", err)
			}
			c2.Time = c.Time
			if !reflect.DeepEqual(c, c2) {
				t.Fatalf("round trip changed the decision:\n%+v\n%+v", c, c2)
			}
			// Replaying it must not panic either.
			m, _ := NewManager(Config{}, Options{Append: func(context.Context, []event.Event) error { return nil }, Log: quiet})
			m.Replay(&ev)
		}
	})
}

// FuzzParseAddRequest: a request the API accepts is one the Manager takes.
func FuzzParseAddRequest(f *testing.F) {
	for _, s := range []string{
		`{"scope":"ip","value":"203.0.113.7","ttl":"1h","reason":"brute force"}`,
		`{"type":"throttle","scope":"range","value":"2001:db8::/32","ttl":"7d"}`,
		`{"scope":"user","value":" Eve ","alert_fingerprint":"abc"}`,
		`{"scope":"ip","value":"1.2.3.4","ttl":"0"}`,
		`{"scope":"ip","value":1}`,
		`{"scope":"ip","value":"1.2.3.4"} x`,
		`{"scope":"ip","value":"1.2.3.4","extra":true}`,
		`{"ttl":"99999999d"}`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParseAddRequest(body)
		if err != nil {
			return
		}
		ttl, err := ParseTTL(req.TTL)
		if err != nil {
			t.Fatalf("accepted TTL %q: %v", req.TTL, err)
		}
		d := Decision{Type: req.Type, Scope: req.Scope, Value: req.Value, Reason: req.Reason, AlertFingerprint: req.AlertFingerprint, Origin: "manual:fuzz"}
		if ttl > 0 {
			d.Until = t0.Add(ttl)
		}
		m, _ := NewManager(Config{}, Options{Append: func(context.Context, []event.Event) error { return nil }, Clock: newFakeClock(), Log: quiet})
		if _, _, err := m.Add(context.Background(), d); err != nil {
			t.Fatalf("the API accepts %q but Add refuses it: %v", body, err)
		}
	})
}

// FuzzNormalizeValue: Vigil and the SDK must agree on every value, or an
// application would not find a decision the server made.
func FuzzNormalizeValue(f *testing.F) {
	for _, s := range [][2]string{
		{"ip", "203.0.113.7"}, {"ip", "::ffff:1.2.3.4"}, {"ip", "fe80::1%eth0"}, {"ip", " 2001:DB8::1 "},
		{"range", "10.1.2.3/8"}, {"range", "::ffff:10.0.0.0/104"}, {"range", "2001:db8::/32"}, {"range", "0.0.0.0/0"},
		{"user", "Éve"}, {"user", "ǅ"}, {"user", "a\x00b"}, {"host", "x"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, scope, value string) {
		v, err := normalizeValue(scope, value)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error is not a *FieldError: %v", err)
			}
			return
		}
		if v2, err := normalizeValue(scope, v); err != nil || v2 != v {
			t.Fatalf("normalizeValue(%q) = %q, but again = %q, %v", value, v, v2, err)
		}
		var b throttle.StaticBans
		if err := b.Add(throttle.Decision{Type: "ban", Scope: scope, Value: value, Until: t0.Add(time.Hour)}); err != nil {
			t.Fatalf("Vigil accepts %s %q, the SDK refuses it: %v", scope, value, err)
		}
		if !b.Remove(scope, v) {
			t.Fatalf("the SDK keeps %s %q under another value than Vigil's %q", scope, value, v)
		}
	})
}
