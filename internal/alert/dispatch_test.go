package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func statuses(ds []Delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, fmt.Sprintf("%s#%d", d.Status, d.Attempt))
	}
	return out
}

func TestDeliveryRetries(t *testing.T) {
	cases := []struct {
		name      string
		extra     string
		fail      func(n int) (bool, error)
		wantLog   []string // oldest first
		wantSlept []time.Duration
		sent      bool
	}{
		{
			name: "retryable failures then success",
			fail: func(n int) (bool, error) {
				if n <= 2 {
					return true, errBoom
				}
				return false, nil
			},
			wantLog:   []string{"retrying#1", "retrying#2", "sent#3"},
			wantSlept: []time.Duration{500 * time.Millisecond, time.Second},
			sent:      true,
		},
		{
			name:    "not retryable",
			fail:    func(int) (bool, error) { return false, errBoom },
			wantLog: []string{"failed#1"},
		},
		{
			// The receiver's Retry-After (longer than the backoff) is honoured.
			name: "retry after",
			fail: func(n int) (bool, error) {
				if n == 1 {
					return true, retryAfterErr(7 * time.Second)
				}
				return false, nil
			},
			wantLog:   []string{"retrying#1", "sent#2"},
			wantSlept: []time.Duration{7 * time.Second},
			sent:      true,
		},
		{
			name:      "attempts bounded",
			extra:     "retry: {attempts: 3}\n",
			fail:      func(int) (bool, error) { return true, errBoom },
			wantLog:   []string{"retrying#1", "retrying#2", "failed#3"},
			wantSlept: []time.Duration{500 * time.Millisecond, time.Second},
		},
		{
			// Waits of 30s, 1m, 2m fit in the 5m group interval; 4m more do not.
			name:      "retry window is the group interval",
			extra:     "retry: {initial: 1m, max: 1h, attempts: 100}\n",
			fail:      func(int) (bool, error) { return true, errBoom },
			wantLog:   []string{"retrying#1", "retrying#2", "retrying#3", "failed#4"},
			wantSlept: []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute},
		},
		{
			name:    "a panicking notifier is a failure, not a crash",
			fail:    func(int) (bool, error) { panic("notifier bug") },
			wantLog: []string{"failed#1"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, simpleRoute+c.extra)
			h.rec["team"].fail = c.fail
			h.at(0, fire("a"))
			h.at(30 * time.Second)
			log := h.m.Deliveries(DeliveryFilter{})
			slices.Reverse(log)
			if got := statuses(log); !slices.Equal(got, c.wantLog) {
				t.Errorf("delivery log %v, want %v", got, c.wantLog)
			}
			if !slices.Equal(h.slept, c.wantSlept) {
				t.Errorf("waits %v, want %v", h.slept, c.wantSlept)
			}
			for _, d := range log {
				if d.Receiver != "team" || d.Notifier != "team" || d.GroupKey != `route{alertname="brute_force"}` ||
					len(d.Fingerprints) != 1 || d.Firing != 1 || (d.Status != DeliverySent && !strings.Contains(d.Error, "boom") && !strings.Contains(d.Error, "panic")) {
					t.Errorf("log entry %+v", d)
				}
			}
			sent, failed := metricValue(t, h, "vigil_alert_notifications_total", "receiver=team"), metricValue(t, h, "vigil_alert_notifications_failed_total", "receiver=team")
			if c.sent && (sent != 1 || failed != 0) || !c.sent && (sent != 0 || failed != 1) {
				t.Errorf("sent %v failed %v", sent, failed)
			}
			if c.sent {
				return
			}
			// A failed notification is tried again at the next group
			// interval, because the group's state was not updated.
			h.rec["team"].fail = nil
			h.at(5*time.Minute + 30*time.Second)
			if got := h.rec["team"].take(); !slices.Equal(got, []string{"a+"}) {
				t.Errorf("after the failure, next interval delivered %q", got)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	m, err := New(Options{Receivers: map[string][]Notifier{"default": nil}, Jitter: func() float64 { return 0.5 }})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		attempt int
		want    time.Duration
	}{
		{1, 750 * time.Millisecond}, // step 1s: 0.5s + 0.5 × 0.5s
		{2, 1500 * time.Millisecond},
		{3, 3 * time.Second},
		{6, 24 * time.Second},
		{7, 45 * time.Second}, // step 64s capped at the 1m maximum
		{60, 45 * time.Second},
	}
	for _, c := range cases {
		if got := m.backoff(c.attempt); got != c.want {
			t.Errorf("backoff(%d) = %v, want %v", c.attempt, got, c.want)
		}
	}
}

// webhook is a minimal JSON webhook notifier, to deliver over real HTTP.
type webhook struct{ url string }

func (w webhook) Notify(ctx context.Context, alerts []Alert) (bool, error) {
	body, err := json.Marshal(map[string]any{"alerts": alerts})
	if err != nil {
		return false, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return true, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return true, fmt.Errorf("webhook answered %d", resp.StatusCode)
	case resp.StatusCode >= 300:
		return false, fmt.Errorf("webhook answered %d", resp.StatusCode)
	}
	return false, nil
}

func TestWebhookOverHTTP(t *testing.T) {
	var mu sync.Mutex
	var bodies [][]byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		bodies = append(bodies, b)
		if len(bodies) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	// A port nobody listens on, behind a URL with a secret in its path.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String() + "/hooks/T000/SECRET-TOKEN"
	ln.Close()

	h := newHarness(t, `
route:
  receiver: web
  group_wait: 0s
  routes:
    - matchers: ['id="dead"']
      receiver: dead
`, func(o *Options) {
		o.Receivers = map[string][]Notifier{"web": {webhook{srv.URL + "/hook"}}, "dead": {webhook{dead}}}
		o.Config.Retry.Attempts = 2
	})
	h.at(0, withEvidence(fire("a"), 41, 42), fire("dead"))
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != 2 {
		t.Fatalf("%d requests, want 2 (503, then retried)", len(bodies))
	}
	var got struct{ Alerts []Alert }
	if err := json.Unmarshal(bodies[1], &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Alerts) != 1 || got.Alerts[0].Status != StateFiring || got.Alerts[0].Labels["id"] != "a" ||
		!slices.Equal(got.Alerts[0].Evidence, []uint64{41, 42}) || len(got.Alerts[0].Fingerprint) != 16 {
		t.Errorf("webhook body %s", bodies[1])
	}
	failed := h.m.Deliveries(DeliveryFilter{Receiver: "dead", Status: DeliveryFailed})
	if len(failed) != 1 {
		t.Fatalf("dead receiver log: %+v", h.m.Deliveries(DeliveryFilter{}))
	}
	if strings.Contains(failed[0].Error, "SECRET") || !strings.Contains(failed[0].Error, "127.0.0.1") {
		t.Errorf("delivery log error leaks the URL path or lost the host: %q", failed[0].Error)
	}
}

var urlError = url.Error{Op: "Post", URL: "https://hooks.example.test/services/T0/SECRET", Err: errors.New("refused")}

func TestSafeError(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{errors.New("plain"), "plain"},
		{fmt.Errorf("notify: %w", &urlError), `notify: Post "https://hooks.example.test/…": refused`},
		{errors.New(strings.Repeat("é", 400)), strings.Repeat("é", 256) + "…"},
	}
	for _, c := range cases {
		if got := safeError(c.err); got != c.want {
			t.Errorf("safeError(%q) = %q, want %q", c.err, got, c.want)
		}
	}
}

