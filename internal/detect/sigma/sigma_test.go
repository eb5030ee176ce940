package sigma

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/detect/filter"
	"github.com/vigilsec/vigil/internal/event"
)

var testNow = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func ev(t *testing.T, js string) *event.Event {
	t.Helper()
	e, err := event.Parse([]byte(js), event.Limits{}, testNow)
	if err != nil {
		t.Fatalf("event.Parse(%s): %v", js, err)
	}
	return &e
}

func request(path, query, ua string, status int) string {
	return `{"event":{"action":"http_request"},"source":{"ip":"198.51.100.23"},"url":{"path":"` + path +
		`","query":"` + query + `"},"user_agent":{"original":"` + ua + `"},"http":{"request":{"method":"GET"},"response":{"status_code":` +
		strconv.Itoa(status) + `}}}`
}

func TestCompileMatches(t *testing.T) {
	tests := []struct {
		name  string
		rule  string
		match []string
		miss  []string
	}{
		{
			name: "traversal in the query, with a filter",
			rule: `title: Path traversal attempt
id: 0d0f6b52-0000-4000-8000-000000000001
logsource: {category: webserver}
detection:
  selection:
    cs-uri-query|contains:
      - '../'
      - '..%2f'
  filter_health:
    cs-uri-stem: /health
  condition: selection and not filter_health
level: high`,
			match: []string{request("/download", "file=../../etc/passwd", "curl", 404), request("/x", "f=..%2F..%2Fboot.ini", "curl", 200)},
			miss:  []string{request("/health", "f=../x", "curl", 200), request("/download", "file=report.pdf", "curl", 200)},
		},
		{
			name: "one of several selections, wildcards, case-insensitive",
			rule: `title: Scanner tools
logsource: {category: webserver}
detection:
  sel_ua:
    cs-user-agent|contains: [sqlmap, nikto]
  sel_path:
    c-uri|startswith: '/wp-'
  sel_glob:
    cs-uri-stem: '/admin/*.php?'
  condition: 1 of sel_*`,
			match: []string{
				request("/", "", "SQLMap/1.8", 200),
				request("/wp-login.php", "", "Mozilla", 404),
				request("/admin/x.phps", "", "Mozilla", 404),
				request("/ADMIN/Y.PHPX", "", "Mozilla", 404),
			},
			miss: []string{request("/admin/x.php", "", "Mozilla", 404), request("/shop", "", "Mozilla", 200)},
		},
		{
			name: "all of them, numbers, lists of maps",
			rule: `title: Errors on login
logsource: {category: webserver}
detection:
  sel_status:
    - sc-status: 500
    - sc-status: 503
  sel_path:
    cs-uri-stem|endswith: /login
  condition: all of them`,
			match: []string{request("/api/login", "", "x", 500), request("/login", "", "x", 503)},
			miss:  []string{request("/login", "", "x", 200), request("/cart", "", "x", 500)},
		},
		{
			name: "contains all, re with flags, cidr, gt, null, exists, cased",
			rule: `title: Mixed
logsource: {category: webserver}
detection:
  sel:
    cs-uri-query|contains|all: ['union', 'select']
    c-ip|cidr: 198.51.100.0/24
    sc-status|gte: 200
    cs-referer: null
    cs-user-agent|exists: true
    cs-uri-stem|cased: /p
  sel_re:
    cs-uri-query|re|i: 'UNION\s+SELECT'
  condition: sel and sel_re`,
			match: []string{request("/p", "id=1 UNION  select x", "x", 200)},
			miss: []string{
				request("/p", "id=1 union", "x", 200),
				`{"source":{"ip":"198.51.100.23"},"url":{"query":"union select"},"user_agent":{"original":"x"},"http":{"request":{"method":"GET","referrer":"r"},"response":{"status_code":200}}}`,
				`{"source":{"ip":"198.51.100.23"},"url":{"path":"/P","query":"union select"},"user_agent":{"original":"x"},"http":{"request":{"method":"GET"},"response":{"status_code":200}}}`,
				`{"source":{"ip":"192.0.2.1"},"url":{"query":"union select"},"user_agent":{"original":"x"},"http":{"request":{"method":"GET"},"response":{"status_code":200}}}`,
			},
		},
		{
			name: "keywords search the message",
			rule: `title: Keywords
logsource: {product: django}
detection:
  keywords:
    - 'SuspiciousOperation'
    - 'DisallowedHost'
  condition: keywords`,
			match: []string{`{"message":"django.security.DisallowedHost: Invalid HTTP_HOST header"}`},
			miss:  []string{`{"message":"all good"}`},
		},
		{
			name: "not, parentheses, ECS names as they are",
			rule: `title: Login failures not from the office
logsource: {product: vigil}
detection:
  fail:
    event.action: authn_login_fail
  office:
    source.ip|cidr: ['10.0.0.0/8', '192.168.0.0/16']
  condition: fail and not (office)`,
			match: []string{`{"event":{"action":"authn_login_fail"},"source":{"ip":"203.0.113.9"}}`},
			miss:  []string{`{"event":{"action":"authn_login_fail"},"source":{"ip":"10.2.3.4"}}`, `{"event":{"action":"authn_login_success"},"source":{"ip":"203.0.113.9"}}`},
		},
		{
			name: "a list of conditions is any of them",
			rule: `title: Two conditions
logsource: {category: webserver}
detection:
  a:
    cs-uri-stem: /a
  b:
    cs-uri-stem: /b
  condition:
    - a
    - b`,
			match: []string{request("/a", "", "x", 200), request("/b", "", "x", 200)},
			miss:  []string{request("/c", "", "x", 200)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Parse([]byte(tt.rule))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			f, err := filter.ParseLimits(r.Filter, FilterLimits)
			if err != nil {
				t.Fatalf("compiled filter %q: %v", r.Filter, err)
			}
			for _, m := range tt.match {
				if !f.Match(ev(t, m)) {
					t.Errorf("filter %s\ndoes not match %s", f, m)
				}
			}
			for _, m := range tt.miss {
				if f.Match(ev(t, m)) {
					t.Errorf("filter %s\nmatches %s", f, m)
				}
			}
		})
	}
}

