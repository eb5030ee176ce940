// Package sigma reads SigmaHQ detection rules and compiles them into Vigil's
// filter language (internal/detect/filter).
//
// Supported: named selections (maps of field|modifier keys, lists of maps,
// keyword lists), the modifiers contains, startswith, endswith, all, re (with
// i, m, s), cidr, exists, gt, gte, lt, lte and cased, the wildcards * and ?,
// null values, conditions with and, or, not, parentheses, "1 of x*",
// "all of x*", "1 of them", "all of them", a list of conditions, and the
// aggregation "| count([field]) [by field] > N" with timeframe. Sigma field
// names are mapped to ECS names by FieldMap; a field with a dot is taken as an
// ECS name as it is; any other field, and any other modifier, is an error.
// String matching is case-insensitive unless "cased" is given, as in Sigma.
package sigma

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigilsec/vigil/internal/detect/filter"
)

// Limits of one Sigma rule.
const (
	MaxBytes      = 1 << 20 // size of a rule file
	maxSelections = 256
	maxValues     = 4096 // values of one field
	maxCondition  = 4096 // bytes of one condition
	maxCondDepth  = 32
)

// FieldMap maps the field names of Sigma's webserver log source (W3C
// extended log format names) and common generic names to Vigil's ECS fields.
var FieldMap = map[string]string{
	// webserver / proxy
	"c-ip":            "source.ip",
	"c-uri":           "url.original",
	"cs-uri":          "url.original",
	"c-uri-stem":      "url.path",
	"cs-uri-stem":     "url.path",
	"c-uri-query":     "url.query",
	"cs-uri-query":    "url.query",
	"c-uri-extension": "url.extension",
	"cs-method":       "http.request.method",
	"sc-status":       "http.response.status_code",
	"c-useragent":     "user_agent.original",
	"cs-user-agent":   "user_agent.original",
	"cs-referer":      "http.request.referrer",
	"cs-referrer":     "http.request.referrer",
	"cs-host":         "url.domain",
	"r-dns":           "url.domain",
	"cs-username":     "user.name",
	"cs-cookie":       "http.request.headers.cookie",
	"cs-bytes":        "http.request.body.bytes",
	"sc-bytes":        "http.response.body.bytes",
	"s-ip":            "destination.ip",
	"s-port":          "destination.port",
	"cs-version":      "http.version",
	"cs-content":      "http.request.body.content",
	// generic application fields
	"src_ip":     "source.ip",
	"ClientIP":   "source.ip",
	"dst_ip":     "destination.ip",
	"user":       "user.name",
	"username":   "user.name",
	"User":       "user.name",
	"method":     "http.request.method",
	"status":     "http.response.status_code",
	"url":        "url.original",
	"uri":        "url.original",
	"path":       "url.path",
	"query":      "url.query",
	"useragent":  "user_agent.original",
	"user_agent": "user_agent.original",
	"message":    "message",
	"msg":        "message",
	"action":     "event.action",
	"outcome":    "event.outcome",
	"hostname":   "host.name",
	"service":    "service.name",
}

// Rule is a compiled Sigma rule.
type Rule struct {
	Title       string
	ID          string
	Description string
	Level       string // informational, low, medium, high, critical (empty when absent)
	Status      string
	Tags        []string
	Logsource   Logsource
	// Filter is the detection (without the aggregation) in Vigil's filter
	// language.
	Filter string
	// Aggregation is the "| count() ..." part of the condition, nil when
	// there is none.
	Aggregation *Aggregation
	Timeframe   time.Duration
	Line        int // line of the rule's first key in its file
}

// Logsource is a Sigma log source. Vigil records it; it does not select
// events by it (see docs/rules.md).
type Logsource struct {
	Category   string `yaml:"category"`
	Product    string `yaml:"product"`
	Service    string `yaml:"service"`
	Definition string `yaml:"definition"`
}

// Aggregation is "count([Distinct]) [by GroupBy] Op Value".
type Aggregation struct {
	Distinct string   // ECS field counted distinctly; "" counts events
	GroupBy  []string // ECS fields
	Op       string   // ">" or ">="
	Value    float64
}

