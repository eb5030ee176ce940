package detect

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigilsec/vigil/internal/detect/filter"
	"github.com/vigilsec/vigil/internal/detect/sigma"
)

// Limits of rule files.
const (
	MaxFileBytes = 1 << 20 // one rule file
	MaxFiles     = 1000    // files in a rules directory
	MaxRules     = 10000   // rules in a rule set
	maxNameLen   = 128
)

//go:embed rules/builtin/*.yml
var builtinFS embed.FS

// LoadOptions shape Load.
type LoadOptions struct {
	// NoBuiltin leaves the built-in pack out.
	NoBuiltin bool
	// DisabledBuiltin names built-in rules to turn off. An unknown name is an
	// error, so that a typo does not leave a rule on.
	DisabledBuiltin []string
}

// LoadError is a problem in a rule file, at a line.
type LoadError struct {
	File string // path as given, or "builtin/NAME.yml"
	Line int    // 0 when the problem is not at one line
	Rule string // rule name when known
	Msg  string
}

func (e *LoadError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Rule != "" {
		b.WriteString("rule " + strconv.Quote(e.Rule) + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// LoadDir loads the built-in pack and every rule file of dir (*.yml,
// *.yaml; not recursive). It returns a complete valid rule set or an error:
// the caller keeps running its previous rule set on error. An empty dir means
// the built-in pack alone.
func LoadDir(dir string) (*RuleSet, error) { return Load(dir, LoadOptions{}) }

// Load is LoadDir with options; path may also be a single rule file.
func Load(path string, opts LoadOptions) (*RuleSet, error) {
	var builtin []*Rule
	if !opts.NoBuiltin {
		var err error
		if builtin, err = builtinRules(); err != nil {
			return nil, err
		}
	}
	var user []*Rule
	if path != "" {
		files, err := ruleFiles(path)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			rules, err := loadFile(f)
			if err != nil {
				return nil, err
			}
			user = append(user, rules...)
		}
		user = dropReferencedSigma(user)
	}
	return merge(builtin, user, opts)
}

// Builtin returns the built-in pack alone, every rule as shipped.
func Builtin() (*RuleSet, error) {
	rules, err := builtinRules()
	if err != nil {
		return nil, err
	}
	return newRuleSet(rules), nil
}

func builtinRules() ([]*Rule, error) {
	names, err := fs.Glob(builtinFS, "rules/builtin/*.yml")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []*Rule
	for _, n := range names {
		data, err := builtinFS.ReadFile(n)
		if err != nil {
			return nil, err
		}
		rules, err := parseFile("builtin/"+filepath.Base(n), data, nil)
		if err != nil {
			return nil, err
		}
		for _, r := range rules {
			r.Builtin = true
		}
		out = append(out, rules...)
	}
	return out, nil
}

// ruleFiles lists the rule files of path: the file itself, or the *.yml and
// *.yaml files of a directory, sorted by name.
func ruleFiles(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	var files []string
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || strings.HasPrefix(n, ".") || !(strings.HasSuffix(n, ".yml") || strings.HasSuffix(n, ".yaml")) {
			continue
		}
		files = append(files, filepath.Join(path, n))
	}
	if len(files) > MaxFiles {
		return nil, fmt.Errorf("rules %s: %d rule files, limit is %d", path, len(files), MaxFiles)
	}
	return files, nil
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, MaxFileBytes)
	}
	return data, nil
}

func loadFile(path string) ([]*Rule, error) {
	data, err := readLimited(path)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	return parseFile(path, data, func(ref string) (string, []byte, error) {
		p := ref
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(path), ref)
		}
		b, err := readLimited(p)
		return p, b, err
	})
}

// dropReferencedSigma leaves out the Sigma files of the directory that a
// rule of kind sigma references: that rule runs them, with its own settings.
func dropReferencedSigma(rules []*Rule) []*Rule {
	referenced := map[string]bool{}
	for _, r := range rules {
		if r.sigmaInfo != nil && !r.standaloneSigma() {
			referenced[filepath.Clean(r.sigmaInfo.file)] = true
		}
	}
	out := rules[:0:0]
	for _, r := range rules {
		if r.standaloneSigma() && referenced[filepath.Clean(r.sigmaInfo.file)] {
			continue
		}
		out = append(out, r)
	}
	return out
}

