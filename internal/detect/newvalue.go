package detect

import (
	"math"
	"strings"
)

// nvKey holds the values seen for one key, with the time each was last seen.
type nvKey struct {
	vals map[string]int64
}

// newValueEval runs new_value rules. For each key (the "by" fields) it
// remembers the values of "field" seen within lookback: at most max_values
// per key, dropping the least recently seen, and at most max_keys keys,
// dropping the least recently used key. A value not remembered is new: the
// rule fires for the group (by values + field value), except for the first
// value of a key never seen before when learn_first is true.
type newValueEval struct {
	r      *Rule
	keys   table[nvKey]
	alerts table[evidence]
	buf    []byte
}

func newNewValue(r *Rule) *newValueEval {
	return &newValueEval{r: r, keys: newTable[nvKey](r.newValue.maxKeys), alerts: newTable[evidence](r.MaxGroups)}
}

func (m *newValueEval) firing() int { return m.alerts.firing() }

func (m *newValueEval) groups() int { return m.keys.len() + m.alerts.len() }

func (m *newValueEval) process(x *ctx) {
	r := m.r
	p := &r.newValue
	if !r.Filter.MatchDoc(x.doc) {
		return
	}
	v, ok := p.field.First(x.doc)
	if !ok {
		return
	}
	x.rt.stats.Matches++
	key := x.groupKey(r.groupFields)
	k, fresh := lookup(x, &m.keys, key, len(r.groupFields))
	if k.s.vals == nil {
		k.s.vals = map[string]int64{}
	}
	t := x.t.UnixNano()
	last, seen := k.s.vals[v]
	isNew := !seen || t-last > int64(p.lookback)
	switch {
	case !seen:
		k.s.vals[strings.Clone(v)] = t
		if len(k.s.vals) > p.maxValues {
			m.evictOldest(k.s.vals, v)
		}
	case t > last:
		k.s.vals[v] = t
	}
	if !isNew || fresh && p.learnFirst {
		return
	}
	m.buf = append(append(append(m.buf[:0], key...), 0x1f), v...)
	g, created := lookup(x, &m.alerts, m.buf, len(r.groupFields)+1)
	if created {
		g.vals = g.vals[:len(r.groupFields)]
		g.extra = map[string]string{p.field.String(): g.key[len(key)+1:]}
	}
	x.hit(&g.groupHead, &g.s, x.seq)
}

// evictOldest drops the least recently seen value other than keep.
func (m *newValueEval) evictOldest(vals map[string]int64, keep string) {
	var oldest string
	var ot int64 = math.MaxInt64
	for k, t := range vals {
		if k != keep && (t < ot || t == ot && k < oldest) {
			oldest, ot = k, t
		}
	}
	delete(vals, oldest)
}

func (m *newValueEval) tick(x *ctx) {
	m.alerts.each(func(g *group[evidence]) {
		if x.expireHit(&g.groupHead, &g.s) || !g.firing {
			m.alerts.remove(g)
		}
	})
}

func (m *newValueEval) resolveAll(x *ctx) {
	resolveFiring(x, &m.alerts, func(g *group[evidence]) []uint64 { return g.s.list() })
}
