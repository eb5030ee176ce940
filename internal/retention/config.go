package retention

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigilsec/vigil/internal/detect/filter"
)

// Defaults of the retention section.
const (
	DefaultKeep     = 90 * Day
	DefaultFloor    = 7 * Day
	DefaultInterval = time.Hour
	// DefaultBatch is how many events one purge batch (one archive file,
	// one audit event) holds at most.
	DefaultBatch = 100000
	// maxDuration bounds durations (100 years).
	maxDuration = 100 * 365 * Day
	// maxPolicies, maxHolds and maxFieldRules bound the configuration.
	maxPolicies   = 1000
	maxHolds      = 10000
	maxFieldRules = 100
)

// Day is 24 hours.
const Day = 24 * time.Hour

// Duration is a length of time written as a Go duration (36h) or with a day
// unit: 90d, 2w (14 days), 6m (months of 30 days), 1y (365 days).
type Duration time.Duration

// ParseDuration parses a retention duration (see Duration).
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty duration")
	}
	units := map[byte]time.Duration{'d': Day, 'w': 7 * Day, 'm': 30 * Day, 'y': 365 * Day}
	last := s[len(s)-1]
	if u, ok := units[last]; ok && !strings.HasSuffix(s, "ms") {
		n, err := strconv.ParseUint(s[:len(s)-1], 10, 32)
		if err != nil {
			return 0, fmt.Errorf("duration %q: want a whole number before %q", s, string(last))
		}
		d := time.Duration(n) * u
		if d > maxDuration {
			return 0, fmt.Errorf("duration %q is over 100 years", s)
		}
		return d, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q: want a number with a unit (90d, 2w, 6m, 1y, 36h)", s)
	}
	if d < 0 || d > maxDuration {
		return 0, fmt.Errorf("duration %q out of range", s)
	}
	return d, nil
}

// UnmarshalYAML reads a duration.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Config is the retention section of the configuration.
type Config struct {
	// Default is how long an event no policy matches is kept (90d).
	Default Duration `yaml:"default"`
	// Floor is the least any policy may keep events; a shorter policy is
	// refused unless it says force: true (7d).
	Floor Duration `yaml:"floor"`
	// Interval is how often the purge job runs (1h).
	Interval Duration `yaml:"interval"`
	// Batch is the most events of one purge batch: one archive file and
	// one audit event (100000).
	Batch int `yaml:"batch"`
	// Archive, true unless set to false, writes every purged event to a
	// compressed archive before removing it.
	Archive *bool `yaml:"archive"`
	// Policies set how long the events they match are kept; the first
	// matching policy applies.
	Policies []Policy `yaml:"policies"`
	// Fields expire events holding any of the given fields sooner: such an
	// event is purged whole (archived first) once the shortest keep of the
	// fields it holds has passed (see docs/decisions/0007-retention.md).
	Fields []FieldRule `yaml:"fields"`
	// Holds keep the events they match, whatever the policies say.
	Holds []Hold `yaml:"holds"`
}

// Policy keeps the events it matches for Keep.
type Policy struct {
	Match Match    `yaml:"match"`
	Keep  Duration `yaml:"keep"`
	// Force allows a Keep shorter than the floor.
	Force bool `yaml:"force"`
}

// Match selects events by type, category and action; the fields given
// must all match, and at least one is required.
type Match struct {
	Type     Type   `yaml:"type"`
	Category string `yaml:"category"`
	Action   string `yaml:"action"`
}

// FieldRule expires the events that hold any of Paths after Keep.
type FieldRule struct {
	Paths []string `yaml:"paths"`
	Keep  Duration `yaml:"keep"`
	Force bool     `yaml:"force"`
}

// Hold keeps the events matching Query (the filter grammar of detection
// rules, docs/rules.md) or, with Incident, the events labelled
// labels.incident = Incident, until Until (forever when zero).
type Hold struct {
	ID       string    `yaml:"id" json:"id"`
	Query    string    `yaml:"query" json:"query,omitempty"`
	Incident string    `yaml:"incident" json:"incident,omitempty"`
	Reason   string    `yaml:"reason" json:"reason,omitempty"`
	Until    time.Time `yaml:"until" json:"until,omitzero"`
}

// compile checks a hold and returns its filter.
func (h Hold) compile() (*filter.Filter, error) {
	switch {
	case h.ID == "":
		return nil, errors.New("id is required")
	case len(h.ID) > 200:
		return nil, errors.New("id is longer than 200 bytes")
	case (h.Query == "") == (h.Incident == ""):
		return nil, errors.New("give exactly one of query and incident")
	}
	q := h.Query
	if h.Incident != "" {
		q = "labels.incident = " + strconv.Quote(h.Incident)
	}
	f, err := filter.Parse(q)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	return f, nil
}

// Archiving reports whether purges write archives.
func (c *Config) Archiving() bool { return c.Archive == nil || *c.Archive }

