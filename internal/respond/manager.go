package respond

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/sdk/throttle"
)

// Appender makes events durable; the wiring passes the store's Append. It
// returns only once the events are committed.
type Appender func(ctx context.Context, events []event.Event) error

// Options are what a Manager needs besides its Config.
type Options struct {
	Append Appender     // required
	Clock  Clock        // nil: the system clock
	Log    *slog.Logger // nil: slog.Default()
	// Metrics, when set, are kept up to date (see NewMetrics).
	Metrics *Metrics
	// SigningKey, when set, signs every decision event (HMAC-SHA256) and
	// makes Replay refuse decision events without a valid signature, so
	// that an event sent through ingest cannot ban or unban anyone after a
	// restart. Keep it secret and stable (in the data directory).
	SigningKey []byte
}

// AddResult tells what Add did.
type AddResult string

// Results of Add.
const (
	Added    AddResult = "added"    // a new decision
	Extended AddResult = "extended" // the decision already in force for the value now lasts longer, or was a throttle and is now a ban
	Kept     AddResult = "kept"     // a decision at least as strong and as long was already in force: nothing changed
)

// ErrNotFound is returned by Remove for an unknown or inactive decision.
var ErrNotFound = errors.New("no such active decision")

// ErrFull is returned by Add when MaxActive decisions are in force.
var ErrFull = errors.New("too many active decisions")

// sweepEvery is the shortest pause between two expiry sweeps: expiry events
// are written at most this late (Check ignores an expired decision at once).
const sweepEvery = time.Second

// retryWait is the pause after a failed expiry sweep.
const retryWait = 5 * time.Second

// Manager holds the decisions. It is safe for concurrent use.
//
// Every change is appended to the log (Options.Append) before it is applied
// in memory: a change that is not durable is not made. Changes are
// serialised; reads (Check, List) never wait for the log.
type Manager struct {
	cfg   Config
	allow allowlist
	app   Appender
	clock Clock
	log   *slog.Logger
	met   *Metrics
	key   []byte

	wmu sync.Mutex // held while a change is appended and applied

	mu        sync.RWMutex
	active    map[key]Decision
	byID      map[string]key
	conflicts map[string]Decision // replayed decisions whose value is now allowlisted
	history   []Decision          // removed and expired, oldest first
	bans      throttle.StaticBans // the active decisions, for Check
	subs      map[*Subscription]struct{}
	nextSweep time.Time // when Run will sweep next (zero: not scheduled)

	wake chan struct{}
}

