package event

import (
	"runtime"
	"syscall"
	"testing"
	"time"
)

func BenchmarkZZScan(b *testing.B) {
	st := new(state)
	for b.Loop() {
		st.reset(benchEvent, 32)
		st.top()
	}
}
func BenchmarkZZWrite(b *testing.B) {
	st := new(state)
	st.lim = DefaultLimits
	st.now = time.Now()
	for b.Loop() {
		st.reset(benchEvent, 32)
		st.out = st.out[:0]
		st.ents = st.ents[:0]
		st.related = st.related[:0]
		r, _ := st.top()
		st.writeTop(r)
	}
}
func BenchmarkZZWriteEvent(b *testing.B) {
	st := new(state)
	st.lim = DefaultLimits
	st.now = time.Now()
	for b.Loop() {
		st.reset(benchEvent, 32)
		st.out = st.out[:0]
		st.ents = st.ents[:0]
		st.related = st.related[:0]
		r, _ := st.top()
		st.writeTop(r)
		st.event()
	}
}

func cpuPerOp(n int, f func()) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var r0, r1 syscall.Rusage
	syscall.Getrusage(1 /* RUSAGE_THREAD */, &r0)
	for range n {
		f()
	}
	syscall.Getrusage(1, &r1)
	d := time.Duration(r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano())
	return d / time.Duration(n)
}

func TestZZCPU(t *testing.T) {
	now := time.Now()
	st := new(state)
	st.lim = DefaultLimits
	st.now = now
	for range 3 {
		scan := cpuPerOp(300000, func() { st.reset(benchEvent, 32); st.top() })
		write := cpuPerOp(300000, func() {
			st.reset(benchEvent, 32)
			st.out = st.out[:0]
			st.ents = st.ents[:0]
			st.related = st.related[:0]
			r, _ := st.top()
			st.writeTop(r)
		})
		parse := cpuPerOp(300000, func() { Parse(benchEvent, DefaultLimits, now) })
		t.Logf("scan %v  scan+write %v  parse %v", scan, write, parse)
	}
}
