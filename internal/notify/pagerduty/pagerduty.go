// Package pagerduty sends alerts to PagerDuty's Events API v2: one event per
// alert, "trigger" while it fires and "resolve" when it is resolved, with the
// alert's fingerprint as dedup key so that PagerDuty folds repeats into one
// incident and the resolve closes it.
package pagerduty

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/vigilsec/vigil/internal/alert"
	"github.com/vigilsec/vigil/internal/notify/message"
	"github.com/vigilsec/vigil/internal/notify/post"
)

// DefaultURL is the Events API v2 enqueue endpoint.
const DefaultURL = "https://events.pagerduty.com/v2/enqueue"

// Limits of the Events API v2.
const (
	MaxSummaryBytes  = 1024
	MaxDedupKeyBytes = 255
	MaxSourceBytes   = 255
)

// DefaultSummary is the summary template, executed once per alert (Alerts
// holds that one alert).
const DefaultSummary = `{{ range .Alerts }}{{ .Name }}: {{ .Summary }}{{ end }}`

// Event is the JSON body of one Events API v2 request.
type Event struct {
	RoutingKey  string   `json:"routing_key"`
	EventAction string   `json:"event_action"` // trigger, resolve
	DedupKey    string   `json:"dedup_key"`
	Payload     *Payload `json:"payload,omitempty"` // trigger only
	Client      string   `json:"client,omitempty"`
	ClientURL   string   `json:"client_url,omitempty"`
	Links       []Link   `json:"links,omitempty"`
}

// Payload describes a triggered event.
type Payload struct {
	Summary       string         `json:"summary"`
	Source        string         `json:"source"`
	Severity      string         `json:"severity"` // critical, error, warning, info
	Timestamp     string         `json:"timestamp,omitempty"`
	Component     string         `json:"component,omitempty"`
	Group         string         `json:"group,omitempty"`
	Class         string         `json:"class,omitempty"`
	CustomDetails map[string]any `json:"custom_details,omitempty"`
}

// Link is a link shown on the incident.
type Link struct {
	Href string `json:"href"`
	Text string `json:"text"`
}

// Options configure a Notifier.
type Options struct {
	URL        string // "": DefaultURL
	RoutingKey string // integration key; a secret
	Source     string // "": "vigil"
	Component  string
	Group      string
	Class      string            // "": the alert's name
	Summary    *message.Template // nil: DefaultSummary
	// Details are added to custom_details; values are templates executed
	// per alert.
	Details     map[string]*message.Template
	Receiver    string
	ExternalURL string
	Timeout     time.Duration
	Client      *http.Client
	Now         func() time.Time
}

// Notifier sends events to one PagerDuty service.
type Notifier struct{ o Options }

