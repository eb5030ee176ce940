package event

import (
	"bytes"
	"hash/maphash"
	"slices"
)

// The flat route is a faster way to the same canonical bytes as the general
// route (scan.go, then canonical.go), for events without conflicts.
//
// Its scan reads the event once and records its shape: every key, each
// followed by a mark saying whether its value is a leaf (anything but a
// non-empty object: a node is made for it) or an object whose members follow
// up to a closing mark. The canonical layout of an event (the order of its
// values, the objects around them, which known field each one is) depends on
// its shape alone, and events from one sender share a few shapes. So the
// layout is worked out once per shape, as a plan: the bytes between values
// (keys, braces, commas) and, for each value, which leaf it is, its schema and
// its depth. Plans are kept per state in a small cache, for shapes seen twice
// running; writing an event by its plan costs little more than copying.
//
// To work out a plan, every leaf is put at its full path: the segments of its
// keys from the top, joined by zero bytes (a key read from the input has no
// zero byte: a raw control character is refused, and an escaped zero byte
// sends the event to the general route). Sorting the paths byte-wise gives the
// canonical order of every level at once; writing them out opens and closes
// objects where consecutive paths part.
//
// The flat route never reports an error: on anything it does not handle (bad
// JSON, a duplicate, a collision, a field breaking the schema, a limit, an
// escaped control character in a key, an event too wide or deep for it) it
// gives up, and Parse takes the general route, which says what is wrong. So
// every rule is the general route's; the flat route only has to agree with it
// on the events it accepts, which FuzzParseRoutes checks.

// Marks in a shape. A key read raw has no byte below 0x20; an escaped one
// with a byte that could be taken for a mark sends the event to the general
// route.
const (
	shapeLeaf  = 0 // after a key: its value is a leaf
	shapeOpen  = 1 // after a key: its value is a non-empty object, whose members follow
	shapeClose = 2 // the end of an object's members
)

// leaf is one value at its full path.
type leaf struct {
	pfx    uint64 // first 8 bytes of the path, big-endian, zero-padded
	p0, p1 int32  // path bytes in st.paths
	idx    int32  // index in st.leafNodes, or ^s for the synthetic field s
}

// level is an object open while writing the leaves.
type level struct {
	f     *schema // schema of the object, nil when not a known one
	end   int32   // end of the object's own segment in the path of the last leaf
	kid   int32   // index in f.kids of the first known member not yet passed
	empty bool    // nothing written in it yet
}

// frame is an object of a shape being read, in buildLeaves.
type frame struct {
	p0, p1 int32 // its path in st.paths
	keys0  int32 // its entries in st.objKeys start here
	top    bool
}

// plan is how to write the events of one shape.
type plan struct {
	shape []byte
	tmpl  []byte // the bytes between the values
	steps []step
	depth int // nesting depth of the objects written
}

// step writes the template bytes up to t1, then one value.
type step struct {
	t1    int32
	leaf  int32 // index in st.leafNodes, or ^s for the synthetic field s
	depth int32 // depth of the object the value is in
	f     *schema
}

// Bounds of the flat route: an event beyond them takes the general route.
const (
	maxPathBytes  = 64 << 10 // bytes of all paths, beyond 4 per input byte
	maxObjMembers = 64       // members of one object whose values are objects
)

// Plans are cached per state, by a hash of the shape, in a few slots: a
// plan takes a few hundred bytes for a typical event, and the limits below
// bound it.
const (
	planSlots     = 64
	maxPlanShape  = 2 << 10 // bytes of shape; larger events are planned every time
	maxPlanLeaves = 128
)

var shapeSeed = maphash.MakeSeed()

// synthPaths are the paths of the synthetic fields: the keys of synthKeys
// with zero bytes for dots.
var synthPaths = func() (p [numSynth][]byte) {
	for s, k := range synthKeys {
		p[s] = bytes.ReplaceAll([]byte(k), []byte("."), []byte{0})
	}
	return p
}()

