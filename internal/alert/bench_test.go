package alert

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"
)

func benchManager(b *testing.B) (*Manager, *fakeClock) {
	clock := &fakeClock{t: t0}
	c, _ := ParseConfig([]byte(simpleRoute))
	m, err := New(Options{Config: c, Receivers: map[string][]Notifier{"team": {&recorder{}}}, Now: clock.Now,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	return m, clock
}

// BenchmarkProcessDedup measures a firing signal for an existing alert.
func BenchmarkProcessDedup(b *testing.B) {
	m, _ := benchManager(b)
	s := withEvidence(fire("a", "source.ip", "203.0.113.7"), 1)
	for i := 0; b.Loop(); i++ {
		s.Evidence[0] = uint64(i + 1)
		if err := m.Process(s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTickFullGroup measures a flush of one group holding 10,000
// firing alerts (one rule, many source IPs), with one of them new.
func BenchmarkTickFullGroup(b *testing.B) {
	m, clock := benchManager(b)
	for i := range 10000 {
		m.Process(fire(fmt.Sprint(i)))
	}
	now := t0
	for i := 0; b.Loop(); i++ {
		now = now.Add(5 * time.Minute)
		clock.Set(now)
		m.Process(fire(fmt.Sprint("new", i)))
		m.Tick(now)
		// Deliver synchronously so the next flush is not blocked by inflight.
		for len(m.queue) > 0 {
			j := <-m.queue
			m.delivered(j, true)
			m.jobDone()
		}
	}
}
