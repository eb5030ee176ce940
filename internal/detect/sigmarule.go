package detect

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/vigilsec/vigil/internal/detect/filter"
	"github.com/vigilsec/vigil/internal/detect/sigma"
)

// sigmaSeverity maps Sigma levels to severities.
var sigmaSeverity = map[string]string{
	"informational": SeverityInfo,
	"low":           SeverityInfo,
	"medium":        SeverityWarning,
	"high":          SeverityError,
	"critical":      SeverityCritical,
	"":              SeverityWarning,
}

// sigmaName derives a rule name from a Sigma title: "sigma_" and the title
// in lower case with runs of other characters as "_".
func sigmaName(title string) string {
	var b strings.Builder
	b.WriteString("sigma_")
	us := false
	for _, c := range strings.ToLower(title) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
			us = false
		} else if !us {
			b.WriteByte('_')
			us = true
		}
	}
	s := strings.TrimRight(b.String(), "_")
	if len(s) > maxNameLen {
		s = strings.TrimRight(s[:maxNameLen], "_")
	}
	return s
}

// applySigma fills r from a compiled Sigma rule.
func applySigma(r *Rule, sr *sigma.Rule, file string) error {
	f, err := filter.ParseLimits(sr.Filter, sigma.FilterLimits)
	if err != nil {
		return fmt.Errorf("compiled filter: %v", err)
	}
	r.Filter = f
	r.sigmaInfo = &sigmaInfo{title: sr.Title, id: sr.ID, file: file}
	if r.Description == "" {
		r.Description = strings.TrimSpace(sr.Description)
	}
	if r.Severity == "" {
		r.Severity = sigmaSeverity[sr.Level]
	}
	labels := map[string]string{}
	for k, v := range r.Labels {
		labels[k] = v
	}
	if sr.ID != "" {
		labels["sigma_id"] = sr.ID
	}
	r.Labels = labels
	if r.Annotations == nil {
		r.Annotations = map[string]string{"summary": sr.Title}
	}
	r.eval = KindMatch
	if a := sr.Aggregation; a != nil {
		r.eval = KindThreshold
		r.Window = sr.Timeframe
		r.GroupBy = a.GroupBy
		n := math.Floor(a.Value) + 1
		if a.Op == ">=" {
			n = math.Max(1, math.Ceil(a.Value))
		}
		r.threshold.threshold = n
		if a.Distinct != "" {
			if r.threshold.distinct, err = filter.ParseField(a.Distinct); err != nil {
				return err
			}
		}
	}
	return nil
}

// compileSigmaFile compiles a Sigma rule found in a rules file.
func compileSigmaFile(file string, n *yaml.Node) (*Rule, error) {
	sr, err := sigma.ParseNode(n)
	if err != nil {
		return nil, sigmaLoadError(file, err)
	}
	r := &Rule{
		Name: sigmaName(sr.Title), Kind: KindSigma, Enabled: true,
		ResolveAfter: DefaultResolveAfter, MaxGroups: DefaultMaxGroups,
		Source: fmt.Sprintf("%s:%d", file, sr.Line),
	}
	if err := applySigma(r, sr, file); err != nil {
		return nil, &LoadError{File: file, Line: sr.Line, Rule: r.Name, Msg: err.Error()}
	}
	if r.groupFields, err = parseFields("group_by", r.GroupBy); err != nil {
		return nil, &LoadError{File: file, Line: sr.Line, Rule: r.Name, Msg: err.Error()}
	}
	if err := compileTemplates(r); err != nil {
		return nil, &LoadError{File: file, Line: sr.Line, Rule: r.Name, Msg: err.Error()}
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s|%s|%+v|%s|%s|%s", r.Name, sr.Filter, sr.Aggregation, sr.Timeframe, r.Severity, sr.ID)
	r.fingerprint = hex.EncodeToString(h.Sum(nil)[:12])
	return r, nil
}

func sigmaLoadError(file string, err error) error {
	if se, ok := err.(*sigma.Error); ok {
		return &LoadError{File: file, Line: se.Line, Msg: "sigma: " + se.Msg}
	}
	return &LoadError{File: file, Msg: "sigma: " + err.Error()}
}

// compileSigmaRef compiles a rule of kind sigma, which names a Sigma file.
func compileSigmaRef(r *Rule, s *ruleSpec, read readRef) error {
	if s.Sigma == "" {
		return fieldErr("sigma", "missing: the path of a Sigma rule file, relative to this file")
	}
	if read == nil {
		return fieldErr("sigma", "cannot read %q here (no rules directory)", s.Sigma)
	}
	path, data, err := read(s.Sigma)
	if err != nil {
		return fieldErr("sigma", "%v", err)
	}
	sr, err := sigma.Parse(data)
	if err != nil {
		return fieldErr("sigma", "%s: %v", path, err)
	}
	if err := applySigma(r, sr, path); err != nil {
		return fieldErr("sigma", "%s: %v", path, err)
	}
	if r.eval == KindThreshold && len(s.GroupBy) == 0 {
		return nil
	}
	if r.eval == KindMatch {
		r.GroupBy = s.GroupBy
	}
	return nil
}
