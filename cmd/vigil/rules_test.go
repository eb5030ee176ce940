package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigilsec/vigil/internal/demo"
)

func rulesCmd(args ...string) (string, string, error) {
	var out, errb bytes.Buffer
	err := runRules(args, &out, &errb)
	return out.String(), errb.String(), err
}

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRulesTestDemo runs the built-in pack over the demo shop's traffic, as
// `vigil demo` would send it, and checks that the brute force and the
// scanner are reported with the line numbers of their events.
func TestRulesTestDemo(t *testing.T) {
	data := demo.NDJSON(demo.Generate(demo.Options{Seed: 5}))
	file := writeTemp(t, "demo.ndjson", string(data))
	lines := strings.Split(string(data), "\n")

	out, errs, err := rulesCmd("test", "--builtin", "--events", file, "--json")
	if err != nil {
		t.Fatalf("rules test: %v\n%s", err, errs)
	}
	seen := map[string]signalJSON{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var s signalJSON
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("bad JSON line %q: %v", sc.Text(), err)
		}
		seen[s.Rule+" "+groupText(s.Group)] = s
	}
	for _, key := range []string{
		"brute_force_ip source.ip=" + demo.BruteForceIP,
		"scanner_404 source.ip=" + demo.ScannerIP,
		"sensitive_path_probe source.ip=" + demo.ScannerIP,
		"sql_injection source.ip=" + demo.ScannerIP,
	} {
		s, ok := seen[key]
		if !ok {
			t.Errorf("%s did not fire; output:\n%s", key, out)
			continue
		}
		if len(s.Lines) == 0 || s.Line == 0 {
			t.Errorf("%s: no evidence lines", key)
			continue
		}
		// The evidence are line numbers of FILE: those lines hold the events.
		ip := key[strings.Index(key, "=")+1:]
		for _, n := range s.Lines {
			if n < 1 || int(n) > len(lines) || !strings.Contains(lines[n-1], ip) {
				t.Errorf("%s: evidence line %d is not an event of %s: %q", key, n, ip, lines[n-1])
			}
		}
	}
	if b := seen["brute_force_ip source.ip="+demo.BruteForceIP]; b.Action == nil || b.Action.Type != "ban" || b.Action.Value != demo.BruteForceIP || b.Action.TTL != "15m0s" {
		t.Errorf("brute force action = %+v", b.Action)
	}
	if !strings.Contains(errs, "firing signals") {
		t.Errorf("no summary on stderr: %q", errs)
	}

	// The table form names the same things.
	out, _, err = rulesCmd("test", "--builtin", "--events", file)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"TIME", "brute_force_ip", "source.ip=" + demo.BruteForceIP, "failed logins in 1m0s from " + demo.BruteForceIP} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestRulesTestUserRulesAndPlainText(t *testing.T) {
	rules := writeTemp(t, "rules.yml", `
- name: oom
  kind: threshold
  severity: critical
  filter: message contains~ "out of memory"
  window: 1m
  threshold: 2
  annotations:
    summary: '{{ .Value }} out-of-memory errors'
`)
	log := "starting worker\nERROR: Out of memory in worker 3\n\nall fine\nerror: out of memory again\n"
	file := writeTemp(t, "app.log", log)
	tests := []struct {
		name string
		args []string
		want []string
		not  []string
	}{
		{"firing only", []string{"test", rules, "--events", file, "--now", "2026-03-02T10:00:00Z"},
			[]string{"2026-03-02T10:00:00Z", "firing", "oom", "critical", "2,5", "2 out-of-memory errors"}, []string{"resolved"}},
		{"with resolutions", []string{"test", rules, "--events", file, "--now", "2026-03-02T10:00:00Z", "--all"},
			[]string{"firing", "resolved", "2026-03-02T10:01:00Z"}, nil},
		{"nothing fires", []string{"test", rules, "--events", writeTemp(t, "quiet.log", "all fine\n")},
			[]string{"nothing would fire"}, []string{"oom"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errs, err := rulesCmd(tt.args...)
			if err != nil {
				t.Fatalf("%v: %s", err, errs)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(out, w) {
					t.Errorf("output has %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestRulesTestStdinAndBadLines(t *testing.T) {
	rules := writeTemp(t, "rules.yml", "- {name: any_fail, kind: match, filter: event.action = authn_login_fail}\n")
	input := `{"event":{"action":"authn_login_fail"},"@timestamp":"2026-03-02T09:00:00Z"}
{"event":{"action": nope}}
{"@timestamp":"yesterday"}
` + "{\"message\":\"" + strings.Repeat("x", 1<<20+10) + "\"}\n" + `{"event":{"action":"authn_login_fail"},"@timestamp":"2026-03-02T09:00:01Z"}
`
	old := rulesStdin
	rulesStdin = strings.NewReader(input)
	t.Cleanup(func() { rulesStdin = old })
	out, errs, err := rulesCmd("test", rules, "--events", "-")
	if err == nil || !strings.Contains(err.Error(), "3 lines could not be read") {
		t.Errorf("err = %v, want 3 unreadable lines", err)
	}
	for _, w := range []string{"stdin:2: invalid JSON", "stdin:3: field \"@timestamp\"", "stdin:4: line longer than"} {
		if !strings.Contains(errs, w) {
			t.Errorf("stderr lacks %q:\n%s", w, errs)
		}
	}
	if !strings.Contains(out, "any_fail") || !strings.Contains(out, "2026-03-02T09:00:00Z") {
		t.Errorf("the good lines were not tested:\n%s", out)
	}
}

func TestRulesCheck(t *testing.T) {
	good := writeTemp(t, "good.yml", "- {name: brute_force_ip, enabled: false}\n- {name: mine, kind: match, filter: x = 1}\n")
	bad := writeTemp(t, "bad.yml", "- name: mine\n  kind: threshold\n  filter: x = 1\n  window: 1m\n  threshhold: 5\n")
	out, _, err := rulesCmd("check", good)
	if err != nil {
		t.Fatalf("check good: %v", err)
	}
	for _, w := range []string{"brute_force_ip\tthreshold\tdisabled", "mine\tmatch\tenabled", "ok, 2 rules (1 enabled)"} {
		if !strings.Contains(out, w) {
			t.Errorf("check output lacks %q:\n%s", w, out)
		}
	}
	_, _, err = rulesCmd("check", bad)
	if err == nil || !strings.Contains(err.Error(), bad+":5: rule \"mine\": field threshhold: unknown key") {
		t.Errorf("check bad: %v", err)
	}
	if _, _, err := rulesCmd("check"); !isUsage(err) {
		t.Errorf("check without RULES: %v", err)
	}
}

func TestRulesList(t *testing.T) {
	out, _, err := rulesCmd("list", "-v")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"NAME", "brute_force_ip", "account_takeover", "sequence", "sql_injection", "server_errors_ratio", "event.action = authn_login_fail"} {
		if !strings.Contains(out, w) {
			t.Errorf("list lacks %q", w)
		}
	}
	if n := strings.Count(out, "\n"); n < 20 {
		t.Errorf("list has %d lines", n)
	}
}

func TestRulesUsage(t *testing.T) {
	tests := []struct {
		args []string
		help bool
	}{
		{nil, false},
		{[]string{"frobnicate"}, false},
		{[]string{"test", "--events"}, false},
		{[]string{"test", "x.yml"}, false},         // no --events
		{[]string{"test", "--events", "x"}, false}, // no rules
		{[]string{"test", "a", "b", "--events", "x"}, false},
		{[]string{"test", "--builtin", "--events", "x", "--now", "noon"}, false},
		{[]string{"--help"}, true},
		{[]string{"test", "--help"}, true},
		{[]string{"check", "-h"}, true},
	}
	for _, tt := range tests {
		_, _, err := rulesCmd(tt.args...)
		if tt.help && !errors.Is(err, flag.ErrHelp) || !tt.help && !isUsage(err) {
			t.Errorf("rules %v: err = %v (help %v)", tt.args, err, tt.help)
		}
	}
}

func isUsage(err error) bool {
	var ue usageError
	return errors.As(err, &ue)
}
