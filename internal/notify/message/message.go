// Package message builds the content of notifications: the data model that
// notification templates see, the template functions, and parsing and
// rendering with bounded output.
//
// Templates are Go text/template (html/template for HTML email bodies, which
// escapes what alerts carry: label values come from logged events, so an
// attacker chooses some of them). The data model is Data; docs/notifications.md
// documents every field.
package message

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/vigilsec/vigil/internal/alert"
)

// Data is what a notification template is executed with: one group of alerts
// sent to one receiver.
type Data struct {
	// Receiver is the name of the receiver the notification goes to.
	Receiver string
	// Status is "firing" when at least one alert fires, else "resolved".
	Status string
	// Alerts holds every alert of the notification, firing ones first.
	Alerts Alerts
	// NumFiring and NumResolved count the alerts by status.
	NumFiring, NumResolved int
	// GroupLabels holds the labels whose values all alerts share. Vigil
	// groups alerts by such labels; notifiers are not told the grouping
	// keys, so GroupLabels equals CommonLabels.
	GroupLabels KV
	// CommonLabels and CommonAnnotations hold the labels and annotations
	// whose values all alerts share.
	CommonLabels      KV
	CommonAnnotations KV
	// ExternalURL is Vigil's base URL as users reach it (may be empty).
	ExternalURL string
}

// Alert is one alert as templates see it.
type Alert struct {
	Status       string // "firing" or "resolved"
	Fingerprint  string
	Labels       KV
	Annotations  KV
	StartsAt     time.Time
	EndsAt       time.Time // zero while firing
	GeneratorURL string
	// Evidence lists the sequence numbers of events that raised the alert.
	Evidence []uint64
	// Name is the "alertname" label (the rule's name).
	Name string
	// Severity is the "severity" label, "warning" when unset.
	Severity string
	// Summary is the "summary" annotation, else "description", else Name.
	Summary string
	// Description is the "description" annotation.
	Description string
	// EvidenceURL links to the alert and its evidence in Vigil: the
	// generator URL, else ExternalURL, else empty.
	EvidenceURL string
}

// Alerts is a list of alerts with filters for templates.
type Alerts []Alert

// Firing returns the firing alerts.
func (as Alerts) Firing() Alerts { return as.with(alert.StateFiring) }

// Resolved returns the resolved alerts.
func (as Alerts) Resolved() Alerts { return as.with(alert.StateResolved) }

func (as Alerts) with(status string) Alerts {
	var out Alerts
	for _, a := range as {
		if a.Status == status {
			out = append(out, a)
		}
	}
	return out
}

// KV is a set of labels or annotations.
type KV map[string]string

// Pair is one label or annotation.
type Pair struct{ Name, Value string }

// SortedPairs returns the entries sorted by name.
func (kv KV) SortedPairs() []Pair {
	out := make([]Pair, 0, len(kv))
	for _, k := range slices.Sorted(maps.Keys(kv)) {
		out = append(out, Pair{k, kv[k]})
	}
	return out
}

// Names returns the sorted names.
func (kv KV) Names() []string { return slices.Sorted(maps.Keys(kv)) }

// Remove returns a copy without the given names.
func (kv KV) Remove(names ...string) KV {
	out := maps.Clone(kv)
	for _, n := range names {
		delete(out, n)
	}
	if out == nil {
		out = KV{}
	}
	return out
}

// String renders the set as name="value" pairs sorted by name, the way
// Prometheus writes label sets.
func (kv KV) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, p := range kv.SortedPairs() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(p.Name)
		b.WriteString(`="`)
		b.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(p.Value))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// NewData builds the template data of one notification. Firing alerts come
// first, then resolved ones, each by start time then fingerprint.
func NewData(receiver, externalURL string, alerts []alert.Alert) Data {
	d := Data{Receiver: receiver, ExternalURL: externalURL, Status: alert.StateResolved}
	for _, a := range alerts {
		m := NewAlert(a, externalURL)
		if m.Status == alert.StateFiring {
			d.NumFiring++
			d.Status = alert.StateFiring
		} else {
			d.NumResolved++
		}
		d.Alerts = append(d.Alerts, m)
	}
	slices.SortStableFunc(d.Alerts, func(a, b Alert) int {
		if a.Status != b.Status {
			if a.Status == alert.StateFiring {
				return -1
			}
			return 1
		}
		return cmp.Or(a.StartsAt.Compare(b.StartsAt), strings.Compare(a.Fingerprint, b.Fingerprint))
	})
	d.CommonLabels = common(alerts, func(a alert.Alert) map[string]string { return a.Labels })
	d.CommonAnnotations = common(alerts, func(a alert.Alert) map[string]string { return a.Annotations })
	d.GroupLabels = maps.Clone(d.CommonLabels)
	return d
}