func TestQueueFullAndShutdown(t *testing.T) {
	clock := &fakeClock{t: t0}
	rec := &recorder{name: "r"}
	c, err := ParseConfig([]byte("route: {receiver: r, group_by: [id], group_wait: 0s}\nqueue_size: 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(Options{Config: c, Receivers: map[string][]Notifier{"r": {rec}}, Now: clock.Now, TickInterval: -1,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "c"} {
		if err := m.Process(fire(id)); err != nil {
			t.Fatal(err)
		}
	}
	// No worker runs yet: one job fits the queue, two are dropped.
	m.Tick(t0)
	if got := statuses(m.Deliveries(DeliveryFilter{})); !slices.Equal(got, []string{"dropped#0", "dropped#0"}) {
		t.Fatalf("log %v", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := m.WaitIdle(wctx); err != nil {
		t.Fatal(err)
	}
	if got := rec.take(); len(got) != 1 {
		t.Fatalf("delivered %q, want the one queued", got)
	}
	// The dropped ones go out at the next group interval.
	clock.Set(t0.Add(5 * time.Minute))
	m.Tick(clock.Now())
	if err := m.WaitIdle(wctx); err != nil {
		t.Fatal(err)
	}
	if got := rec.take(); len(got) != 2 {
		t.Fatalf("after the interval delivered %q, want the 2 dropped", got)
	}
	if err := m.Run(ctx); err == nil {
		t.Error("second Run: no error")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Stopped: new notifications are dropped and logged, not queued forever.
	if err := m.Process(fire("d")); err != nil {
		t.Fatal(err)
	}
	m.Tick(clock.Now())
	if d := m.Deliveries(DeliveryFilter{Limit: 1}); len(d) != 1 || d[0].Status != DeliveryDropped || !strings.Contains(d[0].Error, "stopped") {
		t.Errorf("after stop: %+v", d)
	}
	if err := m.WaitIdle(wctx); err != nil {
		t.Fatal(err)
	}
}

func TestDeliveryLogBounded(t *testing.T) {
	l := newDeliveryLog(3)
	for i := range 5 {
		l.add(Delivery{Attempt: i, Receiver: []string{"a", "b"}[i%2]})
	}
	var got []int
	for _, d := range l.list(DeliveryFilter{}) {
		got = append(got, d.Attempt)
	}
	if !slices.Equal(got, []int{4, 3, 2}) {
		t.Errorf("ring kept %v, want newest 4 3 2", got)
	}
	if d := l.list(DeliveryFilter{Receiver: "b"}); len(d) != 1 || d[0].Attempt != 3 {
		t.Errorf("filter: %+v", d)
	}
	if d := l.list(DeliveryFilter{Limit: 1}); len(d) != 1 || d[0].Attempt != 4 {
		t.Errorf("limit: %+v", d)
	}
}

// chanNotifier reports each notification on a channel; block, when set,
// makes it wait for its context to end first.
type chanNotifier struct {
	got   chan []Alert
	block bool
}

func (c chanNotifier) Notify(ctx context.Context, alerts []Alert) (bool, error) {
	if c.block {
		<-ctx.Done()
		return true, ctx.Err()
	}
	c.got <- alerts
	return false, nil
}

func TestRunTicksWithTheClock(t *testing.T) {
	clock := &fakeClock{t: t0}
	n := chanNotifier{got: make(chan []Alert, 1)}
	c, _ := ParseConfig([]byte("route: {receiver: r, group_wait: 0s}"))
	m, err := New(Options{Config: c, Receivers: map[string][]Notifier{"r": {n}}, Now: clock.Now, TickInterval: time.Millisecond,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := m.Process(withFor(fire("a"), time.Minute)); err != nil {
		t.Fatal(err)
	}
	// Only the clock moves; Run's own ticks fire the alert and flush it.
	clock.Set(t0.Add(time.Minute))
	select {
	case got := <-n.got:
		if len(got) != 1 || got[0].Labels["id"] != "a" || !got[0].StartsAt.Equal(t0.Add(time.Minute)) {
			t.Errorf("notified %+v", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not tick the pending alert to a notification")
	}
}

func TestShutdownDrainsQueue(t *testing.T) {
	clock := &fakeClock{t: t0}
	ok := chanNotifier{got: make(chan []Alert, 10)}
	failing := &recorder{name: "failing", fail: func(int) (bool, error) { return true, errBoom }}
	stuck := chanNotifier{block: true}
	c, _ := ParseConfig([]byte(`
route:
  receiver: ok
  group_by: [id]
  group_wait: 0s
  routes:
    - {matchers: ['id="f"'], receiver: failing}
    - {matchers: ['id="s"'], receiver: stuck}
`))
	m, err := New(Options{Config: c, Now: clock.Now, TickInterval: -1, DrainTimeout: 50 * time.Millisecond,
		Receivers: map[string][]Notifier{"ok": {ok}, "failing": {failing}, "stuck": {stuck}},
		Log:       slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "f", "s"} {
		m.Process(fire(id))
	}
	m.Tick(t0) // four jobs queued, no worker yet
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// Run with an ended context only drains: one attempt each, no retry,
	// and the stuck notifier is cut off by the drain timeout.
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if len(ok.got) != 2 {
		t.Errorf("%d notifications drained, want 2", len(ok.got))
	}
	if failing.attempts != 1 {
		t.Errorf("failing notifier tried %d times during shutdown, want 1", failing.attempts)
	}
	if d := m.Deliveries(DeliveryFilter{Receiver: "stuck"}); len(d) != 1 || d[0].Status != DeliveryFailed {
		t.Errorf("stuck delivery: %+v", d)
	}
}

func TestStateMetrics(t *testing.T) {
	h := newHarness(t, simpleRoute)
	h.at(0, fire("a"), fire("b"), withFor(fire("p"), time.Hour))
	h.at(time.Second, resolve("b"))
	h.m.AddSilence(Silence{Matchers: mustMatchers(t, `id="a"`), EndsAt: t0.Add(time.Hour), CreatedBy: "x", Comment: "y"})
	h.m.AddSilence(Silence{Matchers: mustMatchers(t, `id="z"`), StartsAt: t0.Add(time.Minute), EndsAt: t0.Add(time.Hour), CreatedBy: "x", Comment: "y"})
	want := []struct {
		name, label string
		v           float64
	}{
		{"vigil_alerts", "state=pending", 1},
		// b resolved before its first notification: it stays firing
		// until the group's first flush has told of it.
		{"vigil_alerts", "state=firing", 2},
		{"vigil_alerts", "state=resolved", 0},
		{"vigil_alerts_silenced", "", 1},
		{"vigil_silences", "state=active", 1},
		{"vigil_silences", "state=pending", 1},
		{"vigil_silences", "state=expired", 0},
	}
	for _, w := range want {
		if got := metricValue(t, h, w.name, w.label); got != w.v {
			t.Errorf("%s{%s} = %v, want %v", w.name, w.label, got, w.v)
		}
	}
}

// retryAfterErr is a failure whose receiver asked to wait (as notify's
// HTTP errors for 429 with Retry-After).
type retryAfterErr time.Duration

func (e retryAfterErr) Error() string             { return "boom: 429 too many requests" }
func (e retryAfterErr) RetryAfter() time.Duration { return time.Duration(e) }
