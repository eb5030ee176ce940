package message

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vigilsec/vigil/internal/alert"
)

func TestNewData(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	as := []alert.Alert{
		{Fingerprint: "b", Status: alert.StateResolved, Labels: map[string]string{"alertname": "X", "team": "sec", "host": "a"}, StartsAt: t0, EndsAt: t0.Add(time.Minute)},
		{Fingerprint: "c", Status: alert.StateFiring, Labels: map[string]string{"alertname": "X", "team": "sec", "host": "b", "severity": "critical"}, Annotations: map[string]string{"description": "d"}, StartsAt: t0.Add(time.Second)},
		{Fingerprint: "a", Status: alert.StateFiring, Labels: map[string]string{"alertname": "X", "team": "sec"}, StartsAt: t0.Add(time.Second), GeneratorURL: "https://v/a"},
	}
	d := NewData("r", "https://vigil.test", as)
	if d.Status != alert.StateFiring || d.NumFiring != 2 || d.NumResolved != 1 {
		t.Fatalf("status %s firing %d resolved %d", d.Status, d.NumFiring, d.NumResolved)
	}
	var order []string
	for _, a := range d.Alerts {
		order = append(order, a.Fingerprint)
	}
	if got := strings.Join(order, ","); got != "a,c,b" {
		t.Errorf("order %s, want firing first by start then fingerprint: a,c,b", got)
	}
	if got := d.CommonLabels.String(); got != `{alertname="X", team="sec"}` {
		t.Errorf("common labels %s", got)
	}
	if d.GroupLabels.String() != d.CommonLabels.String() {
		t.Errorf("group labels %s", d.GroupLabels)
	}
	c := d.Alerts[1]
	if c.Summary != "d" || c.Severity != "critical" || c.EvidenceURL != "https://vigil.test" || c.Name != "X" {
		t.Errorf("alert c: %+v", c)
	}
	if d.Alerts[0].EvidenceURL != "https://v/a" || d.Alerts[0].Summary != "X" || d.Alerts[0].Severity != "warning" {
		t.Errorf("alert a: %+v", d.Alerts[0])
	}
	if d.WorstSeverity() != "critical" {
		t.Errorf("worst %q", d.WorstSeverity())
	}
	if len(d.Alerts.Firing()) != 2 || len(d.Alerts.Resolved()) != 1 {
		t.Errorf("filters: %d firing %d resolved", len(d.Alerts.Firing()), len(d.Alerts.Resolved()))
	}
	if r := NewData("r", "", as[:1]); r.Status != alert.StateResolved || r.WorstSeverity() != "" {
		t.Errorf("resolved-only data: %s %q", r.Status, r.WorstSeverity())
	}
	if e := NewData("r", "", nil); e.Status != alert.StateResolved || len(e.CommonLabels) != 0 {
		t.Errorf("empty data %+v", e)
	}
}

