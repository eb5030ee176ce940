package detect

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestBuiltinPack(t *testing.T) {
	rs, err := Builtin()
	if err != nil {
		t.Fatalf("Builtin: %v", err)
	}
	want := []string{
		"brute_force_ip", "credential_stuffing", "password_spraying", "account_takeover", "account_locked",
		"admin_login_new_ip", "privilege_change", "config_change_new_user", "app_reported_attack",
		"server_errors_ratio", "server_errors_spike", "exfiltration_volume", "exfiltration_sensitive_reads",
		"scanner_404", "sensitive_path_probe", "sql_injection", "xss", "path_traversal", "attack_tool",
		"vigil_api_bulk_reads", "vigil_api_token_guessing",
	}
	for _, n := range want {
		r := rs.Rule(n)
		if r == nil {
			t.Errorf("built-in rule %s missing", n)
			continue
		}
		if !r.Enabled || !r.Builtin || r.Description == "" || !strings.HasPrefix(r.Source, "builtin/") {
			t.Errorf("rule %s: enabled %v builtin %v source %q description %q", n, r.Enabled, r.Builtin, r.Source, r.Description)
		}
	}
	if rs.Len() != len(want) {
		t.Errorf("%d built-in rules, want %d", rs.Len(), len(want))
	}
	if a := rs.Rule("brute_force_ip").Action; a == nil || a.Type != ActionBan || a.Field != "source.ip" || a.TTL != 15*time.Minute {
		t.Errorf("brute_force_ip action = %+v", a)
	}
	if got := rs.MaxWindow(); got != 7*24*time.Hour {
		t.Errorf("MaxWindow = %v, want 7 days (new_value lookback)", got)
	}
}

func TestLoadDir(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"10-auth.yml": `
# two documents: a list, then one rule
- name: brute_force_ip
  enabled: false
- name: credential_stuffing
  kind: threshold
  filter: event.action = authn_login_fail
  group_by: [source.ip]
  window: 1m
  distinct: user.name
  threshold: 3
---
name: night_login
kind: match
severity: info
filter: event.action = authn_login_success and user.name = ops
`,
		"20-sigma.yaml": `title: Probe of backup files
id: 5a1e0000-0000-4000-8000-000000000000
level: medium
logsource: {category: webserver}
detection:
  sel:
    cs-uri-stem|endswith: ['.bak', '.old']
  condition: sel
`,
		"30-ref.yml": `
- name: wrapped_sigma
  kind: sigma
  sigma: sigma/probe.yml
  group_by: [source.ip]
  severity: critical
`,
		"sigma/probe.yml": `title: Admin probe
logsource: {category: webserver}
detection:
  sel: {cs-uri-stem|startswith: /admin}
  condition: sel
`,
		"README.txt": "not a rule file",
	})
	rs, err := Load(dir, LoadOptions{DisabledBuiltin: []string{"xss"}})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	checks := []struct {
		name    string
		enabled bool
		builtin bool
		kind    string
	}{
		{"brute_force_ip", false, true, KindThreshold},          // switched off by name
		{"credential_stuffing", true, false, KindThreshold},     // replaced
		{"xss", false, true, KindMatch},                         // DisabledBuiltin
		{"night_login", true, false, KindMatch},                 // new
		{"sigma_probe_of_backup_files", true, false, KindSigma}, // Sigma file in the directory
		{"wrapped_sigma", true, false, KindSigma},               // rule of kind sigma
		{"sql_injection", true, true, KindMatch},
	}
	for _, c := range checks {
		r := rs.Rule(c.name)
		if r == nil {
			t.Errorf("rule %s missing", c.name)
			continue
		}
		if r.Enabled != c.enabled || r.Builtin != c.builtin || r.Kind != c.kind {
			t.Errorf("rule %s: enabled %v builtin %v kind %s; want %v %v %s", c.name, r.Enabled, r.Builtin, r.Kind, c.enabled, c.builtin, c.kind)
		}
	}
	if r := rs.Rule("credential_stuffing"); r.Threshold() != 3 || r.Source != filepath.Join(dir, "10-auth.yml")+":5" {
		t.Errorf("credential_stuffing: threshold %v source %s", r.Threshold(), r.Source)
	}
	if r := rs.Rule("wrapped_sigma"); r.Severity != SeverityCritical || len(r.GroupBy) != 1 || !strings.Contains(r.Filter.String(), "url.path startswith~") {
		t.Errorf("wrapped_sigma: %+v %s", r, r.Filter)
	}
	if r := rs.Rule("sigma_probe_of_backup_files"); r.Severity != SeverityWarning || r.Annotations["summary"] != "Probe of backup files" {
		t.Errorf("sigma rule: %+v", r)
	}
	// The referenced Sigma file is not also loaded as its own rule (it sits
	// in a subdirectory here anyway), and order is built-in first.
	if rs.Rule("sigma_admin_probe") != nil {
		t.Errorf("referenced Sigma file loaded on its own")
	}
	if rs.Rules()[0].Name != "brute_force_ip" || rs.Rules()[rs.Len()-1].Name != "wrapped_sigma" {
		t.Errorf("order: first %s, last %s", rs.Rules()[0].Name, rs.Rules()[rs.Len()-1].Name)
	}
	// A single file without the built-in pack.
	one, err := Load(filepath.Join(dir, "10-auth.yml"), LoadOptions{NoBuiltin: true})
	if err == nil || !strings.Contains(err.Error(), "built-in rule that does not exist") {
		t.Errorf("override without the pack: %v", err)
	}
	one, err = Load(filepath.Join(dir, "20-sigma.yaml"), LoadOptions{NoBuiltin: true})
	if err != nil || one.Len() != 1 {
		t.Errorf("single file: %v, %v", one, err)
	}
}

