package alert

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vigilsec/vigil/internal/httperr"
)

// Limits of the API.
const (
	DefaultAPIMaxBody = 64 << 10 // bytes of a request body
	MaxAlertsListed   = 10000
	DefaultAlertsList = 1000
	MaxFilterParams   = 16
)

// API serves the alert manager over HTTP with full paths under /api/v1/:
//
//	GET    /api/v1/alerts                   list (state, silenced, inhibited, receiver, filter, limit)
//	GET    /api/v1/alerts/{fingerprint}     one alert with its evidence
//	GET    /api/v1/silences                 list (state)
//	POST   /api/v1/silences                 create
//	GET    /api/v1/silences/{id}            one silence
//	DELETE /api/v1/silences/{id}            expire now
//	GET    /api/v1/notifications            delivery log (receiver, status, group, limit)
//
// Authentication is the wiring's job: Register wraps every route.
type API struct {
	Manager *Manager
	// MaxBodyBytes bounds request bodies (DefaultAPIMaxBody when zero).
	MaxBodyBytes int64
	// Audit, when set, records a silence made ("vigil_silence_created") or
	// expired ("vigil_silence_expired") through the API, after the change:
	// muting alerts is what an intruder with a token would do first. A
	// failure to record it does not undo the change; Audit logs it.
	Audit func(r *http.Request, action string, s Silence)

	once sync.Once
	mux  *http.ServeMux
}

// NewAPI returns the API of m.
func NewAPI(m *Manager) *API { return &API{Manager: m} }

// Register adds the routes to mux, each wrapped by wrap (authentication).
func (a *API) Register(mux *http.ServeMux, wrap func(http.Handler) http.Handler) {
	if wrap == nil {
		wrap = func(h http.Handler) http.Handler { return h }
	}
	routes := []struct {
		pattern string
		h       http.HandlerFunc
	}{
		{"GET /api/v1/alerts", a.listAlerts},
		{"GET /api/v1/alerts/{fingerprint}", a.getAlert},
		{"GET /api/v1/silences", a.listSilences},
		{"POST /api/v1/silences", a.postSilence},
		{"GET /api/v1/silences/{id}", a.getSilence},
		{"DELETE /api/v1/silences/{id}", a.deleteSilence},
		{"GET /api/v1/notifications", a.listDeliveries},
	}
	allowed := map[string][]string{}
	var paths []string
	for _, r := range routes {
		mux.Handle(r.pattern, wrap(r.h))
		method, path, _ := strings.Cut(r.pattern, " ")
		if allowed[path] == nil {
			paths = append(paths, path)
		}
		allowed[path] = append(allowed[path], method)
	}
	for _, p := range paths {
		allow := strings.Join(allowed[p], ", ")
		mux.Handle(p, wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			httperr.Msg(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s (allowed: %s)", r.Method, p, allow))
		})))
	}
}

// ServeHTTP serves the routes without authentication (tests, or behind a
// wrapper of the caller's choice).
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.once.Do(func() {
		a.mux = http.NewServeMux()
		a.Register(a.mux, nil)
		a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			httperr.Msg(w, http.StatusNotFound, fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
		})
	})
	a.mux.ServeHTTP(w, r)
}

// checkParams refuses parameters not in allowed, so a typo never widens a
// listing.
func checkParams(r *http.Request, allowed ...string) error {
	q := r.URL.Query()
	for k, vs := range q {
		ok := false
		for _, a := range allowed {
			if k == a {
				ok = true
			}
		}
		if !ok {
			return fmt.Errorf("unknown parameter %q (allowed: %s)", k, strings.Join(allowed, ", "))
		}
		if len(vs) > MaxFilterParams {
			return fmt.Errorf("parameter %s: more than %d values", k, MaxFilterParams)
		}
	}
	return nil
}

