package demo

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// decoded is one generated line, parsed back.
type decoded map[string]any

// get follows a dotted path through nested objects.
func (d decoded) get(path string) any {
	var v any = map[string]any(d)
	for _, key := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[key]
	}
	return v
}

func (d decoded) str(path string) string {
	s, _ := d.get(path).(string)
	return s
}

func decodeAll(t *testing.T, events []Event) []decoded {
	t.Helper()
	out := make([]decoded, len(events))
	for i, e := range events {
		dec := json.NewDecoder(bytes.NewReader(e.Line))
		dec.UseNumber()
		if err := dec.Decode(&out[i]); err != nil {
			t.Fatalf("event %d is not a JSON object: %v\n%s", i, err, e.Line)
		}
		if dec.More() {
			t.Fatalf("event %d has data after the object:\n%s", i, e.Line)
		}
	}
	return out
}

func TestGenerateIsDeterministic(t *testing.T) {
	a := NDJSON(Generate(Options{Seed: 7}))
	b := NDJSON(Generate(Options{Seed: 7}))
	if !bytes.Equal(a, b) {
		t.Fatal("two runs with seed 7 differ")
	}
	if c := NDJSON(Generate(Options{Seed: 8})); bytes.Equal(a, c) {
		t.Fatal("seeds 7 and 8 give the same events")
	}
}

func TestGenerateEvents(t *testing.T) {
	start := time.Date(2025, time.November, 3, 22, 15, 0, 0, time.UTC)
	tests := []struct {
		name     string
		opts     Options
		min, max int // expected number of events
	}{
		{"defaults", Options{}, 1600, 2500},
		{"seed and start", Options{Seed: 42, Start: start}, 1600, 2500},
		{"shortest run", Options{Seed: 3, Duration: time.Minute}, 700, 1400},
		{"small scale", Options{Seed: 4, Scale: 0.1}, 250, 600},
		{"double scale", Options{Seed: 5, Scale: 2}, 3200, 5000},
		{"hour", Options{Seed: 6, Duration: time.Hour}, 9000, 15000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events := Generate(tt.opts)
			if n := len(events); n < tt.min || n > tt.max {
				t.Errorf("got %d events, want between %d and %d", n, tt.min, tt.max)
			}
			checkAll(t, tt.opts, events)
		})
	}
}

// TestEverySeedHasTheIncidents runs the checks over many seeds on the
// smallest runs, where the incidents have the least room.
func TestEverySeedHasTheIncidents(t *testing.T) {
	for seed := range uint64(40) {
		opts := Options{Seed: seed, Duration: MinDuration, Scale: 0.05}
		checkAll(t, opts, Generate(opts))
		if t.Failed() {
			t.Fatalf("seed %d", seed)
		}
	}
}

func checkAll(t *testing.T, opts Options, events []Event) {
	t.Helper()
	o := opts.normalized()
	ds := decodeAll(t, events)
	checkEvents(t, events, ds, o.Start, o.Start.Add(o.Duration))
	checkBruteForce(t, events, ds)
	checkScanner(t, events, ds)
	checkOneOffs(t, events, ds)
}

