package alert

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options are the run-time dependencies of a Manager.
type Options struct {
	Config Config
	// Receivers maps each receiver name used by the routes to its
	// notifiers. A receiver with no notifiers tracks and groups alerts but
	// sends nothing.
	Receivers map[string][]Notifier
	// Now is the clock (time.Now when nil). Tests inject a fake one.
	Now func() time.Time
	// Sleep waits d or until ctx ends, between delivery retries
	// (a timer when nil).
	Sleep func(ctx context.Context, d time.Duration) error
	// Jitter returns a number in [0, 1) used to spread retries
	// (math/rand when nil).
	Jitter func() float64
	// GeneratorURL, when set, returns the link to an alert in Vigil.
	GeneratorURL func(fingerprint string) string
	Log          *slog.Logger
	// Registerer receives the manager's metrics (none when nil).
	Registerer prometheus.Registerer
	// DrainTimeout bounds the deliveries still queued when Run's context
	// ends (5s when zero).
	DrainTimeout time.Duration
	// TickInterval is how often Run calls Tick with the clock (1s when
	// zero). Negative: Run only delivers, and the caller drives Tick.
	TickInterval time.Duration
}

// Manager tracks alerts from signals, groups and routes them, applies
// silences and delivers notifications. All methods are safe for
// concurrent use.
type Manager struct {
	cfg          Config
	root         *route
	routes       map[string]*route
	receivers    map[string][]Notifier
	now          func() time.Time
	sleep        func(context.Context, time.Duration) error
	jitter       func() float64
	generatorURL func(string) string
	log          *slog.Logger
	drainTimeout time.Duration
	tickInterval time.Duration
	metrics      *metrics
	dlog         *deliveryLog

	mu       sync.Mutex
	alerts   map[string]*entry
	groups   map[string]*group
	silences map[string]*Silence
	inhibit  []inhibitRule
	nActive  int // pending + firing
	nResolve int
	// Silence evaluation is redone when silences change or a silence
	// starts or ends.
	silenceGen       uint64
	silenceApplied   uint64
	silenceNext      time.Time
	activeSilences   []*Silence
	silenceEvaluated bool

	queue    chan *job
	qmu      sync.Mutex
	started  bool
	closed   bool
	inflight int
	idle     chan struct{}
}

// entry is one tracked alert.
type entry struct {
	fp          string
	rule        string
	labels      map[string]string
	annotations map[string]string
	state       string
	forDur      time.Duration
	activeAt    time.Time // event time the condition started to hold
	startsAt    time.Time // event time it fired: activeAt + for
	endsAt      time.Time // event time it resolved
	updatedAt   time.Time // clock time of the last signal
	resolvedAt  time.Time // clock time it resolved (retention)
	signals     int
	ev          evidence
	silencedBy  []string
	routes      []*route
	groups      map[string]bool // keys of the groups it is a member of
	// notified is set once a notification carrying the alert as firing
	// has been queued. An alert that resolves before that stays firing,
	// with holdEnd as its end, until its group's next flush has told the
	// receivers: an attack shorter than group_wait is still notified.
	notified bool
	holdEnd  time.Time
}

// group is the aggregation of alerts on one route with the same group labels.
type group struct {
	key       string
	route     *route
	labels    map[string]string
	members   map[string]bool
	createdAt time.Time
	nextFlush time.Time
	// sent is the last delivered notification per notifier of the
	// receiver (Alertmanager's notification log).
	sent []notifyState
}

type notifyState struct {
	At       time.Time
	Firing   []string // fingerprints delivered as firing, sorted (binary search)
	inflight bool
}