// listValues splits repeated and comma-separated values, each checked
// against valid.
func listValues(r *http.Request, name string, valid ...string) ([]string, error) {
	var out []string
	for _, v := range r.URL.Query()[name] {
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			ok := false
			for _, x := range valid {
				ok = ok || s == x
			}
			if !ok {
				return nil, fmt.Errorf("parameter %s: %q is not one of %s", name, s, strings.Join(valid, ", "))
			}
			out = append(out, s)
		}
	}
	return out, nil
}

func limitParam(r *http.Request, def, hi int) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > hi {
		return 0, fmt.Errorf("parameter limit: %q is not a number in 1..%d", s, hi)
	}
	return n, nil
}

func (a *API) listAlerts(w http.ResponseWriter, r *http.Request) {
	if err := checkParams(r, "state", "silenced", "inhibited", "receiver", "filter", "limit"); err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	var f AlertFilter
	var err error
	if f.States, err = listValues(r, "state", StatePending, StateFiring, StateResolved); err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	q := r.URL.Query()
	for _, p := range []struct {
		name string
		out  **bool
	}{{"silenced", &f.Silenced}, {"inhibited", &f.Inhibited}} {
		if s := q.Get(p.name); s != "" {
			b, err := strconv.ParseBool(s)
			if err != nil {
				httperr.Msg(w, http.StatusBadRequest, fmt.Sprintf("parameter %s: %q is not true or false", p.name, s))
				return
			}
			*p.out = &b
		}
	}
	f.Receiver = q.Get("receiver")
	for i, s := range q["filter"] {
		ms, err := ParseMatchers(s)
		if err != nil {
			httperr.Msg(w, http.StatusBadRequest, fmt.Sprintf("parameter filter[%d]: %v", i, err))
			return
		}
		f.Matchers = append(f.Matchers, ms...)
	}
	if f.Limit, err = limitParam(r, DefaultAlertsList, MaxAlertsListed); err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	httperr.JSON(w, http.StatusOK, map[string]any{"alerts": a.Manager.Alerts(f)})
}

func (a *API) getAlert(w http.ResponseWriter, r *http.Request) {
	if err := checkParams(r); err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	info, err := a.Manager.Alert(r.PathValue("fingerprint"))
	if err != nil {
		httperr.Msg(w, http.StatusNotFound, err.Error())
		return
	}
	httperr.JSON(w, http.StatusOK, info)
}

func (a *API) listSilences(w http.ResponseWriter, r *http.Request) {
	if err := checkParams(r, "state"); err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	states, err := listValues(r, "state", SilenceActive, SilencePending, SilenceExpired)
	if err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	httperr.JSON(w, http.StatusOK, map[string]any{"silences": a.Manager.Silences(states...)})
}

func (a *API) getSilence(w http.ResponseWriter, r *http.Request) {
	if err := checkParams(r); err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	s, err := a.Manager.Silence(r.PathValue("id"))
	if err != nil {
		httperr.Msg(w, http.StatusNotFound, err.Error())
		return
	}
	httperr.JSON(w, http.StatusOK, s)
}

func (a *API) deleteSilence(w http.ResponseWriter, r *http.Request) {
	if err := checkParams(r); err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	s, err := a.Manager.ExpireSilence(r.PathValue("id"))
	if err != nil {
		httperr.Msg(w, http.StatusNotFound, err.Error())
		return
	}
	if a.Audit != nil {
		a.Audit(r, "vigil_silence_expired", s)
	}
	httperr.JSON(w, http.StatusOK, s)
}

// SilenceRequest is the body of POST /api/v1/silences. Give endsAt or
// duration; startsAt defaults to now.
type SilenceRequest struct {
	Matchers  []string   `json:"matchers"`
	StartsAt  *time.Time `json:"startsAt,omitempty"`
	EndsAt    *time.Time `json:"endsAt,omitempty"`
	Duration  string     `json:"duration,omitempty"`
	CreatedBy string     `json:"createdBy"`
	Comment   string     `json:"comment"`
}