// checkEvents verifies what every event must satisfy.
func checkEvents(t *testing.T, events []Event, ds []decoded, start, end time.Time) {
	t.Helper()
	docNets := []netip.Prefix{
		netip.MustParsePrefix("192.0.2.0/24"),
		netip.MustParsePrefix("198.51.100.0/24"),
		netip.MustParsePrefix("203.0.113.0/24"),
		netip.MustParsePrefix("2001:db8::/32"),
	}
	ids := map[string]bool{}
	for i, d := range ds {
		e := events[i]
		if i > 0 && e.Time.Before(events[i-1].Time) {
			t.Errorf("event %d at %s comes after one at %s", i, e.Time, events[i-1].Time)
		}
		if e.Time.Before(start) || !e.Time.Before(end) {
			t.Errorf("event %d at %s is outside [%s, %s)", i, e.Time, start, end)
		}
		ts, err := time.Parse(time.RFC3339, d.str("@timestamp"))
		if err != nil || !ts.Equal(e.Time) {
			t.Errorf("event %d: @timestamp %q does not match time %s (%v)", i, d.str("@timestamp"), e.Time, err)
		}
		id := d.str("event.id")
		if id == "" || ids[id] {
			t.Errorf("event %d: event.id %q is empty or repeated", i, id)
		}
		ids[id] = true
		if d.str("event.action") != e.Action || e.Action == "" {
			t.Errorf("event %d: event.action %q, Event.Action %q", i, d.str("event.action"), e.Action)
		}
		for path, want := range map[string]string{"event.kind": "event", "service.name": Service, "host.name": Host} {
			if got := d.str(path); got != want {
				t.Errorf("event %d: %s = %q, want %q", i, path, got, want)
			}
		}
		for _, path := range []string{"event.category", "event.type", "message"} {
			if d.str(path) == "" {
				t.Errorf("event %d: %s is missing", i, path)
			}
		}
		switch d.str("event.outcome") {
		case "success", "failure", "unknown":
		default:
			t.Errorf("event %d: event.outcome %q", i, d.str("event.outcome"))
		}
		if _, ok := d.get("event.severity").(json.Number); !ok {
			t.Errorf("event %d: event.severity %v is not a number", i, d.get("event.severity"))
		}
		if ip := d.str("source.ip"); ip != "" {
			addr, err := netip.ParseAddr(ip)
			inDocs := false
			for _, p := range docNets {
				inDocs = inDocs || (err == nil && p.Contains(addr))
			}
			if !inDocs {
				t.Errorf("event %d: source.ip %q is not in a documentation range", i, ip)
			}
		}
		if e.Action == "http_request" {
			for _, path := range []string{"source.ip", "http.request.id", "http.request.method", "url.path", "user_agent.original"} {
				if d.get(path) == nil {
					t.Errorf("event %d (http_request): %s is missing", i, path)
				}
			}
			if _, ok := d.get("http.response.status_code").(json.Number); !ok {
				t.Errorf("event %d (http_request): no http.response.status_code", i)
			}
		}
		if labels, ok := d.get("labels").(map[string]any); ok {
			for k, v := range labels {
				if _, ok := v.(string); !ok {
					t.Errorf("event %d: label %s is not a string: %v", i, k, v)
				}
			}
		}
		checkNoDottedKeys(t, i, map[string]any(d))
	}
}

// checkNoDottedKeys fails when an object key still contains a dot: fields
// must be nested objects, never "source.ip" keys.
func checkNoDottedKeys(t *testing.T, i int, m map[string]any) {
	t.Helper()
	for k, v := range m {
		if strings.Contains(k, ".") {
			t.Errorf("event %d: dotted key %q", i, k)
		}
		if child, ok := v.(map[string]any); ok {
			checkNoDottedKeys(t, i, child)
		}
	}
}

func checkBruteForce(t *testing.T, events []Event, ds []decoded) {
	t.Helper()
	var fails []time.Time
	locked := false
	for i, d := range ds {
		if d.str("source.ip") != BruteForceIP {
			continue
		}
		switch events[i].Action {
		case "authn_login_fail":
			if d.str("user.name") == BruteForceUser {
				fails = append(fails, events[i].Time)
			}
		case "authn_login_lock":
			locked = len(fails) > 0
		default:
			if locked {
				t.Errorf("the attacker is still active after the lock: %s", events[i].Line)
			}
		}
	}
	if len(fails) < 50 {
		t.Fatalf("%d failed logins for %s from %s, want at least 50", len(fails), BruteForceUser, BruteForceIP)
	}
	if span := fails[len(fails)-1].Sub(fails[0]); span > 2*time.Minute {
		t.Errorf("brute force lasts %s, want at most 2m", span)
	}
	if !locked {
		t.Error("no authn_login_lock after the failed logins")
	}
}

