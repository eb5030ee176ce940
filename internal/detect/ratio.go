package detect

import "math"

// ratioSlot counts the events of one slot of a ratio window.
type ratioSlot struct {
	idx        int64 // slot number: time / slot width
	total, hit int64
}

type ratioState struct {
	slots [ratioSlots]ratioSlot
	hits  [2 * evidenceEnds]point // latest matching events, a ring
	nh    int
}

// ratioEval runs ratio rules: the share of events matching filter among
// those matching total_filter, in a window made of ratioSlots slots (so the
// window moves in steps of window/30).
type ratioEval struct {
	r     *Rule
	t     table[ratioState]
	width int64 // slot width, ns
}

func newRatio(r *Rule) *ratioEval {
	return &ratioEval{r: r, t: newTable[ratioState](r.MaxGroups), width: max(int64(r.Window)/ratioSlots, 1)}
}

func (m *ratioEval) firing() int { return m.t.firing() }

func (m *ratioEval) groups() int { return m.t.len() }

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func slotOf(idx int64, n int) int {
	i := int(idx % int64(n))
	if i < 0 {
		i += n
	}
	return i
}

func (m *ratioEval) process(x *ctx) {
	r := m.r
	if r.ratio.total != nil && !r.ratio.total.MatchDoc(x.doc) {
		return
	}
	hit := r.Filter.MatchDoc(x.doc)
	if hit {
		x.rt.stats.Matches++
	}
	t := x.t.UnixNano()
	idx := floorDiv(t, m.width)
	cur := floorDiv(x.wm.UnixNano(), m.width)
	late := idx <= cur-ratioSlots
	if late && m.t.len() >= m.t.max && m.t.get(x.groupKey(r.groupFields)) == nil {
		return // late, for a new group, with the table full: evict nothing for it
	}
	g, _ := lookup(x, &m.t, x.groupKey(r.groupFields), len(r.groupFields))
	s := &g.s
	if late {
		// Older than the window behind the watermark: it counts with its
		// own group's events when they are as old, as for threshold rules.
		cur = max(idx, latestSlot(s))
		if idx <= cur-ratioSlots {
			return
		}
	}
	if g.firing {
		m.judge(x, g, cur, x.seq) // resolves a condition that lapsed since the last event
	}
	sl := &s.slots[slotOf(idx, ratioSlots)]
	if sl.idx != idx {
		*sl = ratioSlot{idx: idx}
	}
	sl.total++
	if hit {
		sl.hit++
		s.hits[s.nh%len(s.hits)] = point{t: t, seq: x.seq}
		s.nh++
	}
	m.judge(x, g, cur, x.seq)
}

// latestSlot returns the index of the group's latest slot with events
// (math.MinInt64 when none).
func latestSlot(s *ratioState) int64 {
	l := int64(math.MinInt64)
	for _, sl := range s.slots {
		if sl.total > 0 {
			l = max(l, sl.idx)
		}
	}
	return l
}

// judge updates the group's alert state from its window ending at slot cur.
func (m *ratioEval) judge(x *ctx, g *group[ratioState], cur int64, seq uint64) {
	r := m.r
	s := &g.s
	var total, hits int64
	for _, sl := range s.slots {
		if sl.idx > cur-ratioSlots && sl.idx <= cur {
			total += sl.total
			hits += sl.hit
		}
	}
	var ratio float64
	if total > 0 {
		ratio = float64(hits) / float64(total)
	}
	holds := total >= int64(r.ratio.minTotal) && ratio >= r.ratio.ratio
	x.windowState(&g.groupHead, holds, seq, func() []uint64 {
		var seqs []uint64
		from := (cur - ratioSlots + 1) * m.width
		for i := max(0, s.nh-len(s.hits)); i < s.nh; i++ {
			if p := s.hits[i%len(s.hits)]; p.t >= from {
				seqs = append(seqs, p.seq)
			}
		}
		return evidenceOf(seqs)
	}, ratio, int(total))
}

func (m *ratioEval) tick(x *ctx) {
	cur := floorDiv(x.t.UnixNano(), m.width)
	wm := floorDiv(x.wm.UnixNano(), m.width)
	m.t.each(func(g *group[ratioState]) {
		if g.firing {
			m.judge(x, g, cur, 0)
		}
		if !g.firing {
			live := false
			for _, sl := range g.s.slots {
				if sl.total > 0 && sl.idx > wm-ratioSlots {
					live = true
				}
			}
			if !live {
				m.t.remove(g)
			}
		}
	})
}

func (m *ratioEval) resolveAll(x *ctx) {
	resolveFiring(x, &m.t, nil)
}
