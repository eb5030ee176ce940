package filter

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
)

var testNow = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func mustEvent(t testing.TB, js string) *event.Event {
	t.Helper()
	e, err := event.Parse([]byte(js), event.Limits{}, testNow)
	if err != nil {
		t.Fatalf("event.Parse(%s): %v", js, err)
	}
	return &e
}

const loginFail = `{"@timestamp":"2026-03-02T09:00:01Z","event":{"action":"authn_login_fail","outcome":"failure","severity":3,"category":["authentication","iam"]},
	"source":{"ip":"10.1.2.3","port":5555},"user":{"name":"Alice","roles":["admin","ops"]},"url":{"path":"/login","query":"next=%2Fadmin&q=a+b"},
	"http":{"request":{"method":"post","body":{"content":"user=alice\u0026pw=x"}},"response":{"status_code":401,"body":{"bytes":1234}}},
	"labels":{"tenant":"acme","failures":"12","vip":true},"user_agent":{"original":"Mozilla/5.0 (X11) Firefox/125.0"},
	"message":"login failed for \"Alice\"\ttab","related":{"objects":["user:1","order:7"]},"zero":0,"nothing":null,"empty":""}`

func TestMatch(t *testing.T) {
	tests := []struct {
		filter string
		want   bool
	}{
		// equality on indexed fields, bare and quoted values
		{`event.action = authn_login_fail`, true},
		{`event.action = "authn_login_fail"`, true},
		{`event.action = authn_login_success`, false},
		{`event.action != authn_login_success`, true},
		{`event.action != authn_login_fail`, false},
		{`user.name = alice`, false},
		{`user.name in~ [alice]`, true},
		{`http.request.method = POST`, true},
		// numbers: numeric when both sides are numbers
		{`http.response.status_code = 401`, true},
		{`http.response.status_code = 401.0`, true},
		{`http.response.status_code >= 400`, true},
		{`http.response.status_code < 400`, false},
		{`http.response.status_code > 401`, false},
		{`http.response.status_code <= 401`, true},
		{`http.response.status_code in [404, 401, 500]`, true},
		{`http.response.body.bytes > 1000`, true},
		{`http.response.body.bytes > 9999`, false},
		{`labels.failures > 9`, true},    // a string holding a number compares as a number
		{`labels.failures > "9"`, false}, // quoted: text order, "12" < "9"
		{`event.severity = 3`, true},
		{`zero = 0`, true},
		{`zero exists`, true},
		{`labels.vip = true`, true},
		// absent, null and empty fields
		{`nothing exists`, false},
		{`empty exists`, false},
		{`missing exists`, false},
		{`not missing exists`, true},
		{`missing = x`, false},
		{`missing != x`, true},
		{`missing not exists`, true},
		{`user.id exists`, false},
		// strings
		{`url.path startswith "/log"`, true},
		{`url.path endswith in`, true},
		{`url.path contains ogi`, true},
		{`url.path contains OGI`, false},
		{`url.path contains~ OGI`, true},
		{`url.path startswith~ ["/ADMIN", "/LOGIN"]`, true},
		{`url.path not startswith "/health"`, true},
		{`user_agent.original contains~ [curl, firefox]`, true},
		{`message contains "\"Alice\"\ttab"`, true},
		{`message contains 'for "Alice"'`, true},
		{`url.query = "next=%2Fadmin&q=a+b"`, true},
		{`urldecode(url.query) contains "next=/admin"`, true},
		{`urldecode(url.query) endswith "q=a b"`, true},
		{`http.request.body.content = "user=alice&pw=x"`, true},
		{`url.original = "/login?next=%2Fadmin&q=a+b"`, true},
		// regular expressions
		{`user_agent.original matches "Firefox/\\d+"`, true},
		{`user_agent.original matches 'Firefox/\d+'`, true},
		{`user_agent.original matches '^Firefox'`, false},
		{`user.name matches '(?i)^alice$'`, true},
		// arrays: any value
		{`user.roles = admin`, true},
		{`user.roles = ops`, true},
		{`user.roles = root`, false},
		{`user.roles != root`, true},
		{`user.roles != ops`, false},
		{`event.category = iam`, true},
		{`related.objects in ["order:7"]`, true},
		// addresses and CIDR
		{`source.ip = 10.1.2.3`, true},
		{`source.ip = "10.1.2.3"`, true},
		{`source.ip in 10.0.0.0/8`, true},
		{`source.ip in [192.168.0.0/16, 10.1.0.0/16]`, true},
		{`source.ip in 192.168.0.0/16`, false},
		{`source.ip not in [192.168.0.0/16]`, true},
		{`source.ip startswith "10.1."`, true},
		// boolean structure and precedence: and binds tighter than or
		{`event.action = x or user.roles = admin and source.port = 5555`, true},
		{`(event.action = x or user.roles = admin) and source.port = 1`, false},
		{`not (event.action = x or event.action = y)`, true},
		{`NOT event.action = x AND labels.tenant = acme`, true},
		{`event.action = authn_login_fail and source.ip in 10.0.0.0/8 and not url.path startswith "/health"`, true},
	}
	e := mustEvent(t, loginFail)
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			f, err := Parse(tt.filter)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := f.Match(e); got != tt.want {
				t.Errorf("Match = %v, want %v (canonical %s)", got, tt.want, f)
			}
			// The canonical form means the same.
			g, err := Parse(f.String())
			if err != nil {
				t.Fatalf("Parse(String()=%q): %v", f.String(), err)
			}
			if got := g.Match(e); got != tt.want {
				t.Errorf("canonical %q: Match = %v, want %v", f, got, tt.want)
			}
		})
	}
}

