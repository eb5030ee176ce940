package detect

import "math"

type spikeState struct {
	idx   []int64 // bucket number held by each ring slot
	cnt   []float64
	evIdx int64 // bucket of ev
	ev    evidence
	// from is the first bucket of a group made by a late event: its
	// history before that is unknown, not zero, so it warms up like the
	// rule does (math.MinInt64 for a group made by a live event).
	from int64
}

// spikeEval runs spike rules: the count of matching events in the current
// bucket against the mean and standard deviation of the previous "baseline"
// buckets. The rule needs "baseline" buckets of history since it first saw
// an event before it can fire (warm-up); a group seen for the first time
// after that has a baseline of zeros. A group stays firing while its current
// or its previous bucket is above the threshold.
type spikeEval struct {
	r     *Rule
	t     table[spikeState]
	width int64
	n     int   // ring size: baseline + 2
	first int64 // first bucket the rule saw
	seen  bool
}

func newSpike(r *Rule) *spikeEval {
	return &spikeEval{r: r, t: newTable[spikeState](r.MaxGroups), width: int64(r.spike.bucket), n: r.spike.baseline + 2}
}

func (m *spikeEval) firing() int { return m.t.firing() }

func (m *spikeEval) groups() int { return m.t.len() }

func (m *spikeEval) count(s *spikeState, b int64) float64 {
	i := slotOf(b, m.n)
	if s.idx[i] == b {
		return s.cnt[i]
	}
	return 0
}

// above reports whether bucket b is a spike, with its count.
func (m *spikeEval) above(s *spikeState, b int64) (bool, float64) {
	p := &m.r.spike
	c := m.count(s, b)
	if b-int64(p.baseline) < max(m.first, s.from) || c < float64(p.minCount) {
		return false, c
	}
	var sum, sq float64
	for i := b - int64(p.baseline); i < b; i++ {
		v := m.count(s, i)
		sum += v
		sq += v * v
	}
	n := float64(p.baseline)
	mean := sum / n
	std := math.Sqrt(max(sq/n-mean*mean, 0))
	thr := 0.0
	if p.factor > 0 {
		thr = p.factor * mean
	}
	if p.sigmas > 0 {
		thr = max(thr, mean+p.sigmas*std)
	}
	return c > thr, c
}

func (m *spikeEval) process(x *ctx) {
	r := m.r
	t := x.t.UnixNano()
	b := floorDiv(t, m.width)
	cur := floorDiv(x.wm.UnixNano(), m.width)
	if !m.seen {
		m.first, m.seen = b, true
	}
	if !r.Filter.MatchDoc(x.doc) {
		return
	}
	x.rt.stats.Matches++
	key := x.groupKey(r.groupFields)
	late := b <= cur-int64(m.n)
	if late && m.t.len() >= m.t.max && m.t.get(key) == nil {
		return // late, for a new group, with the table full: evict nothing for it
	}
	g, _ := lookup(x, &m.t, key, len(r.groupFields))
	s := &g.s
	if s.idx == nil {
		s.idx = make([]int64, m.n)
		for i := range s.idx {
			s.idx[i] = math.MinInt64
		}
		s.cnt = make([]float64, m.n)
		s.from = math.MinInt64
		if late {
			s.from = b
		}
	}
	if late {
		// Older than the buckets kept behind the watermark: a shipper
		// replaying its spool after Vigil was down, a host whose logs come
		// late. It counts with its own group's events when they are as
		// old: the group's current bucket is its latest event's. Behind an
		// active group's buckets it cannot count any more.
		cur = max(b, m.latest(s))
		if b <= cur-int64(m.n) {
			return
		}
	}
	if g.firing {
		m.judge(x, g, cur, x.seq) // resolves a spike that ended since the last event
	}
	i := slotOf(b, m.n)
	if s.idx[i] != b {
		s.idx[i], s.cnt[i] = b, 0
	}
	s.cnt[i]++
	if b == cur {
		if s.evIdx != b {
			s.evIdx = b
			s.ev.reset()
		}
		s.ev.add(x.seq)
	}
	m.judge(x, g, cur, x.seq)
}

// latest returns the group's latest bucket (math.MinInt64 when none).
func (m *spikeEval) latest(s *spikeState) int64 {
	l := int64(math.MinInt64)
	for _, b := range s.idx {
		l = max(l, b)
	}
	return l
}

func (m *spikeEval) judge(x *ctx, g *group[spikeState], cur int64, seq uint64) {
	s := &g.s
	now, c := m.above(s, cur)
	prev, _ := m.above(s, cur-1)
	x.windowState(&g.groupHead, now || prev, seq, s.ev.list, c, int(c))
}

func (m *spikeEval) tick(x *ctx) {
	cur := floorDiv(x.t.UnixNano(), m.width)
	wm := floorDiv(x.wm.UnixNano(), m.width)
	m.t.each(func(g *group[spikeState]) {
		if g.firing {
			m.judge(x, g, cur, 0)
		}
		if !g.firing {
			live := false
			for _, b := range g.s.idx {
				if b > wm-int64(m.n) {
					live = true
				}
			}
			if !live {
				m.t.remove(g)
			}
		}
	})
}

func (m *spikeEval) resolveAll(x *ctx) {
	resolveFiring(x, &m.t, nil)
}