// standaloneSigma reports whether r is a Sigma file loaded as a rule by
// itself (not through a rule of kind sigma).
func (r *Rule) standaloneSigma() bool {
	return r.sigmaInfo != nil && strings.HasPrefix(r.Source, r.sigmaInfo.file+":")
}

// ParseRules parses the rules of one file's content; name is used in errors.
// Rules of kind sigma that reference a file are refused (there is no
// directory to read it from); Sigma rules inline in data are fine.
func ParseRules(name string, data []byte) ([]*Rule, error) {
	return parseFile(name, data, nil)
}

// readRef reads a file referenced by a rule (a Sigma file).
type readRef func(ref string) (path string, data []byte, err error)

// parseFile reads the documents of one file: a rule, a list of rules, or a
// Sigma rule, per document.
func parseFile(name string, data []byte, read readRef) ([]*Rule, error) {
	if len(data) > MaxFileBytes {
		return nil, &LoadError{File: name, Msg: fmt.Sprintf("larger than %d bytes", MaxFileBytes)}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []*Rule
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, yamlError(name, err)
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := doc.Content[0]
		switch {
		case root.Kind == yaml.ScalarNode && root.Tag == "!!null":
			continue
		case sigma.IsSigma(root):
			r, err := compileSigmaFile(name, root)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		case root.Kind == yaml.MappingNode:
			r, err := parseRule(name, root, read)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		case root.Kind == yaml.SequenceNode:
			for _, item := range root.Content {
				if item.Kind != yaml.MappingNode {
					return nil, &LoadError{File: name, Line: item.Line, Msg: "a rule must be a mapping"}
				}
				r, err := parseRule(name, item, read)
				if err != nil {
					return nil, err
				}
				out = append(out, r)
			}
		default:
			return nil, &LoadError{File: name, Line: root.Line, Msg: "expected a rule (a mapping) or a list of rules"}
		}
		if len(out) > MaxRules {
			return nil, &LoadError{File: name, Msg: fmt.Sprintf("more than %d rules", MaxRules)}
		}
	}
	return out, nil
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlError turns a yaml.v3 error into a LoadError with its line.
func yamlError(file string, err error) error {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	m := strings.TrimPrefix(msgs[0], "yaml: ")
	if g := yamlLine.FindStringSubmatch(m); g != nil {
		line, _ := strconv.Atoi(g[1])
		return &LoadError{File: file, Line: line, Msg: g[2]}
	}
	return &LoadError{File: file, Msg: m}
}

// duration is a YAML duration: Go syntax (90s, 5m, 1h30m) or whole days (7d).
type duration time.Duration

func (d *duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %v", n.Line, err)
	}
	*d = duration(v)
	return nil
}

func (d duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func parseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 && n <= 3650 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (use 30s, 5m, 1h, 7d)", s)
	}
	return v, nil
}

