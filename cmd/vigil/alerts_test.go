package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/alert"
	"github.com/vigilsec/vigil/internal/httperr"
)

const alertsToken = "vgl_alerts-cli-test-token-0123"

// startAlertAPI serves a manager holding a firing critical alert (with 60
// evidence events), a firing warning and a pending alert, behind bearer
// authentication, on 127.0.0.1.
func startAlertAPI(t *testing.T) (*alert.Manager, string) {
	t.Helper()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	m, err := alert.New(alert.Options{
		Receivers: map[string][]alert.Notifier{"default": nil},
		Now:       func() time.Time { return now },
		Log:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	var evidence []uint64
	for q := uint64(1); q <= 60; q++ {
		evidence = append(evidence, q)
	}
	sigs := []alert.Signal{
		{Rule: "brute_force", Severity: "critical", Firing: true, Evidence: evidence,
			Labels:      map[string]string{"source.ip": "203.0.113.7"},
			Annotations: map[string]string{"summary": "60 failed logins from 203.0.113.7"}},
		{Rule: "scanner", Severity: "warning", Firing: true, Labels: map[string]string{"source.ip": "198.51.100.4"}},
		{Rule: "slow_burn", Severity: "info", Firing: true, For: time.Hour},
	}
	for _, s := range sigs {
		if err := m.Process(s); err != nil {
			t.Fatal(err)
		}
	}
	mux := http.NewServeMux()
	alert.NewAPI(m).Register(mux, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+alertsToken {
				httperr.Msg(w, http.StatusUnauthorized, "invalid token")
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Setenv("VIGIL_URL", srv.URL)
	t.Setenv("VIGIL_TOKEN", alertsToken)
	t.Setenv("VIGIL_USER", "alice")
	return m, srv.URL
}

func runCmd(f func([]string, io.Writer, io.Writer) error, args ...string) (string, string, error) {
	var out, errb bytes.Buffer
	err := f(args, &out, &errb)
	return out.String(), errb.String(), err
}

func TestCLIAlerts(t *testing.T) {
	m, _ := startAlertAPI(t)
	all := m.Alerts(alert.AlertFilter{})
	var critFP string
	for _, a := range all {
		if a.Rule == "brute_force" {
			critFP = a.Fingerprint
		}
	}
	cases := []struct {
		args    []string
		want    []string
		not     []string
		wantErr string // "" none, "usage: …" a usage error containing …, else an error containing it
	}{
		{args: nil, want: []string{"FINGERPRINT", critFP, "brute_force", "scanner", "slow_burn", "pending", "source.ip=203.0.113.7", "60"}},
		{args: []string{"list", "--state", "firing"}, want: []string{"brute_force", "scanner"}, not: []string{"slow_burn"}},
		{args: []string{`severity=~"critical|error"`}, want: []string{"brute_force"}, not: []string{"scanner", "slow_burn"}},
		{args: []string{"source.ip=198.51.100.4", "--json"}, want: []string{`"alerts"`, `"rule": "scanner"`}, not: []string{"brute_force"}},
		{args: []string{"show", critFP[:6]}, want: []string{"State:", "firing", "summary: 60 failed logins", "Evidence: 60 events",
			"kept sequence numbers: 1 2 3 4 5 6 7 8 9 10 21 22", " 60 (the first 10 and the latest 40)", "Receivers:", "default"}},
		{args: []string{"show", critFP, "--json"}, want: []string{`"evidenceCount": 60`, `"fingerprint": "` + critFP}},
		{args: []string{"show", "ffffffffffffffff"}, wantErr: "404"},
		{args: []string{"show", "zz"}, wantErr: "no alert with fingerprint zz"},
		{args: []string{"show"}, wantErr: "usage: show takes one"},
		{args: []string{"show", "a", "b"}, wantErr: "usage: show takes one"},
		{args: []string{"severity~x"}, wantErr: "usage: matcher"},
		{args: []string{"--state", "burning"}, wantErr: `parameter state: "burning"`},
		{args: []string{"--nope"}, wantErr: "usage: flag provided but not defined"},
		{args: []string{"--token", "vgl_wrong-token-000000000000"}, wantErr: "401"},
	}
	for _, c := range cases {
		out, errs, err := runCmd(runAlerts, c.args...)
		checkCLI(t, "alerts", c.args, out, errs, err, c.want, c.not, c.wantErr)
	}
	if _, errs, err := runCmd(runAlerts, "--help"); !errors.Is(err, flag.ErrHelp) || !strings.Contains(errs, "Usage: vigil alerts") {
		t.Errorf("alerts --help: %v %q", err, errs)
	}
}

func checkCLI(t *testing.T, cmd string, args []string, out, errs string, err error, want, not []string, wantErr string) {
	t.Helper()
	switch {
	case wantErr == "" && err != nil:
		t.Errorf("%s %q: %v (stderr %q)", cmd, args, err, errs)
		return
	case wantErr != "":
		msg, isUsage := strings.CutPrefix(wantErr, "usage: ")
		var ue usageError
		if err == nil || !strings.Contains(err.Error(), msg) || errors.As(err, &ue) != isUsage {
			t.Errorf("%s %q: error %v (usage error: %v), want %q", cmd, args, err, errors.As(err, &ue), wantErr)
		}
		return
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s %q: output lacks %q:\n%s", cmd, args, w, out)
		}
	}
	for _, w := range not {
		if strings.Contains(out, w) {
			t.Errorf("%s %q: output has %q:\n%s", cmd, args, w, out)
		}
	}
}

func TestCLISilence(t *testing.T) {
	m, _ := startAlertAPI(t)
	out, errs, err := runCmd(runSilence, "add", "rule=scanner", `source.ip=~"198\\.51\\.100\\..*"`, "--for", "2h", "--comment", "pentest of the DMZ")
	if err != nil {
		t.Fatalf("silence add: %v %s", err, errs)
	}
	id := strings.TrimSpace(out)
	s, err := m.Silence(id)
	if err != nil || s.CreatedBy != "alice" || s.Comment != "pentest of the DMZ" || s.EndsAt.Sub(s.StartsAt) != 2*time.Hour || len(s.Matchers) != 2 {
		t.Fatalf("created silence %+v %v", s, err)
	}
	if a := m.Alerts(alert.AlertFilter{Silenced: ptr(true)}); len(a) != 1 || a[0].Rule != "scanner" {
		t.Fatalf("silenced alerts %+v", a)
	}
	steps := []struct {
		args    []string
		want    []string
		not     []string
		wantErr string
	}{
		{args: []string{"list"}, want: []string{id, "active", "alice", `rule="scanner"`, "pentest of the DMZ"}},
		{args: []string{"list", "--json"}, want: []string{`"id": "` + id, `"createdBy": "alice"`}},
		{args: []string{"expire", id}, want: []string{"expired " + id}},
		{args: []string{"list"}, not: []string{id}},
		{args: []string{"list", "--all"}, want: []string{id, "expired"}},
		{args: []string{"list", "--state", "expired"}, want: []string{id}},
		{args: []string{"expire", "no-such-id"}, wantErr: "404"},
		{args: []string{"expire"}, wantErr: "usage: give the ID"},
		{args: []string{"add", "rule=x"}, wantErr: "usage: --comment is required"},
		{args: []string{"add", "--comment", "c"}, wantErr: "usage: give at least one MATCHER"},
		{args: []string{"add", "rule=x", "--comment", "c", "--for", "2h", "--until", "2030-01-01T00:00:00Z"}, wantErr: "usage: give --for or --until"},
		{args: []string{"add", "rule=x", "--comment", "c", "--for", "soon"}, wantErr: "usage: --for"},
		{args: []string{"add", "rule=x", "--comment", "c", "--until", "tomorrow"}, wantErr: "usage: --until"},
		{args: []string{"add", "rule~x", "--comment", "c"}, wantErr: "usage: matcher"},
		// The server refuses a silence that would mute everything.
		{args: []string{"add", `rule=~".*"`, "--comment", "c"}, wantErr: "400"},
		{args: []string{"add", "rule=x", "--comment", "c", "--until", "2020-01-01T00:00:00Z"}, wantErr: "field endsAt"},
		{args: []string{"frobnicate"}, wantErr: "usage: unknown subcommand"},
		{args: nil, wantErr: "usage: missing subcommand"},
	}
	for _, c := range steps {
		out, errs, err := runCmd(runSilence, c.args...)
		checkCLI(t, "silence", c.args, out, errs, err, c.want, c.not, c.wantErr)
	}
	if a := m.Alerts(alert.AlertFilter{Silenced: ptr(true)}); len(a) != 0 {
		t.Errorf("still silenced after expire: %+v", a)
	}
	for _, args := range [][]string{{"--help"}, {"add", "--help"}, {"list", "--help"}, {"expire", "--help"}} {
		if _, errs, err := runCmd(runSilence, args...); !errors.Is(err, flag.ErrHelp) || !strings.Contains(errs, "Usage: vigil silence") {
			t.Errorf("silence %q: %v %q", args, err, errs)
		}
	}
}

func ptr[T any](v T) *T { return &v }
