package respond

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/store"
	"github.com/vigilsec/vigil/internal/store/sqlite"
)

// quiet discards the managers' logs in tests.
var quiet = slog.New(slog.DiscardHandler)

// t0 is the fake clock's start.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeClock is a Clock moved by hand. After's channels fire when Advance
// passes their deadline.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.waiters = append(c.waiters, waiter{c.now.Add(d), ch})
	return ch
}

// Set moves the clock to t without firing timers.
func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

// awaitTimer waits until someone (Run) waits for a time at or before at.
func (c *fakeClock) awaitTimer(t *testing.T, at time.Time) {
	t.Helper()
	waitFor(t, "a timer", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, w := range c.waiters {
			if !w.at.After(at) {
				return true
			}
		}
		return false
	})
}

// AdvanceWhenWaiting waits until someone (Run) waits for a time within d
// from now, then advances by d, so that it wakes.
func (c *fakeClock) AdvanceWhenWaiting(t *testing.T, d time.Duration) {
	t.Helper()
	c.awaitTimer(t, c.Now().Add(d))
	c.Advance(d)
}

// log is an Appender that keeps events in memory, in order, and can be made
// to fail. (Tests of persistence use the real SQLite store: openStore.)
type memLog struct {
	mu     sync.Mutex
	events []event.Event
	fail   error
	added  chan struct{}
}

func newMemLog() *memLog { return &memLog{added: make(chan struct{}, 100)} }

func (l *memLog) Append(ctx context.Context, evs []event.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		return l.fail
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	l.events = append(l.events, evs...)
	select {
	case l.added <- struct{}{}:
	default:
	}
	return nil
}

func (l *memLog) actions() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, e := range l.events {
		out = append(out, e.Action)
	}
	return out
}

func (l *memLog) snapshot() []event.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]event.Event(nil), l.events...)
}

var errDiskFull = errors.New("disk full")

type testEnv struct {
	m     *Manager
	clock *fakeClock
	log   *memLog
	reg   *prometheus.Registry
}

func newEnv(t *testing.T, c Config) *testEnv {
	t.Helper()
	env := &testEnv{clock: newFakeClock(), log: newMemLog(), reg: prometheus.NewRegistry()}
	m, err := NewManager(c, Options{Append: env.log.Append, Clock: env.clock, Metrics: NewMetrics(env.reg), Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	env.m = m
	return env
}

// metric returns the value of the metric name whose labels include the
// given "name=value" pairs, or -1 when there is none.
func (env *testEnv) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := env.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for _, nv := range labels {
				n, v, _ := strings.Cut(nv, "=")
				if have[n] != v {
					continue next
				}
			}
			switch {
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}

func openStore(t *testing.T, dir string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(filepath.Join(dir, "events.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func storeAppender(s store.Store) Appender {
	return func(ctx context.Context, evs []event.Event) error {
		_, err := s.Append(ctx, evs)
		return err
	}
}

func mustAdd(t *testing.T, m *Manager, d Decision) Decision {
	t.Helper()
	if d.Origin == "" {
		d.Origin = "test-rule"
	}
	got, _, err := m.Add(context.Background(), d)
	if err != nil {
		t.Fatalf("Add(%+v): %v", d, err)
	}
	return got
}

// pending returns the number of timers not fired yet.
func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}