// Error is a problem in a Sigma rule, at a line of its file.
type Error struct {
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return e.Msg
}

func errAt(n *yaml.Node, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &Error{Line: line, Msg: fmt.Sprintf(format, args...)}
}

// IsSigma reports whether a YAML mapping node looks like a Sigma rule: it has
// a top-level detection or logsource key.
func IsSigma(n *yaml.Node) bool {
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i].Value; k == "detection" || k == "logsource" {
			return true
		}
	}
	return false
}

// Parse reads and compiles one Sigma rule file (a single YAML document).
func Parse(data []byte) (*Rule, error) {
	if len(data) > MaxBytes {
		return nil, &Error{Msg: fmt.Sprintf("rule is %d bytes, limit is %d", len(data), MaxBytes)}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{Msg: "empty file"}
		}
		return nil, &Error{Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		at := &extra
		if len(extra.Content) > 0 {
			at = extra.Content[0]
		}
		return nil, errAt(at, "a Sigma file holds one rule; rule collections (several documents) are not supported")
	} else if !errors.Is(err, io.EOF) {
		return nil, &Error{Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	return ParseNode(&doc)
}

// knownKeys are the top-level keys of the Sigma rule specification.
var knownKeys = []string{
	"title", "id", "related", "name", "taxonomy", "status", "description", "references",
	"author", "date", "modified", "tags", "logsource", "detection", "fields",
	"falsepositives", "level", "license", "scope",
}

// ParseNode compiles one Sigma rule from its YAML node (a document or a
// mapping).
func ParseNode(n *yaml.Node) (*Rule, error) {
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind != yaml.MappingNode {
		return nil, errAt(n, "a Sigma rule must be a mapping")
	}
	r := &Rule{Line: n.Line}
	var detection *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		var err error
		switch k.Value {
		case "title":
			r.Title, err = scalar(v, "title")
		case "id":
			r.ID, err = scalar(v, "id")
		case "description":
			r.Description, err = scalar(v, "description")
		case "level":
			r.Level, err = scalar(v, "level")
			switch r.Level {
			case "informational", "low", "medium", "high", "critical":
			default:
				if err == nil {
					err = errAt(v, "level %q is not one of informational, low, medium, high, critical", r.Level)
				}
			}
		case "status":
			r.Status, err = scalar(v, "status")
		case "tags":
			err = v.Decode(&r.Tags)
		case "logsource":
			err = decodeLogsource(v, &r.Logsource)
		case "detection":
			detection = v
		default:
			if !slices.Contains(knownKeys, k.Value) {
				err = errAt(k, "unknown key %q in a Sigma rule", k.Value)
			}
		}
		if err != nil {
			var se *Error
			if errors.As(err, &se) {
				return nil, err
			}
			return nil, errAt(v, "%s: %v", k.Value, strings.TrimPrefix(err.Error(), "yaml: "))
		}
	}
	if r.Title == "" {
		return nil, errAt(n, "missing title")
	}
	if detection == nil {
		return nil, errAt(n, "missing detection")
	}
	if err := r.compile(detection); err != nil {
		return nil, err
	}
	return r, nil
}

func scalar(n *yaml.Node, what string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", errAt(n, "%s must be a string", what)
	}
	return n.Value, nil
}

func decodeLogsource(n *yaml.Node, ls *Logsource) error {
	if n.Kind != yaml.MappingNode {
		return errAt(n, "logsource must be a mapping")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		s, err := scalar(v, "logsource."+k.Value)
		if err != nil {
			return err
		}
		switch k.Value {
		case "category":
			ls.Category = s
		case "product":
			ls.Product = s
		case "service":
			ls.Service = s
		case "definition":
			ls.Definition = s
		default:
			return errAt(k, "unknown key %q in logsource", k.Value)
		}
	}
	return nil
}

