package alert

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseMatchers(t *testing.T) {
	cases := []struct {
		in      string
		want    string // String() of the result
		wantErr string
	}{
		{in: `severity="critical"`, want: `{severity="critical"}`},
		{in: `severity=~"critical|error"`, want: `{severity=~"critical|error"}`},
		{in: `  rule != brute_force `, want: `{rule!="brute_force"}`},
		{in: `{source.ip=~"203\\.0\\.113\\..*", severity!~"info"}`, want: `{source.ip=~"203\\.0\\.113\\..*", severity!~"info"}`},
		{in: `{a="1",}`, want: `{a="1"}`},
		{in: `a=1, b=~x|y`, want: `{a="1", b=~"x|y"}`},
		{in: `"odd name"="v"`, want: `{"odd name"="v"}`},
		{in: `a="say \"hi\"\n"`, want: `{a="say \"hi\"\n"}`},
		{in: `a=""`, want: `{a=""}`},
		{in: ``, want: `{}`},
		{in: `{}`, want: `{}`},
		{in: `severity`, wantErr: "expected one of"},
		{in: `=x`, wantErr: "expected a label name"},
		{in: `1abc="x"`, wantErr: "expected a label name"},
		{in: `a="unterminated`, wantErr: "unterminated"},
		{in: `a="bad \q escape"`, wantErr: "unknown escape"},
		{in: `{a="1"`, wantErr: "missing closing"},
		{in: `{a="1"} tail`, wantErr: "after '}'"},
		{in: `a="1" b="2"`, wantErr: "expected ','"},
		{in: `a=~"("`, wantErr: "regular expression"},
		{in: `a="` + strings.Repeat("x", MaxLabelValueLen+1) + `"`, wantErr: "longer than"},
		{in: strings.Repeat("a=1,", MaxMatchersInList+1), wantErr: "more than"},
		{in: strings.Repeat("x", MaxMatcherInput+1), wantErr: "longer than"},
		{in: "a=\"\xff\"", wantErr: "UTF-8"},
	}
	for _, c := range cases {
		ms, err := ParseMatchers(c.in)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("ParseMatchers(%.60q) = %v, %v; want error with %q", c.in, ms, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseMatchers(%q): %v", c.in, err)
			continue
		}
		if got := ms.String(); got != c.want {
			t.Errorf("ParseMatchers(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestMatcherMatches(t *testing.T) {
	labels := map[string]string{"severity": "critical", "source.ip": "203.0.113.7", "rule": "brute_force"}
	cases := []struct {
		m    string
		want bool
	}{
		{`severity="critical"`, true},
		{`severity="crit"`, false},
		{`severity!="warning"`, true},
		{`severity=~"critical|error"`, true},
		{`severity=~"crit"`, false}, // anchored
		{`severity!~"info|warning"`, true},
		{`source.ip=~"203\\.0\\.113\\.\\d+"`, true},
		{`team=""`, true}, // absent label is ""
		{`team!=""`, false},
		{`team=~".+"`, false},
		{`{severity="critical", rule="brute_force"}`, true},
		{`{severity="critical", rule="scanner"}`, false},
	}
	for _, c := range cases {
		ms, err := ParseMatchers(c.m)
		if err != nil {
			t.Fatalf("%s: %v", c.m, err)
		}
		if got := ms.Matches(labels); got != c.want {
			t.Errorf("%s matches %v = %v, want %v", c.m, labels, got, c.want)
		}
	}
}

func TestMatcherJSON(t *testing.T) {
	var ms Matchers
	if err := json.Unmarshal([]byte(`["severity=~\"critical|error\"", "rule=x"]`), &ms); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(ms)
	if string(b) != `["severity=~\"critical|error\"","rule=\"x\""]` {
		t.Errorf("round trip: %s", b)
	}
	for _, bad := range []string{`[1]`, `["a b"]`, `["a=1,b=2"]`} {
		if err := json.Unmarshal([]byte(bad), &ms); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func FuzzParseMatchers(f *testing.F) {
	for _, s := range []string{
		`severity="critical"`, `{a=~"x|y", b!="z"}`, `a=1,b=2`, `"q n"!~".*"`, `{}`, `a="\\\""`,
		`a=~"(a+)+$"`, `{a="1",}`, "a=\"\n\"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := ParseMatchers(s)
		if err != nil {
			return
		}
		// What the parser accepts, it writes back in a form it reads to
		// the same matchers.
		again, err := ParseMatchers(ms.String())
		if err != nil {
			t.Fatalf("reparse of %q (from %q): %v", ms.String(), s, err)
		}
		if again.String() != ms.String() {
			t.Fatalf("round trip %q -> %q", ms.String(), again.String())
		}
		ms.Matches(map[string]string{"a": "x"})
	})
}