// writeFlat scans the input and writes its canonical form by the flat route.
// It reports whether it did, and by a cached plan; when it did not, the
// scanner and the writer must be reset. With cache false, no cached plan is
// used or kept.
func (st *state) writeFlat(cache bool) (ok, cached bool) {
	s := &st.scanner
	st.shape = st.shape[:0]
	st.leafNodes = st.leafNodes[:0]
	s.skipSpace()
	if s.pos >= len(s.src) || s.src[s.pos] != '{' {
		return false, false
	}
	if s.emptyObjectNext() {
		s.pos++
		s.skipSpace()
		s.pos++ // '}'
	} else if !st.shapeObject(1) {
		return false, false
	}
	s.skipSpace()
	if s.pos != len(s.src) {
		return false, false
	}
	cache = cache && len(st.shape) <= maxPlanShape && len(st.leafNodes) <= maxPlanLeaves
	var h uint64
	keep := false
	if cache {
		h = maphash.Bytes(shapeSeed, st.shape)
		slot := h % planSlots
		if p := st.plans[slot]; p != nil && p.depth <= st.lim.MaxDepth && bytes.Equal(p.shape, st.shape) {
			return st.writePlan(p), true
		}
		// A plan is kept for a shape seen twice running, so that events
		// of shapes seen once cost no plan and evict none.
		keep = st.seen[slot] == h
		st.seen[slot] = h
	}
	if !st.buildLeaves() {
		return false, false
	}
	st.sortLeaves()
	st.rec.tmpl = st.rec.tmpl[:0]
	st.rec.steps = st.rec.steps[:0]
	st.rec.depth = 1
	if !st.writeLeaves() {
		return false, false
	}
	if keep {
		b := make([]byte, 0, len(st.shape)+len(st.rec.tmpl))
		b = append(append(b, st.shape...), st.rec.tmpl...)
		st.plans[h%planSlots] = &plan{
			shape: b[:len(st.shape):len(st.shape)],
			tmpl:  b[len(st.shape):],
			steps: slices.Clone(st.rec.steps),
			depth: st.rec.depth,
		}
	}
	return true, false
}

// shapeObject scans the non-empty object at s.pos, at depth, recording its
// shape and making nodes for its leaves.
func (st *state) shapeObject(depth int) bool {
	s := &st.scanner
	s.pos++ // '{'
	for {
		s.skipSpace()
		if s.pos >= len(s.src) || s.src[s.pos] != '"' {
			return false
		}
		k0, k1, kesc, _, err := s.string()
		if err != nil {
			return false
		}
		if !kesc {
			st.shape = append(st.shape, s.src[k0:k1]...)
		} else {
			// The decoded key, which must not be taken for a mark.
			key := s.strs[k0:k1]
			for _, c := range key {
				if c <= shapeClose {
					return false
				}
			}
			st.shape = append(st.shape, key...)
		}
		s.skipSpace()
		if s.pos >= len(s.src) || s.src[s.pos] != ':' {
			return false
		}
		s.pos++
		s.skipSpace()
		if s.pos >= len(s.src) {
			return false
		}
		if s.src[s.pos] == '{' && !s.emptyObjectNext() {
			if depth+1 > s.maxDepth {
				return false
			}
			st.shape = append(st.shape, shapeOpen)
			if !st.shapeObject(depth + 1) {
				return false
			}
		} else {
			st.shape = append(st.shape, shapeLeaf)
			ni := s.newNode()
			if s.value(ni, depth) != nil {
				return false
			}
			st.leafNodes = append(st.leafNodes, ni)
		}
		s.skipSpace()
		if s.pos >= len(s.src) {
			return false
		}
		switch s.src[s.pos] {
		case ',':
			s.pos++
		case '}':
			s.pos++
			st.shape = append(st.shape, shapeClose)
			return true
		default:
			return false
		}
	}
}

// emptyObjectNext reports whether the object at s.pos is empty.
func (s *scanner) emptyObjectNext() bool {
	for i := s.pos + 1; i < len(s.src); i++ {
		if c := s.src[i]; !isSpace(c) {
			return c == '}'
		}
	}
	return false
}

