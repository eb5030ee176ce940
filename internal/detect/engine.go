package detect

import (
	"slices"
	"sync"
	"time"

	"github.com/vigilsec/vigil/internal/detect/filter"
	"github.com/vigilsec/vigil/internal/event"
)

// Signal is what the engine emits: a rule's condition started holding for a
// group (Firing), or stopped holding (resolved). The alert manager keys
// alerts by Rule and Group.
type Signal struct {
	Rule        string            // rule name
	Severity    string            // critical, error, warning, info
	For         time.Duration     // the rule's "for", for the alert manager
	Group       map[string]string // group-by field -> value (empty map without group_by)
	Labels      map[string]string // rule labels, group values, alertname, severity, rule
	Annotations map[string]string // rendered templates (summary at least)
	Firing      bool              // true: condition holds now; false: it stopped holding
	At          time.Time         // event time of the cause, or the Tick time
	Seq         uint64            // sequence number of the event that caused it; 0 from Tick and SetRules
	Evidence    []uint64          // bounded sample of contributing events: the first and the last few, ascending
	Action      *Action           // automatic response, with Value set, if the rule has one
	Value       float64           // measured value (see TemplateData.Value)
}

// Stats are the engine's counters, for metrics.
type Stats struct {
	Events        uint64 // events processed
	Firing        uint64 // firing signals emitted (keep-alives included)
	Resolved      uint64 // resolved signals emitted
	GroupsEvicted uint64 // groups dropped because a rule had max_groups groups (or keys)
	Groups        int    // groups held now, all rules
	FiringGroups  int    // groups whose condition holds now (firing alerts)
	Rules         []RuleStats
}

// RuleStats are one rule's counters.
type RuleStats struct {
	Name          string
	Matches       uint64 // events that matched the rule's filter (any step for sequences)
	Firing        uint64
	Resolved      uint64
	GroupsEvicted uint64
	Groups        int
	FiringGroups  int
}

// Engine evaluates a rule set over a stream of events. Its methods are safe
// for concurrent use (they serialize on a mutex); Process is meant to be
// called by one cursor in sequence order.
type Engine struct {
	mu       sync.Mutex
	rules    []*ruleRT
	byAction map[string][]*ruleRT
	always   []*ruleRT
	doc      filter.Doc
	// watermark is the latest event time seen; windows are cut relative
	// to it. clock is the latest of watermark and the last Tick.
	watermark time.Time
	clock     time.Time
	events    uint64
	keyBuf    []byte
	// retired counters of rules that were removed, so totals never go down.
	retired RuleStats
}

// ruleRT is a rule with its running state.
type ruleRT struct {
	rule  *Rule
	state evaluator
	stats RuleStats
}

// evaluator is the running state of one rule kind.
type evaluator interface {
	process(x *ctx)
	tick(x *ctx)
	// resolveAll resolves every firing group (the rule is going away).
	resolveAll(x *ctx)
	groups() int
	firing() int
}

// ctx carries one Process or Tick call into the evaluators.
type ctx struct {
	e     *Engine
	rt    *ruleRT
	doc   *filter.Doc // nil from Tick
	seq   uint64      // 0 from Tick
	t     time.Time   // event time, or the Tick time
	wm    time.Time   // watermark
	out   []Signal
	check bool // the rule's filter has been evaluated (and matched)
}

// NewEngine returns an engine running the enabled rules of rs.
func NewEngine(rs *RuleSet) *Engine {
	e := &Engine{}
	e.SetRules(rs)
	return e
}

// SetRules swaps the rule set. Rules whose name and definition did not change
// keep their state (windows, firing groups); removed, disabled or changed
// rules resolve their firing groups, returned as signals at the engine's
// clock.
func (e *Engine) SetRules(rs *RuleSet) []Signal {
	e.mu.Lock()
	defer e.mu.Unlock()
	old := map[string]*ruleRT{}
	for _, rt := range e.rules {
		old[rt.rule.Name] = rt
	}
	var rules []*ruleRT
	if rs != nil {
		for _, r := range rs.Enabled() {
			if rt, ok := old[r.Name]; ok && rt.rule.fingerprint == r.fingerprint {
				delete(old, r.Name)
				rt.rule = r
				rules = append(rules, rt)
				continue
			}
			rules = append(rules, &ruleRT{rule: r, state: newEvaluator(r), stats: RuleStats{Name: r.Name}})
		}
	}
	x := &ctx{e: e, t: e.clock, wm: e.watermark}
	for _, rt := range e.rules {
		if _, gone := old[rt.rule.Name]; gone {
			x.rt = rt
			rt.state.resolveAll(x)
			e.retired.Matches += rt.stats.Matches
			e.retired.Firing += rt.stats.Firing
			e.retired.Resolved += rt.stats.Resolved
			e.retired.GroupsEvicted += rt.stats.GroupsEvicted
		}
	}
	e.rules = rules
	e.index()
	return x.out
}

