package message

import (
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/vigilsec/vigil/internal/alert"
)

// Limits on templates.
const (
	// MaxSourceBytes bounds the text of one template.
	MaxSourceBytes = 64 << 10
	// MaxOutputBytes bounds what one execution may write.
	MaxOutputBytes = 1 << 20
)

// ErrOutputTooLarge is returned when a template writes more than
// MaxOutputBytes.
var ErrOutputTooLarge = errors.New("template output exceeds 1 MiB")

// Template is one parsed notification template.
type Template struct {
	name string
	exec func(io.Writer, any) error
}

// Funcs are the functions available in every template besides Go's
// built-ins (and, or, index, len, printf…).
func Funcs() map[string]any {
	return map[string]any{
		"upper":     strings.ToUpper,
		"lower":     strings.ToLower,
		"title":     titleCase,
		"trimSpace": strings.TrimSpace,
		"join":      func(sep string, s []string) string { return strings.Join(s, sep) },
		"truncate":  func(n int, s string) string { return Truncate(s, n) },
		"time":      func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"default": func(def string, s string) string {
			if s == "" {
				return def
			}
			return s
		},
		"seqs": func(seqs []uint64) string {
			parts := make([]string, len(seqs))
			for i, s := range seqs {
				parts[i] = fmt.Sprint(s)
			}
			return strings.Join(parts, ", ")
		},
	}
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// Text parses a text/template. Missing map keys render as "".
func Text(name, src string) (*Template, error) {
	if len(src) > MaxSourceBytes {
		return nil, fmt.Errorf("template %s: longer than %d bytes", name, MaxSourceBytes)
	}
	t, err := texttemplate.New(name).Funcs(Funcs()).Option("missingkey=zero").Parse(src)
	if err != nil {
		return nil, err
	}
	return &Template{name: name, exec: t.Execute}, nil
}

// HTML parses an html/template: values are escaped for the context they
// appear in. Missing map keys render as "".
func HTML(name, src string) (*Template, error) {
	if len(src) > MaxSourceBytes {
		return nil, fmt.Errorf("template %s: longer than %d bytes", name, MaxSourceBytes)
	}
	t, err := htmltemplate.New(name).Funcs(Funcs()).Option("missingkey=zero").Parse(src)
	if err != nil {
		return nil, err
	}
	return &Template{name: name, exec: t.Execute}, nil
}

// MustText is Text for the built-in templates; it panics on error.
func MustText(name, src string) *Template {
	t, err := Text(name, src)
	if err != nil {
		panic(err)
	}
	return t
}

// MustHTML is HTML for the built-in templates; it panics on error.
func MustHTML(name, src string) *Template {
	t, err := HTML(name, src)
	if err != nil {
		panic(err)
	}
	return t
}

// Execute renders the template with d.
func (t *Template) Execute(d Data) (string, error) {
	var w limitWriter
	w.max = MaxOutputBytes
	if err := t.exec(&w, d); err != nil {
		if errors.Is(err, ErrOutputTooLarge) {
			return "", fmt.Errorf("template %s: %w", t.name, ErrOutputTooLarge)
		}
		return "", err
	}
	return w.b.String(), nil
}

// Check executes the template with SampleData, both firing and resolved,
// so that errors that only show at execution (a field that does not exist,
// a function applied to the wrong type) are found when the configuration is
// loaded rather than when an alert fires.
func (t *Template) Check() error {
	for _, d := range []Data{SampleData(), SampleResolvedData()} {
		if _, err := t.Execute(d); err != nil {
			return err
		}
	}
	return nil
}

type limitWriter struct {
	b   strings.Builder
	max int
}

func (w *limitWriter) Write(p []byte) (int, error) {
	if w.b.Len()+len(p) > w.max {
		return 0, ErrOutputTooLarge
	}
	return w.b.Write(p)
}

var sampleStart = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// SampleAlerts returns two firing alerts of different severities, the data
// that checks templates and that the documentation shows.
func SampleAlerts() []alert.Alert {
	return []alert.Alert{
		{
			Fingerprint:  "5f2c1a9e0b7d4c33",
			Status:       alert.StateFiring,
			Labels:       map[string]string{"alertname": "BruteForceLogin", "severity": "critical", "rule": "brute_force_login", "source.ip": "203.0.113.7"},
			Annotations:  map[string]string{"summary": "42 failed logins from 203.0.113.7 in 1m", "description": "Failed logins for 9 user names from one address.", "runbook": "https://wiki.example.com/runbooks/brute-force"},
			StartsAt:     sampleStart,
			GeneratorURL: "https://vigil.example.com/alerts/5f2c1a9e0b7d4c33",
			Evidence:     []uint64{1201, 1207, 1288},
		},
		{
			Fingerprint: "0a4d88e2c19f7b21",
			Status:      alert.StateFiring,
			Labels:      map[string]string{"alertname": "BruteForceLogin", "severity": "warning", "rule": "brute_force_login", "source.ip": "198.51.100.23"},
			Annotations: map[string]string{"summary": "12 failed logins from 198.51.100.23 in 1m"},
			StartsAt:    sampleStart.Add(time.Minute),
			Evidence:    []uint64{1300},
		},
	}
}

// SampleData is Data built from SampleAlerts.
func SampleData() Data {
	return NewData("security-team", "https://vigil.example.com", SampleAlerts())
}

// SampleResolvedData is SampleData with every alert resolved.
func SampleResolvedData() Data {
	as := SampleAlerts()
	for i := range as {
		as[i].Status = alert.StateResolved
		as[i].EndsAt = as[i].StartsAt.Add(10 * time.Minute)
	}
	return NewData("security-team", "https://vigil.example.com", as)
}
