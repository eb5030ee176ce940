package event

import (
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"sync"
	"time"
)

// state is the working memory of one Parse, reused through a pool.
type state struct {
	scanner
	lim  Limits
	now  time.Time
	out  []byte  // canonical bytes being written
	ents []entry // stack of object entries being written
	tmp  []byte
	escs []byte // strings of Event that the canonical form escaped
	rand randomBytes

	// now as text (canonical.go, appendNow).
	nowText struct {
		t time.Time
		b []byte
	}
	nowOK bool

	// The verbatim route's (verbatim.go).
	splices []splice
	vrec    vrecord
	vplans  [2]*vplan
	vseen   uint64 // hash of the last layout recorded
	ts0     int32  // the @timestamp found, src[ts0:ts1], or -1
	ts1     int32

	// The flat route's (flat.go).
	shape     []byte
	leafNodes []int32
	paths     []byte
	leaves    []leaf
	objKeys   []objKey
	frames    []frame
	levels    []level
	rec       plan
	plans     [planSlots]*plan
	seen      [planSlots]uint64 // hash of the last shape that went to each slot

	// The fields of Event, as found.
	refs     [numStrFields]strRef
	related  []strRef
	severity int
	status   int

	// @timestamp and source.ip, kept without pointers (setTime, setAddr):
	// storing a pointer in st costs a write barrier while the GC runs.
	hasTime bool
	tsec    int64
	tnsec   int32
	ipKind  uint8 // ipNone, ip4, ip6, or ipZoned (in zoned)
	ip      [16]byte
	zoned   netip.Addr
}

// strRef locates a string of Event: bytes [start, end) of the canonical
// bytes, of escs when esc, or of the input when src.
type strRef struct {
	start, end    int32
	set, esc, src bool
}

var statePool = sync.Pool{New: func() any { return new(state) }}

// maxKeep is the largest buffer a pooled state keeps between calls.
const maxKeep = 64 << 10

func (st *state) release() {
	st.src = nil
	if cap(st.out) > maxKeep || cap(st.strs) > maxKeep || cap(st.nodes) > maxKeep/32 ||
		cap(st.paths) > maxKeep || cap(st.shape) > maxKeep || cap(st.leaves) > maxKeep/16 || cap(st.vrec.tmpl) > maxKeep {
		return // let a state grown by a huge event go
	}
	statePool.Put(st)
}

// maxInput keeps offsets within int32.
const maxInput = math.MaxInt32 / 2

// withDefaults replaces zero or negative limits by DefaultLimits.
func (lim Limits) withDefaults() Limits {
	if lim.MaxBytes <= 0 {
		lim.MaxBytes = DefaultLimits.MaxBytes
	}
	if lim.MaxDepth <= 0 {
		lim.MaxDepth = DefaultLimits.MaxDepth
	}
	return lim
}

// Parse validates one event, a JSON object, and returns it with its canonical
// bytes. now is the time of ingestion: it fills event.ingested, and
// @timestamp when the event has none. A zero limit in lim means the one of
// DefaultLimits.
//
// Errors are *SyntaxError (not a JSON object, with the byte offset),
// *FieldError (a field breaks the schema; names the field) or *LimitError.
// See docs/event-schema.md for the rules.
func Parse(data []byte, lim Limits, now time.Time) (Event, error) {
	ev, r, err := parse(data, lim, now, routeAll)
	if routeHook != nil {
		routeHook(r)
	}
	return ev, err
}

// A route is a way through Parse. All give the same results; the faster
// ones give up on what they do not handle.
type route uint8

const (
	routeVerbatim route = 1 << iota // verbatim.go: events already in canonical form
	routeLayout                     // verbatim.go, by the layout of an event seen before
	routeFlat                       // flat.go, working out the plan of the event's shape
	routePlan                       // flat.go, by a cached plan
	routeGeneral                    // scan.go and canonical.go: all events, and every error

	routeAll = routeVerbatim | routeLayout | routeFlat | routePlan | routeGeneral
)

// routeHook, when set (by tests), is told the route each Parse took.
var routeHook func(route)

// parse is Parse by the given routes, and tells the one taken.
func parse(data []byte, lim Limits, now time.Time, routes route) (Event, route, error) {
	lim = lim.withDefaults()
	if len(data) > lim.MaxBytes || len(data) > maxInput {
		return Event{}, 0, &LimitError{What: "bytes", Size: len(data), Limit: min(lim.MaxBytes, maxInput)}
	}
	st := statePool.Get().(*state)
	defer st.release()
	return st.parse(data, lim, now, routes)
}