// index builds the per-action lists of rules to run.
func (e *Engine) index() {
	e.byAction = map[string][]*ruleRT{}
	e.always = nil
	need := make([][]string, len(e.rules))
	for i, rt := range e.rules {
		acts, ok := rt.rule.requiredActions()
		if !ok {
			e.always = append(e.always, rt)
			continue
		}
		need[i] = acts
		for _, a := range acts {
			e.byAction[a] = nil
		}
	}
	for a := range e.byAction {
		var list []*ruleRT
		for i, rt := range e.rules {
			if need[i] == nil || slices.Contains(need[i], a) {
				list = append(list, rt)
			}
		}
		e.byAction[a] = list
	}
}

// requiredActions returns the event.action values the rule can match, when
// they are known.
func (r *Rule) requiredActions() ([]string, bool) {
	const field = "event.action"
	switch r.eval {
	case KindRatio:
		if r.ratio.total == nil {
			return nil, false
		}
		return r.ratio.total.Requires(field)
	case KindSequence:
		var all []string
		for _, s := range r.sequence.steps {
			v, ok := s.filter.Requires(field)
			if !ok {
				return nil, false
			}
			all = append(all, v...)
		}
		return all, true
	}
	return r.Filter.Requires(field)
}

// MaxWindow returns how far before its cursor the wiring must replay events
// after a restart (see RuleSet.MaxWindow).
func (e *Engine) MaxWindow() time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	var m time.Duration
	for _, rt := range e.rules {
		m = max(m, rt.rule.MaxWindow())
	}
	return m
}

// Process evaluates one committed event, with its sequence number, and
// returns the signals it causes (nil when none).
func (e *Engine) Process(seq uint64, ev *event.Event) []Signal {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.events++
	if ev.Time.After(e.watermark) {
		e.watermark = ev.Time
	}
	if e.watermark.After(e.clock) {
		e.clock = e.watermark
	}
	rules := e.always
	if list, ok := e.byAction[ev.Action]; ok {
		rules = list
	}
	if len(rules) == 0 {
		return nil
	}
	e.doc.Reset(ev)
	x := ctx{e: e, doc: &e.doc, seq: seq, t: ev.Time, wm: e.watermark}
	for _, rt := range rules {
		x.rt = rt
		rt.state.process(&x)
	}
	e.doc.Reset(nil)
	return x.out
}

// Tick advances the engine's clock to now (never backwards) and returns the
// signals of conditions that stopped holding: windows that emptied, rules
// that fire on single events silent for resolve_after, and keep-alives of
// rules with repeat.
func (e *Engine) Tick(now time.Time) []Signal {
	e.mu.Lock()
	defer e.mu.Unlock()
	if now.After(e.clock) {
		e.clock = now
	}
	x := ctx{e: e, t: e.clock, wm: e.watermark}
	for _, rt := range e.rules {
		x.rt = rt
		rt.state.tick(&x)
	}
	return x.out
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := Stats{Events: e.events, Firing: e.retired.Firing, Resolved: e.retired.Resolved, GroupsEvicted: e.retired.GroupsEvicted}
	for _, rt := range e.rules {
		rs := rt.stats
		rs.Groups = rt.state.groups()
		rs.FiringGroups = rt.state.firing()
		s.FiringGroups += rs.FiringGroups
		s.Rules = append(s.Rules, rs)
		s.Firing += rs.Firing
		s.Resolved += rs.Resolved
		s.GroupsEvicted += rs.GroupsEvicted
		s.Groups += rs.Groups
	}
	return s
}

