package alert

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// recorder is a Notifier that keeps every notification it accepts. fail,
// when set, decides the outcome of each attempt (1-based).
type recorder struct {
	name     string
	mu       sync.Mutex
	attempts int
	calls    [][]Alert
	fail     func(attempt int) (retry bool, err error)
}

func (r *recorder) Notify(ctx context.Context, alerts []Alert) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts++
	if r.fail != nil {
		if retry, err := r.fail(r.attempts); err != nil {
			return retry, err
		}
	}
	r.calls = append(r.calls, slices.Clone(alerts))
	return false, nil
}

func (r *recorder) String() string { return r.name }

// take returns the notifications received since the last take, each
// summarised as "id+ id-" (label id; + firing, - resolved), alerts sorted,
// notifications sorted.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.calls {
		var parts []string
		for _, a := range c {
			s := a.Labels["id"] + "+"
			if a.Status == StateResolved {
				s = a.Labels["id"] + "-"
			}
			parts = append(parts, s)
		}
		sort.Strings(parts)
		out = append(out, strings.Join(parts, " "))
	}
	r.calls = nil
	sort.Strings(out) // groups are delivered concurrently
	return out
}

// harness runs a Manager on a fake clock with recorders as notifiers.
type harness struct {
	t     *testing.T
	clock *fakeClock
	m     *Manager
	rec   map[string]*recorder
	reg   *prometheus.Registry
	slept []time.Duration
	sleMu sync.Mutex
}

// newHarness builds a manager from YAML; every receiver named in the
// routes gets one recorder. It runs the delivery workers; the test drives
// Tick.
func newHarness(t *testing.T, yaml string, opts ...func(*Options)) *harness {
	t.Helper()
	c, err := ParseConfig([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, clock: &fakeClock{t: t0}, rec: map[string]*recorder{}, reg: prometheus.NewRegistry()}
	recv := map[string][]Notifier{}
	for name := range anyReceivers(c.Route) {
		h.rec[name] = &recorder{name: name}
		recv[name] = []Notifier{h.rec[name]}
	}
	o := Options{
		Config: c, Receivers: recv, Now: h.clock.Now, Registerer: h.reg, TickInterval: -1,
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Jitter: func() float64 { return 0 },
		Sleep: func(ctx context.Context, d time.Duration) error {
			h.sleMu.Lock()
			h.slept = append(h.slept, d)
			h.sleMu.Unlock()
			return ctx.Err()
		},
	}
	for _, f := range opts {
		f(&o)
	}
	h.m, err = New(o)
	if err != nil {
		t.Fatal(err)
	}
	h.start()
	return h
}

func (h *harness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.m.Run(ctx) }()
	h.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Error(err)
		}
	})
}

// at moves the clock to t0+d, applies signals, ticks and waits for the
// deliveries to finish.
func (h *harness) at(d time.Duration, sigs ...Signal) {
	h.t.Helper()
	h.clock.Set(t0.Add(d))
	for _, s := range sigs {
		if err := h.m.Process(s); err != nil {
			h.t.Fatal(err)
		}
	}
	h.m.Tick(h.clock.Now())
	h.wait()
}

func (h *harness) wait() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.m.WaitIdle(ctx); err != nil {
		h.t.Fatal(err)
	}
}

// fire and resolve build signals for the alert with label id.
func fire(id string, extra ...string) Signal {
	s := Signal{Rule: "brute_force", Severity: SeverityWarning, Firing: true, Labels: map[string]string{"id": id}}
	for i := 0; i+1 < len(extra); i += 2 {
		s.Labels[extra[i]] = extra[i+1]
	}
	return s
}

func resolve(id string, extra ...string) Signal {
	s := fire(id, extra...)
	s.Firing = false
	return s
}

func withFor(s Signal, d time.Duration) Signal { s.For = d; return s }

func withEvidence(s Signal, seqs ...uint64) Signal { s.Evidence = seqs; return s }

var errBoom = errors.New("boom")

// metricValue reads one sample from the harness registry; label is
// "name=value" or "" for an unlabelled metric.
func metricValue(t *testing.T, h *harness, name, label string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, lp := range m.GetLabel() {
				if lp.GetName()+"="+lp.GetValue() == label {
					match = true
				}
			}
			if !match {
				continue
			}
			switch {
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no metric %s{%s}", name, label)
	return 0
}