// compile turns the detection section into r.Filter and r.Aggregation.
func (r *Rule) compile(det *yaml.Node) error {
	if det.Kind != yaml.MappingNode {
		return errAt(det, "detection must be a mapping")
	}
	sels := map[string]string{} // name -> filter text
	var names []string
	var conds []string
	var condNode *yaml.Node
	for i := 0; i+1 < len(det.Content); i += 2 {
		k, v := det.Content[i], det.Content[i+1]
		switch k.Value {
		case "condition":
			condNode = v
			switch v.Kind {
			case yaml.ScalarNode:
				conds = []string{v.Value}
			case yaml.SequenceNode:
				for _, c := range v.Content {
					if c.Kind != yaml.ScalarNode {
						return errAt(c, "condition must be a string or a list of strings")
					}
					conds = append(conds, c.Value)
				}
			default:
				return errAt(v, "condition must be a string or a list of strings")
			}
		case "timeframe":
			d, err := ParseTimeframe(v.Value)
			if err != nil {
				return errAt(v, "timeframe: %v", err)
			}
			r.Timeframe = d
		default:
			if len(sels) >= maxSelections {
				return errAt(k, "more than %d selections", maxSelections)
			}
			if _, dup := sels[k.Value]; dup {
				return errAt(k, "selection %q defined twice", k.Value)
			}
			text, err := selection(v)
			if err != nil {
				return err
			}
			sels[k.Value] = text
			names = append(names, k.Value)
		}
	}
	if condNode == nil {
		return errAt(det, "detection has no condition")
	}
	if len(conds) == 0 {
		return errAt(condNode, "empty condition")
	}
	var parts []string
	for _, c := range conds {
		cp := &condParser{src: c, sels: sels, names: names, node: condNode}
		text, agg, err := cp.parse()
		if err != nil {
			return err
		}
		if agg != nil {
			if len(conds) > 1 {
				return errAt(condNode, "an aggregation (| count()) needs a single condition")
			}
			if r.Timeframe <= 0 {
				return errAt(condNode, "the aggregation %q needs a timeframe", c[strings.IndexByte(c, '|'):])
			}
			r.Aggregation = agg
		}
		parts = append(parts, text)
	}
	if len(parts) == 1 {
		r.Filter = parts[0]
	} else {
		r.Filter = "(" + strings.Join(parts, ") or (") + ")"
	}
	if _, err := filter.ParseLimits(r.Filter, FilterLimits); err != nil {
		return errAt(condNode, "compiled filter does not parse (%v): %s", err, abbreviate(r.Filter))
	}
	return nil
}

// FilterLimits are the limits for parsing the filter compiled from a Sigma
// rule, larger than filter.DefaultLimits because Sigma rules list many values.
var FilterLimits = filter.Limits{MaxLength: 1 << 20, MaxDepth: 64, MaxNodes: 1 << 14, MaxList: maxValues, MaxRegex: 4096}

func abbreviate(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// ParseTimeframe reads a Sigma timeframe: a number followed by s, m, h or d.
func ParseTimeframe(s string) (time.Duration, error) {
	if len(s) < 2 {
		return 0, fmt.Errorf("%q is not a timeframe (use 30s, 5m, 1h, 1d)", s)
	}
	n, err := strconv.Atoi(s[:len(s)-1])
	if err != nil || n <= 0 || n > 366*24*3600 {
		return 0, fmt.Errorf("%q is not a timeframe (use 30s, 5m, 1h, 1d)", s)
	}
	unit := map[byte]time.Duration{'s': time.Second, 'm': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour}[s[len(s)-1]]
	if unit == 0 {
		return 0, fmt.Errorf("%q is not a timeframe (use 30s, 5m, 1h, 1d)", s)
	}
	return time.Duration(n) * unit, nil
}

// MapField returns the ECS name of a Sigma field.
func MapField(name string) (string, error) {
	if ecs, ok := FieldMap[name]; ok {
		return ecs, nil
	}
	if strings.Contains(name, ".") {
		if _, err := filter.ParseField(name); err != nil {
			return "", err
		}
		return name, nil
	}
	return "", fmt.Errorf("unknown Sigma field %q: not in Vigil's field mapping (see docs/rules.md); use an ECS name such as url.path", name)
}