func TestCompileText(t *testing.T) {
	r, err := Parse([]byte(`title: T
id: x-1
level: medium
tags: [attack.t1190]
logsource: {category: webserver, product: nginx}
detection:
  sel:
    cs-uri-query|contains: ['<script', 'onerror=']
    cs-method: [GET, POST]
  condition: sel`))
	if err != nil {
		t.Fatal(err)
	}
	want := `((url.query contains~ ["<script", "onerror="]) and (http.request.method in~ ["GET", "POST"]))`
	if r.Filter != want {
		t.Errorf("Filter =\n%s\nwant\n%s", r.Filter, want)
	}
	if r.Title != "T" || r.ID != "x-1" || r.Level != "medium" || r.Logsource.Category != "webserver" || r.Logsource.Product != "nginx" || len(r.Tags) != 1 {
		t.Errorf("metadata = %+v", r)
	}
}

func TestAggregation(t *testing.T) {
	tests := []struct {
		cond string
		want Aggregation
	}{
		{`sel | count() by c-ip > 20`, Aggregation{GroupBy: []string{"source.ip"}, Op: ">", Value: 20}},
		{`sel | count(cs-username) by c-ip >= 5`, Aggregation{Distinct: "user.name", GroupBy: []string{"source.ip"}, Op: ">=", Value: 5}},
		{`sel | count() > 100`, Aggregation{Op: ">", Value: 100}},
	}
	for _, tt := range tests {
		r, err := Parse([]byte("title: A\nlogsource: {category: webserver}\ndetection:\n  sel:\n    sc-status: 404\n  timeframe: 1m\n  condition: " + tt.cond))
		if err != nil {
			t.Fatalf("%s: %v", tt.cond, err)
		}
		if r.Aggregation == nil {
			t.Fatalf("%s: no aggregation", tt.cond)
		}
		got := *r.Aggregation
		if got.Distinct != tt.want.Distinct || strings.Join(got.GroupBy, ",") != strings.Join(tt.want.GroupBy, ",") || got.Op != tt.want.Op || got.Value != tt.want.Value {
			t.Errorf("%s: %+v, want %+v", tt.cond, got, tt.want)
		}
		if r.Timeframe != time.Minute {
			t.Errorf("Timeframe = %v", r.Timeframe)
		}
		if r.Filter != `(http.response.status_code in [404])` {
			t.Errorf("Filter = %s", r.Filter)
		}
	}
}

