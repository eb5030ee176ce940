package event

import (
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

	// The fields of Event, as found.
	refs     [numStrFields]strRef
	related  []strRef
	time     time.Time
	addr     netip.Addr
	severity int
	status   int
}

// strRef locates a string of Event: bytes [start, end) of the canonical
// bytes, or of escs when esc.
type strRef struct {
	start, end int32
	set, esc   bool
}

var statePool = sync.Pool{New: func() any { return new(state) }}

// maxKeep is the largest buffer a pooled state keeps between calls.
const maxKeep = 64 << 10

func (st *state) release() {
	st.src = nil
	if cap(st.out) > maxKeep || cap(st.strs) > maxKeep || cap(st.nodes) > maxKeep/32 {
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
	lim = lim.withDefaults()
	if len(data) > lim.MaxBytes || len(data) > maxInput {
		return Event{}, &LimitError{What: "bytes", Size: len(data), Limit: min(lim.MaxBytes, maxInput)}
	}
	st := statePool.Get().(*state)
	defer st.release()
	st.reset(data, lim.MaxDepth)
	st.lim = lim
	st.now = now.UTC().Round(0)
	st.out = st.out[:0]
	st.ents = st.ents[:0]
	st.related = st.related[:0]
	st.escs = st.escs[:0]
	st.refs = [numStrFields]strRef{}
	st.time, st.addr, st.severity, st.status = time.Time{}, netip.Addr{}, 0, 0

	root, err := st.top()
	if err != nil {
		return Event{}, err
	}
	if err := st.writeTop(root); err != nil {
		return Event{}, err
	}
	if len(st.out) > lim.MaxBytes {
		return Event{}, &LimitError{What: "canonical bytes", Size: len(st.out), Limit: lim.MaxBytes}
	}
	return st.event(), nil
}

// storedLimits are those of ParseStored.
var storedLimits = Limits{MaxBytes: maxInput, MaxDepth: 1 << 12}

// ParseStored parses an event as the store keeps it: canonical bytes that
// Parse accepted at ingest, under the limits then configured (which may
// have been larger than today's), so only Parse's own bounds apply. The
// event's times are those recorded in it.
func ParseStored(canonical []byte) (Event, error) {
	return Parse(canonical, storedLimits, time.Time{})
}

// event returns the parsed Event, with its own copy of the canonical bytes.
func (st *state) event() Event {
	ev := Event{Time: st.time, SourceIP: st.addr, Severity: st.severity, Status: st.status}
	ev.Canonical = make([]byte, len(st.out))
	copy(ev.Canonical, st.out)

	// The strings of Event share one allocation, which holds just them.
	bytesOf := func(r *strRef) []byte {
		if r.esc {
			return st.escs[r.start:r.end]
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
	st.tmp = buf
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