// ruleSpec is a rule as written in YAML.
type ruleSpec struct {
	Name         string            `yaml:"name" json:"name"`
	Description  string            `yaml:"description" json:"description,omitempty"`
	Kind         string            `yaml:"kind" json:"kind"`
	Severity     string            `yaml:"severity" json:"severity,omitempty"`
	Enabled      *bool             `yaml:"enabled" json:"-"`
	Filter       string            `yaml:"filter" json:"filter,omitempty"`
	GroupBy      []string          `yaml:"group_by" json:"group_by,omitempty"`
	Window       duration          `yaml:"window" json:"window,omitempty"`
	For          duration          `yaml:"for" json:"for,omitempty"`
	Repeat       duration          `yaml:"repeat" json:"repeat,omitempty"`
	ResolveAfter duration          `yaml:"resolve_after" json:"resolve_after,omitempty"`
	MaxGroups    int               `yaml:"max_groups" json:"max_groups,omitempty"`
	Labels       map[string]string `yaml:"labels" json:"labels,omitempty"`
	Annotations  map[string]string `yaml:"annotations" json:"annotations,omitempty"`
	Action       *actionSpec       `yaml:"action" json:"action,omitempty"`
	// threshold
	Threshold float64 `yaml:"threshold" json:"threshold,omitempty"`
	Distinct  string  `yaml:"distinct" json:"distinct,omitempty"`
	Sum       string  `yaml:"sum" json:"sum,omitempty"`
	// ratio
	TotalFilter string  `yaml:"total_filter" json:"total_filter,omitempty"`
	Ratio       float64 `yaml:"ratio" json:"ratio,omitempty"`
	MinTotal    int     `yaml:"min_total" json:"min_total,omitempty"`
	// sequence
	Steps  []stepSpec `yaml:"steps" json:"steps,omitempty"`
	By     []string   `yaml:"by" json:"by,omitempty"`
	Within duration   `yaml:"within" json:"within,omitempty"`
	// new_value
	Field      string   `yaml:"field" json:"field,omitempty"`
	Lookback   duration `yaml:"lookback" json:"lookback,omitempty"`
	LearnFirst *bool    `yaml:"learn_first" json:"learn_first,omitempty"`
	MaxKeys    int      `yaml:"max_keys" json:"max_keys,omitempty"`
	MaxValues  int      `yaml:"max_values" json:"max_values,omitempty"`
	// spike
	Bucket   duration `yaml:"bucket" json:"bucket,omitempty"`
	Baseline int      `yaml:"baseline" json:"baseline,omitempty"`
	Factor   float64  `yaml:"factor" json:"factor,omitempty"`
	Sigmas   float64  `yaml:"sigmas" json:"sigmas,omitempty"`
	MinCount int      `yaml:"min_count" json:"min_count,omitempty"`
	// sigma
	Sigma string `yaml:"sigma" json:"sigma,omitempty"`
}

type actionSpec struct {
	Type  string   `yaml:"type" json:"type"`
	Scope string   `yaml:"scope" json:"scope"`
	Field string   `yaml:"field" json:"field,omitempty"`
	TTL   duration `yaml:"ttl" json:"ttl"`
}

type stepSpec struct {
	Filter string `yaml:"filter" json:"filter"`
	Count  int    `yaml:"count" json:"count,omitempty"`
}

// commonKeys are the keys every kind accepts; kindKeys the others, per kind.
var commonKeys = []string{"name", "description", "kind", "severity", "enabled", "for", "repeat", "labels", "annotations", "action", "max_groups"}

var kindKeys = map[string][]string{
	KindMatch:     {"filter", "group_by", "resolve_after"},
	KindThreshold: {"filter", "group_by", "window", "threshold", "distinct", "sum"},
	KindRatio:     {"filter", "total_filter", "group_by", "window", "ratio", "min_total"},
	KindSequence:  {"steps", "by", "within", "resolve_after"},
	KindNewValue:  {"filter", "field", "by", "lookback", "learn_first", "max_keys", "max_values", "resolve_after"},
	KindSpike:     {"filter", "group_by", "bucket", "baseline", "factor", "sigmas", "min_count"},
	KindSigma:     {"sigma", "group_by", "resolve_after"},
}

// nodeLines maps the dotted paths of a mapping's keys ("window",
// "action.ttl", "steps.1.filter") to their lines.
func nodeLines(n *yaml.Node, prefix string, out map[string]int, depth int) {
	if depth > 4 {
		return
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := prefix + n.Content[i].Value
			out[k] = n.Content[i].Line
			nodeLines(n.Content[i+1], k+".", out, depth+1)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			k := prefix + strconv.Itoa(i)
			out[k] = c.Line
			nodeLines(c, k+".", out, depth+1)
		}
	}
}

// specErr is a problem with one field of a rule.
type specErr struct {
	field string
	msg   string
}

func (e *specErr) Error() string { return "field " + e.field + ": " + e.msg }

func fieldErr(field, format string, args ...any) error {
	return &specErr{field: field, msg: fmt.Sprintf(format, args...)}
}