// NewManager checks c and returns an empty Manager; Replay the log into it,
// then start Run.
func NewManager(c Config, o Options) (*Manager, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if o.Append == nil {
		return nil, errors.New("respond: Options.Append is required")
	}
	al, _ := c.Allowlist.parse()
	m := &Manager{
		cfg: c.withDefaults(), allow: al, app: o.Append, clock: o.Clock, log: o.Log, met: o.Metrics,
		key:       slices.Clone(o.SigningKey),
		active:    make(map[key]Decision),
		byID:      make(map[string]key),
		conflicts: make(map[string]Decision),
		subs:      make(map[*Subscription]struct{}),
		wake:      make(chan struct{}, 1),
	}
	if m.clock == nil {
		m.clock = systemClock{}
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	if m.met == nil {
		m.met = NewMetrics(nil)
	}
	return m, nil
}

func (m *Manager) now() time.Time { return m.clock.Now().UTC().Round(0) }

// stronger reports whether d should replace e, the decision in force for
// the same value: a ban replaces a throttle (whatever their ends); between
// the same types, the one that ends later wins. A throttle never replaces
// a ban: remove the ban first.
func stronger(d, e Decision) bool {
	if d.Type != e.Type {
		return d.Type == TypeBan
	}
	switch {
	case e.Until.IsZero():
		return false
	case d.Until.IsZero():
		return true
	}
	return d.Until.After(e.Until)
}

// Add makes a decision, or strengthens the one in force for the same scope
// and value (it keeps its ID and takes the new type, end and origin, and
// the new reason and alert when given; see AddResult). d.Type defaults to a ban;
// d.Origin is required (a rule name, or ManualOrigin(who)); d.ID,
// CreatedAt and the removal fields are ignored. It returns the decision in
// force afterwards.
//
// Errors: *FieldError for bad input, *AllowlistError (errors.Is
// ErrAllowlisted) when the value is allowlisted, ErrFull at MaxActive, or
// the Appender's error, in which case nothing changed.
func (m *Manager) Add(ctx context.Context, d Decision) (Decision, AddResult, error) {
	outs, _ := m.AddBatch(ctx, []Decision{d})
	return outs[0].Decision, outs[0].Result, outs[0].Err
}

// AddOutcome is what AddBatch did with one decision: what Add would return.
type AddOutcome struct {
	Decision Decision
	Result   AddResult
	Err      error
}

// AddBatch makes several decisions as Add makes each, in order (a later one
// sees what the earlier ones did), with one append to the log for all their
// changes: a caller making decisions in bulk (the detection pipeline) waits
// for one commit, not one per decision. It returns an outcome per decision
// and the Appender's error, if any, in which case none of the changes was
// made and each decision that had one carries the error.
func (m *Manager) AddBatch(ctx context.Context, ds []Decision) ([]AddOutcome, error) {
	now := m.now()
	outs := make([]AddOutcome, len(ds))
	m.wmu.Lock()
	defer m.wmu.Unlock()
	var (
		changes []Change
		view    = make(map[key]Decision) // in force once the batch's changes are applied
		added   int                      // values without a decision that get one
		expired = make(map[int]Decision) // by index: the expired decision replaced
		failed  = make(map[int]Decision) // by index: what Add returns when the append fails
	)
	for i, d := range ds {
		d, err := normalize(d)
		if err != nil {
			outs[i] = AddOutcome{Decision: d, Err: err}
			continue
		}
		d.ID, d.CreatedAt, d.RemovedAt, d.RemovedBy = "", time.Time{}, time.Time{}, ""
		if !d.Until.IsZero() {
			d.Until = d.Until.UTC().Round(0)
			if !d.Until.After(now) {
				outs[i] = AddOutcome{Decision: d, Err: &FieldError{"until", fmt.Sprintf("%s is not in the future", formatTime(d.Until))}}
				continue
			}
		}
		if entry, hit := m.allow.conflict(d); hit {
			m.met.Refused.WithLabelValues("allowlist").Inc()
			m.log.Warn("decision refused: allowlisted", "scope", d.Scope, "value", d.Value, "entry", entry, "origin", d.Origin)
			outs[i] = AddOutcome{Decision: d, Err: &AllowlistError{Scope: d.Scope, Value: d.Value, Entry: entry}}
			continue
		}
		k := d.key()
		old, exists := view[k]
		if !exists {
			old, exists = m.active[k]
		}
		if exists && old.ActiveAt(now) {
			if !stronger(d, old) {
				outs[i] = AddOutcome{Decision: old, Result: Kept}
				continue
			}
			up := old
			up.Type, up.Until, up.Origin = d.Type, d.Until, d.Origin
			if d.Reason != "" {
				up.Reason = d.Reason
			}
			if d.AlertFingerprint != "" {
				up.AlertFingerprint = d.AlertFingerprint
			}
			changes = append(changes, Change{ActionDecisionAdded, up, now})
			view[k], failed[i] = up, old
			outs[i] = AddOutcome{Decision: up, Result: Extended}
			continue
		}
		if exists { // expired, not yet swept: record its end first
			old.RemovedAt, old.RemovedBy = old.Until, RemovedByExpiry
			changes = append(changes, Change{ActionDecisionExpired, old, now})
			expired[i] = old
		} else if len(m.active)+added >= m.cfg.MaxActive {
			m.met.Refused.WithLabelValues("limit").Inc()
			outs[i] = AddOutcome{Decision: d, Err: fmt.Errorf("%w: %d in force, the limit (respond.max_active)", ErrFull, len(m.active)+added)}
			continue
		} else {
			added++
		}
		d.ID, d.CreatedAt = event.NewID(), now
		failed[i] = d
		changes = append(changes, Change{ActionDecisionAdded, d, now})
		view[k] = d
		outs[i] = AddOutcome{Decision: d, Result: Added}
	}
	if len(changes) == 0 {
		return outs, nil
	}
	if err := m.commit(ctx, changes); err != nil {
		for i, d := range failed {
			outs[i] = AddOutcome{Decision: d, Err: err}
		}
		return outs, err
	}
	for i, o := range outs {
		d := o.Decision
		switch o.Result {
		case Extended:
			m.met.Extended.WithLabelValues(d.Type, d.Scope).Inc()
		case Added:
			if old, ok := expired[i]; ok {
				m.met.Expired.WithLabelValues(old.Type, old.Scope).Inc()
			}
			m.met.Added.WithLabelValues(d.Type, d.Scope).Inc()
			m.log.Info("decision added", "id", d.ID, "type", d.Type, "scope", d.Scope, "value", d.Value,
				"until", formatTime(d.Until), "origin", d.Origin)
		}
	}
	return outs, nil
}

// Remove ends the active decision with the given ID. by says who
// (ManualOrigin(who)). It returns the decision as removed.
func (m *Manager) Remove(ctx context.Context, id, by string) (Decision, error) {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	m.mu.RLock()
	k, ok := m.byID[id]
	d := m.active[k]
	m.mu.RUnlock()
	if !ok {
		return Decision{}, fmt.Errorf("decision %q: %w", id, ErrNotFound)
	}
	return m.remove(ctx, d, by)
}

// RemoveValue ends the active decision on scope and value (in any form
// Add accepts).
func (m *Manager) RemoveValue(ctx context.Context, scope, value, by string) (Decision, error) {
	v, err := normalizeValue(scope, value)
	if err != nil {
		return Decision{}, err
	}
	m.wmu.Lock()
	defer m.wmu.Unlock()
	m.mu.RLock()
	d, ok := m.active[key{scope, v}]
	m.mu.RUnlock()
	if !ok {
		return Decision{}, fmt.Errorf("decision on %s %s: %w", scope, v, ErrNotFound)
	}
	return m.remove(ctx, d, by)
}

func (m *Manager) remove(ctx context.Context, d Decision, by string) (Decision, error) {
	if err := checkText("by", by, MaxOriginBytes, true); err != nil {
		return d, err
	}
	now := m.now()
	d.RemovedAt, d.RemovedBy = now, by
	if err := m.commit(ctx, []Change{{ActionDecisionRemoved, d, now}}); err != nil {
		return d, err
	}
	m.met.Removed.WithLabelValues(d.Type, d.Scope).Inc()
	m.log.Info("decision removed", "id", d.ID, "scope", d.Scope, "value", d.Value, "by", by)
	return d, nil
}

// commit appends the changes' events, then applies them. The caller holds
// wmu.
func (m *Manager) commit(ctx context.Context, changes []Change) error {
	evs := make([]event.Event, len(changes))
	for i, c := range changes {
		ev, err := NewEvent(c, m.key)
		if err != nil {
			return err
		}
		evs[i] = ev
	}
	if err := m.app(ctx, evs); err != nil {
		return fmt.Errorf("record %d decision change(s) in the log: %w", len(evs), err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range changes {
		m.applyLocked(c)
	}
	return nil
}

// applyLocked applies a change in memory and tells subscribers. The caller
// holds mu.
func (m *Manager) applyLocked(c Change) {
	d := c.Decision
	switch c.Action {
	case ActionDecisionAdded:
		if k, ok := m.byID[d.ID]; ok && k != d.key() {
			m.dropLocked(k) // the same ID for another value: only in a forged or damaged log
		}
		if _, hit := m.allow.conflict(d); hit {
			// Replayed, but allowlisted since: not enforced, and removed
			// for good by the next sweep.
			if old, ok := m.active[d.key()]; ok && old.ID == d.ID {
				m.dropLocked(d.key())
			}
			m.conflicts[d.ID] = d
			m.signalLocked(time.Time{})
			return
		}
		if old, ok := m.active[d.key()]; ok {
			m.met.Active.WithLabelValues(old.Type, old.Scope).Dec()
			if old.ID != d.ID {
				delete(m.byID, old.ID)
			}
		}
		m.active[d.key()] = d
		m.byID[d.ID] = d.key()
		m.bans.Add(d.throttleDecision())
		m.met.Active.WithLabelValues(d.Type, d.Scope).Inc()
		if !d.Until.IsZero() {
			m.signalLocked(d.Until)
		}
	case ActionDecisionRemoved, ActionDecisionExpired:
		if _, ok := m.conflicts[d.ID]; ok {
			delete(m.conflicts, d.ID) // never enforced, never sent to subscribers
			m.historyLocked(d)
			return
		}
		k, ok := m.byID[d.ID]
		if !ok {
			return // already gone (a replayed log may say it twice)
		}
		m.dropLocked(k)
		m.historyLocked(d)
	default:
		return
	}
	for s := range m.subs {
		select {
		case s.ch <- c:
		default:
			m.dropSubLocked(s)
		}
	}
}

// historyLocked keeps d, removed, for List and Get.
func (m *Manager) historyLocked(d Decision) {
	m.history = append(m.history, d)
	if n := len(m.history); n > 2*m.cfg.MaxHistory {
		m.history = slices.Clone(m.history[n-m.cfg.MaxHistory:])
	}
}

// dropLocked forgets the active decision for k.
func (m *Manager) dropLocked(k key) {
	old, ok := m.active[k]
	if !ok {
		return
	}
	delete(m.active, k)
	delete(m.byID, old.ID)
	m.bans.Remove(k.scope, k.value)
	m.met.Active.WithLabelValues(old.Type, old.Scope).Dec()
}

// signalLocked wakes Run when something is due before its next sweep (at
// once for the zero time).
func (m *Manager) signalLocked(due time.Time) {
	if !due.IsZero() && !m.nextSweep.IsZero() && !due.Before(m.nextSweep) {
		return
	}
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Replay applies the change recorded in a decision event read from the log.
// Call it for every event with one of Actions, in sequence order, before
// Run. Events of other actions are ignored (nil). A decision replayed whose
// TTL has passed is not enforced and is recorded as expired by Run; one
// whose value is allowlisted now is not enforced and is recorded as removed
// (RemovedByAllowlist) by Run. Nothing is appended by Replay itself.
//
// Errors name the bad event, which is skipped; with a signing key, unsigned
// look-alikes are refused with ErrBadSignature.
func (m *Manager) Replay(e *event.Event) error {
	c, err := ParseEvent(e, m.key)
	if errors.Is(err, ErrNotDecisionEvent) {
		return nil
	}
	if err != nil {
		m.met.ReplayRejected.Inc()
		return fmt.Errorf("replay: %w", err)
	}
	m.wmu.Lock()
	defer m.wmu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.applyLocked(c)
	return nil
}

// Run expires decisions at the end of their TTL, writing a
// vigil_decision_expired event for each (at most a second late), and
// removes replayed decisions that are now allowlisted. It returns when ctx
// ends. A failed append is logged and retried.
func (m *Manager) Run(ctx context.Context) error {
	for {
		// While it sweeps, nothing is scheduled: every Add wakes it again.
		m.mu.Lock()
		m.nextSweep = time.Time{}
		m.mu.Unlock()
		next, err := m.sweep(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var wait time.Duration = -1
		switch {
		case err != nil:
			m.log.Warn("expire decisions: will retry", "err", err, "in", retryWait)
			wait = retryWait
		case !next.IsZero():
			wait = max(next.Sub(m.now()), sweepEvery)
		}
		var timer <-chan time.Time
		m.mu.Lock()
		if wait >= 0 {
			timer = m.clock.After(wait)
			m.nextSweep = m.now().Add(wait)
		}
		m.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-timer:
		case <-m.wake:
		}
	}
}

// maxSweepBatch bounds the events of one append by a sweep.
const maxSweepBatch = 1000

// sweep records the decisions that have expired, and the replayed ones now
// allowlisted, and returns when the next one expires (zero: none).
func (m *Manager) sweep(ctx context.Context) (time.Time, error) {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	now := m.now()
	var due []Change
	var next time.Time
	m.mu.RLock()
	for _, d := range m.active {
		switch {
		case d.Until.IsZero():
		case !now.Before(d.Until):
			d.RemovedAt, d.RemovedBy = d.Until, RemovedByExpiry
			due = append(due, Change{ActionDecisionExpired, d, now})
		case next.IsZero() || d.Until.Before(next):
			next = d.Until
		}
	}
	for _, d := range m.conflicts {
		d.RemovedAt, d.RemovedBy = now, RemovedByAllowlist
		due = append(due, Change{ActionDecisionRemoved, d, now})
	}
	m.mu.RUnlock()
	slices.SortFunc(due, func(a, b Change) int {
		return cmp.Or(a.Decision.RemovedAt.Compare(b.Decision.RemovedAt), strings.Compare(a.Decision.ID, b.Decision.ID))
	})
	for len(due) > 0 {
		n := min(len(due), maxSweepBatch)
		if err := m.commit(ctx, due[:n]); err != nil {
			return time.Time{}, err
		}
		for _, c := range due[:n] {
			if c.Action == ActionDecisionExpired {
				m.met.Expired.WithLabelValues(c.Decision.Type, c.Decision.Scope).Inc()
			} else {
				m.met.Removed.WithLabelValues(c.Decision.Type, c.Decision.Scope).Inc()
				m.log.Info("decision removed: value now allowlisted", "id", c.Decision.ID, "scope", c.Decision.Scope, "value", c.Decision.Value)
			}
		}
		due = due[n:]
	}
	return next, nil
}

// Check returns the decision in force for ip or user, if any: a ban wins
// over a throttle, then the one that lasts longer (as the SDK decides).
func (m *Manager) Check(ip netip.Addr, user string) (Decision, bool) {
	now := m.now()
	m.mu.RLock()
	defer m.mu.RUnlock()
	td, ok := m.bans.Check(ip, user, now)
	if !ok {
		return Decision{}, false
	}
	d, ok := m.active[key{td.Scope, td.Value}]
	return d, ok
}

// Get returns the decision with the given ID, active or among the recent
// history.
func (m *Manager) Get(id string) (Decision, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if k, ok := m.byID[id]; ok {
		return m.active[k], true
	}
	for i := len(m.history) - 1; i >= 0; i-- {
		if m.history[i].ID == id {
			return m.history[i], true
		}
	}
	return Decision{}, false
}

// Filter selects decisions for List. Zero fields do not filter.
type Filter struct {
	All    bool   // also removed and expired ones (the last MaxHistory)
	Type   string // ban or throttle
	Scope  string // ip, range or user
	Value  string // exact, canonical form
	Origin string // exact; "manual:" matches every manual decision
	// IP selects the decisions that apply to this address: on it, or on a
	// range holding it.
	IP   netip.Addr
	User string // the decisions on this user (without case)
}

func (f Filter) match(d Decision) bool {
	if f.Type != "" && d.Type != f.Type || f.Scope != "" && d.Scope != f.Scope || f.Value != "" && d.Value != f.Value {
		return false
	}
	if f.Origin != "" && d.Origin != f.Origin && !(strings.HasSuffix(f.Origin, ":") && strings.HasPrefix(d.Origin, f.Origin)) {
		return false
	}
	if f.IP.IsValid() {
		ip := f.IP.Unmap().WithZone("")
		switch d.Scope {
		case ScopeIP:
			if d.Value != ip.String() {
				return false
			}
		case ScopeRange:
			p, err := netip.ParsePrefix(d.Value)
			if err != nil || !p.Contains(ip) {
				return false
			}
		default:
			return false
		}
	}
	if f.User != "" && (d.Scope != ScopeUser || d.Value != strings.ToLower(strings.TrimSpace(f.User))) {
		return false
	}
	return true
}

// List returns the decisions f selects, oldest first: by default those in
// force now; with f.All, also the recently removed and expired ones.
func (m *Manager) List(f Filter) []Decision {
	now := m.now()
	m.mu.RLock()
	var out []Decision
	for _, d := range m.active {
		if (f.All || d.ActiveAt(now)) && f.match(d) {
			out = append(out, d)
		}
	}
	if f.All {
		h := m.history[max(0, len(m.history)-m.cfg.MaxHistory):]
		for _, d := range h {
			if f.match(d) {
				out = append(out, d)
			}
		}
	}
	m.mu.RUnlock()
	slices.SortFunc(out, func(a, b Decision) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID), a.RemovedAt.Compare(b.RemovedAt))
	})
	return out
}

// Len returns the number of decisions held as active (expired ones count
// until Run records their end).
func (m *Manager) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.active)
}

