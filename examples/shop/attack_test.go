package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/client"
	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/demo"
	"github.com/vigilsec/vigil/internal/notify/webhook"
	"github.com/vigilsec/vigil/internal/server/servertest"
	"github.com/vigilsec/vigil/internal/testpeer"
)

// TestDemoBruteForceIsAlertedAndBanned is issue 4's demonstration: the
// brute-force run of `vigil demo` raises an alert within a second; a
// signed webhook, an email (real SMTP) and a real Alertmanager receive it;
// the attacker's address is banned; the example shop, following Vigil's
// decision stream, answers that address 403, and serves it again once the
// ban's TTL has passed.
func TestDemoBruteForceIsAlertedAndBanned(t *testing.T) {
	am := testpeer.Alertmanager(t)
	mail := testpeer.SMTP(t)
	const secret = "webhook-signing-secret"
	var (
		hookMu sync.Mutex
		hooks  []webhook.Payload
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhook.Verify([]byte(secret), r.Header, body, time.Now(), time.Minute); err != nil {
			t.Errorf("webhook signature: %v", err)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var p webhook.Payload
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("webhook payload: %v", err)
		}
		hookMu.Lock()
		hooks = append(hooks, p)
		hookMu.Unlock()
	}))
	defer hook.Close()

	// The built-in brute-force rule, with a short ban so that the test
	// sees it end.
	rules := t.TempDir()
	writeFile(t, filepath.Join(rules, "brute.yml"), `
- name: brute_force_ip
  description: Many failed logins from one address (password guessing).
  kind: threshold
  severity: error
  filter: event.action = authn_login_fail
  group_by: [source.ip]
  window: 1m
  threshold: 10
  annotations:
    summary: '{{ .Value }} failed logins in {{ .Window }} from {{ .Group "source.ip" }}'
  action: {type: ban, scope: ip, field: source.ip, ttl: 4s}
`)
	cfg := config.Default()
	err := config.Parse(fmt.Appendf(nil, `
listen: 127.0.0.1:0
data_dir: %s
rules:
  dir: %s
alerting:
  route:
    receiver: security
    group_by: [alertname, source.ip]
    group_wait: 100ms
    group_interval: 1m
    repeat_interval: 1h
notify:
  receivers:
    - name: security
      email:
        - to: [soc@example.test]
          from: vigil@example.test
          smarthost: %s
      webhook:
        - url: %s
          secret: %s
      alertmanager:
        - urls: [%s]
`, filepath.Join(t.TempDir(), "vigil-data"), rules, mail.Addr, hook.URL, secret, am), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	const token = "vgl_attack-test-token"
	v := servertest.StartConfig(t, cfg, token)

	h, closeShop, err := newShop(shopConfig{
		VigilURL: v.URL, Token: token, FollowBans: true,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	})
	if err != nil {
		t.Fatal(err)
	}
	shopSrv := httptest.NewServer(h)
	defer shopSrv.Close()
	defer closeShop(context.Background())
	get := func(ip string) int {
		req, _ := http.NewRequest("GET", shopSrv.URL+"/products", nil)
		req.Header.Set("X-Forwarded-For", ip)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// No request reaches the shop before the demo's events: its event,
	// dated now, would put the detection clock ten minutes past the
	// demo's backdated brute force, and the rule would see the run as
	// late (see docs/rules.md on event time).

	// The traffic of `vigil demo` with its defaults: ten minutes, ending now.
	events := demo.Generate(demo.Options{Start: time.Now().Add(-demo.DefaultDuration), Duration: demo.DefaultDuration})
	c := client.New(v.URL, token)
	if _, err := c.Send(context.Background(), demo.NDJSON(events)); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()

	// The alert, through Vigil's API.
	var alertAt time.Duration
	waitFor(t, 5*time.Second, "brute_force_ip alert in Vigil", func() bool {
		var list struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
			} `json:"alerts"`
		}
		getJSON(t, v.URL+"/api/v1/alerts", token, &list)
		for _, a := range list.Alerts {
			if a.Labels["alertname"] == "brute_force_ip" && a.Labels["source.ip"] == demo.BruteForceIP {
				alertAt = time.Since(sent)
				return true
			}
		}
		return false
	}, func() string {
		var all, metrics bytes.Buffer
		getRaw(t, v.URL+"/api/v1/alerts", token, &all)
		getRaw(t, v.URL+"/metrics", token, &metrics)
		var detect []string
		for _, l := range strings.Split(metrics.String(), "\n") {
			if strings.HasPrefix(l, "vigil_detect") || strings.HasPrefix(l, "vigil_store_last_seq") {
				detect = append(detect, l)
			}
		}
		return "alerts: " + all.String() + "\n" + strings.Join(detect, "\n")
	})
	t.Logf("alert raised %v after the demo's events were acknowledged", alertAt)
	if alertAt > time.Second {
		t.Errorf("alert raised after %v, want within 1s", alertAt)
	}

	waitFor(t, 10*time.Second, "webhook notification", func() bool {
		hookMu.Lock()
		defer hookMu.Unlock()
		for _, p := range hooks {
			for _, a := range p.Alerts {
				if a.Labels["alertname"] == "brute_force_ip" && a.Labels["source.ip"] == demo.BruteForceIP {
					return true
				}
			}
		}
		return false
	}, func() string {
		var b bytes.Buffer
		getRaw(t, v.URL+"/api/v1/notifications", token, &b)
		hookMu.Lock()
		defer hookMu.Unlock()
		return fmt.Sprintf("webhook got %d payloads: %+v\ndelivery log: %s", len(hooks), hooks, b.String())
	})
	waitFor(t, 10*time.Second, "email", func() bool {
		for _, m := range mail.Messages() {
			if bytes.Contains(m.Data, []byte("brute_force_ip")) && bytes.Contains(m.Data, []byte(demo.BruteForceIP)) {
				return true
			}
		}
		return false
	})
	waitFor(t, 10*time.Second, "alert in Alertmanager", func() bool {
		for _, a := range testpeer.AlertmanagerAlerts(t, am) {
			if a.Labels["alertname"] == "brute_force_ip" && a.Labels["source_ip"] == demo.BruteForceIP {
				return true
			}
		}
		return false
	})

	// The ban: in Vigil's decisions, then enforced by the shop.
	waitFor(t, 5*time.Second, "ban enforced by the shop", func() bool { return get(demo.BruteForceIP) == http.StatusForbidden })
	if code := get("192.0.2.200"); code != http.StatusOK {
		t.Errorf("another address gets %d, want 200", code)
	}
	var decisions struct {
		Decisions []struct {
			Value  string `json:"value"`
			Origin string `json:"origin"`
		} `json:"decisions"`
	}
	getJSON(t, v.URL+"/api/v1/decisions", token, &decisions)
	found := false
	for _, d := range decisions.Decisions {
		found = found || d.Value == demo.BruteForceIP && d.Origin == "brute_force_ip"
	}
	if !found {
		t.Errorf("no decision from brute_force_ip for %s in %+v", demo.BruteForceIP, decisions)
	}

	// The ban ends after its TTL (4 s).
	waitFor(t, 15*time.Second, "ban lifted after its TTL", func() bool { return get(demo.BruteForceIP) == http.StatusOK })
}

func waitFor(t *testing.T, limit time.Duration, what string, ok func() bool, explain ...func() string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			var why string
			for _, f := range explain {
				why += "\n" + f()
			}
			t.Fatalf("%s: not seen within %v%s", what, limit, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// getRaw writes the body of an authenticated GET of url to out, and returns
// the status code.
func getRaw(t *testing.T, url, token string, out *bytes.Buffer) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(out, resp.Body)
	return resp.StatusCode
}

func getJSON(t *testing.T, url, token string, out any) {
	t.Helper()
	var b bytes.Buffer
	if code := getRaw(t, url, token, &b); code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, code, b.String())
	}
	if err := json.Unmarshal(b.Bytes(), out); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, strings.TrimSpace(b.String()))
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