// buildLeaves reads the shape into leaves with their paths, and the
// synthetic fields. It reports false for a duplicate key.
func (st *state) buildLeaves() bool {
	st.paths = st.paths[:0]
	st.leaves = st.leaves[:0]
	st.objKeys = st.objKeys[:0]
	frames := append(st.frames[:0], frame{top: true})
	defer func() { st.frames = frames[:0] }()
	shape := st.shape
	n := int32(0)
	for i := 0; i < len(shape); {
		k0 := i
		for shape[i] > shapeClose {
			i++
		}
		mark := shape[i]
		key := shape[k0:i]
		i++
		fr := &frames[len(frames)-1]
		if mark == shapeClose {
			st.objKeys = st.objKeys[:fr.keys0]
			frames = frames[:len(frames)-1]
			continue
		}
		start := int32(len(st.paths))
		if !fr.top {
			st.paths = append(st.paths, st.paths[fr.p0:fr.p1]...)
			st.paths = append(st.paths, 0)
		}
		k := len(st.paths)
		st.paths = append(st.paths, key...)
		if splits(key) {
			for j, c := range st.paths[k:] {
				if c == '.' {
					st.paths[k+j] = 0
				}
			}
		}
		end := int32(len(st.paths))
		if len(st.paths) > maxPathBytes+4*len(st.src) {
			return false // deep and wide: paths would cost too much
		}
		if mark == shapeLeaf {
			st.leaves = append(st.leaves, leaf{pfx: segPrefix(st.paths[start:end]), p0: start, p1: end, idx: n})
			n++
			continue
		}
		// Two members of one object with the same key are a duplicate,
		// even when both are objects that would merge.
		if len(st.objKeys)-int(fr.keys0) >= maxObjMembers {
			return false // the check below would take too long
		}
		for _, o := range st.objKeys[fr.keys0:] {
			if bytes.Equal(shape[o.k0:o.k1], key) {
				return false
			}
		}
		st.objKeys = append(st.objKeys, objKey{int32(k0), int32(k0 + len(key))})
		frames = append(frames, frame{p0: start, p1: end, keys0: int32(len(st.objKeys))})
	}
	for s := range numSynth {
		p0 := int32(len(st.paths))
		st.paths = append(st.paths, synthPaths[s]...)
		st.leaves = append(st.leaves, leaf{pfx: segPrefix(synthPaths[s]), p0: p0, p1: int32(len(st.paths)), idx: ^int32(s)})
	}
	return true
}

// objKey is the key, in the shape, of a member whose value is an object.
type objKey struct{ k0, k1 int32 }

// splits reports whether a key is split at its dots: it has a dot and no
// empty segment.
func splits(key []byte) bool {
	i := bytes.IndexByte(key, '.')
	if i < 0 {
		return false
	}
	if i == 0 || key[len(key)-1] == '.' {
		return false
	}
	return !bytes.Contains(key[i:], []byte(".."))
}

func (st *state) leafPath(l *leaf) []byte { return st.paths[l.p0:l.p1] }

func (st *state) leafLess(a, b *leaf) bool {
	if a.pfx != b.pfx {
		return a.pfx < b.pfx
	}
	return bytes.Compare(st.leafPath(a), st.leafPath(b)) < 0
}

// sortLeaves sorts the leaves by path; equal paths keep no particular order.
func (st *state) sortLeaves() {
	l := st.leaves
	if len(l) > 24 {
		slices.SortFunc(l, func(a, b leaf) int {
			if a.pfx != b.pfx {
				if a.pfx < b.pfx {
					return -1
				}
				return 1
			}
			return bytes.Compare(st.leafPath(&a), st.leafPath(&b))
		})
		return
	}
	for i := 1; i < len(l); i++ {
		if !st.leafLess(&l[i], &l[i-1]) {
			continue
		}
		x := l[i]
		j := i - 1
		for j > 0 && st.leafLess(&x, &l[j-1]) {
			j--
		}
		copy(l[j+1:i+1], l[j:i])
		l[j] = x
	}
}

// writeLeaves writes the sorted leaves as nested objects, and records the
// plan in st.rec.
func (st *state) writeLeaves() bool {
	lv := append(st.levels[:0], level{f: rootSchema, end: -1, empty: true})
	lv, ok := st.writeLeavesIn(lv)
	st.levels = lv[:0]
	return ok
}

