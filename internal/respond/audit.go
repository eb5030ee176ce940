package respond

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vigilsec/vigil/internal/event"
)

// The audit event actions of decision changes.
const (
	ActionDecisionAdded   = "vigil_decision_added"   // a decision was made, extended or upgraded (the event holds it whole)
	ActionDecisionRemoved = "vigil_decision_removed" // removed by a person, or because its value was allowlisted
	ActionDecisionExpired = "vigil_decision_expired" // its TTL passed
)

// Actions lists the decision actions: the wiring searches the store for
// these, in sequence order, to Replay them at start.
var Actions = []string{ActionDecisionAdded, ActionDecisionRemoved, ActionDecisionExpired}

// Category is the event.category of decision events (ECS).
const Category = "intrusion_detection"

// Change is one change of a decision, as written to the log and sent to
// stream subscribers.
type Change struct {
	Action   string   // one of Actions
	Decision Decision // the decision after the change
	Time     time.Time
}

// record is a decision in an audit event, under vigil.decision. Times are
// strings so that decoding and encoding again give the same bytes, which
// the signature covers.
type record struct {
	ID               string `json:"id"`
	Type             string `json:"type"`
	Scope            string `json:"scope"`
	Value            string `json:"value"`
	Reason           string `json:"reason,omitempty"`
	Origin           string `json:"origin"`
	AlertFingerprint string `json:"alert_fingerprint,omitempty"`
	CreatedAt        string `json:"created_at"`
	Until            string `json:"until,omitempty"`
	RemovedAt        string `json:"removed_at,omitempty"`
	RemovedBy        string `json:"removed_by,omitempty"`
	// MAC is hex HMAC-SHA256 of the action and this record without MAC,
	// when the Manager has a signing key.
	MAC string `json:"mac,omitempty"`
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func parseTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return t, &FieldError{"vigil.decision." + field, fmt.Sprintf("%q is not an RFC 3339 time", s)}
	}
	return t, nil
}

func toRecord(d Decision) record {
	return record{
		ID: d.ID, Type: d.Type, Scope: d.Scope, Value: d.Value, Reason: d.Reason, Origin: d.Origin,
		AlertFingerprint: d.AlertFingerprint, CreatedAt: formatTime(d.CreatedAt), Until: formatTime(d.Until),
		RemovedAt: formatTime(d.RemovedAt), RemovedBy: d.RemovedBy,
	}
}

