// Package alertmanager forwards alerts to Prometheus Alertmanager through its
// API v2 (POST /api/v2/alerts), so that teams already routing, silencing and
// inhibiting with Alertmanager handle Vigil's alerts there too.
//
// Alertmanager accepts only Prometheus label names ([a-zA-Z_][a-zA-Z0-9_]*)
// for labels and annotations. Vigil's names such as "source.ip" are sent
// with every other character replaced by "_" ("source_ip"); when two names
// map to the same one, the name that was already valid wins, else the first
// in sorted order. Empty values are dropped (Prometheus treats an empty label
// as absent).
//
// A firing alert is sent with endsAt set to the time by which Vigil will
// have sent it again if it still fires (alert.Alert.RenewBy: its route's
// repeat interval plus two group intervals). Without endsAt, Alertmanager
// resolves an alert by itself after its resolve_timeout (5 minutes by
// default) unless it is sent again, which would close a page while the
// attack goes on. If Vigil stops, its alerts end at that time. A resolved
// alert is sent with endsAt set to when it resolved, which resolves it at
// once.
package alertmanager

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vigilsec/vigil/internal/alert"
	"github.com/vigilsec/vigil/internal/notify/post"
)

// Path is the API path alerts are posted to, below each Alertmanager URL.
const Path = "/api/v2/alerts"

// DefaultAlertName is the alertname of an alert that has none.
const DefaultAlertName = "VigilAlert"

// PostableAlert is one element of the JSON array posted to Alertmanager.
type PostableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// Options configure a Notifier.
type Options struct {
	// URLs are Alertmanager base URLs (http://host:9093); alerts go to
	// every one of them.
	URLs []string
	// Basic auth (Username and Password) or BearerToken, or neither.
	Username, Password string
	BearerToken        string
	Timeout            time.Duration
	Client             *http.Client
	Now                func() time.Time
}

// Notifier posts alerts to a set of Alertmanagers.
type Notifier struct {
	o    Options
	urls []string
	auth string
}

// New returns a Notifier.
func New(o Options) (*Notifier, error) {
	if len(o.URLs) == 0 {
		return nil, errors.New("alertmanager: no URL")
	}
	if o.Username != "" && o.BearerToken != "" {
		return nil, errors.New("alertmanager: basic auth and bearer token are exclusive")
	}
	if o.Client == nil {
		o.Client = post.NewClient(nil)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	n := &Notifier{o: o}
	for _, u := range o.URLs {
		u = strings.TrimRight(u, "/")
		if !strings.HasSuffix(u, Path) {
			u += Path
		}
		n.urls = append(n.urls, u)
	}
	switch {
	case o.Username != "":
		n.auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(o.Username+":"+o.Password))
	case o.BearerToken != "":
		n.auth = "Bearer " + o.BearerToken
	}
	return n, nil
}

// LabelName turns s into a valid Prometheus label name.
func LabelName(s string) string {
	if s == "" {
		return "_"
	}
	b := []byte(s)
	out := make([]byte, 0, len(b)+1)
	if b[0] >= '0' && b[0] <= '9' {
		out = append(out, '_')
	}
	for _, c := range b {
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			out = append(out, c)
		} else {
			out = append(out, '_')
		}
	}
	return string(out)
}

// sanitize maps names to label names and drops empty values.
func sanitize(in map[string]string) map[string]string {
	out := make(map[string]string, len(in))
	// Valid names first so they win over converted ones.
	names := slices.SortedFunc(maps.Keys(in), func(a, b string) int {
		va, vb := LabelName(a) == a, LabelName(b) == b
		if va != vb {
			if va {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	for _, k := range names {
		v := in[k]
		if v == "" {
			continue
		}
		ln := LabelName(k)
		if _, taken := out[ln]; taken {
			continue
		}
		out[ln] = strings.ToValidUTF8(v, string(utf8.RuneError))
	}
	return out
}

// Build converts alerts to the API's format at time now.
func Build(alerts []alert.Alert, now time.Time) []PostableAlert {
	out := make([]PostableAlert, 0, len(alerts))
	for _, a := range alerts {
		p := PostableAlert{
			Labels:       sanitize(a.Labels),
			StartsAt:     a.StartsAt.UTC(),
			GeneratorURL: a.GeneratorURL,
		}
		if _, ok := p.Labels["alertname"]; !ok {
			p.Labels["alertname"] = DefaultAlertName
		}
		ann := maps.Clone(a.Annotations)
		if ann == nil {
			ann = map[string]string{}
		}
		if a.Fingerprint != "" {
			ann["vigil_fingerprint"] = cmp.Or(ann["vigil_fingerprint"], a.Fingerprint)
		}
		if len(a.Evidence) > 0 {
			seqs := make([]string, len(a.Evidence))
			for i, s := range a.Evidence {
				seqs[i] = fmt.Sprint(s)
			}
			ann["vigil_evidence"] = cmp.Or(ann["vigil_evidence"], strings.Join(seqs, ","))
		}
		if p.Annotations = sanitize(ann); len(p.Annotations) == 0 {
			p.Annotations = nil
		}
		if a.Status == alert.StateFiring && !a.RenewBy.IsZero() {
			p.EndsAt = a.RenewBy.UTC()
		}
		if a.Status != alert.StateFiring {
			end := a.EndsAt
			if end.IsZero() {
				end = now
			}
			if !p.StartsAt.IsZero() && end.Before(p.StartsAt) {
				end = p.StartsAt
			}
			p.EndsAt = end.UTC()
		}
		out = append(out, p)
	}
	return out
}

// Notify posts the alerts to every Alertmanager. 200 is success; 429, 5xx
// and network errors are worth a retry, 400 (an invalid alert) and other
// statuses are not. It fails if any Alertmanager failed; retry is true when
// any of those failures is worth a retry (Alertmanager merges alerts sent
// twice by their labels, so resending to all is harmless).
func (n *Notifier) Notify(ctx context.Context, alerts []alert.Alert) (bool, error) {
	if len(alerts) == 0 {
		return false, nil
	}
	body, err := json.Marshal(Build(alerts, n.o.Now()))
	if err != nil {
		return false, fmt.Errorf("alertmanager: encode alerts: %w", err)
	}
	h := http.Header{}
	if n.auth != "" {
		h.Set("Authorization", n.auth)
	}
	var (
		errs  []error
		retry bool
	)
	for _, u := range n.urls {
		r, err := n.send(ctx, u, h, body)
		if err != nil {
			retry = retry || r
			errs = append(errs, fmt.Errorf("%s: %w", post.RedactURL(u, false), err))
		}
	}
	if len(errs) > 0 {
		return retry, fmt.Errorf("alertmanager: %d of %d failed: %w", len(errs), len(n.urls), errors.Join(errs...))
	}
	return false, nil
}

func (n *Notifier) send(ctx context.Context, u string, h http.Header, body []byte) (bool, error) {
	resp, err := post.Do(ctx, n.o.Client, post.Request{URL: u, Header: h, Body: body, Timeout: n.o.Timeout})
	if err != nil {
		return post.RetryError(err), err
	}
	return post.Check(resp, n.o.Now(), http.StatusOK)
}
