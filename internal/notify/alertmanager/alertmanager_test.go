package alertmanager

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/alert"
	"github.com/vigilsec/vigil/internal/notify/message"
	"github.com/vigilsec/vigil/internal/testpeer"
)

var now = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func TestBuild(t *testing.T) {
	start := now.Add(-time.Hour)
	as := []alert.Alert{
		{Fingerprint: "f1", Status: alert.StateFiring, StartsAt: start, GeneratorURL: "https://vigil.test/a/f1", Evidence: []uint64{3, 9},
			Labels:      map[string]string{"alertname": "Scan", "source.ip": "192.0.2.1", "source_ip": "kept", "9lives": "x", "empty": "", "bad utf8": "a\xffb"},
			Annotations: map[string]string{"summary": "s", "run-book": "r"}},
		{Fingerprint: "f2", Status: alert.StateResolved, StartsAt: start, EndsAt: now.Add(-time.Minute), Labels: map[string]string{"rule": "r"}},
		{Fingerprint: "f3", Status: alert.StateResolved, StartsAt: start, Labels: map[string]string{"alertname": "NoEnd"}},
		{Fingerprint: "f4", Status: alert.StateResolved, StartsAt: now, EndsAt: now.Add(-time.Hour), Labels: map[string]string{"alertname": "Backwards"}},
		{Fingerprint: "f5", Status: alert.StateFiring, StartsAt: start, RenewBy: now.Add(4 * time.Hour), Labels: map[string]string{"alertname": "Renewed"}},
	}
	got := Build(as, now)
	want := []PostableAlert{
		{Labels: map[string]string{"alertname": "Scan", "source_ip": "kept", "_9lives": "x", "bad_utf8": "a\uFFFDb"},
			Annotations: map[string]string{"summary": "s", "run_book": "r", "vigil_fingerprint": "f1", "vigil_evidence": "3,9"},
			StartsAt:    start, GeneratorURL: "https://vigil.test/a/f1"},
		{Labels: map[string]string{"alertname": DefaultAlertName, "rule": "r"}, Annotations: map[string]string{"vigil_fingerprint": "f2"}, StartsAt: start, EndsAt: now.Add(-time.Minute)},
		{Labels: map[string]string{"alertname": "NoEnd"}, Annotations: map[string]string{"vigil_fingerprint": "f3"}, StartsAt: start, EndsAt: now},
		{Labels: map[string]string{"alertname": "Backwards"}, Annotations: map[string]string{"vigil_fingerprint": "f4"}, StartsAt: now, EndsAt: now},
		{Labels: map[string]string{"alertname": "Renewed"}, Annotations: map[string]string{"vigil_fingerprint": "f5"}, StartsAt: start, EndsAt: now.Add(4 * time.Hour)},
	}
	gj, _ := json.MarshalIndent(got, "", " ")
	wj, _ := json.MarshalIndent(want, "", " ")
	if !bytes.Equal(gj, wj) {
		t.Errorf("Build:\n%s\nwant:\n%s", gj, wj)
	}
	if strings.Contains(string(gj[:bytes.Index(gj, []byte("},"))]), "endsAt") {
		t.Errorf("firing alert without RenewBy sent with endsAt:\n%s", gj)
	}
}

func TestLabelName(t *testing.T) {
	for in, want := range map[string]string{"a": "a", "source.ip": "source_ip", "9x": "_9x", "": "_", "é": "__", "A_b9": "A_b9"} {
		if got := LabelName(in); got != want {
			t.Errorf("LabelName(%q) = %q, want %q", in, got, want)
		}
	}
}

// fakeAM records requests and answers with one status.
type fakeAM struct {
	mu     sync.Mutex
	auth   []string
	bodies [][]PostableAlert
	status int
}

func (f *fakeAM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != Path {
		http.NotFound(w, r)
		return
	}
	var as []PostableAlert
	if err := json.NewDecoder(r.Body).Decode(&as); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	f.mu.Lock()
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	f.bodies = append(f.bodies, as)
	f.mu.Unlock()
	w.WriteHeader(f.status)
}

