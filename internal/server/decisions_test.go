package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/respond"
)

// slowLog is an Appender that takes 20 ms per call, as a commit waiting
// behind the ingest queue does under load, and counts its calls.
type slowLog struct {
	mu     sync.Mutex
	calls  int
	events int
}

func (l *slowLog) Append(ctx context.Context, evs []event.Event) error {
	time.Sleep(20 * time.Millisecond)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	l.events += len(evs)
	return nil
}

func TestDecisionQueue(t *testing.T) {
	log := &slowLog{}
	mgr, err := respond.NewManager(respond.Config{}, respond.Options{Append: log.Append, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	q := newDecisionQueue(mgr, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		q.run(ctx, stop)
	}()

	// Handing over 200 decisions does not wait for the log: one at a time
	// through Add, they would take 4 s.
	const n = 200
	start := time.Now()
	for i := range n {
		d := respond.Decision{Scope: "ip", Value: fmt.Sprintf("203.0.113.%d", i%100), Origin: "rule", Until: time.Now().Add(time.Hour + time.Duration(i)*time.Second)}
		if err := q.add(ctx, d, "rule"); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("queueing %d decisions took %v", n, took)
	}
	if err := q.flush(ctx); err != nil {
		t.Fatal(err)
	}
	if w := q.waiting(); w != 0 {
		t.Errorf("%d decisions waiting after a flush", w)
	}
	// Flushed: every decision is made, in order (the second decision on each
	// address, which ends later, extended the first), in a few appends.
	log.mu.Lock()
	calls, events := log.calls, log.events
	log.mu.Unlock()
	if events != n || calls > n/10 {
		t.Errorf("%d events in %d appends; want %d events in at most %d", events, calls, n, n/10)
	}
	for i := range 100 {
		d, ok := mgr.Check(netip.MustParseAddr(fmt.Sprintf("203.0.113.%d", i)), "")
		if !ok || d.Until.Before(start.Add(time.Hour+time.Duration(100+i)*time.Second)) {
			t.Fatalf("203.0.113.%d: %+v, %v; want the later decision in force", i, d, ok)
		}
	}

	// A flush with nothing queued returns at once; run returns once stopped.
	if err := q.flush(ctx); err != nil {
		t.Fatal(err)
	}
	close(stop)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return after stop")
	}
}

func TestDecisionQueueFlushHonoursContext(t *testing.T) {
	log := &slowLog{}
	mgr, err := respond.NewManager(respond.Config{}, respond.Options{Append: log.Append, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	q := newDecisionQueue(mgr, slog.New(slog.NewTextHandler(io.Discard, nil)))
	// Nothing runs the queue: a flush waits until its context ends.
	if err := q.add(context.Background(), respond.Decision{Scope: "ip", Value: "203.0.113.1", Origin: "rule"}, "rule"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := q.flush(ctx); err == nil {
		t.Fatal("flush returned before the decision was made")
	}
}

// failingLog is an Appender that refuses the first fails calls, as a store
// with a full disk does, then keeps what it is given.
type failingLog struct {
	mu     sync.Mutex
	fails  int
	calls  int
	events []event.Event
}

func (l *failingLog) Append(ctx context.Context, evs []event.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	if l.calls <= l.fails {
		return fmt.Errorf("append: disk full (call %d)", l.calls)
	}
	l.events = append(l.events, evs...)
	return nil
}

// A batch the log refuses is tried again, and a flush waits for it: the
// detection cursor cannot save a position past a decision not made.
func TestDecisionQueueRetriesFailedAppend(t *testing.T) {
	defer func(a, b time.Duration) { decideRetryMin, decideRetryMax = a, b }(decideRetryMin, decideRetryMax)
	decideRetryMin, decideRetryMax = 10*time.Millisecond, 40*time.Millisecond
	log := &failingLog{fails: 4}
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	mgr, err := respond.NewManager(respond.Config{}, respond.Options{Append: log.Append, Log: discard})
	if err != nil {
		t.Fatal(err)
	}
	q := newDecisionQueue(mgr, discard)
	ctx := context.Background()
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		q.run(ctx, stop)
	}()
	d := respond.Decision{Scope: "ip", Value: "203.0.113.9", Origin: "rule", Until: time.Now().Add(time.Hour)}
	if err := q.add(ctx, d, "rule"); err != nil {
		t.Fatal(err)
	}
	// While the log refuses it, a flush does not return.
	short, cancel := context.WithTimeout(ctx, 15*time.Millisecond)
	defer cancel()
	if err := q.flush(short); err == nil {
		t.Fatal("flush returned while the log refused the decision")
	}
	if err := q.flush(ctx); err != nil {
		t.Fatal(err)
	}
	log.mu.Lock()
	calls, made := log.calls, len(log.events)
	log.mu.Unlock()
	if calls != 5 || made != 1 {
		t.Errorf("%d appends, %d events kept; want the fifth append to keep the decision", calls, made)
	}
	if got, ok := mgr.Check(netip.MustParseAddr("203.0.113.9"), ""); !ok || got.Origin != "rule" {
		t.Errorf("decision not in force after the retries: %+v, %v", got, ok)
	}

	// At shutdown a batch the log still refuses is given up: run returns.
	log.mu.Lock()
	log.fails = 1 << 30
	log.mu.Unlock()
	if err := q.add(ctx, respond.Decision{Scope: "ip", Value: "203.0.113.10", Origin: "rule"}, "rule"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(30 * time.Millisecond)
	close(stop)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return after stop while the log refused a batch")
	}
	if _, ok := mgr.Check(netip.MustParseAddr("203.0.113.10"), ""); ok {
		t.Error("a refused decision is in force")
	}
}
