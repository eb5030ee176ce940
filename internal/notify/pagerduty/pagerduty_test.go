package pagerduty

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vigilsec/vigil/internal/alert"
	"github.com/vigilsec/vigil/internal/notify/message"
)

const routingKey = "R0123456789abcdef0123456789abcde" // 32 characters, like an integration key

var now = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// eventsAPI is a local Events API v2 endpoint: it validates each event as
// PagerDuty documents it and answers with the scripted statuses in turn.
type eventsAPI struct {
	mu       sync.Mutex
	events   []Event
	problems []string // validation failures, answered with 400
	status   []int
}

func (e *eventsAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	problems := validate(b)
	var ev Event
	_ = json.Unmarshal(b, &ev)
	e.mu.Lock()
	e.events = append(e.events, ev)
	e.problems = append(e.problems, problems...)
	st := e.status[min(len(e.events)-1, len(e.status)-1)]
	e.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if len(problems) > 0 {
		st = http.StatusBadRequest
	}
	w.WriteHeader(st)
	switch st {
	case http.StatusAccepted:
		json.NewEncoder(w).Encode(map[string]string{"status": "success", "message": "Event processed", "dedup_key": ev.DedupKey})
	case http.StatusBadRequest:
		json.NewEncoder(w).Encode(map[string]any{"status": "invalid event", "message": "Event object is invalid", "errors": problems})
	default:
		io.WriteString(w, `{"status":"error"}`)
	}
}

// validate checks one request body against the Events API v2 format.
func validate(b []byte) []string {
	var p []string
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return []string{"not a JSON object"}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var ev Event
	if err := dec.Decode(&ev); err != nil {
		return []string{"unknown or mistyped field: " + err.Error()}
	}
	if len(ev.RoutingKey) != 32 {
		p = append(p, "routing_key must be 32 characters")
	}
	if ev.DedupKey == "" || len(ev.DedupKey) > 255 {
		p = append(p, "dedup_key must be 1..255 characters")
	}
	switch ev.EventAction {
	case "trigger":
		pl := ev.Payload
		if pl == nil {
			return append(p, "trigger without payload")
		}
		if pl.Summary == "" || len(pl.Summary) > 1024 || !utf8.ValidString(pl.Summary) {
			p = append(p, "payload.summary must be 1..1024 characters")
		}
		if pl.Source == "" {
			p = append(p, "payload.source is required")
		}
		switch pl.Severity {
		case "critical", "error", "warning", "info":
		default:
			p = append(p, "payload.severity must be critical, error, warning or info")
		}
		if pl.Timestamp != "" {
			if _, err := time.Parse(time.RFC3339Nano, pl.Timestamp); err != nil {
				p = append(p, "payload.timestamp must be ISO 8601")
			}
		}
		if _, ok := raw["payload"].(map[string]any)["custom_details"].(map[string]any); !ok {
			p = append(p, "payload.custom_details should be an object")
		}
		for _, l := range ev.Links {
			if !strings.HasPrefix(l.Href, "https://") {
				p = append(p, "links[].href must be a URL")
			}
		}
	case "resolve", "acknowledge":
		if ev.Payload != nil {
			p = append(p, "resolve carries no payload")
		}
	default:
		p = append(p, "event_action must be trigger, acknowledge or resolve")
	}
	return p
}

func newNotifier(t *testing.T, url string, o Options) *Notifier {
	t.Helper()
	o.URL, o.RoutingKey, o.Receiver, o.ExternalURL = url, routingKey, "sec", "https://vigil.test"
	o.Now = func() time.Time { return now }
	n, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestNotify(t *testing.T) {
	cases := []struct {
		name    string
		status  []int
		retry   bool
		wantErr string
	}{
		{"202 accepted", []int{202}, false, ""},
		{"400 not retried", []int{400}, false, "Event object is invalid"},
		{"429 retried", []int{429}, true, "429"},
		{"500 retried", []int{500}, true, "500"},
		{"one of two failed", []int{202, 503}, true, "1 of 2 events failed"},
		{"200 is not the documented success", []int{200}, false, "200"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			api := &eventsAPI{status: c.status}
			srv := httptest.NewServer(api)
			defer srv.Close()
			retry, err := newNotifier(t, srv.URL+"/v2/enqueue", Options{}).Notify(context.Background(), message.SampleAlerts())
			if retry != c.retry {
				t.Errorf("retry %v, want %v", retry, c.retry)
			}
			if c.wantErr == "" && err != nil || c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
				t.Fatalf("error %v, want %q", err, c.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), routingKey) {
				t.Errorf("error shows the routing key: %v", err)
			}
			if len(api.events) != 2 || len(api.problems) > 0 {
				t.Fatalf("%d events, want one per alert; problems: %v", len(api.events), api.problems)
			}
		})
	}
}

