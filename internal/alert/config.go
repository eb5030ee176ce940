package alert

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Defaults of the configuration, Alertmanager's where it has one.
const (
	DefaultGroupWait      = 30 * time.Second
	DefaultGroupInterval  = 5 * time.Minute
	DefaultRepeatInterval = 4 * time.Hour
	DefaultRetention      = 24 * time.Hour
	DefaultMaxAlerts      = 10000
	DefaultMaxSilences    = 10000
	DefaultDeliveryLog    = 1000
	DefaultWorkers        = 4
	DefaultQueueSize      = 1000
	DefaultNotifyTimeout  = 30 * time.Second
	DefaultRetryInitial   = time.Second
	DefaultRetryMax       = time.Minute
	DefaultRetryAttempts  = 10
)

// Limits of the route tree.
const (
	MaxRouteDepth  = 16
	MaxRoutes      = 1000
	MaxConfigBytes = 1 << 20
)

// Config is the alerting section of Vigil's configuration. The zero value
// of every field means its default; Route must be set (Default has one).
type Config struct {
	Route *Route `yaml:"route"`
	// Receivers holds per-receiver settings. Receivers used by routes need
	// no entry here; the notifiers themselves are given to New.
	Receivers []ReceiverConfig `yaml:"receivers"`
	// Retention keeps resolved alerts and expired silences for the API
	// before they are dropped (default 24h).
	Retention Duration `yaml:"retention"`
	// MaxAlerts bounds the pending and firing alerts (default 10000), and
	// separately the resolved ones kept for history.
	MaxAlerts int `yaml:"max_alerts"`
	// MaxSilences bounds the silences, expired ones included (default 10000).
	MaxSilences int `yaml:"max_silences"`
	// DeliveryLogSize is the number of delivery attempts remembered (1000).
	DeliveryLogSize int `yaml:"delivery_log_size"`
	// Workers is the number of concurrent deliveries (4).
	Workers int `yaml:"workers"`
	// QueueSize bounds notifications waiting for a worker (1000).
	QueueSize int `yaml:"queue_size"`
	// NotifyTimeout bounds one delivery attempt (30s).
	NotifyTimeout Duration `yaml:"notify_timeout"`
	// Retry shapes the retries of failed deliveries.
	Retry RetryConfig `yaml:"retry"`
	// InhibitRules mute alerts while others fire, as Alertmanager's do.
	InhibitRules []InhibitRule `yaml:"inhibit_rules"`
}

// InhibitRule mutes the alerts matching TargetMatchers while an alert
// matching SourceMatchers fires with the same values of the Equal labels
// (a label both lack counts as equal). Like silenced alerts, muted ones are
// not notified; the notifiers that were told of them hear when they
// resolve. An alert never mutes itself, and when an alert matches both
// sides, alerts that also match both sides do not mute it (Alertmanager's
// rule, so that two such alerts do not mute each other).
type InhibitRule struct {
	SourceMatchers []string `yaml:"source_matchers"`
	TargetMatchers []string `yaml:"target_matchers"`
	Equal          []string `yaml:"equal"`
}

// MaxInhibitRules bounds the inhibit rules.
const MaxInhibitRules = 1000

// inhibitRule is a compiled InhibitRule.
type inhibitRule struct {
	source, target Matchers
	equal          []string
}