// groupKey builds the group key of the current event for the rule's group
// fields in x.e.keyBuf, with the values; a missing field is an empty value.
func (x *ctx) groupKey(fields []filter.Field) []byte {
	b := x.e.keyBuf[:0]
	for i, f := range fields {
		if i > 0 {
			b = append(b, 0x1f)
		}
		n := len(b)
		b, _ = f.AppendFirst(b, x.doc)
		for j := n; j < len(b); j++ {
			if b[j] == 0x1f { // the separator cannot be part of a value
				b[j] = '?'
			}
		}
	}
	x.e.keyBuf = b
	return b
}

// splitKey returns the group values of a key built by groupKey.
func splitKey(key string, n int) []string {
	if n == 0 {
		return nil
	}
	vals := make([]string, 0, n)
	for range n - 1 {
		i := indexByte(key, 0x1f)
		if i < 0 {
			break
		}
		vals = append(vals, key[:i])
		key = key[i+1:]
	}
	return append(vals, key)
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// emit appends a signal of the current rule.
func (x *ctx) emit(g *groupHead, firing bool, at time.Time, seq uint64, evidence []uint64, value float64, count int) {
	r := x.rt.rule
	group := make(map[string]string, len(r.GroupBy))
	for i, name := range r.GroupBy {
		if i < len(g.vals) {
			group[name] = g.vals[i]
		}
	}
	for k, v := range g.extra {
		group[k] = v
	}
	data := TemplateData{
		Rule: r.Name, Kind: r.Kind, Severity: r.Severity, Description: r.Description,
		Value: value, Threshold: r.Threshold(), Count: count, Firing: firing, Window: r.Window,
		group: group,
	}
	if seq != 0 && seq == x.seq {
		data.doc = x.doc
	}
	ann := r.annotations(data)
	if firing {
		g.ann = ann
	} else if g.ann != nil {
		// A resolved alert is the same alert: it keeps the words it fired with.
		ann, g.ann = g.ann, nil
	}
	s := Signal{
		Rule: r.Name, Severity: r.Severity, For: r.For, Group: group,
		Labels: r.labelsFor(group), Annotations: ann,
		Firing: firing, At: at, Seq: seq, Evidence: evidence, Value: value,
	}
	if r.Action != nil {
		a := *r.Action
		if v, ok := group[a.Field]; ok {
			a.Value = v
		} else if data.doc != nil {
			if f, err := filter.ParseField(a.Field); err == nil {
				a.Value, _ = f.First(data.doc)
			}
		}
		s.Action = &a
	}
	if firing {
		x.rt.stats.Firing++
		g.lastEmit = at
	} else {
		x.rt.stats.Resolved++
	}
	x.out = append(x.out, s)
}

// evidence keeps the first and the last few sequence numbers of a run of
// events.
type evidence struct {
	first []uint64
	last  [evidenceEnds]uint64
	n     int // events added after first filled
}

func (ev *evidence) reset() { ev.first, ev.n = ev.first[:0], 0 }

func (ev *evidence) add(seq uint64) {
	if len(ev.first) < evidenceEnds {
		ev.first = append(ev.first, seq)
		return
	}
	ev.last[ev.n%evidenceEnds] = seq
	ev.n++
}

func (ev *evidence) list() []uint64 {
	out := slices.Clone(ev.first)
	k := min(ev.n, evidenceEnds)
	for i := ev.n - k; i < ev.n; i++ {
		out = append(out, ev.last[i%evidenceEnds])
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// evidenceOf returns the first and last few of seqs (in order given),
// ascending.
func evidenceOf(seqs []uint64) []uint64 {
	var out []uint64
	if len(seqs) <= 2*evidenceEnds {
		out = slices.Clone(seqs)
	} else {
		out = append(slices.Clone(seqs[:evidenceEnds]), seqs[len(seqs)-evidenceEnds:]...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func newEvaluator(r *Rule) evaluator {
	switch r.eval {
	case KindThreshold:
		return newThreshold(r)
	case KindRatio:
		return newRatio(r)
	case KindSequence:
		return newSequence(r)
	case KindNewValue:
		return newNewValue(r)
	case KindSpike:
		return newSpike(r)
	}
	return newMatch(r)
}
