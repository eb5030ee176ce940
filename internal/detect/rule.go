// Package detect is Vigil's detection engine: rules loaded from YAML (and
// SigmaHQ files), evaluated as a stream over committed events, emitting
// signals that the alert manager turns into alerts.
//
// The engine is pure and deterministic. It reads events with their sequence
// numbers (Process) and an explicit current time (Tick); it never reads the
// wall clock. Windows run on event time. Given the same events in the same
// order and the same ticks, it emits the same signals in the same order, which
// is what lets the wiring rebuild its state after a restart by replaying the
// last MaxWindow of events and discarding the signals of events at or before
// its saved cursor.
//
// Rule kinds: match, threshold, ratio, sequence, new_value, spike and sigma;
// see docs/rules.md for the file format and every kind's semantics.
package detect

import (
	"fmt"
	"maps"
	"slices"
	"text/template"
	"time"

	"github.com/vigilsec/vigil/internal/detect/filter"
)

// Rule kinds.
const (
	KindMatch     = "match"
	KindThreshold = "threshold"
	KindRatio     = "ratio"
	KindSequence  = "sequence"
	KindNewValue  = "new_value"
	KindSpike     = "spike"
	KindSigma     = "sigma"
)

// Kinds lists the rule kinds.
var Kinds = []string{KindMatch, KindThreshold, KindRatio, KindSequence, KindNewValue, KindSpike, KindSigma}

// Severities, most severe first: the values of Alertmanager's and
// PagerDuty's conventions.
const (
	SeverityCritical = "critical"
	SeverityError    = "error"
	SeverityWarning  = "warning"
	SeverityInfo     = "info"
)

// Action types and scopes of automatic responses.
const (
	ActionBan      = "ban"
	ActionThrottle = "throttle"
	ScopeIP        = "ip"
	ScopeUser      = "user"
)

// Defaults and limits of rules.
const (
	DefaultResolveAfter = 5 * time.Minute
	DefaultMaxGroups    = 10000
	MaxMaxGroups        = 1000000
	DefaultMaxKeys      = 10000 // new_value
	DefaultMaxValues    = 100   // new_value, per key
	MaxWindowAllowed    = 90 * 24 * time.Hour
	maxSeriesPoints     = 128 // exact window entries per group before merging
	maxDistinct         = 4096
	maxSteps            = 16
	maxStepCount        = 1000
	maxBaseline         = 10000
	ratioSlots          = 30
	evidenceEnds        = 5 // first and last seqs kept as evidence
)

// Action is an automatic response a rule asks for. Vigil's respond package
// executes it; the engine only passes it through in signals.
type Action struct {
	Type  string        // ActionBan or ActionThrottle
	Scope string        // ScopeIP or ScopeUser
	Field string        // field whose value is acted on: source.ip, user.name, ...
	TTL   time.Duration // how long the response lasts
	// Value is, in a signal, the value of Field for the signal's group (or
	// the event that caused it). It may be empty when the events had no such
	// field; an executor must then do nothing.
	Value string
}

// Rule is one compiled detection rule. Rules are read-only once loaded.
type Rule struct {
	Name        string
	Description string
	Kind        string
	Severity    string
	Enabled     bool
	Builtin     bool   // from the embedded pack
	Source      string // where it was defined: "file.yml:12", "builtin/auth.yml:3"
	// Filter selects the events of the rule (nil for sequence rules, whose
	// steps have their own filters).
	Filter       *filter.Filter
	GroupBy      []string // group_by, or by for sequence and new_value
	Window       time.Duration
	For          time.Duration // passed through to the alert manager
	Repeat       time.Duration // re-emit a firing signal this often (0: never)
	ResolveAfter time.Duration // match, sequence, new_value, sigma without aggregation
	MaxGroups    int
	Labels       map[string]string
	Annotations  map[string]string // templates, as written
	Action       *Action

	eval        string // kind evaluated: sigma rules run as match or threshold
	groupFields []filter.Field
	templates   map[string]*template.Template
	fingerprint string

	threshold thresholdParams
	ratio     ratioParams
	sequence  sequenceParams
	newValue  newValueParams
	spike     spikeParams
	sigmaInfo *sigmaInfo
}

type thresholdParams struct {
	threshold float64
	distinct  filter.Field // distinct count of this field when set
	sum       filter.Field // sum of this field when set
}

type ratioParams struct {
	total    *filter.Filter // nil: every event
	ratio    float64
	minTotal int
}

type sequenceParams struct {
	steps  []step
	within time.Duration
}

type step struct {
	filter *filter.Filter
	count  int
}

type newValueParams struct {
	field      filter.Field
	lookback   time.Duration
	learnFirst bool
	maxKeys    int
	maxValues  int
}

