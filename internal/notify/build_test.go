package notify

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/alert"
	"github.com/vigilsec/vigil/internal/notify/message"
	"github.com/vigilsec/vigil/internal/notify/webhook"
)

func TestBuildFull(t *testing.T) {
	c := loadFull(t)
	got, err := Build(c.Receivers, Options{ExternalURL: "https://vigil.test"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range got["security-team"] {
		names = append(names, n.(*Integration).String())
	}
	want := "security-team/email[0] security-team/slack[0] security-team/pagerduty[0] security-team/webhook[0] security-team/alertmanager[0]"
	if strings.Join(names, " ") != want {
		t.Errorf("integrations %v, want %s", names, want)
	}
	if sink, ok := got["sink"]; !ok || len(sink) != 0 {
		t.Errorf("sink receiver: %v %v", sink, ok)
	}
	if got["security-team"][1].(*Integration).SendResolved || !got["security-team"][0].(*Integration).SendResolved {
		t.Error("send_resolved not applied")
	}
}

// hook records signed webhook requests and checks their signatures.
type hook struct {
	mu     sync.Mutex
	secret []byte
	bodies []webhook.Payload
	errs   []error
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := webhook.Verify(h.secret, r.Header, b, time.Now(), time.Minute); err != nil {
		h.errs = append(h.errs, err)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var p webhook.Payload
	if err := jsonUnmarshal(b, &p); err != nil {
		h.errs = append(h.errs, err)
	}
	h.bodies = append(h.bodies, p)
}

func TestBuildReadsSecretFilesAndSends(t *testing.T) {
	dir := t.TempDir()
	secret := "file-secret-0123456789"
	h := &hook{secret: []byte(secret)}
	srv := httptest.NewServer(h)
	defer srv.Close()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	secretFile := write("secret", secret+"\n") // trailing newline, as editors leave it
	urlFile := write("url", srv.URL+"/hook\r\n")
	rs := []Receiver{{Name: "ops", Webhook: []WebhookConfig{
		{URLFile: urlFile, SecretFile: secretFile},
		{URL: Secret(srv.URL + "/hook"), Secret: Secret(secret), Common: Common{SendResolved: new(false)}},
	}}}
	got, err := Build(rs, Options{ExternalURL: "https://vigil.test"})
	if err != nil {
		t.Fatal(err)
	}
	firing := message.SampleAlerts()
	resolved := message.SampleAlerts()
	for i := range resolved {
		resolved[i].Status = alert.StateResolved
		resolved[i].EndsAt = resolved[i].StartsAt.Add(time.Minute)
	}
	mixed := append([]alert.Alert{firing[0]}, resolved[1])
	for _, n := range got["ops"] {
		for _, as := range [][]alert.Alert{firing, resolved, mixed} {
			if _, err := n.Notify(context.Background(), as); err != nil {
				t.Fatalf("%v: %v", n, err)
			}
		}
	}
	if len(h.errs) > 0 {
		t.Fatalf("receiver errors: %v", h.errs)
	}
	// First integration: 3 requests. Second (send_resolved false): firing,
	// nothing for the resolved-only group, and the mixed group without its
	// resolved alert.
	if len(h.bodies) != 5 {
		t.Fatalf("%d requests, want 5", len(h.bodies))
	}
	if p := h.bodies[4]; len(p.Alerts) != 1 || p.Alerts[0].Status != "firing" {
		t.Errorf("send_resolved false sent %+v", p.Alerts)
	}
	if p := h.bodies[1]; p.Status != "resolved" || p.Receiver != "ops" || p.ExternalURL != "https://vigil.test" {
		t.Errorf("resolved payload %+v", p)
	}
}

func TestBuildErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	notURL := filepath.Join(dir, "noturl")
	os.WriteFile(notURL, []byte("hooks.example.com/x"), 0o600)
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("short"), 0o600)
	noPEM := filepath.Join(dir, "ca.pem")
	os.WriteFile(noPEM, []byte("not a certificate"), 0o600)
	missing := filepath.Join(dir, "missing")
	wh := func(c WebhookConfig) []Receiver {
		if c.URL == "" && c.URLFile == "" {
			c.URL = "https://x.example.com/h"
		}
		return []Receiver{{Name: "r", Webhook: []WebhookConfig{c}}}
	}
	cases := []struct {
		name string
		rs   []Receiver
		want string
	}{
		{"invalid config", []Receiver{{Name: ""}}, "receivers[0].name"},
		{"missing secret file", wh(WebhookConfig{SecretFile: missing}), "receivers[0].webhook[0].secret_file: open"},
		{"empty secret file", wh(WebhookConfig{SecretFile: empty}), "receivers[0].webhook[0].secret_file: " + empty + ": empty"},
		{"short secret in file", wh(WebhookConfig{SecretFile: short}), "receivers[0].webhook[0].secret_file: secret must be at least 16"},
		{"url file without URL", wh(WebhookConfig{URLFile: notURL}), "receivers[0].webhook[0].url_file: the file does not hold an http(s) URL"},
		{"CA file without PEM", wh(WebhookConfig{TLS: TLSConfig{CAFile: noPEM}}), "receivers[0].webhook[0].tls.ca_file: " + noPEM + " holds no PEM certificate"},
		{"missing CA file", []Receiver{{Name: "r", Alertmanager: []AlertmanagerConfig{{URLs: []string{"http://a.example.com"}, TLS: TLSConfig{CAFile: missing}}}}}, "receivers[0].alertmanager[0].tls.ca_file"},
		{"missing routing key file", []Receiver{{Name: "r", PagerDuty: []PagerDutyConfig{{RoutingKeyFile: missing}}}}, "receivers[0].pagerduty[0].routing_key_file"},
		{"missing password file", []Receiver{{Name: "r", Email: []EmailConfig{{To: []string{"a@example.com"}, From: "b@example.com", Smarthost: "m:25", AuthUsername: "u", AuthPasswordFile: missing}}}}, "receivers[0].email[0].auth_password_file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Build(c.rs, Options{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}

func TestIntegrationWrapsErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "9")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	got, err := Build([]Receiver{{Name: "r", Slack: []SlackConfig{{URL: Secret(srv.URL + "/services/SECRET")}}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	retry, err := got["r"][0].Notify(context.Background(), message.SampleAlerts())
	if !retry || err == nil || !strings.HasPrefix(err.Error(), "r/slack[0]: slack: ") || strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("retry %v err %v", retry, err)
	}
	var ra interface{ RetryAfter() time.Duration }
	if !errors.As(err, &ra) || ra.RetryAfter() != 9*time.Second {
		t.Errorf("Retry-After lost through the wrapping: %v", err)
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
