package vigil_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/sdk/vigil"
)

func metricsText(t *testing.T, c *vigil.Client) []byte {
	t.Helper()
	w := httptest.NewRecorder()
	c.Metrics().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
	return w.Body.Bytes()
}

// sample is one line of the text exposition format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

var (
	sampleRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$`)
	labelRE  = regexp.MustCompile(`^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)`)
)

// parseMetrics parses the Prometheus text format strictly enough to catch
// what Prometheus would refuse: unknown lines, bad names, bad label syntax,
// samples without TYPE, values that are not numbers, duplicate series.
func parseMetrics(text string) (types map[string]string, samples []sample, err error) {
	types = map[string]string{}
	seen := map[string]bool{}
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		switch {
		case strings.HasPrefix(line, "# HELP "):
			continue
		case strings.HasPrefix(line, "# TYPE "):
			f := strings.Fields(line)
			if len(f) != 4 || !strings.Contains("counter gauge histogram summary untyped", f[3]) {
				return nil, nil, fmt.Errorf("line %d: bad TYPE %q", i+1, line)
			}
			types[f[2]] = f[3]
			continue
		case strings.HasPrefix(line, "#"):
			return nil, nil, fmt.Errorf("line %d: unknown comment %q", i+1, line)
		}
		m := sampleRE.FindStringSubmatch(line)
		if m == nil {
			return nil, nil, fmt.Errorf("line %d: not a sample: %q", i+1, line)
		}
		s := sample{name: m[1], labels: map[string]string{}}
		for rest := m[3]; rest != ""; {
			lm := labelRE.FindStringSubmatch(rest)
			if lm == nil {
				return nil, nil, fmt.Errorf("line %d: bad labels %q", i+1, m[3])
			}
			s.labels[lm[1]] = lm[2]
			rest = rest[len(lm[0]):]
		}
		if s.value, err = strconv.ParseFloat(m[4], 64); err != nil {
			return nil, nil, fmt.Errorf("line %d: value: %v", i+1, err)
		}
		base := s.name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(s.name, suffix); ok && types[b] == "histogram" {
				base = b
			}
		}
		if types[base] == "" {
			return nil, nil, fmt.Errorf("line %d: sample %s without TYPE", i+1, s.name)
		}
		key := s.name + "{" + m[3] + "}"
		if seen[key] {
			return nil, nil, fmt.Errorf("line %d: duplicate series %s", i+1, key)
		}
		seen[key] = true
		samples = append(samples, s)
	}
	return types, samples, nil
}

func find(samples []sample, name string, labels ...string) (float64, bool) {
next:
	for _, s := range samples {
		if s.name != name {
			continue
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if s.labels[labels[i]] != labels[i+1] {
				continue next
			}
		}
		return s.value, true
	}
	return 0, false
}

func TestMetrics(t *testing.T) {
	now := time.Unix(1700000000, 0)
	c, _ := newClient(t, func(cfg *vigil.Config) {
		cfg.MaxRoutes = 2
		cfg.Now = func() time.Time { now = now.Add(30 * time.Millisecond); return now }
	})
	mux := http.NewServeMux()
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	mux.Handle("GET /a", ok)
	mux.Handle("GET /b/{id}", ok)
	mux.Handle("GET /c", ok)
	mux.HandleFunc("GET /quote\"d", func(w http.ResponseWriter, r *http.Request) {})
	h := c.Middleware(mux)
	for _, p := range []string{"/a", "/a", "/b/1", "/b/2", "/c", "/nowhere"} {
		serve(h, request("GET", p, "192.0.2.1:1", ""))
	}
	serve(h, request("BREW", "/a", "192.0.2.1:1", ""))

	types, samples, err := parseMetrics(string(metricsText(t, c)))
	if err != nil {
		t.Fatal(err)
	}
	for name, typ := range map[string]string{
		"http_requests_total": "counter", "http_request_duration_seconds": "histogram", "http_requests_in_flight": "gauge",
		"http_panics_total": "counter", "vigil_sdk_events_total": "counter", "vigil_sdk_events_failed_total": "counter",
	} {
		if types[name] != typ {
			t.Errorf("%s has type %q, want %q", name, types[name], typ)
		}
	}
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"http_requests_total", []string{"method", "GET", "route", "GET /a", "status", "200"}, 2},
		{"http_requests_total", []string{"method", "GET", "route", "GET /b/{id}", "status", "200"}, 2},
		{"http_requests_total", []string{"method", "GET", "route", "other", "status", "200"}, 1},   // /c: beyond MaxRoutes
		{"http_requests_total", []string{"method", "GET", "route", "other", "status", "404"}, 1},   // no route
		{"http_requests_total", []string{"method", "OTHER", "route", "other", "status", "405"}, 1}, // unknown method
		{"http_request_duration_seconds_bucket", []string{"route", "GET /a", "le", "0.025"}, 0},
		{"http_request_duration_seconds_bucket", []string{"route", "GET /a", "le", "0.05"}, 2},
		{"http_request_duration_seconds_bucket", []string{"route", "GET /a", "le", "+Inf"}, 2},
		{"http_request_duration_seconds_count", []string{"route", "GET /a"}, 2},
		{"http_request_duration_seconds_sum", []string{"route", "GET /a"}, 0.06},
		{"http_requests_in_flight", nil, 0},
		{"vigil_sdk_events_total", nil, 7},
	}
	for _, ck := range checks {
		got, ok := find(samples, ck.name, ck.labels...)
		if !ok || fmt.Sprintf("%.6f", got) != fmt.Sprintf("%.6f", ck.want) {
			t.Errorf("%s%v = %v (found %v), want %v", ck.name, ck.labels, got, ok, ck.want)
		}
	}
	// Buckets are cumulative and the django-prometheus ones.
	var les []string
	prev := -1.0
	for _, s := range samples {
		if s.name == "http_request_duration_seconds_bucket" && s.labels["route"] == "GET /b/{id}" {
			les = append(les, s.labels["le"])
			if s.value < prev {
				t.Errorf("bucket %s decreases", s.labels["le"])
			}
			prev = s.value
		}
	}
	if got := strings.Join(les, " "); got != "0.01 0.025 0.05 0.075 0.1 0.25 0.5 0.75 1 2.5 5 7.5 10 25 50 75 +Inf" {
		t.Errorf("buckets %s", got)
	}
}

func TestMetricsLabelEscaping(t *testing.T) {
	c, _ := newClient(t, nil)
	h := c.Middleware(c.Route("GET /say/\"hi\"\\n", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
	serve(h, request("GET", "/say", "192.0.2.1:1", ""))
	_, samples, err := parseMetrics(string(metricsText(t, c)))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := find(samples, "http_requests_total", "route", `GET /say/\"hi\"\\n`); !ok {
		t.Error("escaped route label not found")
	}
}
