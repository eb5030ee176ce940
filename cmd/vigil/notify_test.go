package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/notify/webhook"
)

const notifyTestSecret = "cli-test-secret-0123456789"

// signedHook is a webhook receiver that verifies Vigil's signature and
// records the payloads.
type signedHook struct {
	mu       sync.Mutex
	payloads []webhook.Payload
	bad      []error
}

func (h *signedHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := webhook.Verify([]byte(notifyTestSecret), r.Header, b, time.Now(), time.Minute); err != nil {
		h.bad = append(h.bad, err)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var p webhook.Payload
	if err := json.Unmarshal(b, &p); err != nil {
		h.bad = append(h.bad, err)
	}
	h.payloads = append(h.payloads, p)
}

func writeNotifyConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "notify.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// notifyCLI runs "vigil notify ARGS" and returns its output and the exit
// code run() would give.
func notifyCLI(args ...string) (string, string, int) {
	var out, errb bytes.Buffer
	err := runNotify(args, &out, &errb)
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return out.String(), errb.String(), 0
	case errors.As(err, &ue):
		fmt.Fprintln(&errb, err)
		return out.String(), errb.String(), 2
	}
	fmt.Fprintln(&errb, err)
	return out.String(), errb.String(), 1
}

func TestNotifyTest(t *testing.T) {
	hook := &signedHook{}
	okSrv := httptest.NewServer(hook)
	defer okSrv.Close()
	var slackCalls int
	var mu sync.Mutex
	failSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		slackCalls++
		mu.Unlock()
		http.Error(w, "invalid_payload", http.StatusBadRequest)
	}))
	defer failSrv.Close()
	downSrv := httptest.NewServer(http.NotFoundHandler())
	down := downSrv.URL
	downSrv.Close()

	cfg := writeNotifyConfig(t, fmt.Sprintf(`receivers:
  - name: good
    webhook:
      - url: %[1]s/hook
        secret: %[2]s
      - url: %[1]s/quiet
        secret: %[2]s
        send_resolved: false
  - name: bad
    slack:
      - url: %[3]s/services/T/B/TOKEN
    webhook:
      - url: %[4]s/down
`, okSrv.URL, notifyTestSecret, failSrv.URL, down))

	t.Run("all receivers", func(t *testing.T) {
		hook.payloads = nil
		out, errs, code := notifyCLI("test", "--config", cfg, "--timeout", "5s")
		if code != 1 || !strings.Contains(errs, "4 of 7 test notification(s) failed") {
			t.Fatalf("exit %d, stderr %q\n%s", code, errs, out)
		}
		for _, want := range []string{
			"through 4 notifier(s)",
			"ok       good/webhook[0]  firing",
			"ok       good/webhook[0]  resolved",
			"ok       good/webhook[1]  firing",
			"skipped  good/webhook[1]  resolved  (send_resolved: false)",
			"FAILED   bad/slack[0]     firing    slack: unexpected status 400 Bad Request: invalid_payload (permanent: Vigil would not retry)",
			"FAILED   bad/webhook[0]   resolved  webhook: post to " + down + "/<redacted>: ",
			"(temporary: Vigil would retry)",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out+errs, "TOKEN") || strings.Contains(out+errs, notifyTestSecret) {
			t.Errorf("output shows a secret:\n%s%s", out, errs)
		}
		if len(hook.bad) > 0 || len(hook.payloads) != 3 {
			t.Fatalf("webhook got %d payloads, errors %v", len(hook.payloads), hook.bad)
		}
		f, r := hook.payloads[0], hook.payloads[1]
		if f.Status != "firing" || r.Status != "resolved" || f.Receiver != "good" || len(f.Alerts) != 1 || len(r.Alerts) != 1 {
			t.Fatalf("payloads %+v", hook.payloads[:2])
		}
		a := f.Alerts[0]
		if a.Labels["alertname"] != testAlertName || a.Labels["test"] != "true" || !strings.Contains(a.Annotations["summary"], "not a real alert") ||
			!strings.HasPrefix(a.Fingerprint, "vigil-notify-test-") || r.Alerts[0].Fingerprint != a.Fingerprint || r.Alerts[0].EndsAt.IsZero() {
			t.Errorf("test alert %+v then %+v", a, r.Alerts[0])
		}
	})

	t.Run("one receiver", func(t *testing.T) {
		hook.payloads = nil
		out, errs, code := notifyCLI("test", "--receiver", "good", "--config", cfg)
		if code != 0 || !strings.Contains(out, "All 3 test notification(s) sent.") || strings.Contains(out, "bad/") {
			t.Fatalf("exit %d %q\n%s", code, errs, out)
		}
		if len(hook.payloads) != 3 {
			t.Errorf("%d payloads", len(hook.payloads))
		}
	})

	usage := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no subcommand", nil, 2, "missing subcommand"},
		{"unknown subcommand", []string{"send"}, 2, `unknown subcommand "send"`},
		{"no config", []string{"test"}, 2, "--config FILE is required"},
		{"stray argument", []string{"test", "--config", cfg, "extra"}, 2, `unexpected argument "extra"`},
		{"unknown receiver", []string{"test", "--config", cfg, "--receiver", "nope"}, 2, `no receiver "nope"`},
		{"unknown flag", []string{"test", "--bogus"}, 2, "flag provided but not defined"},
		{"missing file", []string{"test", "--config", filepath.Join(t.TempDir(), "none.yaml")}, 1, "no such file"},
		{"invalid config", []string{"test", "--config", writeNotifyConfig(t, "receivers:\n  - name: x\n    slack:\n      - url: nope\n")}, 1, "receivers[0].slack[0].url: must be an http(s) URL"},
		{"nothing configured", []string{"test", "--config", writeNotifyConfig(t, "receivers:\n  - name: x\n")}, 1, "no notifier configured"},
		{"help", []string{"test", "--help"}, 0, "Sends a test alert"},
	}
	for _, c := range usage {
		t.Run(c.name, func(t *testing.T) {
			_, errs, code := notifyCLI(c.args...)
			if code != c.code || !strings.Contains(errs, c.want) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, errs, c.code, c.want)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if slackCalls != 2 { // firing and resolved from "all receivers"; --receiver good must not call it
		t.Errorf("slack endpoint called %d times, want 2", slackCalls)
	}
}
