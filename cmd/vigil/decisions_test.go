package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vigilsec/vigil/internal/auth"
	"github.com/vigilsec/vigil/internal/client"
	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/respond"
	"github.com/vigilsec/vigil/internal/store/sqlite"
)

const decisionsToken = "vgl_decisions-cli-test-token-0123"

// startDecisions serves the decisions API on 127.0.0.1, behind token
// authentication, with a real SQLite store as the log.
func startDecisions(t *testing.T) (string, *respond.Manager) {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, "events.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	quiet := slog.New(slog.DiscardHandler)
	m, err := respond.NewManager(respond.Config{Allowlist: respond.Allowlist{IPs: []string{"10.0.0.0/8"}}}, respond.Options{
		Append: func(ctx context.Context, evs []event.Event) error { _, err := st.Append(ctx, evs); return err },
		Log:    quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.Load(filepath.Join(dir, "tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := tokens.Add("carol", "admin", decisionsToken); err != nil {
		t.Fatal(err)
	}
	h := respond.NewHandler(m, respond.HandlerOptions{Log: quiet, Actor: func(*http.Request) string { return "carol" }})
	srv := httptest.NewServer(tokens.Require(h, nil))
	t.Cleanup(srv.Close)
	return srv.URL, m
}

func decisions(t *testing.T, url string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		args = append([]string{args[0], "--server", url, "--token", decisionsToken}, args[1:]...)
	}
	err := runDecisions(args, &out, &errb)
	return out.String(), errb.String(), err
}

func TestCLIDecisions(t *testing.T) {
	url, m := startDecisions(t)
	steps := []struct {
		args []string
		want []string // in standard output
		not  []string
		err  string // in the error; "" = success
	}{
		{[]string{"add", "--scope", "ip", "--value", "203.0.113.7", "--ttl", "1h", "--reason", "credential stuffing"},
			[]string{"added: ban of ip 203.0.113.7 until "}, nil, ""},
		{[]string{"add", "--scope", "ip", "--value", "::ffff:203.0.113.7", "--ttl", "2h"}, []string{"extended: ban of ip 203.0.113.7 now lasts until"}, nil, ""},
		{[]string{"add", "--scope", "ip", "--value", "203.0.113.7", "--ttl", "1m"}, []string{"unchanged:"}, nil, ""},
		{[]string{"add", "--type", "throttle", "--scope", "range", "--value", "198.51.100.0/24"}, []string{"added: throttle of range 198.51.100.0/24 until removed"}, nil, ""},
		{[]string{"add", "--scope", "user", "--value", "Mallory", "--ttl", "7d"}, []string{"added: ban of user mallory"}, nil, ""},
		{[]string{"add", "--scope", "ip", "--value", "10.1.2.3"}, nil, nil, "server answered 409: refused: ip 10.1.2.3 is on the allowlist"},
		{[]string{"add", "--scope", "ip", "--value", "nope"}, nil, nil, "server answered 400: field value"},
		{[]string{"add", "--scope", "ip", "--value", "1.2.3.4", "--ttl", "soon"}, nil, nil, "--ttl"},
		{[]string{"add", "--value", "1.2.3.4"}, nil, nil, "--scope and --value are required"},
		{[]string{"list"}, []string{"ID", "203.0.113.7", "198.51.100.0/24", "mallory", "until removed", "manual:carol", "credential stuffing"}, nil, ""},
		{[]string{"list", "--ip", "198.51.100.4"}, []string{"198.51.100.0/24"}, []string{"203.0.113.7", "mallory"}, ""},
		{[]string{"list", "--scope", "user", "--json"}, []string{`"total": 1`, `"value": "mallory"`}, nil, ""},
		{[]string{"list", "--type", "nope"}, nil, nil, "server answered 400: parameter type"},
		{[]string{"export", "--format", "nginx"}, []string{"deny 203.0.113.7;\n"}, []string{"198.51.100.0/24", "mallory"}, ""},
		{[]string{"export", "--format", "plain", "--type", "any"}, []string{"198.51.100.0/24\n203.0.113.7\n"}, nil, ""},
		{[]string{"export", "--format", "pf"}, nil, nil, "parameter format"},
		{[]string{"export"}, nil, nil, "--format is required"},
		{[]string{"remove", "--scope", "user", "--value", "MALLORY"}, []string{"removed: ban of user mallory"}, nil, ""},
		{[]string{"remove", "no-such-id"}, nil, nil, "server answered 404"},
		{[]string{"remove"}, nil, nil, "give the ID"},
		{[]string{"list", "--all"}, []string{"ENDED", "manual:carol"}, nil, ""},
		{[]string{"frobnicate"}, nil, nil, "unknown command"},
	}
	for _, s := range steps {
		out, errs, err := decisions(t, url, s.args...)
		if s.err != "" {
			if err == nil || !strings.Contains(err.Error(), s.err) {
				t.Errorf("%v: error %v; want %q (stdout %q)", s.args, err, s.err, out)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v\n%s", s.args, err, errs)
			continue
		}
		for _, w := range s.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: output lacks %q:\n%s", s.args, w, out)
			}
		}
		for _, w := range s.not {
			if strings.Contains(out, w) {
				t.Errorf("%v: output has %q:\n%s", s.args, w, out)
			}
		}
	}

	// Remove by ID, as printed by list.
	out, _, _ := decisions(t, url, "list", "--scope", "ip")
	id := regexp.MustCompile(`(?m)^([0-9a-f-]{36})\s+ban\s+ip\s+203\.0\.113\.7`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("no ID in:\n%s", out)
	}
	if out, _, err := decisions(t, url, "remove", id[1]); err != nil || !strings.Contains(out, "removed: ban of ip 203.0.113.7") {
		t.Errorf("remove %s: %q, %v", id[1], out, err)
	}
	if n := len(m.List(respond.Filter{})); n != 1 {
		t.Errorf("%d decisions left; want the range throttle", n)
	}
}

func TestCLIDecisionsExportFile(t *testing.T) {
	url, _ := startDecisions(t)
	if _, _, err := decisions(t, url, "add", "--scope", "range", "--value", "2001:db8::/32"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "vigil.nft")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, _, err := decisions(t, url, "export", "--format", "nftables", "-o", path); err != nil || out != "" {
		t.Fatalf("export -o: %q, %v", out, err)
	}
	b, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(b), "table inet vigil {") || !strings.Contains(string(b), "2001:db8::/32") {
		t.Errorf("exported file: %v\n%s", err, b)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
}

func TestCLIDecisionsAuth(t *testing.T) {
	url, _ := startDecisions(t)
	var out, errb bytes.Buffer
	err := runDecisions([]string{"list", "--server", url, "--token", "vgl_wrong-token-0123456789"}, &out, &errb)
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusUnauthorized {
		t.Errorf("list with a wrong token: %v", err)
	}
	t.Setenv("VIGIL_TOKEN", "")
	err = runDecisions([]string{"list", "--server", url}, &out, &errb)
	var ue usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "no token") {
		t.Errorf("list without a token: %v", err)
	}
	out.Reset()
	if err := runDecisions([]string{"--help"}, &out, &errb); err != nil || !strings.Contains(out.String(), "vigil decisions export --format nftables") {
		t.Errorf("--help: %v\n%s", err, out.String())
	}
}
