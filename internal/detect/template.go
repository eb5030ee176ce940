package detect

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/vigilsec/vigil/internal/detect/filter"
)

// maxAnnotation bounds a rendered annotation, in bytes.
const maxAnnotation = 4096

// maxFieldText bounds a value read by .Field in a template.
const maxFieldText = 256

// TemplateData is what annotation templates see:
//
//	{{ .Rule }} {{ .Severity }} {{ .Kind }} {{ .Description }}
//	{{ .Value }}      the measured value: events, distinct values or sum in the
//	                  window, ratio, count of the spike's bucket
//	{{ .Threshold }}  the rule's threshold (ratio for ratio rules)
//	{{ .Count }}      events behind the signal (in the window or sequence)
//	{{ .Firing }}     true when firing, false when resolved
//	{{ .Percent }}    Value × 100 (ratio rules)
//	{{ .Group "source.ip" }}  a group-by value
//	{{ .Field "url.path" }}   a field of the event that caused the signal
//	                          (empty for signals from Tick), at most 256 bytes
type TemplateData struct {
	Rule, Kind, Severity, Description string
	Value, Threshold                  float64
	Count                             int
	Firing                            bool
	Window                            time.Duration
	group                             map[string]string
	doc                               *filter.Doc
}

// Percent returns Value × 100, for ratios.
func (t TemplateData) Percent() float64 { return t.Value * 100 }

// Group returns the value of a group-by field.
func (t TemplateData) Group(field string) string { return t.group[field] }

// Field returns the first value of a field of the event that caused the
// signal, cut to 256 bytes.
func (t TemplateData) Field(name string) string {
	if t.doc == nil {
		return ""
	}
	f, err := filter.ParseField(name)
	if err != nil {
		return ""
	}
	s, _ := f.First(t.doc)
	if len(s) > maxFieldText {
		s = s[:maxFieldText] + "…"
	}
	return s
}

// defaultSummary is the summary of rules that set none.
const defaultSummary = `{{ .Rule }}{{ with .Description }}: {{ . }}{{ end }}`

func compileTemplates(r *Rule) error {
	r.templates = map[string]*template.Template{}
	src := map[string]string{}
	for k, v := range r.Annotations {
		src[k] = v
	}
	if _, ok := src["summary"]; !ok {
		src["summary"] = defaultSummary
	}
	keys := make([]string, 0, len(src))
	for k := range src {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	sample := TemplateData{Rule: r.Name, Kind: r.Kind, Severity: r.Severity, Description: r.Description,
		group: map[string]string{}}
	for _, k := range keys {
		if k == "" {
			return fieldErr("annotations", "empty annotation name")
		}
		t, err := template.New(k).Option("missingkey=error").Parse(src[k])
		if err != nil {
			return fieldErr("annotations."+k, "%v", err)
		}
		// Execute once on sample data so that a typo (.Grup) is found now.
		if _, err := render(t, sample); err != nil {
			return fieldErr("annotations."+k, "%v", err)
		}
		r.templates[k] = t
	}
	return nil
}

var errTooLong = errors.New("annotation longer than 4096 bytes")

type limitedWriter struct {
	b strings.Builder
}

func (w *limitedWriter) Write(p []byte) (int, error) {
	if w.b.Len()+len(p) > maxAnnotation {
		w.b.Write(p[:maxAnnotation-w.b.Len()])
		return 0, errTooLong
	}
	return w.b.Write(p)
}

func render(t *template.Template, data TemplateData) (string, error) {
	var w limitedWriter
	err := t.Execute(&w, data)
	if errors.Is(err, errTooLong) {
		return w.b.String() + "…", nil
	}
	if err != nil {
		return "", err
	}
	return w.b.String(), nil
}

// annotations renders r's annotation templates.
func (r *Rule) annotations(data TemplateData) map[string]string {
	out := make(map[string]string, len(r.templates))
	for k, t := range r.templates {
		s, err := render(t, data)
		if err != nil {
			s = fmt.Sprintf("(template error: %v)", err)
		}
		out[k] = s
	}
	return out
}