// SetDefaults fills the zero fields.
func (c *Config) SetDefaults() {
	if c.Default == 0 {
		c.Default = Duration(DefaultKeep)
	}
	if c.Floor == 0 {
		c.Floor = Duration(DefaultFloor)
	}
	if c.Interval == 0 {
		c.Interval = Duration(DefaultInterval)
	}
	if c.Batch == 0 {
		c.Batch = DefaultBatch
	}
}

// FieldError is a configuration error naming the field at fault.
type FieldError struct {
	Field string // e.g. retention.policies[2].keep
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Validate checks the section (after SetDefaults) without I/O. Errors name
// the field under prefix (normally "retention").
func (c *Config) Validate(prefix string) error {
	fe := func(field, format string, args ...any) error {
		return &FieldError{Field: prefix + "." + field, Msg: fmt.Sprintf(format, args...)}
	}
	floor := time.Duration(c.Floor)
	switch {
	case c.Floor < 0:
		return fe("floor", "must not be negative")
	case time.Duration(c.Default) < floor:
		return fe("default", "%s is shorter than the floor %s", fmtDuration(time.Duration(c.Default)), fmtDuration(floor))
	case c.Interval < Duration(time.Minute):
		return fe("interval", "must be at least 1m")
	case c.Batch < 1 || c.Batch > 1000000:
		return fe("batch", "must be between 1 and 1000000")
	case len(c.Policies) > maxPolicies:
		return fe("policies", "more than %d policies", maxPolicies)
	case len(c.Fields) > maxFieldRules:
		return fe("fields", "more than %d rules", maxFieldRules)
	case len(c.Holds) > maxHolds:
		return fe("holds", "more than %d holds", maxHolds)
	}
	for i, p := range c.Policies {
		at := fmt.Sprintf("policies[%d]", i)
		m := p.Match
		if m.Type == "" && m.Category == "" && m.Action == "" {
			return fe(at+".match", "give at least one of type, category and action")
		}
		if m.Type != "" && !m.Type.Valid() {
			return fe(at+".match.type", "%q is not one of %s", m.Type, typeNames())
		}
		if p.Keep <= 0 {
			return fe(at+".keep", "is required and must be positive")
		}
		if time.Duration(p.Keep) < floor && !p.Force {
			return fe(at+".keep", "%s is shorter than the floor %s: set force: true to allow it", fmtDuration(time.Duration(p.Keep)), fmtDuration(floor))
		}
	}
	for i, f := range c.Fields {
		at := fmt.Sprintf("fields[%d]", i)
		if len(f.Paths) == 0 {
			return fe(at+".paths", "is required")
		}
		for j, p := range f.Paths {
			if _, err := filter.ParseField(p); err != nil {
				return fe(fmt.Sprintf("%s.paths[%d]", at, j), "%v", err)
			}
		}
		if f.Keep <= 0 {
			return fe(at+".keep", "is required and must be positive")
		}
		if time.Duration(f.Keep) < floor && !f.Force {
			return fe(at+".keep", "%s is shorter than the floor %s: set force: true to allow it", fmtDuration(time.Duration(f.Keep)), fmtDuration(floor))
		}
	}
	ids := map[string]bool{}
	for i, h := range c.Holds {
		at := fmt.Sprintf("holds[%d]", i)
		if _, err := h.compile(); err != nil {
			return fe(at, "%v", err)
		}
		if ids[h.ID] {
			return fe(at+".id", "%q is used twice", h.ID)
		}
		ids[h.ID] = true
	}
	return nil
}

// Load reads the retention section from a YAML file: either a whole Vigil
// configuration (its retention key is read, the rest ignored) or a file
// holding only that section under "retention". Unknown keys of the section
// are errors. The result has its defaults set and is validated.
func Load(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("read retention config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 4<<20+1))
	if err != nil {
		return Config{}, fmt.Errorf("read retention config %s: %w", path, err)
	}
	if len(data) > 4<<20 {
		return Config{}, fmt.Errorf("retention config %s: larger than 4 MiB", path)
	}
	c, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("retention config %s: %w", path, err)
	}
	return c, nil
}

// Parse reads the retention section of YAML data (see Load).
func Parse(data []byte) (Config, error) {
	var c Config
	var doc map[string]yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return c, err
	}
	if n, ok := doc["retention"]; ok {
		var buf bytes.Buffer
		enc := yaml.NewEncoder(&buf)
		if err := enc.Encode(&n); err != nil {
			return c, err
		}
		dec := yaml.NewDecoder(&buf)
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return c, fmt.Errorf("retention: %w", err)
		}
	}
	c.SetDefaults()
	return c, c.Validate("retention")
}

func fmtDuration(d time.Duration) string {
	if d%Day == 0 {
		return fmt.Sprintf("%dd", d/Day)
	}
	return d.String()
}
