package respond

import (
	"context"
	"fmt"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/store"
)

// Searcher is what ReplayFrom needs of a store.Store.
type Searcher interface {
	Search(ctx context.Context, q store.Query) ([]store.Record, error)
}

// ReplayStats tells what ReplayFrom read.
type ReplayStats struct {
	Events   int // decision events replayed
	Rejected int // decision events skipped as malformed or unsigned (logged)
}

// replayPage is the number of records read per query.
const replayPage = 1000

// ReplayFrom replays every decision event of the store, in sequence order
// (one paged query per action of Actions, merged by sequence). Bad events
// are logged, counted and skipped; an error of the store stops it. Call it
// once at start, before Run and before serving the API.
func (m *Manager) ReplayFrom(ctx context.Context, s Searcher) (ReplayStats, error) {
	type cursor struct {
		action string
		after  uint64
		buf    []store.Record
		done   bool
	}
	cs := make([]*cursor, len(Actions))
	for i, a := range Actions {
		cs[i] = &cursor{action: a}
	}
	var st ReplayStats
	for {
		var next *cursor
		for _, c := range cs {
			if len(c.buf) == 0 && !c.done {
				recs, err := s.Search(ctx, store.Query{Action: c.action, AfterSeq: c.after, Limit: replayPage})
				if err != nil {
					return st, fmt.Errorf("replay decisions: search %s after %d: %w", c.action, c.after, err)
				}
				c.buf, c.done = recs, len(recs) < replayPage
			}
			if len(c.buf) > 0 && (next == nil || c.buf[0].Seq < next.buf[0].Seq) {
				next = c
			}
		}
		if next == nil {
			return st, nil
		}
		rec := next.buf[0]
		next.buf, next.after = next.buf[1:], rec.Seq
		ev, err := event.Parse(rec.Canonical, event.Limits{}, m.now())
		if err == nil {
			err = m.Replay(&ev)
		} else {
			m.met.ReplayRejected.Inc()
		}
		if err != nil {
			st.Rejected++
			m.log.Warn("decision event skipped", "seq", rec.Seq, "err", err)
			continue
		}
		st.Events++
	}
}