// parseRule decodes and compiles one rule mapping.
func parseRule(file string, n *yaml.Node, read readRef) (*Rule, error) {
	lines := map[string]int{}
	nodeLines(n, "", lines, 0)
	name := ""
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "name" {
			name = n.Content[i+1].Value
		}
	}
	fail := func(err error) error {
		le := &LoadError{File: file, Line: n.Line, Rule: name, Msg: err.Error()}
		var se *specErr
		if errors.As(err, &se) {
			// The most specific known line: "steps.1.filter", then "steps.1", "steps".
			for f := se.field; f != ""; {
				if l, ok := lines[f]; ok {
					le.Line = l
					break
				}
				i := strings.LastIndexByte(f, '.')
				if i < 0 {
					break
				}
				f = f[:i]
			}
		}
		return le
	}
	// Strict keys: unknown keys are errors, keys of another kind too.
	kind := ""
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "kind" {
			kind = n.Content[i+1].Value
		}
	}
	override := kind == "" && len(n.Content) <= 4 && lines["name"] > 0 && lines["enabled"] > 0
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if slices.Contains(commonKeys, k.Value) {
			continue
		}
		allowed, knownKind := kindKeys[kind]
		if knownKind && slices.Contains(allowed, k.Value) {
			continue
		}
		for _, keys := range kindKeys {
			if slices.Contains(keys, k.Value) && knownKind {
				return nil, fail(fieldErr(k.Value, "not used by kind %s", kind))
			}
		}
		if !knownKind && isKindKey(k.Value) {
			continue // reported below as a missing or unknown kind
		}
		return nil, fail(fieldErr(k.Value, "unknown key"))
	}
	for _, sub := range []struct {
		key  string
		keys []string
	}{{"action", []string{"type", "scope", "field", "ttl"}}} {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == sub.key && n.Content[i+1].Kind == yaml.MappingNode {
				m := n.Content[i+1]
				for j := 0; j+1 < len(m.Content); j += 2 {
					if !slices.Contains(sub.keys, m.Content[j].Value) {
						return nil, fail(fieldErr(sub.key+"."+m.Content[j].Value, "unknown key"))
					}
				}
			}
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "steps" && n.Content[i+1].Kind == yaml.SequenceNode {
			for si, s := range n.Content[i+1].Content {
				if s.Kind != yaml.MappingNode {
					continue
				}
				for j := 0; j+1 < len(s.Content); j += 2 {
					if k := s.Content[j].Value; k != "filter" && k != "count" {
						return nil, fail(fieldErr(fmt.Sprintf("steps.%d.%s", si, k), "unknown key"))
					}
				}
			}
		}
	}
	var spec ruleSpec
	if err := n.Decode(&spec); err != nil {
		le := yamlError(file, err).(*LoadError)
		le.Rule = name
		return nil, le
	}
	if override {
		if err := checkName(spec.Name); err != nil {
			return nil, fail(err)
		}
		if spec.Enabled == nil {
			return nil, fail(fieldErr("enabled", "must be true or false"))
		}
		return &Rule{Name: spec.Name, Enabled: *spec.Enabled, Source: fmt.Sprintf("%s:%d", file, n.Line), eval: "override"}, nil
	}
	r, err := compileSpec(&spec, read)
	if err != nil {
		return nil, fail(err)
	}
	r.Source = fmt.Sprintf("%s:%d", file, n.Line)
	return r, nil
}