// compileInhibitRules checks and compiles the rules.
func compileInhibitRules(in []InhibitRule) ([]inhibitRule, error) {
	if len(in) > MaxInhibitRules {
		return nil, fmt.Errorf("field inhibit_rules: %d rules, at most %d", len(in), MaxInhibitRules)
	}
	var out []inhibitRule
	for i, r := range in {
		var c inhibitRule
		for _, side := range []struct {
			name string
			in   []string
			out  *Matchers
		}{{"source_matchers", r.SourceMatchers, &c.source}, {"target_matchers", r.TargetMatchers, &c.target}} {
			for j, s := range side.in {
				ms, err := ParseMatchers(s)
				if err != nil {
					return nil, fmt.Errorf("field inhibit_rules[%d].%s[%d]: %w", i, side.name, j, err)
				}
				*side.out = append(*side.out, ms...)
			}
			if len(*side.out) == 0 {
				return nil, fmt.Errorf("field inhibit_rules[%d].%s: at least one matcher (an empty side would match every alert)", i, side.name)
			}
			if len(*side.out) > MaxMatchersInList {
				return nil, fmt.Errorf("field inhibit_rules[%d].%s: more than %d matchers", i, side.name, MaxMatchersInList)
			}
		}
		for j, l := range r.Equal {
			if l == "" || len(l) > MaxLabelNameLen || !utf8.ValidString(l) {
				return nil, fmt.Errorf("field inhibit_rules[%d].equal[%d]: %q is not a label name", i, j, l)
			}
		}
		c.equal = slices.Clone(r.Equal)
		out = append(out, c)
	}
	return out, nil
}

// ReceiverConfig holds the settings of one receiver.
type ReceiverConfig struct {
	Name string `yaml:"name"`
	// SendResolved sends a notification when alerts resolve (default true).
	SendResolved *bool `yaml:"send_resolved"`
}

// RetryConfig bounds the retries of a delivery that failed with retry=true:
// exponential backoff from Initial, doubling up to Max, with jitter (each
// wait is drawn between half and all of the step), at most Attempts
// attempts in all and never beyond the group's next group_interval.
type RetryConfig struct {
	Initial  Duration `yaml:"initial"`
	Max      Duration `yaml:"max"`
	Attempts int      `yaml:"attempts"`
}

// Route is one node of the routing tree. An alert enters at the root and
// goes down to the first child whose matchers match (depth first), and on
// to the next matching sibling only when that child has continue: true. It
// is delivered by every deepest route that took it (the root when no child
// matched). Unset fields are inherited from the parent.
type Route struct {
	Receiver string `yaml:"receiver"`
	// GroupBy lists the labels whose values form a group; "..." alone
	// groups by all labels (one alert per group). Empty: one group for the
	// whole route.
	GroupBy        []string  `yaml:"group_by"`
	GroupWait      *Duration `yaml:"group_wait"`
	GroupInterval  *Duration `yaml:"group_interval"`
	RepeatInterval *Duration `yaml:"repeat_interval"`
	// Matchers must all match; each is one matcher string such as
	// severity=~"critical|error". Not allowed on the root.
	Matchers []string `yaml:"matchers"`
	Continue bool     `yaml:"continue"`
	Routes   []*Route `yaml:"routes"`
}

// Duration is a time.Duration written in YAML as "30s", "5m", "4h" or
// "7d" (days).
type Duration time.Duration