func TestMatchLargeList(t *testing.T) {
	var vals []string
	for _, v := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "/LOGIN"} {
		vals = append(vals, Quote(v))
	}
	list := "[" + strings.Join(vals, ", ") + "]"
	e := mustEvent(t, loginFail)
	tests := []struct {
		filter string
		want   bool
	}{
		{`url.path in ` + list, false},
		{`url.path in~ ` + list, true},
		{`http.response.status_code in [1, 2, 3, 4, 5, 6, 7, 8, 401]`, true},
		{`http.response.status_code in [1, 2, 3, 4, 5, 6, 7, 8, 402]`, false},
		{`source.ip in [a, b, c, d, e, f, g, h, 10.0.0.0/8]`, true},
		{`source.ip in [a, b, c, d, e, f, g, h, 10.1.2.3]`, true},
		{`source.ip in [a, b, c, d, e, f, g, h, "10.1.2.4"]`, false},
	}
	for _, tt := range tests {
		f, err := Parse(tt.filter)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.filter, err)
		}
		if got := f.Match(e); got != tt.want {
			t.Errorf("%s: Match = %v, want %v", tt.filter, got, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		filter string
		col    int
		msg    string
	}{
		{``, 1, "empty filter"},
		{`event.action`, 13, "expected an operator"},
		{`event.action = `, 16, "expected a value"},
		{`event.action == x`, 15, "expected a value"},
		{`a = 1 and`, 10, "expected a field name"},
		{`a = 1 b = 2`, 7, `unexpected "b"`},
		{`(a = 1`, 7, "expected ')' to close the '(' at column 1"},
		{`a = 1)`, 6, `unexpected ")"`},
		{`a = "x`, 5, "string not terminated"},
		{`a = 'x`, 5, "string not terminated"},
		{`a = "\q"`, 6, `unknown escape \q`},
		{`a = "\u12"`, 6, `needs 4 hex digits`},
		{`a in [1, 2`, 11, "expected ',' or ']'"},
		{`a in []`, 6, "empty list"},
		{`a = [1]`, 5, "needs the in operator"},
		{`a matches "("`, 11, "bad regular expression"},
		{`a matches~ "x"`, 3, "takes no ~"},
		{`a exists~`, 3, "takes no ~"},
		{`a like x`, 3, "expected an operator"},
		{`a ! b`, 3, "unexpected '!'"},
		{`lower(a) = x`, 1, `unknown function "lower"`},
		{`urldecode(a = x`, 13, "expected ')'"},
		{`-a = x`, 1, "not allowed"},
		{`é = x`, 1, "not allowed"},
		{`x = "é" and é`, 13, "not allowed"}, // columns count characters
		{`and = 1`, 1, "expected a field name"},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			_, err := Parse(tt.filter)
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want a SyntaxError", err)
			}
			if se.Column != tt.col || !strings.Contains(se.Msg, tt.msg) {
				t.Errorf("err = %q, want column %d and %q", err, tt.col, tt.msg)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	lim := Limits{MaxLength: 200, MaxDepth: 4, MaxNodes: 6, MaxList: 3, MaxRegex: 10}
	tests := []struct {
		filter string
		msg    string
	}{
		{strings.Repeat("a = 1 or ", 30) + "a = 1", "limit is 200"},
		{`((((a = 1))))`, "nested deeper than 4"},
		{`not not not not a = 1`, "nested deeper than 4"},
		{`a = 1 or a = 2 or a = 3 or a = 4`, "more than 6 conditions"},
		{`a in [1, 2, 3, 4]`, "list longer than 3"},
		{`a matches "abcdefghijk"`, "limit is 10"},
	}
	for _, tt := range tests {
		_, err := ParseLimits(tt.filter, lim)
		if err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("ParseLimits(%q) = %v, want %q", tt.filter, err, tt.msg)
		}
	}
	if _, err := ParseLimits(`(((a = 1)))`, lim); err != nil {
		t.Errorf("depth 3 refused: %v", err)
	}
	if _, err := Parse(`a matches "(((a{1,1000}){1,1000}){1,1000})"`); err == nil {
		t.Errorf("a huge regular expression was accepted")
	}
}