func isKindKey(k string) bool {
	for _, keys := range kindKeys {
		if slices.Contains(keys, k) {
			return true
		}
	}
	return false
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]*$`)

func checkName(name string) error {
	if name == "" {
		return fieldErr("name", "missing")
	}
	if len(name) > maxNameLen || !nameRE.MatchString(name) {
		return fieldErr("name", "%q must be letters, digits and _ . : - (at most %d bytes)", name, maxNameLen)
	}
	return nil
}

func checkSeverity(s string) error {
	switch s {
	case SeverityCritical, SeverityError, SeverityWarning, SeverityInfo:
		return nil
	}
	return fieldErr("severity", "%q is not one of critical, error, warning, info", s)
}

func parseFilter(field, text string) (*filter.Filter, error) {
	if strings.TrimSpace(text) == "" {
		return nil, fieldErr(field, "missing")
	}
	f, err := filter.Parse(text)
	if err != nil {
		return nil, fieldErr(field, "%v", err)
	}
	return f, nil
}

func parseFields(field string, names []string) ([]filter.Field, error) {
	if len(names) > 8 {
		return nil, fieldErr(field, "at most 8 fields")
	}
	out := make([]filter.Field, len(names))
	seen := map[string]bool{}
	for i, n := range names {
		f, err := filter.ParseField(n)
		if err != nil {
			return nil, fieldErr(fmt.Sprintf("%s.%d", field, i), "%v", err)
		}
		if seen[f.String()] {
			return nil, fieldErr(fmt.Sprintf("%s.%d", field, i), "%s listed twice", n)
		}
		seen[f.String()] = true
		out[i] = f
	}
	return out, nil
}

func positive(field string, d duration) error {
	if d <= 0 {
		return fieldErr(field, "missing or not positive")
	}
	if time.Duration(d) > MaxWindowAllowed {
		return fieldErr(field, "longer than %s", MaxWindowAllowed)
	}
	return nil
}

// compileSpec validates a rule spec and compiles it.
func compileSpec(s *ruleSpec, read readRef) (*Rule, error) {
	if err := checkName(s.Name); err != nil {
		return nil, err
	}
	if s.Kind == "" {
		return nil, fieldErr("kind", "missing (one of %s)", strings.Join(Kinds, ", "))
	}
	if _, ok := kindKeys[s.Kind]; !ok {
		return nil, fieldErr("kind", "%q is not one of %s", s.Kind, strings.Join(Kinds, ", "))
	}
	r := &Rule{
		Name: s.Name, Description: s.Description, Kind: s.Kind, eval: s.Kind,
		Severity: s.Severity, Enabled: s.Enabled == nil || *s.Enabled,
		For: time.Duration(s.For), Repeat: time.Duration(s.Repeat), ResolveAfter: time.Duration(s.ResolveAfter),
		Window: time.Duration(s.Window), MaxGroups: s.MaxGroups,
		Labels: s.Labels, Annotations: s.Annotations,
	}
	if r.Severity == "" && s.Kind != KindSigma {
		r.Severity = SeverityWarning
	}
	if r.Severity != "" {
		if err := checkSeverity(r.Severity); err != nil {
			return nil, err
		}
	}
	for _, d := range []struct {
		name string
		v    duration
	}{{"for", s.For}, {"repeat", s.Repeat}, {"resolve_after", s.ResolveAfter}} {
		if d.v < 0 || time.Duration(d.v) > MaxWindowAllowed {
			return nil, fieldErr(d.name, "must be between 0 and %s", MaxWindowAllowed)
		}
	}
	if r.ResolveAfter == 0 {
		r.ResolveAfter = DefaultResolveAfter
	}
	switch {
	case r.MaxGroups == 0:
		r.MaxGroups = DefaultMaxGroups
	case r.MaxGroups < 1 || r.MaxGroups > MaxMaxGroups:
		return nil, fieldErr("max_groups", "must be between 1 and %d", MaxMaxGroups)
	}
	for k := range r.Labels {
		if k == "" || k == "alertname" || k == "severity" || k == "rule" {
			return nil, fieldErr("labels", "label %q is reserved (alertname, severity and rule are set by Vigil)", k)
		}
	}
	var err error
	if s.Kind != KindSequence && s.Kind != KindSigma {
		if r.Filter, err = parseFilter("filter", s.Filter); err != nil {
			return nil, err
		}
	}
	groupKey := "group_by"
	r.GroupBy = s.GroupBy
	if s.Kind == KindSequence || s.Kind == KindNewValue {
		groupKey, r.GroupBy = "by", s.By
	}
	switch s.Kind {
	case KindMatch:
	case KindThreshold:
		err = compileThreshold(r, s)
	case KindRatio:
		err = compileRatio(r, s)
	case KindSequence:
		err = compileSequence(r, s)
	case KindNewValue:
		err = compileNewValue(r, s)
	case KindSpike:
		err = compileSpike(r, s)
	case KindSigma:
		err = compileSigmaRef(r, s, read)
		if err == nil && r.sigmaInfo != nil && r.eval == KindThreshold && len(s.GroupBy) > 0 {
			err = fieldErr("group_by", "set by the Sigma rule's aggregation (count() by ...)")
		}
	}
	if err != nil {
		return nil, err
	}
	if groupKey != "" {
		if r.groupFields, err = parseFields(groupKey, r.GroupBy); err != nil {
			return nil, err
		}
	}
	if err := compileAction(r, s.Action); err != nil {
		return nil, err
	}
	if err := compileTemplates(r); err != nil {
		return nil, err
	}
	r.fingerprint = fingerprint(s, r)
	return r, nil
}

func compileThreshold(r *Rule, s *ruleSpec) error {
	if err := positive("window", s.Window); err != nil {
		return err
	}
	if !(s.Threshold >= 1) || s.Threshold > 1e15 {
		return fieldErr("threshold", "missing or below 1")
	}
	if s.Distinct != "" && s.Sum != "" {
		return fieldErr("sum", "distinct and sum cannot both be set")
	}
	p := &r.threshold
	p.threshold = s.Threshold
	var err error
	if s.Distinct != "" {
		if p.distinct, err = filter.ParseField(s.Distinct); err != nil {
			return fieldErr("distinct", "%v", err)
		}
		if s.Threshold > maxDistinct {
			return fieldErr("threshold", "a distinct count is at most %d", maxDistinct)
		}
	}
	if s.Sum != "" {
		if p.sum, err = filter.ParseField(s.Sum); err != nil {
			return fieldErr("sum", "%v", err)
		}
	}
	return nil
}

func compileRatio(r *Rule, s *ruleSpec) error {
	if err := positive("window", s.Window); err != nil {
		return err
	}
	if !(s.Ratio > 0 && s.Ratio <= 1) {
		return fieldErr("ratio", "must be above 0 and at most 1 (0.05 for 5%%)")
	}
	if s.MinTotal < 1 {
		return fieldErr("min_total", "missing or below 1")
	}
	r.ratio.ratio, r.ratio.minTotal = s.Ratio, s.MinTotal
	if s.TotalFilter != "" {
		f, err := parseFilter("total_filter", s.TotalFilter)
		if err != nil {
			return err
		}
		r.ratio.total = f
	}
	return nil
}

func compileSequence(r *Rule, s *ruleSpec) error {
	if err := positive("within", s.Within); err != nil {
		return err
	}
	if len(s.Steps) < 2 || len(s.Steps) > maxSteps {
		return fieldErr("steps", "a sequence has 2 to %d steps", maxSteps)
	}
	p := &r.sequence
	p.within = time.Duration(s.Within)
	for i, st := range s.Steps {
		f, err := parseFilter(fmt.Sprintf("steps.%d.filter", i), st.Filter)
		if err != nil {
			return err
		}
		c := st.Count
		if c == 0 {
			c = 1
		}
		if c < 1 || c > maxStepCount {
			return fieldErr(fmt.Sprintf("steps.%d.count", i), "must be between 1 and %d", maxStepCount)
		}
		p.steps = append(p.steps, step{filter: f, count: c})
	}
	return nil
}

func compileNewValue(r *Rule, s *ruleSpec) error {
	if err := positive("lookback", s.Lookback); err != nil {
		return err
	}
	if s.Field == "" {
		return fieldErr("field", "missing")
	}
	p := &r.newValue
	var err error
	if p.field, err = filter.ParseField(s.Field); err != nil {
		return fieldErr("field", "%v", err)
	}
	p.lookback = time.Duration(s.Lookback)
	p.learnFirst = s.LearnFirst == nil || *s.LearnFirst
	p.maxKeys, p.maxValues = s.MaxKeys, s.MaxValues
	if p.maxKeys == 0 {
		p.maxKeys = DefaultMaxKeys
	}
	if p.maxValues == 0 {
		p.maxValues = DefaultMaxValues
	}
	if p.maxKeys < 1 || p.maxKeys > MaxMaxGroups {
		return fieldErr("max_keys", "must be between 1 and %d", MaxMaxGroups)
	}
	if p.maxValues < 1 || p.maxValues > 10000 {
		return fieldErr("max_values", "must be between 1 and 10000")
	}
	return nil
}

func compileSpike(r *Rule, s *ruleSpec) error {
	if err := positive("bucket", s.Bucket); err != nil {
		return err
	}
	if s.Bucket < duration(time.Second) {
		return fieldErr("bucket", "at least 1s")
	}
	if s.Baseline < 2 || s.Baseline > maxBaseline {
		return fieldErr("baseline", "number of buckets between 2 and %d", maxBaseline)
	}
	if s.Factor == 0 && s.Sigmas == 0 {
		return fieldErr("factor", "set factor (times the mean) or sigmas (standard deviations above the mean), or both")
	}
	if s.Factor < 0 || s.Sigmas < 0 || math.IsInf(s.Factor, 0) || math.IsInf(s.Sigmas, 0) {
		return fieldErr("factor", "factor and sigmas must be positive")
	}
	if s.MinCount < 1 {
		return fieldErr("min_count", "missing or below 1")
	}
	if time.Duration(s.Bucket)*time.Duration(s.Baseline+2) > MaxWindowAllowed {
		return fieldErr("baseline", "bucket × baseline longer than %s", MaxWindowAllowed)
	}
	r.spike = spikeParams{bucket: time.Duration(s.Bucket), baseline: s.Baseline, factor: s.Factor, sigmas: s.Sigmas, minCount: s.MinCount}
	return nil
}

func compileAction(r *Rule, a *actionSpec) error {
	if a == nil {
		return nil
	}
	act := &Action{Type: a.Type, Scope: a.Scope, Field: a.Field, TTL: time.Duration(a.TTL)}
	switch act.Type {
	case ActionBan, ActionThrottle:
	default:
		return fieldErr("action.type", "%q is not ban or throttle", a.Type)
	}
	switch act.Scope {
	case ScopeIP:
		if act.Field == "" {
			act.Field = "source.ip"
		}
	case ScopeUser:
		if act.Field == "" {
			act.Field = "user.name"
		}
	default:
		return fieldErr("action.scope", "%q is not ip or user", a.Scope)
	}
	if _, err := filter.ParseField(act.Field); err != nil {
		return fieldErr("action.field", "%v", err)
	}
	if act.TTL <= 0 || act.TTL > 365*24*time.Hour {
		return fieldErr("action.ttl", "missing, or not between 1s and 365d")
	}
	r.Action = act
	return nil
}

// fingerprint identifies a rule's definition, so that SetRules keeps the
// state of rules that did not change.
func fingerprint(s *ruleSpec, r *Rule) string {
	h := sha256.New()
	b, _ := json.Marshal(s)
	h.Write(b)
	if r.Filter != nil {
		h.Write([]byte(r.Filter.String()))
	}
	fmt.Fprintf(h, "|%s|%v|%v", r.eval, r.GroupBy, r.Window)
	if r.sigmaInfo != nil {
		fmt.Fprintf(h, "|%+v|%+v", *r.sigmaInfo, r.threshold)
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// merge combines the built-in and user rules: a user rule named like a
// built-in replaces it, or only switches it on or off when it has just name
// and enabled.
func merge(builtin, user []*Rule, opts LoadOptions) (*RuleSet, error) {
	byName := map[string]*Rule{}
	for _, r := range builtin {
		byName[r.Name] = r
	}
	for _, n := range opts.DisabledBuiltin {
		b, ok := byName[n]
		if !ok {
			return nil, fmt.Errorf("rules: disabled built-in rule %q does not exist", n)
		}
		c := *b
		c.Enabled = false
		byName[n] = &c
	}
	seen := map[string]*Rule{}
	var extra []*Rule
	for _, r := range user {
		if prev, dup := seen[r.Name]; dup {
			return nil, &LoadError{File: strings.SplitN(r.Source, ":", 2)[0], Rule: r.Name, Msg: "defined twice: " + prev.Source + " and " + r.Source}
		}
		seen[r.Name] = r
		b, isBuiltin := byName[r.Name]
		switch {
		case r.eval == "override" && !isBuiltin:
			return nil, &LoadError{File: r.Source, Rule: r.Name, Msg: "enabled override of a built-in rule that does not exist (a new rule needs a kind)"}
		case r.eval == "override":
			c := *b
			c.Enabled = r.Enabled
			byName[r.Name] = &c
		case isBuiltin:
			byName[r.Name] = r
		default:
			extra = append(extra, r)
		}
	}
	var out []*Rule
	for _, b := range builtin {
		out = append(out, byName[b.Name])
	}
	out = append(out, extra...)
	if len(out) > MaxRules {
		return nil, fmt.Errorf("rules: %d rules, limit is %d", len(out), MaxRules)
	}
	return newRuleSet(out), nil
}