// Subscription receives the changes made after Subscribe.
type Subscription struct {
	m    *Manager
	ch   chan Change
	lost chan struct{}
	once sync.Once
}

// Subscribe returns the decisions in force now and a subscription to every
// change after them, with nothing missed or repeated in between. A
// subscriber that lets StreamBuffer changes pile up is dropped: Lost is
// closed and no more changes come; subscribe again to start over. Close
// the subscription when done.
func (m *Manager) Subscribe() ([]Decision, *Subscription) {
	s := &Subscription{m: m, ch: make(chan Change, m.cfg.StreamBuffer), lost: make(chan struct{})}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	snap := make([]Decision, 0, len(m.active))
	for _, d := range m.active {
		if d.ActiveAt(now) {
			snap = append(snap, d)
		}
	}
	m.subs[s] = struct{}{}
	m.met.Subscribers.Inc()
	slices.SortFunc(snap, func(a, b Decision) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return snap, s
}

// Changes delivers the changes, in order.
func (s *Subscription) Changes() <-chan Change { return s.ch }

// Lost is closed when the subscriber fell too far behind and was dropped.
func (s *Subscription) Lost() <-chan struct{} { return s.lost }

// Close ends the subscription.
func (s *Subscription) Close() {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if _, ok := s.m.subs[s]; ok {
		delete(s.m.subs, s)
		s.m.met.Subscribers.Dec()
	}
}

func (m *Manager) dropSubLocked(s *Subscription) {
	delete(m.subs, s)
	m.met.Subscribers.Dec()
	m.met.SlowSubscribers.Inc()
	s.once.Do(func() { close(s.lost) })
}