func TestReferencedSigmaInSameDir(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"probe.yml": "title: Admin probe\ndetection:\n  sel: {cs-uri-stem: /admin}\n  condition: sel\n",
		"rules.yml": "- {name: wrapped, kind: sigma, sigma: probe.yml}\n",
	})
	rs, err := Load(dir, LoadOptions{NoBuiltin: true})
	if err != nil {
		t.Fatal(err)
	}
	if rs.Len() != 1 || rs.Rule("wrapped") == nil {
		t.Errorf("rules: %d, want only the wrapping rule", rs.Len())
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name, file, msg string
		line            int
	}{
		{"unknown key", "- name: a\n  kind: match\n  filter: x = 1\n  windwo: 1m\n", `field windwo: unknown key`, 4},
		{"key of another kind", "- name: a\n  kind: match\n  filter: x = 1\n  threshold: 3\n", "field threshold: not used by kind match", 4},
		{"bad filter", "- name: a\n  kind: match\n  filter: x = 1 and\n", "field filter: column 10: expected a field name", 3},
		{"missing kind", "- name: a\n  filter: x = 1\n", "field kind: missing", 1},
		{"unknown kind", "- name: a\n  kind: matches\n  filter: x = 1\n", `"matches" is not one of`, 2},
		{"bad severity", "- name: a\n  kind: match\n  severity: high\n  filter: x = 1\n", `"high" is not one of critical`, 3},
		{"bad duration", "- name: a\n  kind: threshold\n  filter: x = 1\n  window: 5 minutes\n  threshold: 2\n", "is not a duration", 4},
		{"missing window", "- name: a\n  kind: threshold\n  filter: x = 1\n  threshold: 2\n", "field window: missing", 1},
		{"bad name", "- name: a b\n  kind: match\n  filter: x = 1\n", "field name", 1},
		{"bad template", "- name: a\n  kind: match\n  filter: x = 1\n  annotations:\n    summary: '{{ .Grup \"x\" }}'\n", "annotations.summary", 5},
		{"reserved label", "- name: a\n  kind: match\n  filter: x = 1\n  labels: {alertname: x}\n", "reserved", 4},
		{"bad action", "- name: a\n  kind: match\n  filter: x = 1\n  action: {type: kill, scope: ip, ttl: 1m}\n", "action.type", 4},
		{"action unknown key", "- name: a\n  kind: match\n  filter: x = 1\n  action: {type: ban, scope: ip, ttl: 1m, dur: 2}\n", "action.dur: unknown key", 4},
		{"step bad filter", "- name: a\n  kind: sequence\n  by: [user.name]\n  within: 1m\n  steps:\n    - filter: x = 1\n    - filter: y =\n", "steps.1.filter", 7},
		{"one step", "- name: a\n  kind: sequence\n  within: 1m\n  steps:\n    - filter: x = 1\n", "2 to 16 steps", 4},
		{"ratio above 1", "- name: a\n  kind: ratio\n  filter: x = 1\n  window: 1m\n  ratio: 5\n  min_total: 1\n", "field ratio", 5},
		{"spike without factor", "- name: a\n  kind: spike\n  filter: x = 1\n  bucket: 1m\n  baseline: 5\n  min_count: 1\n", "field factor", 1},
		{"bad group field", "- name: a\n  kind: match\n  filter: x = 1\n  group_by: [a, 'b c']\n", "group_by.1", 4},
		{"yaml syntax", "- name: a\n  kind: match\n   filter: x\n", "", 3},
		{"wrong type", "- name: a\n  kind: threshold\n  filter: x = 1\n  window: 1m\n  threshold: many\n", "cannot unmarshal", 5},
		{"not a rule", "- just a string\n", "a rule must be a mapping", 1},
		{"sigma error", "title: S\ndetection:\n  sel: {c-ip|base64: x}\n  condition: sel\n", `Sigma modifier "base64" is not supported`, 3},
		{"sigma ref without dir", "- {name: a, kind: sigma, sigma: x.yml}\n", "cannot read", 1},
		{"duplicate key", "- name: a\n  kind: match\n  kind: match\n  filter: x = 1\n", "already defined", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRules("f.yml", []byte(tt.file))
			var le *LoadError
			if !errors.As(err, &le) {
				t.Fatalf("err = %v, want a *LoadError", err)
			}
			if !strings.Contains(err.Error(), tt.msg) || le.Line != tt.line || le.File != "f.yml" {
				t.Errorf("err = %q (line %d), want %q at line %d", err, le.Line, tt.msg, tt.line)
			}
		})
	}
}