func TestString(t *testing.T) {
	tests := []struct{ in, want string }{
		{`event.action=authn_login_fail`, `event.action = authn_login_fail`},
		{`A = 1 AND (b = 2 OR c = 3)`, `A = 1 and (b = 2 or c = 3)`},
		{`(a = 1 and b = 2) or c = 3`, `a = 1 and b = 2 or c = 3`},
		{`not (a = 1 and b = 2)`, `not (a = 1 and b = 2)`},
		{`a not in [x,'y']`, `not a in [x, "y"]`},
		{`a contains~ 'C:\dir'`, `a contains~ "C:\\dir"`},
		{`a = "tab\there\x00"`, `a = "tab\there\x00"`},
		{`URLDECODE(url.query) exists`, `urldecode(url.query) exists`},
		{`source.ip in 10.0.0.0/8`, `source.ip in 10.0.0.0/8`},
	}
	for _, tt := range tests {
		f, err := Parse(tt.in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.in, err)
		}
		if f.String() != tt.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tt.in, f.String(), tt.want)
		}
	}
}

func TestRequires(t *testing.T) {
	tests := []struct {
		filter string
		want   []string
		ok     bool
	}{
		{`event.action = a`, []string{"a"}, true},
		{`event.action in [a, b, a] and x = 1`, []string{"a", "b"}, true},
		{`event.action = a or event.action = b`, []string{"a", "b"}, true},
		{`event.action = a or x = 1`, nil, false},
		{`not event.action = a`, nil, false},
		{`event.action in~ [a]`, nil, false},
		{`event.action startswith a`, nil, false},
		{`x = 1`, nil, false},
	}
	for _, tt := range tests {
		f, err := Parse(tt.filter)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := f.Requires("event.action")
		slices.Sort(got)
		if ok != tt.ok || !slices.Equal(got, tt.want) {
			t.Errorf("%s: Requires = %v, %v; want %v, %v", tt.filter, got, ok, tt.want, tt.ok)
		}
	}
}

func TestFields(t *testing.T) {
	f, err := Parse(`b = 1 and (a = 2 or urldecode(b) contains x) and not c exists`)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Fields(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("Fields = %v", got)
	}
}

func TestDocFlatten(t *testing.T) {
	e := mustEvent(t, `{"a":{"b":"x\u00e9\"y","c":[1,"two",{"d":true},null,[3]]},"k\"ey":"v","u":"\ud83d\ude00"}`)
	d := NewDoc(e)
	tests := []struct {
		field string
		want  []string
	}{
		{"a.b", []string{`xé"y`}},
		{"a.c", []string{"1", "two", "3"}},
		{"a.c.d", []string{"true"}},
		{`k"ey`, []string{"v"}},
		{"u", []string{"😀"}},
		{"a", nil},
	}
	for _, tt := range tests {
		var got []string
		for _, v := range d.values(tt.field, hashString(tt.field), fastNone) {
			got = append(got, v.text())
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s = %q, want %q", tt.field, got, tt.want)
		}
	}
}

func TestDocMalformedCanonical(t *testing.T) {
	// A hand-built Event with broken JSON must not panic; what was read
	// before the break is kept.
	for _, c := range []string{`{"a":"x","b":`, `{"a":1,}`, `[1]`, `{"a":"\ud800"}`, `{"a":tru}`, `{`, ``} {
		e := &event.Event{Canonical: []byte(c)}
		f, _ := Parse(`a exists`)
		_ = f.Match(e)
	}
	e := &event.Event{Canonical: []byte(`{"a":"x","b":`)}
	f, _ := Parse(`a = x`)
	if !f.Match(e) {
		t.Errorf("value before the break was lost")
	}
}

func TestParseField(t *testing.T) {
	for _, ok := range []string{"source.ip", "@timestamp", "labels.x-y", "urldecode(url.query)"} {
		if _, err := ParseField(ok); err != nil {
			t.Errorf("ParseField(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a b", "lower(x)", "urldecode()", ".a", strings.Repeat("a", 300)} {
		if _, err := ParseField(bad); err == nil {
			t.Errorf("ParseField(%q) accepted", bad)
		}
	}
}

func TestURLDecode(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a+b%20c", "a b c"},
		{"%252e%252e%252f", "../"},
		{"%zz%4", "%zz%4"},
		{"%3Cscript%3E", "<script>"},
	}
	for _, tt := range tests {
		if got := urlDecode(tt.in); got != tt.want {
			t.Errorf("urlDecode(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