// ParseDuration reads a Go duration or a whole number of days ("7d").
func ParseDuration(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 || days > 100000 {
			return 0, fmt.Errorf("%q is not a duration (use 30s, 5m, 4h, 7d)", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (use 30s, 5m, 4h, 7d)", s)
	}
	return d, nil
}

// UnmarshalYAML reads a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

func dur(d time.Duration) *Duration { v := Duration(d); return &v }

// Default returns the configuration used when none is given: every alert
// to the receiver "default", grouped by alert name, with Alertmanager's
// timers.
func Default() Config {
	return Config{Route: &Route{
		Receiver:       "default",
		GroupBy:        []string{"alertname"},
		GroupWait:      dur(DefaultGroupWait),
		GroupInterval:  dur(DefaultGroupInterval),
		RepeatInterval: dur(DefaultRepeatInterval),
	}}
}

// ParseConfig decodes YAML strictly (an unknown key is an error) and
// validates the result.
func ParseConfig(b []byte) (Config, error) {
	var c Config
	if len(b) > MaxConfigBytes {
		return c, fmt.Errorf("alert config larger than %d bytes", MaxConfigBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return c, fmt.Errorf("alert config: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return c, c.Validate()
}

// Validate checks every field and names the first bad one. It does no I/O
// and does not know the notifiers; New checks that route receivers exist.
func (c Config) Validate() error {
	if c.Route == nil {
		return errors.New("field route: missing (the root route needs at least a receiver)")
	}
	if _, err := compileRoutes(c.Route); err != nil {
		return err
	}
	if _, err := compileInhibitRules(c.InhibitRules); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i, r := range c.Receivers {
		if r.Name == "" {
			return fmt.Errorf("field receivers[%d].name: must not be empty", i)
		}
		if seen[r.Name] {
			return fmt.Errorf("field receivers[%d].name: %q listed twice", i, r.Name)
		}
		seen[r.Name] = true
	}
	checks := []struct {
		name      string
		v, lo, hi int64
	}{
		{"max_alerts", int64(c.MaxAlerts), 0, 10000000},
		{"max_silences", int64(c.MaxSilences), 0, 1000000},
		{"delivery_log_size", int64(c.DeliveryLogSize), 0, 1000000},
		{"workers", int64(c.Workers), 0, 1000},
		{"queue_size", int64(c.QueueSize), 0, 1000000},
		{"retry.attempts", int64(c.Retry.Attempts), 0, 1000},
	}
	for _, k := range checks {
		if k.v < k.lo || k.v > k.hi {
			return fmt.Errorf("field %s: %d is outside %d..%d (0 means the default)", k.name, k.v, k.lo, k.hi)
		}
	}
	durs := []struct {
		name string
		v    Duration
	}{
		{"retention", c.Retention}, {"notify_timeout", c.NotifyTimeout},
		{"retry.initial", c.Retry.Initial}, {"retry.max", c.Retry.Max},
	}
	for _, d := range durs {
		if d.v < 0 {
			return fmt.Errorf("field %s: must not be negative", d.name)
		}
	}
	if c.Retry.Initial > 0 && c.Retry.Max > 0 && c.Retry.Max < c.Retry.Initial {
		return errors.New("field retry.max: must not be below retry.initial")
	}
	return nil
}

// withDefaults fills zero fields.
func (c Config) withDefaults() Config {
	setInt := func(p *int, d int) {
		if *p == 0 {
			*p = d
		}
	}
	setDur := func(p *Duration, d time.Duration) {
		if *p == 0 {
			*p = Duration(d)
		}
	}
	setInt(&c.MaxAlerts, DefaultMaxAlerts)
	setInt(&c.MaxSilences, DefaultMaxSilences)
	setInt(&c.DeliveryLogSize, DefaultDeliveryLog)
	setInt(&c.Workers, DefaultWorkers)
	setInt(&c.QueueSize, DefaultQueueSize)
	setInt(&c.Retry.Attempts, DefaultRetryAttempts)
	setDur(&c.Retention, DefaultRetention)
	setDur(&c.NotifyTimeout, DefaultNotifyTimeout)
	setDur(&c.Retry.Initial, DefaultRetryInitial)
	setDur(&c.Retry.Max, DefaultRetryMax)
	return c
}

// sendResolved reports the send_resolved setting of a receiver.
func (c Config) sendResolved(name string) bool {
	for _, r := range c.Receivers {
		if r.Name == name && r.SendResolved != nil {
			return *r.SendResolved
		}
	}
	return true
}

// route is a compiled Route with inherited settings.
type route struct {
	id             string // field path: route, route.routes[0], …
	receiver       string
	groupBy        []string
	groupByAll     bool
	groupWait      time.Duration
	groupInterval  time.Duration
	repeatInterval time.Duration
	matchers       Matchers
	cont           bool
	children       []*route
}

// compileRoutes validates the tree and resolves inheritance.
func compileRoutes(root *Route) (*route, error) {
	count := 0
	parent := &route{
		groupWait: DefaultGroupWait, groupInterval: DefaultGroupInterval, repeatInterval: DefaultRepeatInterval,
	}
	if root.Receiver == "" {
		return nil, errors.New("field route.receiver: the root route needs a receiver")
	}
	if len(root.Matchers) > 0 {
		return nil, errors.New("field route.matchers: the root route matches every alert and takes no matchers")
	}
	if root.Continue {
		return nil, errors.New("field route.continue: not allowed on the root route")
	}
	return compileRoute(root, parent, "route", 0, &count)
}

func compileRoute(in *Route, parent *route, id string, depth int, count *int) (*route, error) {
	if in == nil {
		return nil, fmt.Errorf("field %s: empty route", id)
	}
	*count++
	if *count > MaxRoutes {
		return nil, fmt.Errorf("field %s: more than %d routes", id, MaxRoutes)
	}
	if depth >= MaxRouteDepth {
		return nil, fmt.Errorf("field %s: routes nested deeper than %d", id, MaxRouteDepth)
	}
	r := &route{
		id: id, receiver: parent.receiver, groupBy: parent.groupBy, groupByAll: parent.groupByAll,
		groupWait: parent.groupWait, groupInterval: parent.groupInterval, repeatInterval: parent.repeatInterval,
		cont: in.Continue,
	}
	if in.Receiver != "" {
		r.receiver = in.Receiver
	}
	if in.GroupBy != nil {
		r.groupBy, r.groupByAll = nil, false
		seen := map[string]bool{}
		for i, g := range in.GroupBy {
			field := fmt.Sprintf("field %s.group_by[%d]", id, i)
			switch {
			case g == "...":
				if len(in.GroupBy) != 1 {
					return nil, fmt.Errorf(`%s: "..." (all labels) must be the only entry`, field)
				}
				r.groupByAll = true
			case g == "" || len(g) > MaxLabelNameLen:
				return nil, fmt.Errorf("%s: %q is not a label name", field, g)
			case seen[g]:
				return nil, fmt.Errorf("%s: %q listed twice", field, g)
			default:
				seen[g] = true
				r.groupBy = append(r.groupBy, g)
			}
		}
	}
	timers := []struct {
		name string
		in   *Duration
		out  *time.Duration
		zero bool // zero allowed
	}{
		{"group_wait", in.GroupWait, &r.groupWait, true},
		{"group_interval", in.GroupInterval, &r.groupInterval, false},
		{"repeat_interval", in.RepeatInterval, &r.repeatInterval, false},
	}
	for _, t := range timers {
		if t.in == nil {
			continue
		}
		d := time.Duration(*t.in)
		if d < 0 || (d == 0 && !t.zero) {
			return nil, fmt.Errorf("field %s.%s: must be positive", id, t.name)
		}
		*t.out = d
	}
	for i, s := range in.Matchers {
		ms, err := ParseMatchers(s)
		if err != nil {
			return nil, fmt.Errorf("field %s.matchers[%d]: %w", id, i, err)
		}
		r.matchers = append(r.matchers, ms...)
	}
	if len(r.matchers) > MaxMatchersInList {
		return nil, fmt.Errorf("field %s.matchers: more than %d matchers", id, MaxMatchersInList)
	}
	for i, c := range in.Routes {
		child, err := compileRoute(c, r, fmt.Sprintf("%s.routes[%d]", id, i), depth+1, count)
		if err != nil {
			return nil, err
		}
		r.children = append(r.children, child)
	}
	return r, nil
}

// match returns the routes that take an alert with these labels.
func (r *route) match(labels map[string]string) []*route {
	if !r.matchers.Matches(labels) {
		return nil
	}
	var out []*route
	for _, c := range r.children {
		got := c.match(labels)
		if len(got) == 0 {
			continue
		}
		out = append(out, got...)
		if !c.cont {
			break
		}
	}
	if len(out) == 0 {
		return []*route{r}
	}
	return out
}

// walk calls f for r and every route below it.
func (r *route) walk(f func(*route)) {
	f(r)
	for _, c := range r.children {
		c.walk(f)
	}
}

// groupLabels returns the labels that name an alert's group on r.
func (r *route) groupLabels(labels map[string]string) map[string]string {
	if r.groupByAll {
		out := make(map[string]string, len(labels))
		for k, v := range labels {
			out[k] = v
		}
		return out
	}
	out := make(map[string]string, len(r.groupBy))
	for _, g := range r.groupBy {
		if v, ok := labels[g]; ok {
			out[g] = v
		}
	}
	return out
}