func TestNotifyStatusesAndAuth(t *testing.T) {
	cases := []struct {
		name     string
		statuses []int
		o        Options
		auth     string
		retry    bool
		wantErr  string
	}{
		{"200 ok, no auth", []int{200}, Options{}, "", false, ""},
		{"basic auth", []int{200}, Options{Username: "vigil", Password: "pw"}, "Basic " + base64.StdEncoding.EncodeToString([]byte("vigil:pw")), false, ""},
		{"bearer", []int{200}, Options{BearerToken: "tok"}, "Bearer tok", false, ""},
		{"400 not retried", []int{400}, Options{}, "", false, "400"},
		{"500 retried", []int{500}, Options{}, "", true, "500"},
		{"sent to all, one failing", []int{200, 503, 200}, Options{}, "", true, "1 of 3 failed"},
		{"sent to all, one refusing", []int{200, 400}, Options{}, "", false, "1 of 2 failed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var fakes []*fakeAM
			for _, st := range c.statuses {
				f := &fakeAM{status: st}
				srv := httptest.NewServer(f)
				defer srv.Close()
				fakes = append(fakes, f)
				c.o.URLs = append(c.o.URLs, srv.URL+"/")
			}
			c.o.Now = func() time.Time { return now }
			n, err := New(c.o)
			if err != nil {
				t.Fatal(err)
			}
			retry, err := n.Notify(context.Background(), message.SampleAlerts())
			if retry != c.retry || (c.wantErr == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("retry %v err %v; want %v %q", retry, err, c.retry, c.wantErr)
			}
			for i, f := range fakes {
				if len(f.bodies) != 1 || len(f.bodies[0]) != 2 || f.auth[0] != c.auth {
					t.Errorf("alertmanager %d got %d requests, auth %q", i, len(f.bodies), f.auth)
				}
			}
		})
	}
	if _, err := New(Options{URLs: []string{"http://x"}, Username: "u", BearerToken: "t"}); err == nil {
		t.Error("basic and bearer together accepted")
	}
}

// requireAlertmanager returns the path of the Alertmanager binary, failing
// the test (not skipping it) when it is not installed.
// listAlerts returns Alertmanager's alerts by alertname/source_ip.
func listAlerts(t *testing.T, base string) map[string]testpeer.AlertmanagerAlert {
	t.Helper()
	out := map[string]testpeer.AlertmanagerAlert{}
	for _, a := range testpeer.AlertmanagerAlerts(t, base) {
		out[a.Labels["alertname"]+"/"+a.Labels["source_ip"]] = a
	}
	return out
}

func TestRealAlertmanager(t *testing.T) {
	base := testpeer.Alertmanager(t)
	// A second URL to the same Alertmanager: "send to all" must post to
	// both, and Alertmanager merges the duplicates by labels.
	n, err := New(Options{URLs: []string{base, base + "/"}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	as := message.SampleAlerts()
	for i := range as {
		as[i].StartsAt = start
	}
	// Sent with the time Vigil will have renewed it by as its end, it stays
	// active past Alertmanager's resolve_timeout.
	renewBy := time.Now().Add(4 * time.Hour).Truncate(time.Millisecond)
	stays := alert.Alert{Fingerprint: "keep", Status: alert.StateFiring, StartsAt: start, RenewBy: renewBy,
		Labels: map[string]string{"alertname": "StillFiring", "severity": "info"}}

	ctx := context.Background()
	if retry, err := n.Notify(ctx, append(as, stays)); err != nil {
		t.Fatalf("firing: retry %v: %v", retry, err)
	}
	got := listAlerts(t, base)
	if len(got) != 3 {
		t.Fatalf("Alertmanager holds %d alerts, want 3: %v", len(got), got)
	}
	a, ok := got["BruteForceLogin/203.0.113.7"]
	if !ok {
		t.Fatalf("alert with source_ip 203.0.113.7 missing: %v", got)
	}
	if a.Status.State != "active" || a.Labels["severity"] != "critical" || a.Labels["rule"] != "brute_force_login" ||
		a.Annotations["summary"] != as[0].Annotations["summary"] || a.Annotations["vigil_fingerprint"] != as[0].Fingerprint ||
		a.Annotations["vigil_evidence"] != "1201,1207,1288" || a.GeneratorURL != as[0].GeneratorURL || !a.StartsAt.Equal(start) {
		t.Errorf("alert as Alertmanager holds it: %+v", a)
	}

	// Resolve the two brute-force alerts: Alertmanager drops them from its
	// list of current alerts; the third stays.
	end := time.Now()
	for i := range as {
		as[i].Status = alert.StateResolved
		as[i].EndsAt = end
	}
	if retry, err := n.Notify(ctx, as); err != nil {
		t.Fatalf("resolved: retry %v: %v", retry, err)
	}
	got = listAlerts(t, base)
	if len(got) != 1 {
		t.Fatalf("after resolving, Alertmanager holds %v; want only StillFiring", got)
	}
	if s, ok := got["StillFiring/"]; !ok || s.Status.State != "active" || !s.EndsAt.Equal(renewBy) {
		t.Fatalf("StillFiring (want active, ending %v): %+v", renewBy, got)
	}

	// An Alertmanager that is down: a network error, worth a retry.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	down := "http://" + l.Addr().String()
	l.Close()
	n2, _ := New(Options{URLs: []string{base, down}, Timeout: 2 * time.Second})
	retry, err := n2.Notify(ctx, []alert.Alert{stays})
	if !retry || err == nil || !strings.Contains(err.Error(), fmt.Sprintf("1 of %d failed", 2)) {
		t.Fatalf("one Alertmanager down: retry %v err %v", retry, err)
	}
}