// New returns a Notifier.
func New(o Options) (*Notifier, error) {
	if o.RoutingKey == "" {
		return nil, errors.New("pagerduty: no routing key")
	}
	if o.URL == "" {
		o.URL = DefaultURL
	}
	if o.Source == "" {
		o.Source = "vigil"
	}
	if o.Summary == nil {
		o.Summary = message.MustText("pagerduty.summary", DefaultSummary)
	}
	if o.Client == nil {
		o.Client = post.NewClient(nil)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Notifier{o: o}, nil
}

// Severity maps an alert severity onto PagerDuty's four values; unknown
// severities become "warning".
func Severity(s string) string {
	switch strings.ToLower(s) {
	case "critical", "fatal", "emergency", "alert", "page":
		return "critical"
	case "error", "high", "major":
		return "error"
	case "info", "informational", "low", "notice", "debug":
		return "info"
	}
	return "warning"
}

// DedupKey returns the fingerprint, or its SHA-256 in hex when it is longer
// than PagerDuty accepts.
func DedupKey(fingerprint string) string {
	if len(fingerprint) <= MaxDedupKeyBytes && fingerprint != "" {
		return fingerprint
	}
	h := sha256.Sum256([]byte(fingerprint))
	return hex.EncodeToString(h[:])
}

// Build returns the event for one alert.
func (n *Notifier) Build(a alert.Alert) (Event, error) {
	ev := Event{
		RoutingKey: n.o.RoutingKey,
		DedupKey:   DedupKey(a.Fingerprint),
		Client:     "Vigil",
		ClientURL:  n.o.ExternalURL,
	}
	if a.Status != alert.StateFiring {
		ev.EventAction = "resolve"
		return ev, nil
	}
	ev.EventAction = "trigger"
	d := message.NewData(n.o.Receiver, n.o.ExternalURL, []alert.Alert{a})
	summary, err := n.o.Summary.Execute(d)
	if err != nil {
		return Event{}, fmt.Errorf("pagerduty: summary template: %w", err)
	}
	summary = strings.Join(strings.Fields(summary), " ")
	if summary == "" {
		summary = "Vigil alert " + a.Fingerprint
	}
	m := d.Alerts[0]
	details := map[string]any{
		"summary":     m.Summary,
		"labels":      map[string]string(m.Labels),
		"annotations": map[string]string(m.Annotations),
		"fingerprint": m.Fingerprint,
		"started_at":  m.StartsAt.UTC().Format(time.RFC3339),
	}
	if len(m.Evidence) > 0 {
		details["evidence"] = m.Evidence
	}
	for _, k := range slices.Sorted(maps.Keys(n.o.Details)) {
		v, err := n.o.Details[k].Execute(d)
		if err != nil {
			return Event{}, fmt.Errorf("pagerduty: details.%s template: %w", k, err)
		}
		details[k] = v
	}
	ev.Payload = &Payload{
		Summary:       message.Truncate(summary, MaxSummaryBytes),
		Source:        message.Truncate(n.o.Source, MaxSourceBytes),
		Severity:      Severity(m.Severity),
		Component:     n.o.Component,
		Group:         n.o.Group,
		Class:         n.o.Class,
		CustomDetails: details,
	}
	if ev.Payload.Class == "" {
		ev.Payload.Class = m.Name
	}
	if !m.StartsAt.IsZero() {
		ev.Payload.Timestamp = m.StartsAt.UTC().Format(time.RFC3339Nano)
	}
	if m.EvidenceURL != "" {
		ev.Links = []Link{{Href: m.EvidenceURL, Text: "Alert and evidence in Vigil"}}
	}
	if rb := m.Annotations["runbook"]; strings.HasPrefix(rb, "https://") || strings.HasPrefix(rb, "http://") {
		ev.Links = append(ev.Links, Link{Href: rb, Text: "Runbook"})
	}
	return ev, nil
}

// Notify sends one event per alert, in order, and reports every failure.
// 202 is success; 429 and 5xx are worth a retry, 400 (an invalid event) and
// other statuses are not. When some events fail, retry is true if any of
// those failures is worth retrying; resending the events that went through
// is harmless, PagerDuty dedups them by dedup_key.
func (n *Notifier) Notify(ctx context.Context, alerts []alert.Alert) (bool, error) {
	var (
		errs  []error
		retry bool
	)
	for _, a := range alerts {
		r, err := n.send(ctx, a)
		if err != nil {
			retry = retry || r
			errs = append(errs, fmt.Errorf("alert %s: %w", a.Fingerprint, err))
			if ctx.Err() != nil {
				break
			}
		}
	}
	if len(errs) > 0 {
		return retry, fmt.Errorf("pagerduty: %d of %d events failed: %w", len(errs), len(alerts), errors.Join(errs...))
	}
	return false, nil
}

func (n *Notifier) send(ctx context.Context, a alert.Alert) (bool, error) {
	ev, err := n.Build(a)
	if err != nil {
		return false, err
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return false, fmt.Errorf("encode event: %w", err)
	}
	resp, err := post.Do(ctx, n.o.Client, post.Request{URL: n.o.URL, Body: body, Timeout: n.o.Timeout})
	if err != nil {
		return post.RetryError(err), err
	}
	return post.Check(resp, n.o.Now(), http.StatusAccepted)
}
