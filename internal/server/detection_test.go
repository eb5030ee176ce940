package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/client"
	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/notify/webhook"
	"github.com/vigilsec/vigil/internal/server/servertest"
)

// firings counts the firing notifications a webhook receives, by the
// source.ip of their alerts.
type firings struct {
	mu sync.Mutex
	by map[string]int
}

func (f *firings) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var p webhook.Payload
	if err := json.Unmarshal(body, &p); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range p.Alerts {
		if a.Status == "firing" && a.Labels["alertname"] == "brute_force_ip" {
			f.by[a.Labels["source.ip"]]++
		}
	}
}

func (f *firings) count(ip string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.by[ip]
}

// TestDetectionAcrossRestart restarts Vigil in the middle of a brute-force
// window and after an alert fired: the window survives the restart (the
// alert fires once the threshold is crossed, counting the attempts before
// and after it), and the alert that fired before the restart is neither
// raised nor notified again.
func TestDetectionAcrossRestart(t *testing.T) {
	hook := &firings{by: map[string]int{}}
	srv := httptest.NewServer(hook)
	defer srv.Close()

	cfg := config.Default()
	err := config.Parse(fmt.Appendf(nil, `
listen: 127.0.0.1:0
data_dir: %s
alerting:
  route:
    receiver: hook
    group_by: [alertname, source.ip]
    group_wait: 50ms
    group_interval: 1m
    repeat_interval: 1h
notify:
  receivers:
    - name: hook
      webhook:
        - url: %s
`, filepath.Join(t.TempDir(), "data"), srv.URL), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	const token = "vgl_restart-test-token"
	v := servertest.StartConfig(t, cfg, token)

	const (
		midWindow = "198.51.100.7" // 6 attempts before the restart, 4 after
		fired     = "198.51.100.8" // 12 attempts before, 3 after
	)
	start := time.Now().Add(-30 * time.Second)
	n := 0
	send := func(url, ip string, count int) {
		t.Helper()
		var b strings.Builder
		for range count {
			n++
			fmt.Fprintf(&b, `{"@timestamp":%q,"event.action":"authn_login_fail","event.outcome":"failure","source.ip":%q,"user.name":"alice"}`+"\n",
				start.Add(time.Duration(n)*time.Second).Format(time.RFC3339Nano), ip)
		}
		if _, err := client.New(url, token).Send(context.Background(), []byte(b.String())); err != nil {
			t.Fatal(err)
		}
	}
	getJSON := func(url, path string, v any) {
		t.Helper()
		req, _ := http.NewRequest("GET", url+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	alerts := func(url, ip string) int {
		t.Helper()
		var list struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
			} `json:"alerts"`
		}
		getJSON(url, "/api/v1/alerts", &list)
		k := 0
		for _, a := range list.Alerts {
			if a.Labels["alertname"] == "brute_force_ip" && a.Labels["source.ip"] == ip {
				k++
			}
		}
		return k
	}
	waitUntil := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	bans := func(url, ip string) []string {
		t.Helper()
		var list struct {
			Decisions []struct {
				ID, Type, Value, Origin string
			} `json:"decisions"`
		}
		getJSON(url, "/api/v1/decisions", &list)
		var ids []string
		for _, d := range list.Decisions {
			if d.Value == ip && d.Type == "ban" && d.Origin == "brute_force_ip" {
				ids = append(ids, d.ID)
			}
		}
		return ids
	}

	send(v.URL, midWindow, 6)
	send(v.URL, fired, 12)
	waitUntil("notification of the first alert", func() bool { return hook.count(fired) == 1 })
	if got := alerts(v.URL, midWindow); got != 0 {
		t.Fatalf("%d alerts for %s after 6 attempts, want none yet", got, midWindow)
	}
	// The rule's action bans the address (made by the decision queue, in
	// the log before it is in force).
	waitUntil("the ban of "+fired, func() bool { return len(bans(v.URL, fired)) == 1 })
	banned := bans(v.URL, fired)[0]

	v.Stop()
	v = servertest.StartConfig(t, cfg, token)
	if got := bans(v.URL, fired); len(got) != 1 || got[0] != banned {
		t.Errorf("bans of %s after the restart: %v; want %s, replayed from the log", fired, got, banned)
	}

	send(v.URL, midWindow, 4)
	send(v.URL, fired, 3)
	waitUntil("alert for the window across the restart", func() bool { return alerts(v.URL, midWindow) == 1 })
	waitUntil("its notification", func() bool { return hook.count(midWindow) == 1 })
	// Give a repeated notification time to show up, were there one.
	time.Sleep(500 * time.Millisecond)
	if got := alerts(v.URL, fired); got != 1 {
		t.Errorf("%d alerts for %s, want the 1 raised before the restart", got, fired)
	}
	if got := hook.count(fired); got != 1 {
		t.Errorf("%s notified %d times, want once", fired, got)
	}
	if got := hook.count(midWindow); got != 1 {
		t.Errorf("%s notified %d times, want once", midWindow, got)
	}
}