func TestTruncate(t *testing.T) {
	cases := []struct {
		in   string
		n    int
		want string
	}{
		{"hello", 10, "hello"},
		{"hello", 5, "hello"},
		{"hello world", 8, "hello…"},
		{"héllo", 4, "h…"}, // "é" would be split: drop it whole
		{"日本語のテキスト", 10, "日本…"},
		{"abcdef", 3, "abc"},
		{"日本", 2, ""},
		{"abc", 0, ""},
	}
	for _, c := range cases {
		got := Truncate(c.in, c.n)
		if got != c.want || len(got) > c.n || !utf8.ValidString(got) {
			t.Errorf("Truncate(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

func TestTemplates(t *testing.T) {
	cases := []struct {
		name, src string
		html      bool
		want      string // substring of the firing output
		wantErr   string // at parse or Check
	}{
		{"fields", `{{ .Status }} {{ .NumFiring }} {{ .CommonLabels.alertname }}`, false, "firing 2 BruteForceLogin", ""},
		{"missing key renders empty", `[{{ .CommonLabels.nope }}]`, false, "[]", ""},
		{"functions", `{{ upper .Status }} {{ join "," .CommonLabels.Names }} {{ truncate 6 "abcdefghij" }} {{ default "x" "" }} {{ title "abc" }}`, false, "FIRING alertname,rule abc… x Abc", ""},
		{"pairs and seqs", `{{ range .Alerts }}{{ range .Labels.SortedPairs }}{{ .Name }}={{ .Value }};{{ end }}{{ seqs .Evidence }}|{{ end }}`, false, "alertname=BruteForceLogin;rule=brute_force_login;severity=critical;source.ip=203.0.113.7;1201, 1207, 1288|", ""},
		{"time", `{{ range .Alerts }}{{ time .StartsAt }} {{ end }}`, false, "2026-01-02T03:04:05Z", ""},
		{"unknown field found by Check", `{{ .Nope }}`, false, "", "can't evaluate field Nope"},
		{"unknown function found at parse", `{{ nope }}`, false, "", `function "nope" not defined`},
		{"syntax error", `{{ if }}`, false, "", "missing value for if"},
		{"html escapes", `<p>{{ range .Alerts }}{{ .Summary }}{{ end }}</p>`, true, "<p>42 failed logins", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			parse := Text
			if c.html {
				parse = HTML
			}
			tm, err := parse(c.name, c.src)
			if err == nil {
				err = tm.Check()
			}
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			out, err := tm.Execute(SampleData())
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, c.want) {
				t.Errorf("output %q does not contain %q", out, c.want)
			}
		})
	}
}

func TestHTMLEscapesAlertValues(t *testing.T) {
	as := SampleAlerts()
	as[0].Annotations["summary"] = `<script>alert(1)</script>`
	as[0].GeneratorURL = "javascript:alert(1)"
	tm := MustHTML("t", `{{ range .Alerts }}<p>{{ .Summary }}</p><a href="{{ .EvidenceURL }}">x</a>{{ end }}`)
	out, err := tm.Execute(NewData("r", "", as))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "<script>") || strings.Contains(out, "javascript:") {
		t.Errorf("unescaped output: %s", out)
	}
	if !strings.Contains(out, "&lt;script&gt;") {
		t.Errorf("summary not escaped as text: %s", out)
	}
}

func TestOutputLimit(t *testing.T) {
	tm := MustText("big", `{{ range .Alerts }}{{ printf "%0600000d" 1 }}{{ end }}`)
	if _, err := tm.Execute(SampleData()); !errors.Is(err, ErrOutputTooLarge) {
		t.Fatalf("error %v, want ErrOutputTooLarge", err)
	}
	if _, err := Text("long", strings.Repeat("x", MaxSourceBytes+1)); err == nil {
		t.Fatal("oversized template source accepted")
	}
}

func TestMap(t *testing.T) {
	d := SampleData()
	m := d.Map(strings.ToUpper)
	if m.Alerts[0].Labels["SOURCE.IP"] != "203.0.113.7" || m.Alerts[0].Name != "BRUTEFORCELOGIN" || m.CommonLabels["ALERTNAME"] != "BRUTEFORCELOGIN" {
		t.Errorf("mapped: %+v", m.Alerts[0])
	}
	if d.Alerts[0].Name != "BruteForceLogin" || d.CommonLabels["alertname"] != "BruteForceLogin" {
		t.Error("Map changed its receiver")
	}
}

func TestKV(t *testing.T) {
	kv := KV{"b": "2", "a": `x"y` + "\n"}
	if got := kv.String(); got != `{a="x\"y\n", b="2"}` {
		t.Errorf("String %s", got)
	}
	if r := kv.Remove("a"); len(r) != 1 || len(kv) != 2 {
		t.Errorf("Remove: %v, original %v", r, kv)
	}
	if r := KV(nil).Remove("a"); r == nil {
		t.Error("Remove on nil returned nil")
	}
}