type spikeParams struct {
	bucket   time.Duration
	baseline int
	factor   float64
	sigmas   float64
	minCount int
}

type sigmaInfo struct {
	title, id, file string
}

// Threshold returns the threshold of a threshold rule (or a Sigma rule with
// an aggregation), the ratio of a ratio rule, and 0 otherwise.
func (r *Rule) Threshold() float64 {
	switch r.eval {
	case KindThreshold:
		return r.threshold.threshold
	case KindRatio:
		return r.ratio.ratio
	}
	return 0
}

// MaxWindow returns how much event history the rule's state covers: the
// window, sequence span, lookback or baseline, and for rules that fire on
// single events, how long a firing alert lasts without new events.
func (r *Rule) MaxWindow() time.Duration {
	switch r.eval {
	case KindMatch:
		return r.ResolveAfter
	case KindThreshold, KindRatio:
		return r.Window
	case KindSequence:
		return max(r.sequence.within, r.ResolveAfter)
	case KindNewValue:
		return max(r.newValue.lookback, r.ResolveAfter)
	case KindSpike:
		return r.spike.bucket * time.Duration(r.spike.baseline+2)
	}
	return 0
}

// Summary describes the rule's condition in one line, for listings.
func (r *Rule) Summary() string {
	by := ""
	if len(r.GroupBy) > 0 {
		by = fmt.Sprintf(" by %v", r.GroupBy)
	}
	switch r.eval {
	case KindMatch:
		return fmt.Sprintf("any event matching %s%s", r.Filter, by)
	case KindThreshold:
		what := "events"
		switch {
		case !r.threshold.distinct.IsZero():
			what = "distinct " + r.threshold.distinct.String()
		case !r.threshold.sum.IsZero():
			what = "sum of " + r.threshold.sum.String()
		}
		return fmt.Sprintf("%s >= %g in %s matching %s%s", what, r.threshold.threshold, r.Window, r.Filter, by)
	case KindRatio:
		total := "all events"
		if r.ratio.total != nil {
			total = r.ratio.total.String()
		}
		return fmt.Sprintf("share of %s among %s >= %g in %s (at least %d events)%s", r.Filter, total, r.ratio.ratio, r.Window, r.ratio.minTotal, by)
	case KindSequence:
		s := ""
		for i, st := range r.sequence.steps {
			if i > 0 {
				s += " then "
			}
			s += fmt.Sprintf("%d× (%s)", st.count, st.filter)
		}
		return fmt.Sprintf("%s within %s%s", s, r.sequence.within, by)
	case KindNewValue:
		return fmt.Sprintf("new %s within %s among events matching %s%s", r.newValue.field, r.newValue.lookback, r.Filter, by)
	case KindSpike:
		return fmt.Sprintf("count per %s above %g× the mean of %d buckets (min %d) of %s%s", r.spike.bucket, r.spike.factor, r.spike.baseline, r.spike.minCount, r.Filter, by)
	}
	return ""
}

// RuleSet is a complete, valid set of rules, in a fixed order: built-in
// rules first, in the order of the pack, then user rules by file name and
// position.
type RuleSet struct {
	rules  []*Rule
	byName map[string]*Rule
}

func newRuleSet(rules []*Rule) *RuleSet {
	rs := &RuleSet{rules: rules, byName: make(map[string]*Rule, len(rules))}
	for _, r := range rules {
		rs.byName[r.Name] = r
	}
	return rs
}

// Rules returns every rule, enabled or not.
func (rs *RuleSet) Rules() []*Rule { return slices.Clone(rs.rules) }

// Enabled returns the enabled rules.
func (rs *RuleSet) Enabled() []*Rule {
	var out []*Rule
	for _, r := range rs.rules {
		if r.Enabled {
			out = append(out, r)
		}
	}
	return out
}

// Rule returns the rule of that name, or nil.
func (rs *RuleSet) Rule(name string) *Rule { return rs.byName[name] }

// Len returns the number of rules, enabled or not.
func (rs *RuleSet) Len() int { return len(rs.rules) }

// MaxWindow returns the longest MaxWindow of the enabled rules: how far
// before its cursor the wiring must replay events after a restart so that
// windows, sequences and baselines are whole again.
func (rs *RuleSet) MaxWindow() time.Duration {
	var m time.Duration
	for _, r := range rs.rules {
		if r.Enabled {
			m = max(m, r.MaxWindow())
		}
	}
	return m
}

// labelsFor returns the labels of a signal of r for a group.
func (r *Rule) labelsFor(group map[string]string) map[string]string {
	l := make(map[string]string, len(r.Labels)+3+len(group))
	maps.Copy(l, r.Labels)
	maps.Copy(l, group)
	l["alertname"] = r.Name
	l["rule"] = r.Name
	l["severity"] = r.Severity
	return l
}
