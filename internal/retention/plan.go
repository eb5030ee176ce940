package retention

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/vigilsec/vigil/internal/detect/filter"
	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/respond"
	"github.com/vigilsec/vigil/internal/store"
)

// Selection narrows a purge. The zero value applies the policies to every
// type.
type Selection struct {
	// Types limits the purge to these types (empty: all).
	Types []Type
	// Before, when set, selects the events with @timestamp before it
	// instead of applying the policies. It must be at least the floor
	// back from now unless Force.
	Before time.Time
	// Force allows a Before inside the floor.
	Force bool
}

// Holds is the set of legal holds in force, from the configuration and
// added at run time. It is safe for concurrent use.
type Holds struct {
	mu    sync.RWMutex
	holds map[string]compiledHold
}

type compiledHold struct {
	Hold
	f *filter.Filter
}

// NewHolds returns the holds of the configuration.
func NewHolds(initial []Hold) (*Holds, error) {
	h := &Holds{holds: map[string]compiledHold{}}
	for _, x := range initial {
		if err := h.Add(x); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// Add adds or replaces the hold with x's ID.
func (h *Holds) Add(x Hold) error {
	f, err := x.compile()
	if err != nil {
		return fmt.Errorf("hold %q: %w", x.ID, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.holds[x.ID]; !ok && len(h.holds) >= maxHolds {
		return fmt.Errorf("hold %q: more than %d holds", x.ID, maxHolds)
	}
	h.holds[x.ID] = compiledHold{x, f}
	return nil
}

// Remove removes a hold; it reports whether there was one.
func (h *Holds) Remove(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.holds[id]
	delete(h.holds, id)
	return ok
}

// List returns the holds sorted by ID.
func (h *Holds) List() []Hold {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]Hold, 0, len(h.holds))
	for _, x := range h.holds {
		out = append(out, x.Hold)
	}
	slices.SortFunc(out, func(a, b Hold) int { return cmpString(a.ID, b.ID) })
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// active returns the filters of the holds in force at now.
func (h *Holds) active(now time.Time) []*filter.Filter {
	if h == nil {
		return nil
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	var out []*filter.Filter
	for _, x := range h.holds {
		if x.Until.IsZero() || now.Before(x.Until) {
			out = append(out, x.f)
		}
	}
	return out
}

// Batch is a set of events due for purging, in sequence order.
type Batch struct {
	Seqs   []uint64
	ByType map[Type]int64
	// Oldest and Newest are the @timestamps of its events.
	Oldest, Newest time.Time
}

// Planner selects the events due for purging.
type Planner struct {
	Store  store.Store
	Config Config // defaults set, validated
	Holds  *Holds
}

// Plan walks the events with sequence numbers up to sealed (the size of the
// ledger's latest checkpoint: later events have no leaf yet) and calls fn
// with each batch of at most Config.Batch events due at now under sel.
// Never selected: vigil_purge events, events a hold in force matches, and
// the decision events of decisions in force. fn may purge the batch: the
// walk continues after it.
func (p *Planner) Plan(ctx context.Context, now time.Time, sel Selection, sealed uint64, fn func(Batch) error) error {
	cfg := p.Config
	floor := time.Duration(cfg.Floor)
	for _, t := range sel.Types {
		if !t.Valid() {
			return fmt.Errorf("type %q is not one of %s", t, typeNames())
		}
	}
	cutoff := now.Add(-minKeep(cfg))
	if !sel.Before.IsZero() {
		if sel.Before.After(now.Add(-floor)) && !sel.Force {
			return fmt.Errorf("%w: events before %s are within the floor of %s (%s); force to purge them",
				ErrFloor, sel.Before.UTC().Format(time.RFC3339), fmtDuration(floor), now.Add(-floor).UTC().Format(time.RFC3339))
		}
		cutoff = sel.Before
	}
	if sealed == 0 {
		return nil
	}
	holds := p.Holds.active(now)
	inForce, err := p.decisionsInForce(ctx, now)
	if err != nil {
		return err
	}
	var (
		doc   filter.Doc
		batch = Batch{ByType: map[Type]int64{}}
		after uint64
	)
	fields := make([][]filter.Field, len(cfg.Fields))
	for i, r := range cfg.Fields {
		for _, path := range r.Paths {
			f, err := filter.ParseField(path)
			if err != nil {
				return fmt.Errorf("retention field %q: %w", path, err)
			}
			fields[i] = append(fields[i], f)
		}
	}
	decisionID, _ := filter.ParseField("vigil.decision.id")
	flush := func() error {
		if len(batch.Seqs) == 0 {
			return nil
		}
		err := fn(batch)
		batch = Batch{ByType: map[Type]int64{}}
		return err
	}
	for {
		recs, err := p.Store.Search(ctx, store.Query{To: cutoff, AfterSeq: after, BeforeSeq: sealed + 1, Limit: store.MaxLimit})
		if err != nil {
			return fmt.Errorf("plan purge: search events after %d: %w", after, err)
		}
		if len(recs) == 0 {
			return flush()
		}
		for _, r := range recs {
			after = r.Seq
			e, err := event.ParseStored(r.Canonical)
			if err != nil {
				return fmt.Errorf("plan purge: event %d: %w", r.Seq, err)
			}
			if e.Time.IsZero() || e.Action == ActionPurge {
				continue
			}
			typ := TypeOf(&e)
			if len(sel.Types) > 0 && !slices.Contains(sel.Types, typ) {
				continue
			}
			doc.Reset(&e)
			due := sel.Before
			if due.IsZero() {
				due = now.Add(-keepOf(cfg, &e, typ, &doc, fields))
			}
			if !e.Time.Before(due) {
				continue
			}
			if slices.Contains(respond.Actions, e.Action) {
				if id, ok := decisionID.First(&doc); ok && inForce[id] {
					continue
				}
			}
			if slices.ContainsFunc(holds, func(f *filter.Filter) bool { return f.MatchDoc(&doc) }) {
				continue
			}
			batch.Seqs = append(batch.Seqs, r.Seq)
			batch.ByType[typ]++
			if batch.Oldest.IsZero() || e.Time.Before(batch.Oldest) {
				batch.Oldest = e.Time
			}
			if e.Time.After(batch.Newest) {
				batch.Newest = e.Time
			}
			if len(batch.Seqs) >= cfg.Batch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		doc.Reset(nil)
	}
}

// ErrFloor is wrapped when a purge asks for events within the floor.
var ErrFloor = errors.New("inside the retention floor")

// minKeep is the shortest time any rule keeps an event.
func minKeep(cfg Config) time.Duration {
	d := time.Duration(cfg.Default)
	for _, p := range cfg.Policies {
		d = min(d, time.Duration(p.Keep))
	}
	for _, f := range cfg.Fields {
		d = min(d, time.Duration(f.Keep))
	}
	return d
}

// keepOf is how long e is kept: the first matching policy's keep (or the
// default), shortened by the field rules whose fields e holds.
func keepOf(cfg Config, e *event.Event, typ Type, doc *filter.Doc, fields [][]filter.Field) time.Duration {
	keep := time.Duration(cfg.Default)
	for _, p := range cfg.Policies {
		m := p.Match
		if (m.Type == "" || m.Type == typ) && (m.Category == "" || m.Category == e.Category) && (m.Action == "" || m.Action == e.Action) {
			keep = time.Duration(p.Keep)
			break
		}
	}
	for i, r := range cfg.Fields {
		if time.Duration(r.Keep) >= keep {
			continue
		}
		for _, f := range fields[i] {
			if _, ok := f.First(doc); ok {
				keep = time.Duration(r.Keep)
				break
			}
		}
	}
	return keep
}

// decisionsInForce returns the IDs of the decisions in force at now, from
// their audit events: a decision whose last event adds it, without an end
// or ending after now.
func (p *Planner) decisionsInForce(ctx context.Context, now time.Time) (map[string]bool, error) {
	type state struct {
		seq   uint64
		added bool
		until string
	}
	last := map[string]state{}
	idF, _ := filter.ParseField("vigil.decision.id")
	untilF, _ := filter.ParseField("vigil.decision.until")
	var doc filter.Doc
	for _, action := range respond.Actions {
		var after uint64
		for {
			recs, err := p.Store.Search(ctx, store.Query{Action: action, AfterSeq: after, Limit: store.MaxLimit})
			if err != nil {
				return nil, fmt.Errorf("find decision events: %w", err)
			}
			if len(recs) == 0 {
				break
			}
			for _, r := range recs {
				after = r.Seq
				e, err := event.ParseStored(r.Canonical)
				if err != nil {
					return nil, fmt.Errorf("decision event %d: %w", r.Seq, err)
				}
				doc.Reset(&e)
				id, ok := idF.First(&doc)
				if !ok {
					continue
				}
				if s, seen := last[id]; seen && s.seq > r.Seq {
					continue
				}
				until, _ := untilF.First(&doc)
				last[id] = state{seq: r.Seq, added: action == respond.ActionDecisionAdded, until: until}
			}
		}
	}
	doc.Reset(nil)
	out := map[string]bool{}
	for id, s := range last {
		if !s.added {
			continue
		}
		if s.until != "" {
			t, err := time.Parse(time.RFC3339Nano, s.until)
			if err == nil && !now.Before(t) {
				continue
			}
		}
		out[id] = true
	}
	return out, nil
}
