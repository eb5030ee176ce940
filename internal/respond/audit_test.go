package respond

import (
	"bytes"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
)

var sample = Decision{
	ID: "0195519c-4f2a-7b3e-9c1d-2e8f6a7b5c4d", Type: "ban", Scope: "ip", Value: "203.0.113.7",
	Reason: "12 failed logins in 1m", Origin: "brute-force-login", AlertFingerprint: "f00d",
	CreatedAt: t0, Until: t0.Add(time.Hour),
}

func TestEventRoundTrip(t *testing.T) {
	removed := sample
	removed.RemovedAt, removed.RemovedBy = t0.Add(time.Minute), "manual:alice"
	expired := sample
	expired.RemovedAt, expired.RemovedBy = sample.Until, RemovedByExpiry
	key := []byte("secret key of this vigil")
	tests := []struct {
		c       Change
		message string
	}{
		{Change{ActionDecisionAdded, sample, t0}, "ban of ip 203.0.113.7 by brute-force-login until 2025-03-01T13:00:00Z: 12 failed logins in 1m"},
		{Change{ActionDecisionRemoved, removed, t0.Add(time.Minute)}, "ban of ip 203.0.113.7 removed by manual:alice: 12 failed logins in 1m"},
		{Change{ActionDecisionExpired, expired, t0.Add(time.Hour)}, "ban of ip 203.0.113.7 expired: 12 failed logins in 1m"},
	}
	for _, tt := range tests {
		for _, k := range [][]byte{nil, key} {
			ev, err := NewEvent(tt.c, k)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Action != tt.c.Action || ev.Kind != "event" || ev.Category != Category || ev.Outcome != "success" ||
				!ev.Time.Equal(tt.c.Time) || ev.Message != tt.message ||
				!slices.Equal(ev.Related, []string{"decision:" + sample.ID, "alert:f00d"}) {
				t.Errorf("event %+v", ev)
			}
			got, err := ParseEvent(&ev, k)
			if err != nil {
				t.Fatalf("ParseEvent: %v\n%s", err, ev.Canonical)
			}
			if !reflect.DeepEqual(got, tt.c) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, tt.c)
			}
			// Through the store's bytes, as Replay reads them.
			again, err := event.Parse(ev.Canonical, event.Limits{}, t0.Add(48*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if got, err := ParseEvent(&again, k); err != nil || !reflect.DeepEqual(got.Decision, tt.c.Decision) {
				t.Errorf("after a second Parse: %+v, %v", got, err)
			}
		}
	}
}

func TestParseEventRefuses(t *testing.T) {
	key := []byte("secret key of this vigil")
	signed, _ := NewEvent(Change{ActionDecisionAdded, sample, t0}, key)
	unsigned, _ := NewEvent(Change{ActionDecisionAdded, sample, t0}, nil)
	tampered := reparse(t, bytes.Replace(signed.Canonical, []byte(`"203.0.113.7"`), []byte(`"203.0.113.8"`), 1))
	otherKey, _ := NewEvent(Change{ActionDecisionAdded, sample, t0}, []byte("another key"))
	wrongAction := reparse(t, bytes.Replace(signed.Canonical, []byte(ActionDecisionAdded), []byte(ActionDecisionRemoved), 1))

	tests := []struct {
		name string
		ev   event.Event
		key  []byte
		want string // substring of the error
	}{
		{"other action", reparse(t, []byte(`{"event":{"action":"authn_login_fail"}}`)), nil, ErrNotDecisionEvent.Error()},
		{"unsigned with a key", unsigned, key, ErrBadSignature.Error()},
		{"tampered", tampered, key, ErrBadSignature.Error()},
		{"signed with another key", otherKey, key, ErrBadSignature.Error()},
		{"action changed", wrongAction, key, ErrBadSignature.Error()},
		{"no decision", reparse(t, []byte(`{"event":{"action":"vigil_decision_added"}}`)), nil, "no vigil.decision"},
		{"decision not an object", reparse(t, []byte(`{"event":{"action":"vigil_decision_added"},"vigil":{"decision":[1]}}`)), nil, "cannot unmarshal"},
		{"bad value", decisionEvent(t, "added", `"value":"203.0.113.300"`), nil, "field vigil.decision.value"},
		{"value not canonical", decisionEvent(t, "added", `"value":"::ffff:203.0.113.7"`), nil, "not in canonical form"},
		{"bad scope", decisionEvent(t, "added", `"scope":"planet"`), nil, "field vigil.decision.scope"},
		{"no type", decisionEvent(t, "added", `"type":""`), nil, "field vigil.decision.type"},
		{"no id", decisionEvent(t, "added", `"id":""`), nil, "field vigil.decision.id"},
		{"no origin", decisionEvent(t, "added", `"origin":""`), nil, "field vigil.decision.origin"},
		{"bad time", decisionEvent(t, "added", `"until":"tomorrow"`), nil, "field vigil.decision.until"},
		{"no created_at", decisionEvent(t, "added", `"created_at":""`), nil, "created_at: missing"},
		{"added but removed", decisionEvent(t, "added", `"removed_at":"2025-03-01T12:00:00Z"`), nil, "with removed_at"},
		{"removed without removed_at", decisionEvent(t, "removed", `"removed_by":"x"`), nil, "with removed_at"},
	}
	for _, tt := range tests {
		_, err := ParseEvent(&tt.ev, tt.key)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v; want %q", tt.name, err, tt.want)
		}
	}
	if _, err := ParseEvent(&unsigned, nil); err != nil {
		t.Errorf("unsigned without a key: %v", err)
	}
	if _, err := NewEvent(Change{Action: "vigil_decision_renamed", Decision: sample, Time: t0}, nil); err == nil {
		t.Error("NewEvent of an unknown action succeeded")
	}
}