// ParseSilenceRequest decodes and checks a request body (strict: unknown
// fields are errors) into a silence for AddSilence. Errors name the field.
func ParseSilenceRequest(b []byte, now time.Time) (Silence, error) {
	var req SilenceRequest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return Silence{}, jsonFieldError(err)
	}
	if dec.More() {
		return Silence{}, errors.New("body: one JSON object expected")
	}
	s := Silence{CreatedBy: req.CreatedBy, Comment: req.Comment}
	if len(req.Matchers) > MaxMatchersInList {
		return Silence{}, fieldErr("matchers", "more than %d matchers", MaxMatchersInList)
	}
	for i, ms := range req.Matchers {
		parsed, err := ParseMatchers(ms)
		if err != nil {
			return Silence{}, fieldErr(fmt.Sprintf("matchers[%d]", i), "%v", err)
		}
		s.Matchers = append(s.Matchers, parsed...)
	}
	if req.StartsAt != nil {
		s.StartsAt = *req.StartsAt
	}
	switch {
	case req.EndsAt != nil && req.Duration != "":
		return Silence{}, fieldErr("duration", "give endsAt or duration, not both")
	case req.EndsAt != nil:
		s.EndsAt = *req.EndsAt
	case req.Duration != "":
		d, err := ParseDuration(req.Duration)
		if err != nil || d <= 0 {
			return Silence{}, fieldErr("duration", "%q is not a positive duration (2h, 30m, 7d)", req.Duration)
		}
		start := s.StartsAt
		if start.IsZero() || start.Before(now) {
			start = now
		}
		s.EndsAt = start.Add(d)
	}
	return s, nil
}

// jsonFieldError names the field of a JSON decoding error.
func jsonFieldError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fieldErr(te.Field, "must be a JSON %s", te.Type.String())
	}
	var pe *time.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("body: time %q is not RFC 3339", pe.Value)
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return fieldErr(strings.Trim(f, `"`), "unknown field (fields: matchers, startsAt, endsAt, duration, createdBy, comment)")
	}
	if errors.Is(err, io.EOF) {
		return errors.New("body: empty, want a JSON object")
	}
	return fmt.Errorf("body: %s", strings.TrimPrefix(msg, "json: "))
}

func (a *API) postSilence(w http.ResponseWriter, r *http.Request) {
	if err := checkParams(r); err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			httperr.Msg(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
			return
		}
	}
	limit := a.MaxBodyBytes
	if limit <= 0 {
		limit = DefaultAPIMaxBody
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			httperr.Msg(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", limit))
			return
		}
		httperr.Msg(w, http.StatusBadRequest, "read body: "+err.Error())
		return
	}
	s, err := ParseSilenceRequest(b, a.Manager.now())
	if err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	out, err := a.Manager.AddSilence(s)
	switch {
	case errors.Is(err, ErrTooManySilences):
		httperr.Msg(w, http.StatusConflict, err.Error())
		return
	case err != nil:
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	if a.Audit != nil {
		a.Audit(r, "vigil_silence_created", out)
	}
	httperr.JSON(w, http.StatusOK, out)
}

func (a *API) listDeliveries(w http.ResponseWriter, r *http.Request) {
	if err := checkParams(r, "receiver", "status", "group", "limit"); err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	q := r.URL.Query()
	f := DeliveryFilter{Receiver: q.Get("receiver"), GroupKey: q.Get("group")}
	if st := q.Get("status"); st != "" {
		switch st {
		case DeliverySent, DeliveryRetrying, DeliveryFailed, DeliveryDropped:
			f.Status = st
		default:
			httperr.Msg(w, http.StatusBadRequest, fmt.Sprintf("parameter status: %q is not one of sent, retrying, failed, dropped", st))
			return
		}
	}
	var err error
	if f.Limit, err = limitParam(r, 100, max(a.Manager.cfg.DeliveryLogSize, 1)); err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	httperr.JSON(w, http.StatusOK, map[string]any{"notifications": a.Manager.Deliveries(f)})
}
