package detect

import (
	"math"
	"slices"
	"strings"
)

// point is one event (or, after merging, several) in a window.
type point struct {
	t   int64 // event time, Unix nanoseconds
	seq uint64
	w   float64 // 1 per event, or the summed amount
}

// series is a window's events in time order, at most maxSeriesPoints: beyond
// that the two oldest points merge (their weights add up under the later
// time), which keeps counts and sums whole but lets the oldest weight leave
// the window a little late.
type series struct {
	pts   []point
	head  int
	total float64
}

func (s *series) len() int { return len(s.pts) - s.head }

func (s *series) add(p point) {
	s.pts = append(s.pts, p)
	i := len(s.pts) - 1
	for i > s.head && s.pts[i-1].t > p.t {
		s.pts[i] = s.pts[i-1]
		i--
	}
	s.pts[i] = p
	s.total += p.w
	if s.len() > maxSeriesPoints {
		s.pts[s.head+1].w += s.pts[s.head].w
		s.head++
	}
}

// expire drops points at or before cutoff.
func (s *series) expire(cutoff int64) {
	for s.head < len(s.pts) && s.pts[s.head].t <= cutoff {
		s.total -= s.pts[s.head].w
		s.head++
	}
	if s.head == len(s.pts) {
		s.pts, s.head, s.total = s.pts[:0], 0, 0
	} else if s.head > 32 && 2*s.head > len(s.pts) {
		n := copy(s.pts, s.pts[s.head:])
		s.pts, s.head = s.pts[:n], 0
	}
}

// sumAfter returns the weight of the points after cutoff.
func (s *series) sumAfter(cutoff int64) (float64, int) {
	var sum float64
	n := 0
	for _, p := range s.pts[s.head:] {
		if p.t > cutoff {
			sum += p.w
			n++
		}
	}
	return sum, n
}

func (s *series) seqs(cutoff int64) []uint64 {
	var out []uint64
	for _, p := range s.pts[s.head:] {
		if p.t > cutoff {
			out = append(out, p.seq)
		}
	}
	return evidenceOf(out)
}

type distinctEntry struct {
	t   int64
	seq uint64
}

type thrState struct {
	pts      series
	distinct map[string]distinctEntry
}

// thresholdEval runs threshold rules and Sigma rules with count(): the
// count, distinct count or sum of matching events in the window, per group,
// against the threshold.
type thresholdEval struct {
	r   *Rule
	t   table[thrState]
	cap int // distinct values kept per group
}

func newThreshold(r *Rule) *thresholdEval {
	c := int(min(max(2*r.threshold.threshold, 64), maxDistinct))
	return &thresholdEval{r: r, t: newTable[thrState](r.MaxGroups), cap: c}
}

func (m *thresholdEval) firing() int { return m.t.firing() }

func (m *thresholdEval) groups() int { return m.t.len() }

func (m *thresholdEval) process(x *ctx) {
	r := m.r
	if !r.Filter.MatchDoc(x.doc) {
		return
	}
	x.rt.stats.Matches++
	t := x.t.UnixNano()
	cutoff := x.wm.Add(-r.Window).UnixNano()
	p := &r.threshold
	var w float64 = 1
	var dv string
	switch {
	case !p.sum.IsZero():
		n, ok := p.sum.Number(x.doc)
		if !ok || !(n > 0) || math.IsInf(n, 0) {
			return
		}
		w = n
	case !p.distinct.IsZero():
		v, ok := p.distinct.First(x.doc)
		if !ok {
			return
		}
		dv = v
	}
	if t <= cutoff && m.t.len() >= m.t.max && m.t.get(x.groupKey(r.groupFields)) == nil {
		return // late, for a new group, with the table full: evict nothing for it
	}
	g, _ := lookup(x, &m.t, x.groupKey(r.groupFields), len(r.groupFields))
	s := &g.s
	if t <= cutoff {
		// Older than the window behind the watermark: a shipper replaying
		// its spool after Vigil was down, a host whose logs come late. It
		// counts with its own group's events when they are as old: the
		// window is cut from the group's latest event instead. Behind an
		// active group's window it cannot count any more.
		cutoff = max(t, m.latest(s)) - int64(r.Window)
		if t <= cutoff {
			return
		}
	}
	if p.distinct.IsZero() {
		s.pts.expire(cutoff)
	} else if len(s.distinct) > 0 {
		m.pruneDistinct(s, cutoff)
	}
	if g.firing {
		// The condition may have lapsed since the group's last event: a
		// Tick would have resolved it. Resolve it now, so that what fires
		// next does not depend on when ticks happened (or whether they did,
		// as while replaying after a restart).
		if v, n := m.value(s, cutoff); v < p.threshold {
			x.windowState(&g.groupHead, false, x.seq, func() []uint64 { return nil }, v, n)
		}
	}
	if p.distinct.IsZero() {
		s.pts.add(point{t: t, seq: x.seq, w: w})
	} else {
		if s.distinct == nil {
			s.distinct = map[string]distinctEntry{}
		}
		if e, ok := s.distinct[dv]; ok {
			if t >= e.t {
				s.distinct[dv] = distinctEntry{t: t, seq: x.seq}
			}
		} else {
			s.distinct[strings.Clone(dv)] = distinctEntry{t: t, seq: x.seq}
		}
		if len(s.distinct) > m.cap {
			m.pruneDistinct(s, cutoff)
		}
	}
	v, n := m.value(s, cutoff)
	x.windowState(&g.groupHead, v >= p.threshold, x.seq, func() []uint64 { return m.evidence(s, cutoff) }, v, n)
}

