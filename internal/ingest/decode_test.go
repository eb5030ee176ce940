package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
)

var decodeNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func TestDecodeBatch(t *testing.T) {
	type lineErr struct {
		line int
		msg  string // the LineError's message
	}
	tests := []struct {
		name      string
		body      string
		format    Format
		lim       event.Limits
		maxEvents int
		wantIDs   []string // event.id of the good events, in order
		wantErrs  []lineErr
		wantErr   error // for the whole body
	}{
		{
			name:    "ndjson",
			body:    "{\"event.id\":\"a\"}\n{\"event.id\":\"b\"}\n",
			wantIDs: []string{"a", "b"},
		},
		{
			name:    "ndjson without a final newline, with CRLF and blank lines",
			body:    "\r\n{\"event.id\":\"a\"}\r\n  \n\t\r\n{\"event.id\":\"b\"}",
			wantIDs: []string{"a", "b"},
		},
		{
			name:    "bad lines refused, good ones kept, blank lines counted",
			body:    "{\"event.id\":\"a\"}\n\nnot json\n{\"event.id\":\"b\",\"source.ip\":\"x\"}\n{\"event.id\":\"c\"}\n[1]\n",
			wantIDs: []string{"a", "c"},
			wantErrs: []lineErr{
				{3, `line 3: invalid JSON at byte 0: an event must be a JSON object, found 'n'`},
				{4, `line 4: field "source.ip": "x" is not an IP address`},
				{6, `line 6: invalid JSON at byte 0: an event must be a JSON object, found an array`},
			},
		},
		{
			name:    "line over the size limit",
			body:    "{\"event.id\":\"a\"}\n{\"message\":\"" + strings.Repeat("x", 300) + "\"}\n",
			lim:     event.Limits{MaxBytes: 256},
			wantIDs: []string{"a"},
			wantErrs: []lineErr{
				{2, `line 2: event is 314 bytes, limit is 256`},
			},
		},
		{
			name:     "deep nesting in a line",
			body:     `{"a":` + strings.Repeat("[", 50) + strings.Repeat("]", 50) + "}\n",
			wantErrs: []lineErr{{1, `line 1: nesting is deeper than 32 levels at byte 36`}},
		},
		{
			name:      "maxEvents reached",
			body:      "{}\n\n{}\n",
			maxEvents: 2,
			wantIDs:   []string{"*", "*"},
		},
		{
			name:      "maxEvents exceeded",
			body:      "{}\n{}\n{}\n",
			maxEvents: 2,
			wantErr:   ErrTooManyEvents,
		},
		{
			name:    "empty body",
			body:    "",
			wantErr: ErrNoEvents,
		},
		{
			name:    "blank body",
			body:    "\n \r\n",
			wantErr: ErrNoEvents,
		},
		{
			name:    "json object",
			body:    ` {"event.id":"a"} `,
			format:  FormatJSON,
			wantIDs: []string{"a"},
		},
		{
			name:     "json object refused",
			body:     `{"event.id":""}`,
			format:   FormatJSON,
			wantErrs: []lineErr{{1, `line 1: field "event.id": must be 1 to 128 bytes long, not 0`}},
		},
		{
			name:    "json array",
			body:    "[\n{\"event.id\":\"a\"},\n{\"event.id\":\"b\", \"x\": [1, {\"y\": \"]\"}]}\n]",
			format:  FormatJSON,
			wantIDs: []string{"a", "b"},
		},
		{
			name:    "json array with bad elements",
			body:    `[{"event.id":"a"}, 5, {"a":1,"a":2}, {"event.id":"d"}, {"a":[1,]}]`,
			format:  FormatJSON,
			wantIDs: []string{"a", "d"},
			wantErrs: []lineErr{
				{2, `element 2: invalid JSON at byte 0: an event must be a JSON object, found a number`},
				{3, `element 3: field "a": duplicate key`},
				{5, `element 5: invalid JSON at byte 8: unexpected ']', expected a value`},
			},
		},
		{
			name:     "json array with a deep element",
			body:     `[{"a":` + strings.Repeat("{\"a\":", 40) + "1" + strings.Repeat("}", 41) + `,{"event.id":"b"}]`,
			format:   FormatJSON,
			wantIDs:  []string{"b"},
			wantErrs: []lineErr{{1, `element 1: nesting is deeper than 32 levels at byte 160`}},
		},
		{
			name:      "json array too long",
			body:      `[{},{},{}]`,
			format:    FormatJSON,
			maxEvents: 2,
			wantErr:   ErrTooManyEvents,
		},
		{
			name:    "json empty array",
			body:    ` [ ] `,
			format:  FormatJSON,
			wantErr: ErrNoEvents,
		},
		{
			name:    "json empty body",
			body:    " \n",
			format:  FormatJSON,
			wantErr: ErrNoEvents,
		},
		{
			name:    "json scalar",
			body:    `"hello"`,
			format:  FormatJSON,
			wantErr: &event.SyntaxError{},
		},
		{
			name:    "json unterminated array",
			body:    `[{"event.id":"a"},`,
			format:  FormatJSON,
			wantErr: &event.SyntaxError{},
		},
		{
			name:    "unknown format",
			body:    `{}`,
			format:  Format(7),
			wantErr: errors.New("unknown batch format Format(7)"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, lineErrs, err := DecodeBatch([]byte(tt.body), tt.format, tt.lim, tt.maxEvents, decodeNow)
			if tt.wantErr != nil {
				var se *event.SyntaxError
				switch {
				case err == nil:
					t.Fatalf("no error, want %v", tt.wantErr)
				case errors.As(tt.wantErr, &se):
					if !errors.As(err, &se) {
						t.Fatalf("error %v (%T), want a *event.SyntaxError", err, err)
					}
				case errors.Is(tt.wantErr, ErrNoEvents) || errors.Is(tt.wantErr, ErrTooManyEvents):
					if !errors.Is(err, tt.wantErr) {
						t.Fatalf("error %v, want %v", err, tt.wantErr)
					}
				default:
					if err.Error() != tt.wantErr.Error() {
						t.Fatalf("error %v, want %v", err, tt.wantErr)
					}
				}
				if events != nil || lineErrs != nil {
					t.Errorf("with a body error, got %d events and %d line errors", len(events), len(lineErrs))
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeBatch: %v", err)
			}
			var ids []string
			for _, ev := range events {
				id := ev.ID
				if len(id) == 36 {
					id = "*"
				}
				ids = append(ids, id)
			}
			if fmt.Sprint(ids) != fmt.Sprint(tt.wantIDs) {
				t.Errorf("events %v, want %v", ids, tt.wantIDs)
			}
			var got []lineErr
			for _, le := range lineErrs {
				got = append(got, lineErr{le.Line, le.Error()})
			}
			if !slices.Equal(got, tt.wantErrs) {
				t.Errorf("line errors\n got %v\nwant %v", got, tt.wantErrs)
			}
		})
	}
}

func TestDecodeBatchLineErrorsCapped(t *testing.T) {
	var body bytes.Buffer
	for i := range 250 {
		if i%2 == 0 {
			body.WriteString("{}\n")
		} else {
			body.WriteString("bad\n")
		}
	}
	events, lineErrs, err := DecodeBatch(body.Bytes(), FormatNDJSON, event.DefaultLimits, 0, decodeNow)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 125 {
		t.Errorf("%d events, want 125", len(events))
	}
	if len(lineErrs) != MaxLineErrors+1 {
		t.Fatalf("%d line errors, want %d", len(lineErrs), MaxLineErrors+1)
	}
	last := lineErrs[MaxLineErrors]
	if want := "line 202: and 25 more refused events, not listed"; last.Error() != want {
		t.Errorf("last line error %q, want %q", last.Error(), want)
	}
}

func TestLineErrorUnwrap(t *testing.T) {
	_, lineErrs, err := DecodeBatch([]byte(`{"source.port":"x"}`), FormatNDJSON, event.DefaultLimits, 0, decodeNow)
	if err != nil || len(lineErrs) != 1 {
		t.Fatalf("DecodeBatch: %v, %v", err, lineErrs)
	}
	var fe *event.FieldError
	if !errors.As(lineErrs[0], &fe) || fe.Field != "source.port" {
		t.Errorf("LineError does not unwrap to the FieldError: %v", lineErrs[0])
	}
}

// nonBlankLines counts the events of an NDJSON body the simple way.
func nonBlankLines(body []byte) int {
	n := 0
	for _, line := range strings.Split(string(body), "\n") {
		if strings.Trim(line, " \t\r\n") != "" {
			n++
		}
	}
	return n
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add([]byte("{\"event.id\":\"a\"}\n\n{\"a\":1,\"a\":2}\r\nnot json\n"))
	f.Add([]byte(`[{"event.id":"a"},{"b.c":[1,2]}]`))
	const maxEvents = 1000
	lim := event.Limits{MaxBytes: 1 << 16, MaxDepth: 16}
	f.Fuzz(func(t *testing.T, body []byte) {
		events, lineErrs, err := DecodeBatch(body, FormatNDJSON, lim, maxEvents, decodeNow)
		n := nonBlankLines(body)
		switch {
		case n == 0:
			if !errors.Is(err, ErrNoEvents) {
				t.Fatalf("%d events: error %v, want ErrNoEvents", n, err)
			}
		case n > maxEvents:
			if !errors.Is(err, ErrTooManyEvents) {
				t.Fatalf("%d events: error %v, want ErrTooManyEvents", n, err)
			}
		case err != nil:
			t.Fatalf("%d events: error %v", n, err)
		}
		checkDecoded(t, events, lineErrs)
		if err == nil && len(lineErrs) <= MaxLineErrors && len(events)+len(lineErrs) != n {
			t.Fatalf("%d events and %d line errors for %d lines", len(events), len(lineErrs), n)
		}
		prev := 0
		for _, le := range lineErrs {
			if le.Line <= prev {
				t.Fatalf("line errors out of order: %d after %d", le.Line, prev)
			}
			prev = le.Line
		}

		// The same body as FormatJSON: no panic, and what is accepted is
		// valid.
		events, lineErrs, _ = DecodeBatch(body, FormatJSON, lim, maxEvents, decodeNow)
		checkDecoded(t, events, lineErrs)
	})
}

func checkDecoded(t *testing.T, events []event.Event, lineErrs []LineError) {
	t.Helper()
	for _, ev := range events {
		if !json.Valid(ev.Canonical) {
			t.Fatalf("canonical form is not valid JSON: %q", ev.Canonical)
		}
	}
	for _, le := range lineErrs {
		if le.Line < 1 || le.Err == nil {
			t.Fatalf("bad LineError %+v", le)
		}
	}
}
