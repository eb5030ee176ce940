package detect

// matchEval runs match rules and Sigma rules without aggregation: every
// matching event is a detection; a group stays firing until resolve_after
// passes without one.
type matchEval struct {
	r *Rule
	t table[evidence]
}

func newMatch(r *Rule) *matchEval { return &matchEval{r: r, t: newTable[evidence](r.MaxGroups)} }

func (m *matchEval) firing() int { return m.t.firing() }

func (m *matchEval) groups() int { return m.t.len() }

func (m *matchEval) process(x *ctx) {
	if !m.r.Filter.MatchDoc(x.doc) {
		return
	}
	x.rt.stats.Matches++
	g, _ := lookup(x, &m.t, x.groupKey(m.r.groupFields), len(m.r.groupFields))
	x.hit(&g.groupHead, &g.s, x.seq)
}

func (m *matchEval) tick(x *ctx) {
	m.t.each(func(g *group[evidence]) {
		if x.expireHit(&g.groupHead, &g.s) || !g.firing {
			m.t.remove(g)
		}
	})
}

func (m *matchEval) resolveAll(x *ctx) {
	resolveFiring(x, &m.t, func(g *group[evidence]) []uint64 { return g.s.list() })
}