// New checks the configuration against the receivers and returns an idle
// Manager. Start delivery and the timers with Run.
func New(opts Options) (*Manager, error) {
	cfg := opts.Config
	if cfg.Route == nil {
		cfg.Route = Default().Route
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	root, err := compileRoutes(cfg.Route)
	if err != nil {
		return nil, err
	}
	inhibit, err := compileInhibitRules(cfg.InhibitRules)
	if err != nil {
		return nil, err
	}
	m := &Manager{
		cfg: cfg, root: root, routes: map[string]*route{}, receivers: opts.Receivers,
		now: opts.Now, sleep: opts.Sleep, jitter: opts.Jitter, generatorURL: opts.GeneratorURL,
		log: opts.Log, drainTimeout: opts.DrainTimeout, tickInterval: opts.TickInterval,
		alerts: map[string]*entry{}, groups: map[string]*group{}, silences: map[string]*Silence{}, inhibit: inhibit,
		queue: make(chan *job, cfg.QueueSize),
	}
	var bad error
	root.walk(func(r *route) {
		m.routes[r.id] = r
		if _, ok := opts.Receivers[r.receiver]; !ok && bad == nil {
			bad = fmt.Errorf("field %s.receiver: no receiver named %q", r.id, r.receiver)
		}
	})
	if bad != nil {
		return nil, bad
	}
	for i, rc := range cfg.Receivers {
		if _, ok := opts.Receivers[rc.Name]; !ok {
			return nil, fmt.Errorf("field receivers[%d].name: no receiver named %q", i, rc.Name)
		}
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.sleep == nil {
		m.sleep = sleepCtx
	}
	if m.jitter == nil {
		m.jitter = rand.Float64
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	if m.drainTimeout <= 0 {
		m.drainTimeout = 5 * time.Second
	}
	if m.tickInterval == 0 {
		m.tickInterval = time.Second
	}
	m.dlog = newDeliveryLog(cfg.DeliveryLogSize)
	m.metrics = newMetrics(m)
	for name := range opts.Receivers {
		m.metrics.sent.WithLabelValues(name)
		m.metrics.failed.WithLabelValues(name)
	}
	if opts.Registerer != nil {
		if err := m.metrics.register(opts.Registerer); err != nil {
			return nil, fmt.Errorf("register alert metrics: %w", err)
		}
	}
	return m, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// severityRank orders severities, most severe first; unknown values rank
// as warning.
func severityRank(s string) int {
	switch s {
	case SeverityCritical:
		return 0
	case SeverityError:
		return 1
	case SeverityInfo:
		return 3
	}
	return 2
}

// Process applies one signal. A firing signal creates the alert (pending,
// or firing at once when For is zero) or updates it: evidence is merged,
// annotations replaced, never a second alert. A non-firing signal resolves
// a firing alert; a pending alert is dropped without notification.
func (m *Manager) Process(sig Signal) error {
	labels, err := sig.normalize()
	if err != nil {
		return fmt.Errorf("process signal: %w", err)
	}
	now := m.now()
	at := sig.At
	if at.IsZero() {
		at = now
	}
	fp := Fingerprint(labels)

	m.mu.Lock()
	defer m.mu.Unlock()
	m.refreshSilences(now)
	e := m.alerts[fp]
	if !sig.Firing {
		if e == nil {
			return nil
		}
		switch e.state {
		case StatePending:
			if len(e.groups) == 0 {
				m.removeAlert(e)
				return nil
			}
			// It had fired before and its groups still track it: it goes
			// back to resolved.
			m.resolve(e, at, now)
		case StateFiring:
			if !e.notified && len(e.silencedBy) == 0 && len(e.groups) > 0 {
				e.holdEnd = at
				return nil
			}
			m.resolve(e, at, now)
		}
		return nil
	}
	if e != nil {
		e.holdEnd = time.Time{} // firing again: no end to hold
	}
	if e == nil || e.state == StateResolved {
		if !m.makeRoom(labels, at) {
			m.metrics.dropped.Inc()
			m.log.Warn("alert dropped: max_alerts reached", "rule", sig.Rule, "fingerprint", fp, "max_alerts", m.cfg.MaxAlerts)
			return nil
		}
		if e == nil {
			e = &entry{fp: fp, rule: sig.Rule, labels: labels, groups: map[string]bool{}}
			e.routes = m.root.match(labels)
			m.alerts[fp] = e
		} else {
			m.nResolve--
		}
		m.nActive++
		e.state = StatePending
		e.forDur = sig.For
		e.activeAt = at
		if len(e.groups) == 0 {
			e.startsAt, e.endsAt = time.Time{}, time.Time{}
		}
		// Otherwise groups still hold it as resolved, to be notified with
		// its last firing period until it fires again.
		e.resolvedAt = time.Time{}
		e.signals = 0
		e.ev = evidence{}
		e.silencedBy = m.silencedBy(labels)
	}
	e.signals++
	e.ev.add(sig.Evidence)
	e.annotations = maps.Clone(sig.Annotations)
	e.updatedAt = now
	if e.state == StatePending && !at.Before(e.activeAt.Add(e.forDur)) {
		m.fire(e, now)
	}
	return nil
}

// makeRoom ensures there is space for one more active alert. When full it
// drops the least severe, oldest alert, which may be the newcomer (then it
// reports false).
func (m *Manager) makeRoom(labels map[string]string, at time.Time) bool {
	if m.nActive < m.cfg.MaxAlerts {
		return true
	}
	victim := m.worstActive()
	if victim == nil {
		return false
	}
	newRank, vRank := severityRank(labels["severity"]), severityRank(victim.labels["severity"])
	if newRank > vRank || (newRank == vRank && at.Before(victim.activeAt)) {
		return false
	}
	m.log.Warn("alert dropped: max_alerts reached", "fingerprint", victim.fp, "rule", victim.rule, "state", victim.state)
	m.metrics.dropped.Inc()
	m.removeAlert(victim)
	return true
}

// removeAlert forgets an alert and takes it out of its groups without
// notification.
func (m *Manager) removeAlert(e *entry) {
	for key := range e.groups {
		if g := m.groups[key]; g != nil {
			delete(g.members, e.fp)
			m.maybeDeleteGroup(g)
		}
	}
	switch e.state {
	case StateResolved:
		m.nResolve--
	default:
		m.nActive--
	}
	delete(m.alerts, e.fp)
}

// fire turns a pending alert to firing and adds it to its groups.
func (m *Manager) fire(e *entry, now time.Time) {
	e.state = StateFiring
	e.startsAt = e.activeAt.Add(e.forDur)
	for _, r := range e.routes {
		gl := r.groupLabels(e.labels)
		key := r.id + sortedLabelString(gl)
		g := m.groups[key]
		if g == nil {
			g = &group{
				key: key, route: r, labels: gl, members: map[string]bool{},
				createdAt: now, nextFlush: now.Add(r.groupWait),
				sent: make([]notifyState, len(m.receivers[r.receiver])),
			}
			m.groups[key] = g
		}
		g.members[e.fp] = true
		e.groups[key] = true
	}
}

func (m *Manager) resolve(e *entry, at, now time.Time) {
	if e.state != StateResolved {
		m.nActive--
		m.nResolve++
	}
	e.state = StateResolved
	if at.Before(e.startsAt) {
		at = e.startsAt
	}
	e.endsAt = at
	e.resolvedAt = now
	e.updatedAt = now
	if m.nResolve > 2*m.cfg.MaxAlerts {
		m.trimResolved()
	}
}

// trimResolved drops the oldest resolved alerts beyond max_alerts.
func (m *Manager) trimResolved() {
	if m.nResolve <= m.cfg.MaxAlerts {
		return
	}
	var res []*entry
	for _, e := range m.alerts {
		if e.state == StateResolved {
			res = append(res, e)
		}
	}
	sort.Slice(res, func(i, j int) bool {
		if !res[i].resolvedAt.Equal(res[j].resolvedAt) {
			return res[i].resolvedAt.Before(res[j].resolvedAt)
		}
		return res[i].fp < res[j].fp
	})
	for _, e := range res[:len(res)-m.cfg.MaxAlerts] {
		m.removeAlert(e)
	}
}

// Tick advances time to now: pending alerts whose For has run fire, groups
// whose timer is due are flushed to their notifiers, resolved alerts and
// expired silences past retention are dropped. Run calls it every second;
// tests call it with a fake time.
func (m *Manager) Tick(now time.Time) {
	m.mu.Lock()
	m.refreshSilences(now)
	for _, e := range m.alerts {
		if e.state == StatePending && !now.Before(e.activeAt.Add(e.forDur)) {
			m.fire(e, now)
		}
	}
	keys := make([]string, 0, len(m.groups))
	for k, g := range m.groups {
		if !now.Before(g.nextFlush) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var jobs []*job
	var muting inhibitIndex
	if len(keys) > 0 {
		muting = m.inhibitSources()
	}
	for _, k := range keys {
		if g := m.groups[k]; g != nil {
			jobs = append(jobs, m.flush(g, now, muting)...)
		}
	}
	retention := time.Duration(m.cfg.Retention)
	for _, e := range m.alerts {
		if e.state == StateResolved && len(e.groups) == 0 && !now.Before(e.resolvedAt.Add(retention)) {
			m.removeAlert(e)
		}
	}
	m.trimResolved()
	for id, s := range m.silences {
		if !now.Before(s.EndsAt.Add(retention)) {
			delete(m.silences, id)
		}
	}
	m.mu.Unlock()
	m.enqueue(jobs)
}

// flush decides, per notifier of the group's receiver, whether to notify,
// like Alertmanager: new firing alerts, resolved alerts the notifier was
// told about (send_resolved), or the repeat interval passing. Silenced
// alerts, and those muting holds (inhibit rules), are not notified.
func (m *Manager) flush(g *group, now time.Time, muting inhibitIndex) []*job {
	r := g.route
	g.nextFlush = now.Add(r.groupInterval)
	notifiers := m.receivers[r.receiver]
	sendResolved := m.cfg.sendResolved(r.receiver)

	var firing, firingSilenced []*entry
	var resolved []*entry // resolved, or pending again after firing
	for fp := range g.members {
		e := m.alerts[fp]
		switch {
		case e == nil:
			delete(g.members, fp)
		case e.state == StateFiring && len(e.silencedBy) == 0 && len(m.inhibitedBy(e, muting)) == 0:
			firing = append(firing, e)
		case e.state == StateFiring:
			firingSilenced = append(firingSilenced, e)
		default:
			resolved = append(resolved, e)
		}
	}
	sortEntries(firing)
	sortEntries(resolved)
	firingFPs := fingerprints(firing)

	var jobs []*job
	for i := range g.sent {
		st := &g.sent[i]
		if st.inflight || i >= len(notifiers) {
			continue
		}
		var known []*entry
		newFiring := false
		for _, e := range firing {
			if !has(st.Firing, e.fp) {
				newFiring = true
				break
			}
		}
		for _, e := range resolved {
			if has(st.Firing, e.fp) {
				known = append(known, e)
			}
		}
		send := len(firing) > 0 && (newFiring || (sendResolved && len(known) > 0) || !now.Before(st.At.Add(r.repeatInterval)))
		if len(firing) == 0 && len(known) > 0 && sendResolved {
			send = true
		}
		if !send {
			// Forget what the notifier need not hear about: alerts that left
			// the group, and resolved ones when send_resolved is off.
			keep := st.Firing[:0:0]
			for _, fp := range st.Firing {
				if e := m.alerts[fp]; e != nil && g.members[fp] && e.state == StateFiring {
					keep = append(keep, fp)
				}
			}
			st.Firing = keep
			continue
		}
		alerts := make([]Alert, 0, len(firing)+len(known))
		renewBy := now.Add(r.repeatInterval + 2*r.groupInterval)
		for _, e := range firing {
			a := m.toAlert(e, StateFiring)
			a.RenewBy = renewBy
			alerts = append(alerts, a)
			e.notified = true
		}
		if sendResolved {
			for _, e := range known {
				alerts = append(alerts, m.toAlert(e, StateResolved))
			}
		}
		// The notifier still knows silenced alerts it was told about as
		// firing, so that it hears when they resolve.
		told := slices.Clone(firingFPs)
		for _, e := range firingSilenced {
			if has(st.Firing, e.fp) {
				told = append(told, e.fp)
			}
		}
		slices.Sort(told)
		st.inflight = true
		jobs = append(jobs, &job{
			groupKey: g.key, receiver: r.receiver, index: i, notifier: notifiers[i],
			alerts: alerts, firing: told, flushAt: now, deadline: now.Add(r.groupInterval),
		})
	}
	// Alerts whose end was held until a notification told of them end
	// now; the group's next flush tells their resolution.
	for _, e := range firing {
		if e.notified && !e.holdEnd.IsZero() {
			end := e.holdEnd
			e.holdEnd = time.Time{}
			m.resolve(e, end, now)
		}
	}
	// Resolved members leave the group once no notifier still knows them
	// as firing.
	for _, e := range resolved {
		gone := true
		for _, st := range g.sent {
			if st.inflight || has(st.Firing, e.fp) {
				gone = false
				break
			}
		}
		if gone {
			delete(g.members, e.fp)
			delete(e.groups, g.key)
		}
	}
	m.maybeDeleteGroup(g)
	return jobs
}

// has reports whether the sorted list holds fp.
func has(sorted []string, fp string) bool {
	_, ok := slices.BinarySearch(sorted, fp)
	return ok
}

// maybeDeleteGroup deletes a group without members or deliveries in flight.
func (m *Manager) maybeDeleteGroup(g *group) {
	if len(g.members) > 0 {
		return
	}
	for _, st := range g.sent {
		if st.inflight {
			return
		}
	}
	delete(m.groups, g.key)
}

func sortEntries(es []*entry) {
	sort.Slice(es, func(i, j int) bool {
		if !es[i].startsAt.Equal(es[j].startsAt) {
			return es[i].startsAt.Before(es[j].startsAt)
		}
		return es[i].fp < es[j].fp
	})
}

func fingerprints(es []*entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.fp
	}
	sort.Strings(out)
	return out
}

func (m *Manager) toAlert(e *entry, status string) Alert {
	a := Alert{
		Fingerprint: e.fp, Status: status,
		Labels: maps.Clone(e.labels), Annotations: maps.Clone(e.annotations),
		StartsAt: e.startsAt, Evidence: e.ev.seqs(),
	}
	if status == StateResolved {
		a.EndsAt = e.endsAt
	}
	if a.Annotations == nil {
		a.Annotations = map[string]string{}
	}
	if m.generatorURL != nil {
		a.GeneratorURL = m.generatorURL(e.fp)
	}
	return a
}

// delivered records the outcome of a job in its group's notification state.
func (m *Manager) delivered(j *job, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	g := m.groups[j.groupKey]
	if g == nil || j.index >= len(g.sent) {
		return
	}
	st := &g.sent[j.index]
	st.inflight = false
	if ok {
		st.At = j.flushAt
		st.Firing = j.firing
	}
}

// refreshSilences recomputes which alerts are silenced when the silences
// changed or one of them started or ended since the last evaluation.
func (m *Manager) refreshSilences(now time.Time) {
	if m.silenceEvaluated && m.silenceGen == m.silenceApplied && now.Before(m.silenceNext) {
		return
	}
	m.silenceEvaluated = true
	m.silenceApplied = m.silenceGen
	m.activeSilences = m.activeSilences[:0]
	next := now.Add(24 * time.Hour)
	for _, s := range m.silences {
		if s.active(now) {
			m.activeSilences = append(m.activeSilences, s)
		}
		if now.Before(s.StartsAt) && s.StartsAt.Before(next) {
			next = s.StartsAt
		}
		if now.Before(s.EndsAt) && s.EndsAt.Before(next) {
			next = s.EndsAt
		}
	}
	m.silenceNext = next
	for _, e := range m.alerts {
		if e.state != StateResolved {
			e.silencedBy = m.silencedBy(e.labels)
		}
	}
}

// inhibitIndex holds, for each inhibit rule, the firing alerts matching
// its source side, by the values of the rule's equal labels.
type inhibitIndex []map[string][]*entry

// inhibitSources indexes the firing alerts that can mute others.
func (m *Manager) inhibitSources() inhibitIndex {
	if len(m.inhibit) == 0 {
		return nil
	}
	idx := make(inhibitIndex, len(m.inhibit))
	for _, e := range m.alerts {
		if e.state != StateFiring {
			continue
		}
		for i, r := range m.inhibit {
			if r.source.Matches(e.labels) {
				if idx[i] == nil {
					idx[i] = map[string][]*entry{}
				}
				k := equalKey(r.equal, e.labels)
				idx[i][k] = append(idx[i][k], e)
			}
		}
	}
	return idx
}

// equalKey joins the values of the labels names (absent: empty).
func equalKey(names []string, labels map[string]string) string {
	var b strings.Builder
	for _, n := range names {
		b.WriteString(labels[n])
		b.WriteByte(0xff) // not in UTF-8 text
	}
	return b.String()
}

// inhibitedBy returns the fingerprints of the firing alerts that mute e,
// sorted, from idx (inhibitSources).
func (m *Manager) inhibitedBy(e *entry, idx inhibitIndex) []string {
	var out []string
	for i, r := range m.inhibit {
		if idx == nil || idx[i] == nil || !r.target.Matches(e.labels) {
			continue
		}
		both := r.source.Matches(e.labels)
		for _, s := range idx[i][equalKey(r.equal, e.labels)] {
			if s == e || both && r.target.Matches(s.labels) {
				continue
			}
			out = append(out, s.fp)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// silencedBy returns the IDs of the active silences that match labels.
func (m *Manager) silencedBy(labels map[string]string) []string {
	var ids []string
	for _, s := range m.activeSilences {
		if s.Matchers.Matches(labels) {
			ids = append(ids, s.ID)
		}
	}
	sort.Strings(ids)
	return ids
}

// AddSilence stores a new silence. ID, CreatedAt, UpdatedAt and Status are
// set by the manager; a zero StartsAt means now.
func (m *Manager) AddSilence(s Silence) (Silence, error) {
	now := m.now()
	s.ID, s.CreatedAt, s.UpdatedAt, s.Status = newSilenceID(), now, now, ""
	if s.StartsAt.IsZero() || s.StartsAt.Before(now) {
		s.StartsAt = now
	}
	if err := s.validate(now, false); err != nil {
		return Silence{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.silences) >= m.cfg.MaxSilences {
		return Silence{}, fmt.Errorf("add silence: %w (max_silences %d; expire some or wait for retention)", ErrTooManySilences, m.cfg.MaxSilences)
	}
	stored := s.clone()
	m.silences[s.ID] = &stored
	m.silenceGen++
	m.refreshSilences(now)
	out := stored.clone()
	out.Status = out.status(now)
	return out, nil
}

// ExpireSilence ends a silence now. Expiring an expired silence changes
// nothing.
func (m *Manager) ExpireSilence(id string) (Silence, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.silences[id]
	if s == nil {
		return Silence{}, fmt.Errorf("expire silence %q: %w", id, ErrNotFound)
	}
	if s.status(now) != SilenceExpired {
		if now.Before(s.StartsAt) {
			s.StartsAt = now
		}
		s.EndsAt = now
		s.UpdatedAt = now
		m.silenceGen++
		m.refreshSilences(now)
	}
	out := s.clone()
	out.Status = out.status(now)
	return out, nil
}

// Silences returns the silences in the given states (all when none),
// active first, then pending, then expired, newest first within a state.
func (m *Manager) Silences(states ...string) []Silence {
	now := m.now()
	m.mu.Lock()
	out := make([]Silence, 0, len(m.silences))
	for _, s := range m.silences {
		c := s.clone()
		c.Status = c.status(now)
		if len(states) == 0 || slices.Contains(states, c.Status) {
			out = append(out, c)
		}
	}
	m.mu.Unlock()
	order := map[string]int{SilenceActive: 0, SilencePending: 1, SilenceExpired: 2}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if order[a.Status] != order[b.Status] {
			return order[a.Status] < order[b.Status]
		}
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.After(b.CreatedAt)
		}
		return a.ID < b.ID
	})
	return out
}

// Silence returns one silence.
func (m *Manager) Silence(id string) (Silence, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.silences[id]
	if s == nil {
		return Silence{}, fmt.Errorf("silence %q: %w", id, ErrNotFound)
	}
	c := s.clone()
	c.Status = c.status(now)
	return c, nil
}

// AlertInfo is an alert as the API shows it.
type AlertInfo struct {
	Fingerprint string            `json:"fingerprint"`
	State       string            `json:"state"`
	Rule        string            `json:"rule"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	// ActiveAt is when the condition started to hold (pending began).
	ActiveAt time.Time `json:"activeAt"`
	StartsAt time.Time `json:"startsAt,omitzero"` // when it fired
	EndsAt   time.Time `json:"endsAt,omitzero"`   // when it resolved
	// UpdatedAt is when the last signal arrived.
	UpdatedAt  time.Time `json:"updatedAt"`
	For        string    `json:"for,omitempty"`
	SilencedBy []string  `json:"silencedBy"`
	Silenced   bool      `json:"silenced"`
	// InhibitedBy lists the firing alerts that mute this one through an
	// inhibit rule (fingerprints); Inhibited is true when there is one.
	InhibitedBy []string `json:"inhibitedBy"`
	Inhibited   bool     `json:"inhibited"`
	Receivers   []string `json:"receivers"`
	// Signals counts the firing signals merged into the alert.
	Signals       int `json:"signals"`
	EvidenceCount int `json:"evidenceCount"`
	// Evidence holds the kept sequence numbers (single-alert view only).
	Evidence []uint64 `json:"evidence,omitempty"`
}

// AlertFilter selects alerts. Zero fields select everything.
type AlertFilter struct {
	States   []string
	Matchers Matchers
	Receiver string
	Silenced *bool
	// Inhibited selects alerts muted (true) or not muted (false) by an
	// inhibit rule.
	Inhibited *bool
	Limit     int
}

func (m *Manager) info(e *entry, withEvidence bool, muting inhibitIndex) AlertInfo {
	a := AlertInfo{
		Fingerprint: e.fp, State: e.state, Rule: e.rule,
		Labels: maps.Clone(e.labels), Annotations: maps.Clone(e.annotations),
		ActiveAt: e.activeAt, StartsAt: e.startsAt, EndsAt: e.endsAt, UpdatedAt: e.updatedAt,
		SilencedBy: slices.Clone(e.silencedBy), Silenced: len(e.silencedBy) > 0 && e.state != StateResolved,
		Receivers: receiversOf(e.routes), Signals: e.signals, EvidenceCount: e.ev.Total,
	}
	if a.SilencedBy == nil {
		a.SilencedBy = []string{}
	}
	a.InhibitedBy = []string{}
	if e.state != StateResolved {
		a.InhibitedBy = append(a.InhibitedBy, m.inhibitedBy(e, muting)...)
	}
	a.Inhibited = len(a.InhibitedBy) > 0
	if a.Annotations == nil {
		a.Annotations = map[string]string{}
	}
	if e.forDur > 0 {
		a.For = e.forDur.String()
	}
	if withEvidence {
		a.Evidence = e.ev.seqs()
	}
	return a
}

func receiversOf(rs []*route) []string {
	var out []string
	for _, r := range rs {
		if !slices.Contains(out, r.receiver) {
			out = append(out, r.receiver)
		}
	}
	return out
}

// Alerts lists the alerts the filter selects: firing, then pending, then
// resolved; most severe first; newest first.
func (m *Manager) Alerts(f AlertFilter) []AlertInfo {
	m.mu.Lock()
	muting := m.inhibitSources()
	var sel []*entry
	for _, e := range m.alerts {
		if len(f.States) > 0 && !slices.Contains(f.States, e.state) {
			continue
		}
		if f.Silenced != nil && *f.Silenced != (len(e.silencedBy) > 0 && e.state != StateResolved) {
			continue
		}
		if f.Inhibited != nil && *f.Inhibited != (e.state != StateResolved && len(m.inhibitedBy(e, muting)) > 0) {
			continue
		}
		if f.Receiver != "" && !slices.Contains(receiversOf(e.routes), f.Receiver) {
			continue
		}
		if !f.Matchers.Matches(e.labels) {
			continue
		}
		sel = append(sel, e)
	}
	order := map[string]int{StateFiring: 0, StatePending: 1, StateResolved: 2}
	sort.Slice(sel, func(i, j int) bool {
		a, b := sel[i], sel[j]
		if order[a.state] != order[b.state] {
			return order[a.state] < order[b.state]
		}
		if ra, rb := severityRank(a.labels["severity"]), severityRank(b.labels["severity"]); ra != rb {
			return ra < rb
		}
		if !a.activeAt.Equal(b.activeAt) {
			return a.activeAt.After(b.activeAt)
		}
		return a.fp < b.fp
	})
	if f.Limit > 0 && len(sel) > f.Limit {
		sel = sel[:f.Limit]
	}
	out := make([]AlertInfo, len(sel))
	for i, e := range sel {
		out[i] = m.info(e, false, muting)
	}
	m.mu.Unlock()
	return out
}

// Alert returns one alert with its evidence.
func (m *Manager) Alert(fingerprint string) (AlertInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.alerts[fingerprint]
	if e == nil {
		return AlertInfo{}, fmt.Errorf("alert %q: %w", fingerprint, ErrNotFound)
	}
	return m.info(e, true, m.inhibitSources()), nil
}

// Deliveries returns the delivery log, newest first.
func (m *Manager) Deliveries(f DeliveryFilter) []Delivery { return m.dlog.list(f) }

// Run delivers notifications with the worker pool and ticks the manager
// every second (TickInterval) with the clock until ctx ends; then it stops the timers and
// gives queued deliveries up to the drain timeout (no more retries). It
// may be called once.
func (m *Manager) Run(ctx context.Context) error {
	m.qmu.Lock()
	if m.started {
		m.qmu.Unlock()
		return errors.New("alert manager: Run called twice")
	}
	m.started = true
	m.qmu.Unlock()

	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	var wg sync.WaitGroup
	for range m.cfg.Workers {
		wg.Go(func() { m.worker(ctx, workCtx) })
	}
	if m.tickInterval > 0 {
		t := time.NewTicker(m.tickInterval)
		for done := false; !done; {
			select {
			case <-ctx.Done():
				done = true
			case <-t.C:
				m.Tick(m.now())
			}
		}
		t.Stop()
	} else {
		<-ctx.Done()
	}
	m.qmu.Lock()
	m.closed = true
	m.qmu.Unlock()
	stop := time.AfterFunc(m.drainTimeout, cancelWork)
	wg.Wait()
	stop.Stop()
	return nil
}

// WaitIdle waits until no delivery is queued or in progress, or ctx ends.
func (m *Manager) WaitIdle(ctx context.Context) error {
	m.qmu.Lock()
	if m.inflight == 0 {
		m.qmu.Unlock()
		return nil
	}
	ch := m.idle
	m.qmu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for deliveries: %w", ctx.Err())
	}
}