func TestErrors(t *testing.T) {
	base := "title: E\nlogsource: {category: webserver}\ndetection:\n"
	tests := []struct {
		name, rule, msg string
		line            int
	}{
		{"unsupported modifier", base + "  sel:\n    cs-uri-query|base64: x\n  condition: sel", `modifier "base64" is not supported`, 5},
		{"unknown modifier", base + "  sel:\n    cs-uri-query|sorta: x\n  condition: sel", `unknown Sigma modifier "sorta"`, 5},
		{"unknown field", base + "  sel:\n    Image|endswith: '\\cmd.exe'\n  condition: sel", `unknown Sigma field "Image"`, 5},
		{"unknown key", "title: E\nauthorr: me\n" + base[9:] + "  sel:\n    c-ip: 1.2.3.4\n  condition: sel", `unknown key "authorr"`, 2},
		{"unknown selection", base + "  sel:\n    c-ip: 1.2.3.4\n  condition: sel and other", `unknown selection "other"`, 6},
		{"no condition", base + "  sel:\n    c-ip: 1.2.3.4", "no condition", 4},
		{"no title", "logsource: {}\ndetection:\n  sel: {c-ip: x}\n  condition: sel", "missing title", 1},
		{"aggregation without timeframe", base + "  sel:\n    c-ip: 1.2.3.4\n  condition: sel | count() > 5", "needs a timeframe", 6},
		{"unsupported aggregation", base + "  sel:\n    c-ip: 1.2.3.4\n  timeframe: 5m\n  condition: sel | max(sc-bytes) > 5", `"max" is not supported`, 7},
		{"count less than", base + "  sel:\n    c-ip: 1.2.3.4\n  timeframe: 5m\n  condition: sel | count() < 5", "not supported", 7},
		{"bad timeframe", base + "  sel:\n    c-ip: 1.2.3.4\n  timeframe: 5w\n  condition: sel", "not a timeframe", 6},
		{"bad cidr", base + "  sel:\n    c-ip|cidr: 10.0.0.0\n  condition: sel", "not a network", 5},
		{"bad regex", base + "  sel:\n    c-uri|re: '('\n  condition: sel", "re:", 5},
		{"gt needs number", base + "  sel:\n    sc-status|gt: abc\n  condition: sel", "takes a number", 5},
		{"combined modifiers", base + "  sel:\n    c-uri|contains|re: x\n  condition: sel", "cannot be combined", 5},
		{"bad level", "title: E\nlevel: severe\n" + base[9:] + "  sel: {c-ip: x}\n  condition: sel", `level "severe"`, 2},
		{"two documents", base + "  sel: {c-ip: x}\n  condition: sel\n---\ntitle: F\n", "one rule", 7},
		{"unbalanced", base + "  sel: {c-ip: x}\n  condition: (sel", "expected )", 5},
		{"no match for of", base + "  sel: {c-ip: x}\n  condition: 1 of nothing*", "no selection matches", 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.rule))
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want a *sigma.Error", err)
			}
			if !strings.Contains(se.Msg, tt.msg) || se.Line != tt.line {
				t.Errorf("err = %q (line %d), want %q at line %d", err, se.Line, tt.msg, tt.line)
			}
		})
	}
}

func TestIsSigma(t *testing.T) {
	r, err := Parse([]byte("title: x\ndetection: {s: {c-ip: x}, condition: s}"))
	if err != nil || r == nil {
		t.Fatal(err)
	}
}

// FuzzParse checks that any input either is refused with an error or
// compiles to a filter that parses.
func FuzzParse(f *testing.F) {
	f.Add([]byte("title: T\nlogsource: {category: webserver}\ndetection:\n  sel:\n    cs-uri-query|contains: ['../', '%2e%2e']\n    sc-status: [200, 404]\n  filter:\n    c-ip|cidr: 10.0.0.0/8\n  timeframe: 5m\n  condition: sel and not filter | count() by c-ip > 3"))
	f.Add([]byte("title: K\ndetection:\n  kw: ['a*b?c', 'x\\\\*y']\n  s2:\n    - cs-method: GET\n    - c-uri|re|i: '^/a'\n  condition: 1 of them or all of s*"))
	f.Add([]byte("title: N\ndetection:\n  s: {cs-referer: null, cs-username|exists: false, sc-bytes|gt: 10}\n  condition: not s"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(data)
		if err != nil {
			return
		}
		if _, err := filter.ParseLimits(r.Filter, FilterLimits); err != nil {
			t.Fatalf("compiled filter %q does not parse: %v", r.Filter, err)
		}
	})
}