func TestLoadDirErrors(t *testing.T) {
	good := "- {name: a, kind: match, filter: x = 1}\n"
	tests := []struct {
		name  string
		files map[string]string
		opts  LoadOptions
		msg   string
	}{
		{"duplicate across files", map[string]string{"a.yml": good, "b.yml": good}, LoadOptions{}, `rule "a": defined twice`},
		{"bad file among good", map[string]string{"a.yml": good, "b.yml": "- {name: b, kind: match}\n"}, LoadOptions{}, "b.yml:1: rule \"b\": field filter: missing"},
		{"unknown disabled builtin", map[string]string{"a.yml": good}, LoadOptions{DisabledBuiltin: []string{"no_such_rule"}}, `"no_such_rule" does not exist`},
		{"sigma file missing", map[string]string{"a.yml": "- {name: s, kind: sigma, sigma: nope.yml}\n"}, LoadOptions{}, "nope.yml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, tt.files)
			rs, err := Load(dir, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Load = %v, %v; want error %q", rs, err, tt.msg)
			}
			if rs != nil {
				t.Errorf("a rule set came with the error")
			}
		})
	}
	if _, err := LoadDir(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Errorf("missing directory accepted")
	}
	big := writeFiles(t, map[string]string{"big.yml": "# " + strings.Repeat("x", MaxFileBytes)})
	if _, err := LoadDir(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized file: %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"90s": 90 * time.Second, "1h30m": 90 * time.Minute, "7d": 7 * 24 * time.Hour} {
		if got, err := parseDuration(in); err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "7", "d", "-1d", "1w"} {
		if _, err := parseDuration(bad); err == nil {
			t.Errorf("parseDuration(%q) accepted", bad)
		}
	}
}

// FuzzParseRules checks that no input makes the rule loader panic, and that
// what it accepts is a usable rule.
func FuzzParseRules(f *testing.F) {
	for _, name := range []string{"auth.yml", "web.yml", "ops.yml"} {
		b, err := builtinFS.ReadFile("rules/builtin/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("title: S\ndetection:\n  sel: {c-ip|cidr: 10.0.0.0/8}\n  timeframe: 1m\n  condition: sel | count() by c-ip > 3\n"))
	f.Add([]byte("- {name: a, enabled: false}\n---\n- name: s\n  kind: sequence\n  by: [user.name]\n  within: 1m\n  steps: [{filter: a = 1, count: 2}, {filter: b = 2}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rules, err := ParseRules("fuzz.yml", data)
		if err != nil {
			return
		}
		for _, r := range rules {
			if r.Name == "" {
				t.Fatalf("rule without a name from %q", data)
			}
			if r.eval != "override" {
				_ = r.Summary()
				_ = r.MaxWindow()
			}
		}
	})
}
