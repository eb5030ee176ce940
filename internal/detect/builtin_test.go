package detect

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/demo"
	"github.com/vigilsec/vigil/internal/event"
)

// demoEvents parses the events of a demo run.
func demoEvents(t testing.TB, opts demo.Options) []*event.Event {
	t.Helper()
	var out []*event.Event
	for _, de := range demo.Generate(opts) {
		e, err := event.Parse(de.Line, event.Limits{}, de.Time)
		if err != nil {
			t.Fatalf("demo event does not parse: %v", err)
		}
		out = append(out, &e)
	}
	return out
}

// TestBuiltinOnDemo feeds the demo shop's traffic (generated in process, as
// `vigil demo` sends it) through the built-in pack: the brute force and the
// scanner must be caught, and the customers' ordinary traffic (typos,
// missing products, server errors) must raise nothing.
func TestBuiltinOnDemo(t *testing.T) {
	rs, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	bf, sc := "{source.ip="+demo.BruteForceIP+"}", "{source.ip="+demo.ScannerIP+"}"
	want := []string{
		"+account_locked{user.name=" + demo.BruteForceUser + "}",
		"+app_reported_attack" + sc,
		"+attack_tool" + sc,
		"+brute_force_ip" + bf,
		"+config_change_new_user{user.name=" + demo.AdminUser + "}",
		"+path_traversal" + sc,
		"+scanner_404" + sc,
		"+sensitive_path_probe" + sc,
		"+sql_injection" + sc,
		"+xss" + sc,
	}
	for _, opts := range []demo.Options{
		{},
		{Seed: 1},
		{Seed: 2, Duration: demo.MinDuration},
		{Seed: 3, Duration: 15 * time.Minute, Scale: 1.5},
	} {
		t.Run(fmt.Sprintf("seed%d-%v-x%g", opts.Seed, opts.Duration, opts.Scale), func(t *testing.T) {
			eng := NewEngine(rs)
			var got []string
			var brute *Signal
			for i, e := range demoEvents(t, opts) {
				for _, s := range eng.Process(uint64(i+1), e) {
					if s.Firing {
						got = append(got, sig(s))
					}
					if s.Rule == "brute_force_ip" && brute == nil {
						brute = &s
					}
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("firing signals:\n%q\nwant\n%q", got, want)
			}
			if brute == nil || brute.Action == nil || brute.Action.Type != ActionBan || brute.Action.Value != demo.BruteForceIP {
				t.Errorf("brute force signal %+v: want a ban of %s", brute, demo.BruteForceIP)
			}
		})
	}
}

// TestInjectionPatterns checks the SQL injection, XSS and path traversal
// rules against realistic attack strings and benign look-alikes.
func TestInjectionPatterns(t *testing.T) {
	rs, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		where, value string
		want         string // rule expected to fire, "" for none
	}{
		// SQL injection
		{"url.query", "id=1' OR '1'='1", "sql_injection"},
		{"url.query", "id=1%27%20OR%201=1--", "sql_injection"},
		{"url.query", "user=admin'--", "sql_injection"},
		{"url.query", "id=1 UNION ALL SELECT NULL,NULL,version()--", "sql_injection"},
		{"url.query", "id=-1+union+select+1,2,3", "sql_injection"},
		{"url.query", "q=1 union/**/select password from users", "sql_injection"},
		{"url.query", "id=1;DROP TABLE users", "sql_injection"},
		{"url.query", "id=1 AND SLEEP(5)", "sql_injection"},
		{"url.query", "id=1'; WAITFOR DELAY '0:0:5'--", "sql_injection"},
		{"url.query", "id=1+AND+1=1", "sql_injection"},
		{"url.query", "cat=1 and extractvalue(1,concat(0x7e,(select @@version)))", "sql_injection"},
		{"url.query", "id=1 and 1=0 union select table_name from information_schema.tables", "sql_injection"},
		{"url.path", "/products/1' OR '1'='1", "sql_injection"},
		{"http.request.body.content", "username=admin'--&password=x", "sql_injection"},
		{"http.request.body.content", `{"id":"1 UNION SELECT password FROM users"}`, "sql_injection"},
		{"url.query", "q=O'Reilly", ""},
		{"url.query", "q=rock+and+roll", ""},
		{"url.query", "q=select+shoes+from+our+union+store", ""},
		{"url.query", "q=labor union selection", ""},
		{"url.query", "sort=price&order=desc&brand=acme", ""},
		{"url.query", "q=don't or won't", ""},
		{"url.query", "q=it's 1 or 2", ""},
		{"url.query", "name=Bobby's and Sue's", ""},
		{"url.query", "q=sleep (pillow)", ""},
		{"http.request.body.content", `{"comment":"I'd say it's fine, and the selection is great"}`, ""},
		// cross-site scripting
		{"url.query", "q=<script>alert(document.cookie)</script>", "xss"},
		{"url.query", "q=%3Cscript%3Ealert(1)%3C/script%3E", "xss"},
		{"url.query", `q="><img src=x onerror=alert(1)>`, "xss"},
		{"url.query", "redirect=javascript:alert(1)", "xss"},
		{"url.query", "q=<svg/onload=alert(1)>", "xss"},
		{"url.query", "q=<iframe src=//evil.example>", "xss"},
		{"url.query", "name=%22onmouseover%3D%22alert(1)", "xss"},
		{"http.request.body.content", "comment=<script src=//evil.example/x.js></script>", "xss"},
		{"url.query", "q=javascript: the good parts", ""},
		{"url.query", "q=description of the onload event", ""},
		{"url.query", "q=i <3 shoes", ""},
		{"url.query", "q=a<b and c>d", ""},
		{"url.query", "onload=1&onerror=2", ""},
		{"url.query", "q=scripture", ""},
		{"url.query", "q=alert on price drop", ""},
		// path traversal
		{"url.query", "file=../../../../etc/passwd", "path_traversal"},
		{"url.query", "file=..%2F..%2F..%2Fwindows%2Fwin.ini", "path_traversal"},
		{"url.query", "file=%252e%252e%252f%252e%252e%252fetc%252fpasswd", "path_traversal"},
		{"url.query", "path=....//....//etc/passwd", "path_traversal"},
		{"url.query", "file=/etc/shadow", "path_traversal"},
		{"url.query", `f=C:\Windows\win.ini`, "path_traversal"},
		{"url.query", "file=report.pdf%00.jpg", "path_traversal"},
		{"url.path", "/static/../../../etc/passwd", "path_traversal"},
		{"http.request.body.content", "template=../../../../proc/self/environ", "path_traversal"},
		{"url.query", "file=../img/logo.png", ""},
		{"url.query", "path=/docs/2024/report..final.pdf", ""},
		{"url.query", "version=1.2..3", ""},
		{"url.path", "/blog/how-to-write-a-passwd-file", ""},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprintf("%s=%s", tt.where, tt.value), func(t *testing.T) {
			fields := map[string]any{"event.action": "http_request", "source.ip": "192.0.2.7", "url.path": "/search", tt.where: tt.value}
			eng := NewEngine(rs)
			var got []string
			for _, s := range eng.Process(uint64(i+1), ev(t, 0, fields)) {
				got = append(got, s.Rule)
			}
			var want []string
			if tt.want != "" {
				want = []string{tt.want}
			}
			if !slices.Equal(got, want) {
				t.Errorf("rules fired %q, want %q", got, want)
			}
		})
	}
}
