package api

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigilsec/vigil/internal/httperr"
	"github.com/vigilsec/vigil/internal/store"
)

// MaxWait bounds how long a search with wait= holds the connection.
const MaxWait = 60 * time.Second

// Events serves the read side of /api/v1/events.
type Events struct {
	Store store.Store
	Hub   *Hub
	Now   func() time.Time
	// Decrypt, when set, gives the plaintext of a stored event (encryption
	// at rest); answers carry it. On error the stored bytes are answered,
	// with their fields still encrypted.
	Decrypt func(store.Record) ([]byte, error)
}

// plain returns the canonical bytes of rec to answer or evaluate.
func (e *Events) plain(rec store.Record) []byte {
	if e.Decrypt == nil {
		return rec.Canonical
	}
	b, err := e.Decrypt(rec)
	if err != nil {
		return rec.Canonical
	}
	return b
}

// Register adds the read routes to mux. Authentication wraps mux outside.
func (e *Events) Register(mux *http.ServeMux, wrap func(http.Handler) http.Handler) {
	mux.Handle("GET /api/v1/events", wrap(http.HandlerFunc(e.search)))
	mux.Handle("GET /api/v1/events/count", wrap(http.HandlerFunc(e.count)))
	mux.Handle("GET /api/v1/events/top", wrap(http.HandlerFunc(e.top)))
}

func (e *Events) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// search answers {"events":[{"seq":N,"event":{...}}...],"next_after":N}.
// With wait=DURATION and no matching event yet, it waits up to DURATION for
// new events after the "after" sequence (long polling, used by vigil tail).
func (e *Events) search(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q, err := ParseQuery(v, e.now(), "wait", "filter")
	if err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	f, err := parseFilter(v)
	if err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	if f != nil {
		e.searchFiltered(w, r, q, f)
		return
	}
	var wait time.Duration
	if s := v.Get("wait"); s != "" {
		wait, err = time.ParseDuration(s)
		if err != nil || wait < 0 || wait > MaxWait {
			httperr.Msg(w, http.StatusBadRequest, "parameter wait: must be a duration up to "+MaxWait.String())
			return
		}
	}
	recs, err := e.Store.Search(r.Context(), q)
	if err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(recs) == 0 && wait > 0 && !q.Desc && e.Hub != nil {
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		after := q.AfterSeq
		for len(recs) == 0 && e.Hub.Wait(ctx, after) {
			if after, err = e.Store.LastSeq(ctx); err != nil {
				break
			}
			recs, err = e.Store.Search(r.Context(), q)
			if err != nil {
				break
			}
		}
		cancel()
		if err != nil {
			httperr.Msg(w, http.StatusInternalServerError, "search: "+err.Error())
			return
		}
	}
	next := q.AfterSeq
	for _, rec := range recs {
		next = max(next, rec.Seq)
	}
	bw := e.writeEvents(w, recs)
	bw.WriteString(`,"next_after":`)
	bw.WriteString(strconv.FormatUint(next, 10))
	bw.WriteString("}\n")
	bw.Flush()
}

// writeEvents starts a search answer: {"events":[{"seq":N,"event":{...}},...]
// The caller adds the rest of the object and flushes.
func (e *Events) writeEvents(w http.ResponseWriter, recs []store.Record) *bufio.Writer {
	w.Header().Set("Content-Type", "application/json")
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.WriteString(`{"events":[`)
	for i, rec := range recs {
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.WriteString(`{"seq":`)
		bw.WriteString(strconv.FormatUint(rec.Seq, 10))
		bw.WriteString(`,"event":`)
		bw.Write(e.plain(rec))
		bw.WriteByte('}')
	}
	bw.WriteString(`]`)
	return bw
}

func (e *Events) count(w http.ResponseWriter, r *http.Request) {
	q, err := ParseQuery(r.URL.Query(), e.now(), "filter")
	if err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	f, err := parseFilter(r.URL.Query())
	if err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	var n int64
	if f != nil {
		var done bool
		n, done, err = e.scanFiltered(r.Context(), q, f, MaxFilterScan, nil)
		if err == nil && !done {
			httperr.Msg(w, http.StatusBadRequest, fmt.Sprintf("filter: counting would read more than %d events; narrow the search with fields or a time range", MaxFilterScan))
			return
		}
	} else {
		n, err = e.Store.Count(r.Context(), q)
	}
	if err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	httperr.JSON(w, http.StatusOK, map[string]int64{"count": n})
}

// TopAnswer is the answer of /api/v1/events/top.
type TopAnswer struct {
	Field   string         `json:"field"`
	Buckets []store.Bucket `json:"buckets"`
}

func (e *Events) top(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q, err := ParseQuery(v, e.now(), "field", "n")
	if err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	field := v.Get("field")
	if !slices.Contains(store.GroupFields, field) {
		httperr.Msg(w, http.StatusBadRequest, "parameter field: must be one of "+strings.Join(store.GroupFields, ", "))
		return
	}
	n := 10
	if s := v.Get("n"); s != "" {
		n, err = strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			httperr.Msg(w, http.StatusBadRequest, "parameter n: must be between 1 and 1000")
			return
		}
	}
	b, err := e.Store.Top(r.Context(), q, field, n)
	if err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	if b == nil {
		b = []store.Bucket{}
	}
	httperr.JSON(w, http.StatusOK, TopAnswer{Field: field, Buckets: b})
}