// pruneDistinct drops values last seen at or before cutoff, then the oldest
// while there are more than cap.
func (m *thresholdEval) pruneDistinct(s *thrState, cutoff int64) {
	for k, e := range s.distinct {
		if e.t <= cutoff {
			delete(s.distinct, k)
		}
	}
	for len(s.distinct) > m.cap {
		var oldest string
		var ot int64 = math.MaxInt64
		for k, e := range s.distinct {
			if e.t < ot || e.t == ot && k < oldest {
				oldest, ot = k, e.t
			}
		}
		delete(s.distinct, oldest)
	}
}

// latest returns the time of the group's latest event (0 when none).
func (m *thresholdEval) latest(s *thrState) int64 {
	var t int64
	if n := len(s.pts.pts); n > s.pts.head {
		t = s.pts.pts[n-1].t
	}
	for _, e := range s.distinct {
		t = max(t, e.t)
	}
	return t
}

// value returns the measured value after cutoff and the number of events
// (points) behind it.
func (m *thresholdEval) value(s *thrState, cutoff int64) (float64, int) {
	if m.r.threshold.distinct.IsZero() {
		return s.pts.sumAfter(cutoff)
	}
	n := 0
	for _, e := range s.distinct {
		if e.t > cutoff {
			n++
		}
	}
	return float64(n), n
}

func (m *thresholdEval) evidence(s *thrState, cutoff int64) []uint64 {
	if m.r.threshold.distinct.IsZero() {
		return s.pts.seqs(cutoff)
	}
	type ts struct {
		t   int64
		seq uint64
	}
	var all []ts
	for _, e := range s.distinct {
		if e.t > cutoff {
			all = append(all, ts{e.t, e.seq})
		}
	}
	slices.SortFunc(all, func(a, b ts) int {
		if a.seq < b.seq {
			return -1
		}
		if a.seq > b.seq {
			return 1
		}
		return 0
	})
	seqs := make([]uint64, len(all))
	for i, a := range all {
		seqs[i] = a.seq
	}
	return evidenceOf(seqs)
}

func (m *thresholdEval) tick(x *ctx) {
	r := m.r
	at := x.t.Add(-r.Window).UnixNano()
	prune := x.wm.Add(-r.Window).UnixNano()
	m.t.each(func(g *group[thrState]) {
		s := &g.s
		if g.firing {
			v, n := m.value(s, at)
			x.windowState(&g.groupHead, v >= r.threshold.threshold, 0, func() []uint64 { return m.evidence(s, at) }, v, n)
		}
		if r.threshold.distinct.IsZero() {
			s.pts.expire(prune)
		} else {
			m.pruneDistinct(s, prune)
		}
		if !g.firing && s.pts.len() == 0 && len(s.distinct) == 0 {
			m.t.remove(g)
		}
	})
}

func (m *thresholdEval) resolveAll(x *ctx) {
	resolveFiring(x, &m.t, nil)
}