// NewAlert converts one alert. A status other than "firing" counts as
// resolved.
func NewAlert(a alert.Alert, externalURL string) Alert {
	m := Alert{
		Status:       a.Status,
		Fingerprint:  a.Fingerprint,
		Labels:       KV(maps.Clone(a.Labels)),
		Annotations:  KV(maps.Clone(a.Annotations)),
		StartsAt:     a.StartsAt,
		EndsAt:       a.EndsAt,
		GeneratorURL: a.GeneratorURL,
		Evidence:     slices.Clone(a.Evidence),
		Name:         a.Labels["alertname"],
		Severity:     a.Severity(),
		Description:  a.Annotations["description"],
		EvidenceURL:  cmp.Or(a.GeneratorURL, externalURL),
	}
	if m.Status != alert.StateFiring {
		m.Status = alert.StateResolved
	}
	if m.Labels == nil {
		m.Labels = KV{}
	}
	if m.Annotations == nil {
		m.Annotations = KV{}
	}
	m.Summary = cmp.Or(a.Annotations["summary"], a.Annotations["description"], m.Name)
	return m
}

func common(alerts []alert.Alert, get func(alert.Alert) map[string]string) KV {
	out := KV{}
	if len(alerts) == 0 {
		return out
	}
	for k, v := range get(alerts[0]) {
		same := true
		for _, a := range alerts[1:] {
			if w, ok := get(a)[k]; !ok || w != v {
				same = false
				break
			}
		}
		if same {
			out[k] = v
		}
	}
	return out
}

// Map returns a copy of d with f applied to every string that comes from
// alerts (label and annotation names and values, names, summaries, URLs).
// Channels whose markup gives meaning to characters (Slack's mrkdwn) use it
// to escape what an attacker may have put into an alert.
func (d Data) Map(f func(string) string) Data {
	kv := func(in KV) KV {
		out := make(KV, len(in))
		for k, v := range in {
			out[f(k)] = f(v)
		}
		return out
	}
	out := d
	out.Receiver = f(d.Receiver)
	out.ExternalURL = f(d.ExternalURL)
	out.GroupLabels = kv(d.GroupLabels)
	out.CommonLabels = kv(d.CommonLabels)
	out.CommonAnnotations = kv(d.CommonAnnotations)
	out.Alerts = make(Alerts, len(d.Alerts))
	for i, a := range d.Alerts {
		a.Fingerprint = f(a.Fingerprint)
		a.Labels = kv(a.Labels)
		a.Annotations = kv(a.Annotations)
		a.GeneratorURL = f(a.GeneratorURL)
		a.Name = f(a.Name)
		a.Severity = f(a.Severity)
		a.Summary = f(a.Summary)
		a.Description = f(a.Description)
		a.EvidenceURL = f(a.EvidenceURL)
		out.Alerts[i] = a
	}
	return out
}

// SeverityRank orders severities: critical 0, error 1, warning 2, info 3,
// anything else 4.
func SeverityRank(s string) int {
	switch s {
	case alert.SeverityCritical:
		return 0
	case alert.SeverityError:
		return 1
	case alert.SeverityWarning:
		return 2
	case alert.SeverityInfo:
		return 3
	}
	return 4
}

// WorstSeverity returns the most severe severity among the firing alerts,
// "" when none fires.
func (d Data) WorstSeverity() string {
	worst := ""
	for _, a := range d.Alerts.Firing() {
		if worst == "" || SeverityRank(a.Severity) < SeverityRank(worst) {
			worst = a.Severity
		}
	}
	return worst
}

// Truncate shortens s to at most n bytes without splitting a UTF-8
// character, ending it with "…" when it was cut. n below 4 cuts without
// the mark.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	const mark = "…"
	keep := n
	if n >= len(mark)+1 {
		keep = n - len(mark)
	}
	for keep > 0 && !startsRune(s[keep]) {
		keep--
	}
	if n >= len(mark)+1 {
		return s[:keep] + mark
	}
	return s[:keep]
}

// startsRune reports whether b can begin a UTF-8 sequence.
func startsRune(b byte) bool { return b&0xC0 != 0x80 }
