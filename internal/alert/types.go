// Package alert turns detection signals into alerts: fingerprinted by rule
// and group key, pending while a rule's "for" runs, firing, resolved; with
// dedup, grouping (group wait, group interval, repeat interval), silences and
// routing to notifiers by labels and severity.
package alert

import (
	"context"
	"time"
)

// Alert states.
const (
	StatePending  = "pending"
	StateFiring   = "firing"
	StateResolved = "resolved"
)

// Severities, most severe first. They map onto PagerDuty's and
// Alertmanager's conventional values.
const (
	SeverityCritical = "critical"
	SeverityError    = "error"
	SeverityWarning  = "warning"
	SeverityInfo     = "info"
)

// Alert is one alert as notifiers see it.
type Alert struct {
	// Fingerprint identifies the alert: a hash of its rule and group key.
	// The same attack seen again while the alert is active has the same
	// fingerprint (dedup); notifiers use it as a dedup key.
	Fingerprint string `json:"fingerprint"`
	// Status is StateFiring or StateResolved when notified.
	Status string `json:"status"`
	// Labels identify the alert: "alertname" (the rule's name), "severity",
	// "rule" and the rule's group-by fields (for example "source.ip").
	Labels map[string]string `json:"labels"`
	// Annotations describe it: "summary", "description", "runbook".
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt,omitzero"` // zero while firing
	// GeneratorURL links to the alert in Vigil.
	GeneratorURL string `json:"generatorURL,omitempty"`
	// Evidence holds the sequence numbers of the events that raised the
	// alert (bounded; the first and the latest ones are kept).
	Evidence []uint64 `json:"evidence,omitempty"`
	// RenewBy is, for a firing alert, the time by which the manager will
	// have notified it again if it still fires and is not muted: the next
	// repeat interval, plus a group interval for the flush and one for
	// retries. Zero when unknown. A notifier whose peer ends alerts that are
	// not renewed (Alertmanager's resolve_timeout) sends it as the end.
	RenewBy time.Time `json:"-"`
}

// Severity returns the alert's severity label (SeverityWarning when unset).
func (a Alert) Severity() string {
	if s := a.Labels["severity"]; s != "" {
		return s
	}
	return SeverityWarning
}

// Notifier delivers a group of alerts through one channel (email, Slack,
// PagerDuty, a webhook, Alertmanager). Implementations live in
// sub-packages of internal/notify.
type Notifier interface {
	// Notify sends alerts, all of the same group, in one message when the
	// channel allows. retry tells whether a failure is worth retrying (a
	// network error, 429 or 5xx: yes; a 400 or bad credentials: no).
	Notify(ctx context.Context, alerts []Alert) (retry bool, err error)
}