// sign returns the MAC of action and r (whose MAC field is ignored).
func (r record) sign(action string, key []byte) (string, error) {
	r.MAC = ""
	b, err := json.Marshal(r)
	if err != nil {
		return "", err
	}
	h := hmac.New(sha256.New, key)
	h.Write([]byte(action))
	h.Write([]byte{0})
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// NewEvent returns the audit event of c. With a key, the decision is
// signed so that Replay (with the same key) can tell Vigil's own decision
// events from look-alikes sent by anyone holding an ingest token.
func NewEvent(c Change, key []byte) (event.Event, error) {
	switch c.Action {
	case ActionDecisionAdded, ActionDecisionRemoved, ActionDecisionExpired:
	default:
		return event.Event{}, fmt.Errorf("decision event: unknown action %q", c.Action)
	}
	d := c.Decision
	rec := toRecord(d)
	if len(key) > 0 {
		mac, err := rec.sign(c.Action, key)
		if err != nil {
			return event.Event{}, fmt.Errorf("sign decision %s: %w", d.ID, err)
		}
		rec.MAC = mac
	}
	related := []string{"decision:" + d.ID}
	if d.AlertFingerprint != "" {
		related = append(related, "alert:"+d.AlertFingerprint)
	}
	doc := map[string]any{
		"@timestamp": c.Time.UTC().Format(time.RFC3339Nano),
		"event": map[string]any{
			"id": event.NewID(), "kind": "event", "category": Category,
			"action": c.Action, "outcome": "success",
		},
		"message": describe(c),
		"related": map[string]any{"objects": related},
		"vigil":   map[string]any{"decision": rec},
	}
	ev, err := event.FromDoc(doc, c.Time)
	if err != nil {
		return event.Event{}, fmt.Errorf("decision %s event: %w", d.ID, err)
	}
	return ev, nil
}

// describe is the human-readable message of a change.
func describe(c Change) string {
	d := c.Decision
	var b strings.Builder
	fmt.Fprintf(&b, "%s of %s %s", d.Type, d.Scope, d.Value)
	switch c.Action {
	case ActionDecisionAdded:
		fmt.Fprintf(&b, " by %s", d.Origin)
		if d.Until.IsZero() {
			b.WriteString(" until removed")
		} else {
			fmt.Fprintf(&b, " until %s", formatTime(d.Until))
		}
	case ActionDecisionRemoved:
		fmt.Fprintf(&b, " removed by %s", d.RemovedBy)
	case ActionDecisionExpired:
		b.WriteString(" expired")
	}
	if d.Reason != "" {
		fmt.Fprintf(&b, ": %s", d.Reason)
	}
	return b.String()
}

// ErrNotDecisionEvent is returned by ParseEvent for an event whose action
// is not one of Actions.
var ErrNotDecisionEvent = errors.New("not a decision event")

// ErrBadSignature is returned by ParseEvent, given a key, for a decision
// event that is unsigned or whose signature does not match.
var ErrBadSignature = errors.New("decision event not signed by this Vigil")

// maxEventBytes bounds what ParseEvent reads: a decision event is small.
const maxEventBytes = 64 << 10

// ParseEvent reads the change recorded in a decision audit event. The event
// comes from the store, where anyone with an ingest token could have put a
// look-alike: everything is checked, and with a key the signature must
// match.
func ParseEvent(e *event.Event, key []byte) (Change, error) {
	switch e.Action {
	case ActionDecisionAdded, ActionDecisionRemoved, ActionDecisionExpired:
	default:
		return Change{}, ErrNotDecisionEvent
	}
	if len(e.Canonical) > maxEventBytes {
		return Change{}, fmt.Errorf("decision event %s: %d bytes, more than %d", e.ID, len(e.Canonical), maxEventBytes)
	}
	var doc struct {
		Vigil struct {
			Decision *record `json:"decision"`
		} `json:"vigil"`
	}
	dec := json.NewDecoder(bytes.NewReader(e.Canonical))
	if err := dec.Decode(&doc); err != nil {
		return Change{}, fmt.Errorf("decision event %s: %w", e.ID, err)
	}
	rec := doc.Vigil.Decision
	if rec == nil {
		return Change{}, fmt.Errorf("decision event %s: no vigil.decision", e.ID)
	}
	if len(key) > 0 {
		want, err := rec.sign(e.Action, key)
		if err != nil || !hmac.Equal([]byte(want), []byte(rec.MAC)) {
			return Change{}, fmt.Errorf("decision event %s: %w", e.ID, ErrBadSignature)
		}
	}
	d, err := fromRecord(*rec)
	if err != nil {
		return Change{}, fmt.Errorf("decision event %s: %w", e.ID, err)
	}
	if (e.Action == ActionDecisionAdded) != d.RemovedAt.IsZero() {
		return Change{}, fmt.Errorf("decision event %s: %s with removed_at %q", e.ID, e.Action, rec.RemovedAt)
	}
	return Change{Action: e.Action, Decision: d, Time: e.Time}, nil
}

func fromRecord(r record) (Decision, error) {
	d := Decision{ID: r.ID, Type: r.Type, Scope: r.Scope, Value: r.Value, Reason: r.Reason,
		Origin: r.Origin, AlertFingerprint: r.AlertFingerprint, RemovedBy: r.RemovedBy}
	if err := checkText("vigil.decision.id", d.ID, 128, true); err != nil {
		return d, err
	}
	if d.Type == "" {
		return d, &FieldError{"vigil.decision.type", "missing"}
	}
	n, err := normalize(d)
	if err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			fe.Field = "vigil.decision." + fe.Field
		}
		return d, err
	}
	if n.Value != d.Value {
		return d, &FieldError{"vigil.decision.value", fmt.Sprintf("%q is not in canonical form (%q)", d.Value, n.Value)}
	}
	d.Reason = n.Reason
	if err := checkText("vigil.decision.removed_by", d.RemovedBy, MaxOriginBytes, false); err != nil {
		return d, err
	}
	if d.CreatedAt, err = parseTime("created_at", r.CreatedAt); err != nil {
		return d, err
	}
	if d.CreatedAt.IsZero() {
		return d, &FieldError{"vigil.decision.created_at", "missing"}
	}
	if d.Until, err = parseTime("until", r.Until); err != nil {
		return d, err
	}
	if d.RemovedAt, err = parseTime("removed_at", r.RemovedAt); err != nil {
		return d, err
	}
	return d, nil
}