func reparse(t *testing.T, b []byte) event.Event {
	t.Helper()
	ev, err := event.Parse(b, event.Limits{}, t0)
	if err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return ev
}

// decisionEvent builds a decision event of action vigil_decision_<what>
// from sample with one field overridden (later keys win in JSON objects
// for encoding/json).
func decisionEvent(t *testing.T, what, override string) event.Event {
	t.Helper()
	rec := `"id":"x1","type":"ban","scope":"ip","value":"203.0.113.7","origin":"r","created_at":"2025-03-01T12:00:00Z"`
	for _, kv := range strings.Split(override, ",") {
		k, _, _ := strings.Cut(kv, ":")
		var kept []string
		for _, f := range strings.Split(rec, ",") {
			if fk, _, _ := strings.Cut(f, ":"); fk != k {
				kept = append(kept, f)
			}
		}
		rec = strings.Join(append(kept, kv), ",")
	}
	return reparse(t, []byte(`{"event":{"action":"vigil_decision_`+what+`"},"vigil":{"decision":{`+rec+`}}}`))
}

func TestReplayIgnoresOtherEvents(t *testing.T) {
	env := newEnv(t, Config{})
	ev := reparse(t, []byte(`{"event":{"action":"authn_login_fail"},"source":{"ip":"203.0.113.7"}}`))
	if err := env.m.Replay(&ev); err != nil || env.m.Len() != 0 {
		t.Errorf("Replay of a login event: %v, %d decisions", err, env.m.Len())
	}
	bad := decisionEvent(t, "added", `"value":"nope"`)
	if err := env.m.Replay(&bad); err == nil {
		t.Error("Replay of a malformed decision event succeeded")
	}
	if v := env.metric(t, "vigil_decisions_replay_rejected_total"); v != 1 {
		t.Errorf("replay rejected: %v", v)
	}
	// Replay is idempotent: the same events twice give the same state.
	d := sample
	d.Until = time.Time{}
	added, _ := NewEvent(Change{ActionDecisionAdded, d, t0}, nil)
	for range 2 {
		if err := env.m.Replay(&added); err != nil {
			t.Fatal(err)
		}
	}
	if env.m.Len() != 1 || env.metric(t, "vigil_decisions_active", "type=ban", "scope=ip") != 1 {
		t.Errorf("after replaying one decision twice: %d held, gauge %v", env.m.Len(), env.metric(t, "vigil_decisions_active", "type=ban", "scope=ip"))
	}
	d.RemovedAt, d.RemovedBy = t0, "manual:x"
	removed, _ := NewEvent(Change{ActionDecisionRemoved, d, t0}, nil)
	for range 2 {
		if err := env.m.Replay(&removed); err != nil {
			t.Fatal(err)
		}
	}
	if env.m.Len() != 0 {
		t.Errorf("after replaying its removal twice: %d held", env.m.Len())
	}
}
