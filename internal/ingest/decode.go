package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/vigilsec/vigil/internal/event"
)

// Format is the encoding of a batch of events.
type Format int

const (
	// FormatNDJSON is one JSON object per line (application/x-ndjson).
	FormatNDJSON Format = iota
	// FormatJSON is one JSON object, or a JSON array of objects
	// (application/json).
	FormatJSON
)

func (f Format) String() string {
	switch f {
	case FormatNDJSON:
		return "ndjson"
	case FormatJSON:
		return "json"
	}
	return "Format(" + strconv.Itoa(int(f)) + ")"
}

var (
	// ErrNoEvents is returned for a body without any event.
	ErrNoEvents = errors.New("no events")
	// ErrTooManyEvents is returned for a body with more events than allowed.
	ErrTooManyEvents = errors.New("too many events")
)

// MaxLineErrors is how many LineErrors DecodeBatch lists; past it, one last
// LineError counts the others.
const MaxLineErrors = 100

// LineError is an event of a batch that was refused.
type LineError struct {
	// Line is the 1-based line number in NDJSON (blank lines count), or the
	// 1-based element number in a JSON array.
	Line int
	Err  error

	element bool // Line numbers an array element
}

func (e LineError) Error() string {
	what := "line"
	if e.element {
		what = "element"
	}
	return what + " " + strconv.Itoa(e.Line) + ": " + e.Err.Error()
}

func (e LineError) Unwrap() error { return e.Err }

// DecodeBatch parses a batch of events. It returns the good events, in order,
// and a LineError for each refused one: a bad event does not refuse the
// others. The error is for the body as a whole, and then nothing is returned:
// no events at all (ErrNoEvents), more than maxEvents of them
// (ErrTooManyEvents; maxEvents <= 0 means no limit), or, for FormatJSON, a
// body that is neither an object nor a well-formed array (an
// *event.SyntaxError for the latter).
//
// Each event is checked by event.Parse against lim, and now is its time of
// ingestion. In NDJSON, lines end with "\n" or "\r\n" and blank lines are
// skipped.
func DecodeBatch(body []byte, format Format, lim event.Limits, maxEvents int, now time.Time) ([]event.Event, []LineError, error) {
	d := decoder{lim: lim, now: now}
	var err error
	switch format {
	case FormatNDJSON:
		err = d.ndjson(body, maxEvents)
	case FormatJSON:
		err = d.json(body, maxEvents)
	default:
		err = fmt.Errorf("unknown batch format %v", format)
	}
	if err != nil {
		return nil, nil, err
	}
	if d.n == 0 {
		return nil, nil, ErrNoEvents
	}
	if d.unlisted > 0 {
		d.errs = append(d.errs, LineError{
			Line:    d.firstUnlisted,
			Err:     fmt.Errorf("and %d more refused events, not listed", d.unlisted),
			element: d.element,
		})
	}
	return d.events, d.errs, nil
}

type decoder struct {
	lim           event.Limits
	now           time.Time
	n             int // events seen, good or bad
	events        []event.Event
	errs          []LineError
	unlisted      int // refused events past MaxLineErrors
	firstUnlisted int
	element       bool
}

func (d *decoder) add(line int, data []byte) {
	d.n++
	ev, err := event.Parse(data, d.lim, d.now)
	if err == nil {
		d.events = append(d.events, ev)
		return
	}
	if len(d.errs) < MaxLineErrors {
		d.errs = append(d.errs, LineError{Line: line, Err: err, element: d.element})
		return
	}
	if d.unlisted == 0 {
		d.firstUnlisted = line
	}
	d.unlisted++
}

// isBlank reports whether a line holds only JSON whitespace.
func isBlank(line []byte) bool {
	for _, c := range line {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// eachLine calls fn with every line of body that is not blank, and its
// 1-based number, without its "\n" or "\r\n".
func eachLine(body []byte, fn func(line int, data []byte) bool) {
	n := 0
	for len(body) > 0 {
		n++
		var line []byte
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			line, body = body, nil
		}
		if len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		if isBlank(line) {
			continue
		}
		if !fn(n, line) {
			return
		}
	}
}

func (d *decoder) ndjson(body []byte, maxEvents int) error {
	// Count the events first when there may be too many: refusing a batch
	// should not cost parsing it.
	lines := bytes.Count(body, []byte{'\n'}) + 1
	if maxEvents > 0 && lines > maxEvents {
		n := 0
		eachLine(body, func(int, []byte) bool { n++; return n <= maxEvents })
		if n > maxEvents {
			return ErrTooManyEvents
		}
		lines = n
	}
	d.events = make([]event.Event, 0, min(lines, 4096))
	eachLine(body, func(line int, data []byte) bool {
		d.add(line, data)
		return true
	})
	return nil
}

func (d *decoder) json(body []byte, maxEvents int) error {
	i := 0
	for i < len(body) && isBlank(body[i:i+1]) {
		i++
	}
	if i == len(body) {
		return ErrNoEvents
	}
	switch body[i] {
	case '{':
		d.add(1, body)
		return nil
	case '[':
	default:
		return &event.SyntaxError{Offset: i, Msg: "a batch must be a JSON object or an array of objects"}
	}
	d.element = true
	stop := errors.New("stop")
	err := event.SplitArray(body, func(elem []byte) error {
		if maxEvents > 0 && d.n >= maxEvents {
			return stop
		}
		d.add(d.n+1, elem)
		return nil
	})
	if err == stop {
		return ErrTooManyEvents
	}
	return err
}
