package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/vigilsec/vigil/internal/detect/filter"
	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/httperr"
	"github.com/vigilsec/vigil/internal/store"
)

// A filter= parameter takes an expression of the grammar detection rules
// use (docs/rules.md). The indexed parameters narrow the candidates; the
// expression is then evaluated on each candidate event. One request reads at
// most MaxFilterScan candidates: a search answers what it found so far with
// "partial": true and the position to continue from.

// MaxFilterScan bounds the events one filtered request evaluates.
const MaxFilterScan = 1_000_000

func parseFilter(v url.Values) (*filter.Filter, error) {
	s := v.Get("filter")
	if s == "" {
		return nil, nil
	}
	f, err := filter.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("parameter filter: %w", err)
	}
	return f, nil
}

// scanFiltered reads the events matching q in order and counts those f
// matches, calling each (when set) with them until it returns false. done
// is false when it stopped at the scan budget; last is then the last
// sequence number read.
func (e *Events) scanFiltered(ctx context.Context, q store.Query, f *filter.Filter, budget int,
	each func(store.Record) bool) (n int64, done bool, err error) {
	_, n, done, err = e.scanFilteredFrom(ctx, q, f, budget, each)
	return n, done, err
}

func (e *Events) scanFilteredFrom(ctx context.Context, q store.Query, f *filter.Filter, budget int,
	each func(store.Record) bool) (last uint64, n int64, done bool, err error) {
	st := e.Store
	q.Limit = store.MaxLimit
	scanned := 0
	for {
		recs, err := st.Search(ctx, q)
		if err != nil {
			return last, n, false, err
		}
		for _, r := range recs {
			last = r.Seq
			scanned++
			plain := e.plain(r)
			ev, err := event.ParseStored(plain)
			if err == nil && f.Match(&ev) {
				n++
				if each != nil && !each(r) {
					return last, n, true, nil
				}
			}
			if scanned >= budget {
				return last, n, false, nil
			}
		}
		if len(recs) < q.Limit {
			return last, n, true, nil
		}
		if q.Desc {
			q.BeforeSeq = last
		} else {
			q.AfterSeq = last
		}
	}
}

// searchFiltered answers a search with a filter: up to the query's limit of
// matching events, and where to continue ("next_after", or "next_before"
// when newest first). "partial" is true when the scan budget ran out first.
func (e *Events) searchFiltered(w http.ResponseWriter, r *http.Request, q store.Query, f *filter.Filter) {
	limit := q.Limit
	if limit <= 0 {
		limit = store.DefaultLimit
	}
	limit = min(limit, MaxLimit)
	var recs []store.Record
	last, _, done, err := e.scanFilteredFrom(r.Context(), q, f, MaxFilterScan, func(rec store.Record) bool {
		recs = append(recs, rec)
		return len(recs) < limit
	})
	if err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	bw := e.writeEvents(w, recs)
	if q.Desc {
		if last > 0 {
			bw.WriteString(`,"next_before":` + strconv.FormatUint(last, 10))
		}
	} else {
		bw.WriteString(`,"next_after":` + strconv.FormatUint(max(last, q.AfterSeq), 10))
	}
	bw.WriteString(`,"partial":` + strconv.FormatBool(!done) + "}\n")
	bw.Flush()
}