func TestInvalidEventIsNotRetried(t *testing.T) {
	api := &eventsAPI{status: []int{202}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	n, err := New(Options{URL: srv.URL, RoutingKey: "too-short"})
	if err != nil {
		t.Fatal(err)
	}
	retry, err := n.Notify(context.Background(), message.SampleAlerts()[:1])
	if retry || err == nil || !strings.Contains(err.Error(), "routing_key must be 32 characters") {
		t.Fatalf("retry %v err %v", retry, err)
	}
}

func TestEvents(t *testing.T) {
	api := &eventsAPI{status: []int{202}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	n := newNotifier(t, srv.URL, Options{Component: "login", Group: "shop", Summary: message.MustText("s", `{{ range .Alerts }}{{ .Name }} {{ printf "%02000d" 0 }}{{ end }}`)})

	firing := message.SampleAlerts()
	long := firing[1]
	long.Fingerprint = strings.Repeat("f", 300)
	long.Labels = map[string]string{"alertname": "X", "severity": "high"}
	resolved := firing[0]
	resolved.Status = alert.StateResolved
	resolved.EndsAt = resolved.StartsAt.Add(time.Hour)
	if retry, err := n.Notify(context.Background(), []alert.Alert{firing[0], long, resolved}); err != nil {
		t.Fatalf("retry %v: %v", retry, err)
	}
	if len(api.events) != 3 || len(api.problems) > 0 {
		t.Fatalf("%d events; problems: %v", len(api.events), api.problems)
	}
	a, b, c := api.events[0], api.events[1], api.events[2]
	if a.EventAction != "trigger" || a.DedupKey != firing[0].Fingerprint || a.RoutingKey != routingKey || a.Payload.Severity != "critical" ||
		a.Payload.Source != "vigil" || a.Payload.Component != "login" || a.Payload.Group != "shop" || a.Payload.Class != "BruteForceLogin" ||
		a.Payload.Timestamp != "2026-01-02T03:04:05Z" || a.Client != "Vigil" || a.ClientURL != "https://vigil.test" {
		t.Errorf("first event %+v payload %+v", a, a.Payload)
	}
	if len(a.Payload.Summary) > MaxSummaryBytes || !strings.HasPrefix(a.Payload.Summary, "BruteForceLogin 000") || !strings.HasSuffix(a.Payload.Summary, "…") {
		t.Errorf("summary of %d bytes not truncated to %d: %.40q", len(a.Payload.Summary), MaxSummaryBytes, a.Payload.Summary)
	}
	d := a.Payload.CustomDetails
	if d["labels"].(map[string]any)["source.ip"] != "203.0.113.7" || len(d["evidence"].([]any)) != 3 || d["fingerprint"] != firing[0].Fingerprint {
		t.Errorf("custom_details %v", d)
	}
	if len(a.Links) != 2 || a.Links[0].Href != firing[0].GeneratorURL || a.Links[1].Text != "Runbook" {
		t.Errorf("links %+v", a.Links)
	}
	if len(b.DedupKey) != 64 || b.Payload.Severity != "error" {
		t.Errorf("long fingerprint: dedup_key %q severity %q", b.DedupKey, b.Payload.Severity)
	}
	if c.EventAction != "resolve" || c.DedupKey != firing[0].Fingerprint || c.Payload != nil {
		t.Errorf("resolve event %+v", c)
	}
}

func TestDefaultSummary(t *testing.T) {
	n := newNotifier(t, "https://events.test", Options{Details: map[string]*message.Template{"ip": message.MustText("ip", `{{ range .Alerts }}{{ index .Labels "source.ip" }}{{ end }}`)}})
	ev, err := n.Build(message.SampleAlerts()[0])
	if err != nil {
		t.Fatal(err)
	}
	if ev.Payload.Summary != "BruteForceLogin: 42 failed logins from 203.0.113.7 in 1m" {
		t.Errorf("summary %q", ev.Payload.Summary)
	}
	if ev.Payload.CustomDetails["ip"] != "203.0.113.7" {
		t.Errorf("details %v", ev.Payload.CustomDetails)
	}
}

func TestSeverity(t *testing.T) {
	for in, want := range map[string]string{
		"critical": "critical", "CRITICAL": "critical", "error": "error", "high": "error",
		"warning": "warning", "medium": "warning", "": "warning", "weird": "warning",
		"info": "info", "low": "info",
	} {
		if got := Severity(in); got != want {
			t.Errorf("Severity(%q) = %q, want %q", in, got, want)
		}
	}
}
