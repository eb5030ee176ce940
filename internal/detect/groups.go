package detect

import "time"

// groupHead is the part of a group every kind shares: its key and values and
// its alert state.
type groupHead struct {
	key      string
	vals     []string          // group-by values, in GroupBy order
	extra    map[string]string // more group values (new_value: the new value)
	firing   bool
	since    time.Time         // firing since
	lastEmit time.Time         // last firing signal (for repeat)
	lastHit  time.Time         // instant kinds: last detection
	count    int               // instant kinds: detections while firing
	ann      map[string]string // annotations of the last firing signal, reused when it resolves
}

// group is one group of a rule with its kind's state S.
type group[S any] struct {
	groupHead
	s          S
	prev, next *group[S] // LRU list: head is the most recently used
}

// table holds a rule's groups, at most max, evicting the least recently used.
type table[S any] struct {
	max        int
	m          map[string]*group[S]
	head, tail *group[S]
}

func newTable[S any](max int) table[S] {
	return table[S]{max: max, m: map[string]*group[S]{}}
}

func (t *table[S]) len() int { return len(t.m) }

// get returns the group of key and marks it used, or nil.
func (t *table[S]) get(key []byte) *group[S] {
	g := t.m[string(key)]
	if g != nil && g != t.head {
		t.unlink(g)
		t.pushFront(g)
	}
	return g
}

// add creates the group of key (not present); when the table is full it
// first evicts the least recently used group and returns it.
func (t *table[S]) add(key []byte, nvals int) (g, evicted *group[S]) {
	if len(t.m) >= t.max && t.tail != nil {
		evicted = t.tail
		t.remove(evicted)
	}
	k := string(key)
	g = &group[S]{groupHead: groupHead{key: k, vals: splitKey(k, nvals)}}
	t.m[k] = g
	t.pushFront(g)
	return g, evicted
}

func (t *table[S]) remove(g *group[S]) {
	delete(t.m, g.key)
	t.unlink(g)
}

func (t *table[S]) unlink(g *group[S]) {
	if g.prev != nil {
		g.prev.next = g.next
	} else {
		t.head = g.next
	}
	if g.next != nil {
		g.next.prev = g.prev
	} else {
		t.tail = g.prev
	}
	g.prev, g.next = nil, nil
}

func (t *table[S]) pushFront(g *group[S]) {
	g.next = t.head
	if t.head != nil {
		t.head.prev = g
	}
	t.head = g
	if t.tail == nil {
		t.tail = g
	}
}

// each calls fn for every group from the least to the most recently used;
// fn may remove the group it is given. The order depends only on the events
// processed, so ticks emit signals in a deterministic order.
func (t *table[S]) each(fn func(g *group[S])) {
	for g := t.tail; g != nil; {
		prev := g.prev
		fn(g)
		g = prev
	}
}

// resolveFiring emits the resolution of every firing group of t, with the
// evidence and count of each when evidence is given, else none.
func resolveFiring[S any](x *ctx, t *table[S], evidence func(g *group[S]) []uint64) {
	t.each(func(g *group[S]) {
		switch {
		case !g.firing:
		case evidence == nil:
			x.emit(&g.groupHead, false, x.t, 0, nil, 0, 0)
		default:
			x.emit(&g.groupHead, false, x.t, 0, evidence(g), float64(g.count), g.count)
		}
	})
}

// firing counts the firing groups.
func (t *table[S]) firing() int {
	n := 0
	for g := t.head; g != nil; g = g.next {
		if g.firing {
			n++
		}
	}
	return n
}

// lookup returns the group of key, creating it (and evicting, resolving an
// evicted firing group) when needed. created reports a new group.
func lookup[S any](x *ctx, t *table[S], key []byte, nvals int) (g *group[S], created bool) {
	if g := t.get(key); g != nil {
		return g, false
	}
	g, ev := t.add(key, nvals)
	if ev != nil {
		x.rt.stats.GroupsEvicted++
		if ev.firing {
			x.emit(&ev.groupHead, false, x.t, x.seq, nil, 0, 0)
		}
	}
	return g, true
}

// hit records a detection of an instant kind (match, sequence, new_value,
// Sigma without aggregation) for a group: the group fires if it was not
// firing, or if it was silent for resolve_after (then it resolves and fires
// again); while firing, it emits again only every repeat.
func (x *ctx) hit(g *groupHead, ev *evidence, seqs ...uint64) {
	r := x.rt.rule
	if g.firing && x.t.Sub(g.lastHit) >= r.ResolveAfter {
		x.emit(g, false, x.t, x.seq, ev.list(), float64(g.count), g.count)
		g.firing = false
	}
	started := !g.firing
	if started {
		g.firing, g.since, g.count, g.lastHit = true, x.t, 0, x.t
		ev.reset()
	}
	for _, s := range seqs {
		ev.add(s)
	}
	g.count++
	if x.t.After(g.lastHit) {
		g.lastHit = x.t
	}
	if started || r.Repeat > 0 && x.t.Sub(g.lastEmit) >= r.Repeat {
		x.emit(g, true, x.t, x.seq, ev.list(), float64(g.count), g.count)
	}
}

// expireHit resolves an instant kind's group silent for resolve_after, at
// the Tick time, and reports whether it did.
func (x *ctx) expireHit(g *groupHead, ev *evidence) bool {
	r := x.rt.rule
	if !g.firing {
		return false
	}
	if x.t.Sub(g.lastHit) >= r.ResolveAfter {
		x.emit(g, false, x.t, 0, ev.list(), float64(g.count), g.count)
		g.firing = false
		return true
	}
	if r.Repeat > 0 && x.t.Sub(g.lastEmit) >= r.Repeat {
		x.emit(g, true, x.t, 0, ev.list(), float64(g.count), g.count)
	}
	return false
}

// windowState updates a window kind's alert state from whether its
// condition holds now, emitting what changed.
func (x *ctx) windowState(g *groupHead, holds bool, seq uint64, evidence func() []uint64, value float64, count int) {
	r := x.rt.rule
	switch {
	case holds && !g.firing:
		g.firing, g.since = true, x.t
		x.emit(g, true, x.t, seq, evidence(), value, count)
	case holds && r.Repeat > 0 && x.t.Sub(g.lastEmit) >= r.Repeat:
		x.emit(g, true, x.t, seq, evidence(), value, count)
	case !holds && g.firing:
		g.firing = false
		x.emit(g, false, x.t, seq, evidence(), value, count)
	}
}
