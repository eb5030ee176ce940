package detect

// seqState is one group's progress through a sequence.
type seqState struct {
	step  int     // step being waited for; 0 while collecting the first step
	count int     // events of the current step (step ≥ 1)
	first []point // latest events of step 0, oldest first, at most its count
	start int64   // time of the first event of the run (step ≥ 1)
	later []uint64
	ev    evidence // alert evidence
}

func (s *seqState) restart() {
	s.step, s.count, s.start = 0, 0, 0
	s.first = s.first[:0]
	s.later = s.later[:0]
}

// sequenceEval runs sequence rules: for each group, steps[0] (count times),
// then steps[1], ..., in sequence order, all within "within" of the run's
// first event. Events of step 0 that keep coming while the run waits for
// step 1 slide the run forward; an event of a later step arriving before the
// current step is complete, or a run that outlives within, starts over.
type sequenceEval struct {
	r *Rule
	t table[seqState]
}

func newSequence(r *Rule) *sequenceEval {
	return &sequenceEval{r: r, t: newTable[seqState](r.MaxGroups)}
}

func (m *sequenceEval) firing() int { return m.t.firing() }

func (m *sequenceEval) groups() int { return m.t.len() }

func (m *sequenceEval) process(x *ctx) {
	steps := m.r.sequence.steps
	var mask uint32
	for i, st := range steps {
		if st.filter.MatchDoc(x.doc) {
			mask |= 1 << i
		}
	}
	if mask == 0 {
		return
	}
	x.rt.stats.Matches++
	g, _ := lookup(x, &m.t, x.groupKey(m.r.groupFields), len(m.r.groupFields))
	s := &g.s
	t := x.t.UnixNano()
	within := int64(m.r.sequence.within)
	if s.step >= 1 && t-s.start > within {
		// Too late for this run; keep the step-0 events still in reach.
		keep := s.first[:0]
		for _, p := range s.first {
			if t-p.t <= within {
				keep = append(keep, p)
			}
		}
		s.first = keep
		s.step, s.count, s.later = 0, 0, s.later[:0]
	}
	if s.step >= 1 && mask&(1<<s.step) != 0 {
		s.count++
		if len(s.later) < 2*evidenceEnds {
			s.later = append(s.later, x.seq)
		} else {
			s.later[len(s.later)-1] = x.seq
		}
		if s.count >= steps[s.step].count {
			s.step++
			s.count = 0
		}
		if s.step == len(steps) {
			seqs := make([]uint64, 0, len(s.first)+len(s.later))
			for _, p := range s.first {
				seqs = append(seqs, p.seq)
			}
			seqs = append(seqs, s.later...)
			x.hit(&g.groupHead, &s.ev, evidenceOf(seqs)...)
			s.restart()
		}
		return
	}
	if mask>>(s.step+1) != 0 {
		// A later step came before the current one was complete: the run
		// was not "A then B" (failures then a success means failures in a
		// row). Start over; the event may still begin a new run.
		s.restart()
	}
	if mask&1 == 0 {
		return
	}
	need := steps[0].count
	s.first = append(s.first, point{t: t, seq: x.seq})
	if len(s.first) > need {
		s.first = append(s.first[:0], s.first[len(s.first)-need:]...)
	}
	// Step-0 events must all lie within "within" of each other.
	for len(s.first) > 0 && t-s.first[0].t > within {
		s.first = s.first[1:]
	}
	if len(s.first) == need && (s.step == 0 || s.step == 1 && s.count == 0) {
		s.step, s.count = 1, 0
		s.start = s.first[0].t
	}
}

func (m *sequenceEval) tick(x *ctx) {
	within := int64(m.r.sequence.within)
	wm := x.wm.UnixNano()
	m.t.each(func(g *group[seqState]) {
		x.expireHit(&g.groupHead, &g.s.ev)
		s := &g.s
		stale := len(s.first) == 0 || wm-s.first[len(s.first)-1].t > within
		if s.step >= 1 {
			stale = wm-s.start > within
		}
		if !g.firing && stale {
			m.t.remove(g)
		}
	})
}

func (m *sequenceEval) resolveAll(x *ctx) {
	resolveFiring(x, &m.t, func(g *group[seqState]) []uint64 { return g.s.ev.list() })
}