func checkScanner(t *testing.T, events []Event, ds []decoded) {
	t.Helper()
	seen := map[string]int{} // path → status
	var queries []string
	excess := false
	for i, d := range ds {
		if d.str("source.ip") != ScannerIP {
			continue
		}
		if events[i].Action == "malicious_excess_404" {
			excess = true
		}
		if events[i].Action != "http_request" {
			continue
		}
		status, _ := d.get("http.response.status_code").(json.Number).Int64()
		seen[d.str("url.path")] = int(status)
		if q := d.str("url.query"); q != "" {
			unescaped, err := url.QueryUnescape(q)
			if err != nil {
				t.Errorf("url.query %q does not decode: %v", q, err)
			}
			queries = append(queries, unescaped)
		}
	}
	for _, path := range []string{"/.env", "/wp-admin/", "/wp-login.php", "/.git/config", "/phpmyadmin/",
		"/server-status", "/admin.php", "/config.json", "/backup.zip"} {
		if seen[path] != 404 {
			t.Errorf("scanner probe of %s: status %d, want 404", path, seen[path])
		}
	}
	all := strings.Join(queries, "\n")
	for _, attack := range []string{"' OR '1'='1", "<script>", "../../etc/passwd", "UNION SELECT"} {
		if !strings.Contains(all, attack) {
			t.Errorf("no scanner query contains %q; queries:\n%s", attack, all)
		}
	}
	if !excess {
		t.Error("no malicious_excess_404 event for the scanner")
	}
}

// checkOneOffs looks for the config change, the denied /admin visit, a
// background job and a payment API call.
func checkOneOffs(t *testing.T, events []Event, ds []decoded) {
	t.Helper()
	found := map[string]bool{}
	for i, d := range ds {
		switch events[i].Action {
		case "sys_config_change":
			related, _ := d.get("related.objects").([]any)
			if d.str("event.category") == "configuration" && d.str("user.name") == AdminUser &&
				d.str("vigil.change.key") == "payments.provider" && d.str("vigil.change.old") == "stripe" &&
				d.str("vigil.change.new") == "paypal" && len(related) == 1 && related[0] == "setting:payments.provider" {
				found["config change"] = true
			}
		case "authz_fail":
			if d.str("url.path") == "/admin" && d.str("user.name") != "" && d.str("user.name") != AdminUser {
				found["authz_fail"] = true
			}
		case "job_run":
			if d.str("vigil.job.state") == "SUCCEEDED" && d.str("vigil.job.name") != "" && d.str("vigil.job.queue") != "" {
				found["job"] = true
			}
		case "http_request_outgoing":
			if d.str("url.domain") == "api.payments.example" {
				found["payment call"] = true
			}
		case "authn_login_success":
			found["login"] = true
		}
	}
	for _, what := range []string{"config change", "authz_fail", "job", "payment call", "login"} {
		if !found[what] {
			t.Errorf("no %s event", what)
		}
	}
}

func TestOptionsAreClamped(t *testing.T) {
	tests := []struct {
		in   Options
		want Options
	}{
		{Options{}, Options{Start: DefaultStart, Duration: DefaultDuration, Scale: 1}},
		{Options{Duration: time.Second, Scale: -2}, Options{Start: DefaultStart, Duration: MinDuration, Scale: 1}},
		{Options{Duration: 1000 * time.Hour, Scale: 1e9}, Options{Start: DefaultStart, Duration: MaxDuration, Scale: MaxScale}},
	}
	for _, tt := range tests {
		if got := tt.in.normalized(); got != tt.want {
			t.Errorf("%+v normalized to %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestNDJSON(t *testing.T) {
	events := Generate(Options{Seed: 1})
	body := NDJSON(events)
	if !bytes.HasSuffix(body, []byte("\n")) {
		t.Fatal("body does not end with a newline")
	}
	lines := bytes.Split(bytes.TrimSuffix(body, []byte("\n")), []byte("\n"))
	if len(lines) != len(events) {
		t.Fatalf("%d lines for %d events", len(lines), len(events))
	}
	for i, line := range lines {
		if !bytes.Equal(line, events[i].Line) {
			t.Fatalf("line %d differs from its event", i)
		}
	}
	if got := NDJSON(nil); len(got) != 0 {
		t.Errorf("NDJSON(nil) = %q, want empty", got)
	}
}

// TestGolden pins the first events of seed 1 so that a change to the output
// format shows up in review. Run with -update after an intended change.
func TestGolden(t *testing.T) {
	events := Generate(Options{Seed: 1})
	var head []Event
	seen := map[string]bool{}
	for _, e := range events { // the first event of every action, in order
		if !seen[e.Action] {
			seen[e.Action] = true
			head = append(head, e)
		}
	}
	got := NDJSON(head)
	path := filepath.Join("testdata", "first-of-each-action.ndjson")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (run go test -update if the change is intended)\ngot:\n%s", path, got)
	}
}