// parse is parse with st, and limits with their defaults and checked.
func (st *state) parse(data []byte, lim Limits, now time.Time, routes route) (Event, route, error) {
	st.reset(data, lim.MaxDepth)
	st.lim = lim
	st.now = now.UTC().Round(0)
	st.resetWriter()

	var r route
	if routes&routeVerbatim != 0 {
		switch ok, replayed := st.writeVerbatim(routes&routeLayout != 0); {
		case replayed:
			r = routeLayout
		case ok:
			r = routeVerbatim
		}
	}
	if r == 0 && routes&routeFlat != 0 {
		st.resetWriter()
		switch ok, cached := st.writeFlat(routes&routePlan != 0); {
		case cached && ok:
			r = routePlan
		case ok:
			r = routeFlat
		default:
			st.reset(data, lim.MaxDepth)
		}
	}
	if r == 0 {
		st.resetWriter()
		root, err := st.top()
		if err != nil {
			return Event{}, routeGeneral, err
		}
		if err := st.writeTop(root); err != nil {
			return Event{}, routeGeneral, err
		}
		r = routeGeneral
	}
	if len(st.out) > lim.MaxBytes {
		return Event{}, r, &LimitError{What: "canonical bytes", Size: len(st.out), Limit: lim.MaxBytes}
	}
	return st.event(), r, nil
}

// resetWriter forgets what a writer wrote.
func (st *state) resetWriter() {
	st.out = st.out[:0]
	st.ents = st.ents[:0]
	st.related = st.related[:0]
	st.escs = st.escs[:0]
	st.refs = [numStrFields]strRef{}
	st.hasTime, st.ipKind, st.severity, st.status = false, ipNone, 0, 0
}

const (
	ipNone = iota
	ip4
	ip6
	ipZoned
)

func (st *state) setTime(t time.Time) {
	st.hasTime, st.tsec, st.tnsec = true, t.Unix(), int32(t.Nanosecond())
}

func (st *state) setAddr(a netip.Addr) {
	switch {
	case a.Is4():
		st.ipKind, st.ip = ip4, a.As16()
	case a.Zone() == "":
		st.ipKind, st.ip = ip6, a.As16()
	default:
		st.ipKind, st.zoned = ipZoned, a
	}
}

// storedLimits are those of ParseStored.
var storedLimits = Limits{MaxBytes: maxInput, MaxDepth: 1 << 12}

// ParseStored parses an event as the store keeps it: canonical bytes that
// Parse accepted at ingest, under the limits then configured (which may
// have been larger than today's), so only Parse's own bounds apply. The
// event's times are those recorded in it, and its Canonical holds exactly
// the bytes given (Parse would write event.ingested again).
func ParseStored(canonical []byte) (Event, error) {
	ev, err := Parse(canonical, storedLimits, time.Time{})
	if err == nil {
		ev.Canonical = append(ev.Canonical[:0], canonical...)
	}
	return ev, err
}

// event returns the parsed Event, with its own copy of the canonical bytes.
func (st *state) event() Event {
	ev := Event{Severity: st.severity, Status: st.status}
	if st.hasTime {
		ev.Time = time.Unix(st.tsec, int64(st.tnsec)).UTC()
	}
	switch st.ipKind {
	case ip4:
		ev.SourceIP = netip.AddrFrom4([4]byte(st.ip[12:]))
	case ip6:
		ev.SourceIP = netip.AddrFrom16(st.ip)
	case ipZoned:
		ev.SourceIP = st.zoned
	}
	ev.Canonical = make([]byte, len(st.out))
	copy(ev.Canonical, st.out)

	// The strings of Event share one allocation, which holds just them.
	bytesOf := func(r *strRef) []byte {
		switch {
		case r.esc:
			return st.escs[r.start:r.end]
		case r.src:
			return st.src[r.start:r.end]
		}
		return st.out[r.start:r.end]
	}
	buf := st.tmp[:0]
	for i := range st.refs {
		if r := &st.refs[i]; r.set {
			buf = append(buf, bytesOf(r)...)
		}
	}
	for i := range st.related {
		buf = append(buf, bytesOf(&st.related[i])...)
	}
	if cap(buf) != cap(st.tmp) {
		st.tmp = buf
	}
	text := string(buf)
	next := func(r *strRef) string {
		n := int(r.end - r.start)
		s := text[:n]
		text = text[n:]
		return s
	}
	for i := range st.refs {
		if r := &st.refs[i]; r.set {
			*ev.strField(strField(i)) = next(r)
		}
	}
	if len(st.related) > 0 {
		ev.Related = make([]string, len(st.related))
		for i := range st.related {
			ev.Related[i] = next(&st.related[i])
		}
	}
	return ev
}

// FromDoc makes one of Vigil's own events (an audit record, a decision, an
// access summary) from a document: encoded as JSON, then parsed like any
// event, so that it is stored and hashed in canonical form. now is the
// parse time (the ingest time, and @timestamp when doc has none).
func FromDoc(doc any, now time.Time) (Event, error) {
	b, err := json.Marshal(doc)
	if err != nil {
		return Event{}, fmt.Errorf("encode event: %w", err)
	}
	return Parse(b, DefaultLimits, now)
}