// writeLeavesIn writes the leaves with lv for the open objects, which it
// returns, maybe grown.
func (st *state) writeLeavesIn(lv []level) ([]level, bool) {
	rec := &st.rec
	mark := len(st.out) // the template runs from here to the next value
	st.out = append(st.out, '{')
	leaves := st.leaves
	var prev []byte // path of the last leaf written
	for i := 0; i < len(leaves); {
		l := &leaves[i]
		cur := st.paths[l.p0:l.p1]
		// The leaves at the same path: at most one synthetic field, which
		// overrides the sender's values or gives way to one.
		j := i + 1
		for j < len(leaves) && leaves[j].pfx == l.pfx && bytes.Equal(st.leafPath(&leaves[j]), cur) {
			j++
		}
		idx, synth := l.idx, -1
		if j > i+1 || idx < 0 {
			senders := 0
			for k := i; k < j; k++ {
				if x := leaves[k].idx; x < 0 {
					synth = int(^x)
				} else {
					senders++
					idx = x
				}
			}
			if synth >= 0 && (isOverride(synth) || senders == 0) {
				idx = ^int32(synth)
			} else if senders > 1 {
				return lv, false
			}
		}
		// A leaf is no object to go into.
		common := commonLen(prev, cur)
		if prev != nil && common == len(prev) && (common == len(cur) || cur[common] == 0) {
			return lv, false
		}
		for len(lv) > 1 && int(lv[len(lv)-1].end) >= common {
			st.out = append(st.out, '}')
			lv = lv[:len(lv)-1]
		}
		// Open the objects down to the leaf's own segment.
		seg0 := int(lv[len(lv)-1].end) + 1
		for {
			e := bytes.IndexByte(cur[seg0:], 0)
			if e < 0 {
				break
			}
			e += seg0
			top := &lv[len(lv)-1]
			f := top.child(cur[seg0:e])
			if f != nil && f.leaf != nil {
				return lv, false // a known field that is no object
			}
			if len(lv)+1 > st.lim.MaxDepth {
				return lv, false
			}
			st.member(top, cur[seg0:e])
			st.out = append(st.out, '{')
			lv = append(lv, level{f: f, end: int32(e), empty: true})
			rec.depth = max(rec.depth, len(lv))
			seg0 = e + 1
		}
		top := &lv[len(lv)-1]
		f := top.child(cur[seg0:])
		st.member(top, cur[seg0:])
		rec.tmpl = append(rec.tmpl, st.out[mark:]...)
		rec.steps = append(rec.steps, step{t1: int32(len(rec.tmpl)), leaf: idx, depth: int32(len(lv)), f: f})
		if !st.writeStep(idx, f, len(lv)) {
			return lv, false
		}
		mark = len(st.out)
		prev = cur
		i = j
		if synth >= 0 && isOverride(synth) {
			// The sender's values below an overridden field go with it.
			for i < len(leaves) {
				p := st.leafPath(&leaves[i])
				if len(p) <= len(cur) || p[len(cur)] != 0 || !bytes.Equal(p[:len(cur)], cur) {
					break
				}
				i++
			}
		}
	}
	for range lv {
		st.out = append(st.out, '}')
	}
	rec.tmpl = append(rec.tmpl, st.out[mark:]...)
	return lv, true
}

// writeStep writes one value of a plan.
func (st *state) writeStep(idx int32, f *schema, depth int) bool {
	if idx < 0 {
		st.writeSynth(int(^idx))
		return true
	}
	return st.writeValue(st.leafNodes[idx], f, depth) == nil
}

// writePlan writes the event by a plan of its shape.
func (st *state) writePlan(p *plan) bool {
	t := int32(0)
	for i := range p.steps {
		s := &p.steps[i]
		st.out = append(st.out, p.tmpl[t:s.t1]...)
		t = s.t1
		if !st.writeStep(s.leaf, s.f, int(s.depth)) {
			return false
		}
	}
	st.out = append(st.out, p.tmpl[t:]...)
	return true
}

// commonLen returns the length of the common prefix of a and b.
func commonLen(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}

// child returns the schema of the member seg of the level's object; members
// come in order, so the known ones are walked along.
func (l *level) child(seg []byte) *schema {
	f := l.f
	if f == nil {
		return nil
	}
	kids := f.kids
	if k := int(l.kid); k < len(kids) {
		p := segPrefix(seg)
		for k < len(kids) && (kids[k].pfx < p || kids[k].pfx == p && kids[k].name < string(seg)) {
			k++
		}
		l.kid = int32(k)
		if k < len(kids) && kids[k].pfx == p && kids[k].name == string(seg) {
			return kids[k].f
		}
	}
	return f.any
}

// member writes the key of a member of the level's object.
func (st *state) member(l *level, key []byte) {
	if !l.empty {
		st.out = append(st.out, ',')
	}
	l.empty = false
	st.putString(key)
	st.out = append(st.out, ':')
}
