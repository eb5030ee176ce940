package respond

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vigilsec/vigil/internal/httperr"
)

// HandlerOptions configure the decisions API.
type HandlerOptions struct {
	// Actor names who makes a request, for the Origin of manual decisions
	// ("manual:<actor>") and for removals. nil: "api".
	Actor func(*http.Request) string
	// Heartbeat is the interval of stream heartbeats (default 15s).
	Heartbeat time.Duration
	// WriteTimeout bounds each write to a stream client; a client that
	// does not read for that long is disconnected (default 10s).
	WriteTimeout time.Duration
	Log          *slog.Logger
}

// Defaults of HandlerOptions.
const (
	DefaultHeartbeat    = 15 * time.Second
	DefaultWriteTimeout = 10 * time.Second
)

// Limits of the API.
const (
	MaxBodyBytes = 64 << 10 // a POST body
	MaxListLimit = 100000   // decisions in one list answer
	DefaultLimit = 1000
	MaxTTL       = 10 * 365 * 24 * time.Hour
)

// Handler serves the decisions API under /api/v1/decisions. Mount it
// behind authentication for both "/api/v1/decisions" and
// "/api/v1/decisions/".
type Handler struct {
	m       *Manager
	o       HandlerOptions
	mux     *http.ServeMux
	closing chan struct{}
	once    sync.Once
}

// CloseStreams ends every stream, now and from now on, so that the
// server's graceful shutdown does not wait for them: register it with
// http.Server.RegisterOnShutdown. Clients reconnect (to another node, or
// after the restart).
func (h *Handler) CloseStreams() { h.once.Do(func() { close(h.closing) }) }

// NewHandler returns the API of m.
func NewHandler(m *Manager, o HandlerOptions) *Handler {
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.Log == nil {
		o.Log = m.log
	}
	h := &Handler{m: m, o: o, mux: http.NewServeMux(), closing: make(chan struct{})}
	h.mux.HandleFunc("/api/v1/decisions", h.collection)
	h.mux.HandleFunc("/api/v1/decisions/stream", h.only(http.MethodGet, h.stream))
	h.mux.HandleFunc("/api/v1/decisions/export", h.only(http.MethodGet, h.export))
	h.mux.HandleFunc("/api/v1/decisions/{id}", h.one)
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httperr.Msg(w, http.StatusNotFound, fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
	})
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func (h *Handler) actor(r *http.Request) string {
	if h.o.Actor != nil {
		if a := h.o.Actor(r); a != "" {
			return a
		}
	}
	return "api"
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request, allow ...string) {
	w.Header().Set("Allow", strings.Join(allow, ", "))
	httperr.Msg(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s: use %s", r.Method, r.URL.Path, strings.Join(allow, " or ")))
}

func (h *Handler) only(method string, f http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
			methodNotAllowed(w, r, method)
			return
		}
		f(w, r)
	}
}

func (h *Handler) collection(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		h.list(w, r)
	case http.MethodPost:
		h.add(w, r)
	case http.MethodDelete:
		h.removeValue(w, r)
	default:
		methodNotAllowed(w, r, http.MethodGet, http.MethodPost, http.MethodDelete)
	}
}

func (h *Handler) one(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		d, ok := h.m.Get(id)
		if !ok {
			httperr.Msg(w, http.StatusNotFound, fmt.Sprintf("no decision %q", id))
			return
		}
		httperr.JSON(w, http.StatusOK, d)
	case http.MethodDelete:
		d, err := h.m.Remove(r.Context(), id, ManualOrigin(h.actor(r)))
		h.removed(w, d, err)
	default:
		methodNotAllowed(w, r, http.MethodGet, http.MethodDelete)
	}
}

// params checks that only known query parameters are present, so that a
// typo never widens a selection.
func params(r *http.Request, known ...string) (map[string]string, error) {
	q := r.URL.Query()
	out := make(map[string]string, len(q))
	for k, v := range q {
		if !slices.Contains(known, k) {
			return nil, fmt.Errorf("unknown parameter %q (known: %s)", k, strings.Join(known, ", "))
		}
		if len(v) > 1 {
			return nil, fmt.Errorf("parameter %s: given %d times", k, len(v))
		}
		out[k] = v[0]
	}
	return out, nil
}

// ListAnswer is the answer of GET /api/v1/decisions.
type ListAnswer struct {
	Decisions []Decision `json:"decisions"`
	Total     int        `json:"total"` // matching decisions, before limit
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	p, err := params(r, "type", "scope", "value", "origin", "ip", "user", "state", "limit")
	if err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	f, limit, err := parseFilter(p)
	if err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	ds := h.m.List(f)
	ans := ListAnswer{Decisions: ds, Total: len(ds)}
	if len(ds) > limit {
		ans.Decisions = ds[len(ds)-limit:] // the newest
	}
	if ans.Decisions == nil {
		ans.Decisions = []Decision{}
	}
	httperr.JSON(w, http.StatusOK, ans)
}

func parseFilter(p map[string]string) (Filter, int, error) {
	f := Filter{Type: p["type"], Scope: p["scope"], Origin: p["origin"], User: p["user"]}
	switch f.Type {
	case "", TypeBan, TypeThrottle:
	default:
		return f, 0, fmt.Errorf("parameter type: %q is not %s or %s", f.Type, TypeBan, TypeThrottle)
	}
	switch f.Scope {
	case "", ScopeIP, ScopeRange, ScopeUser:
	default:
		return f, 0, fmt.Errorf("parameter scope: %q is not %s, %s or %s", f.Scope, ScopeIP, ScopeRange, ScopeUser)
	}
	if v := p["value"]; v != "" {
		if f.Scope == "" {
			return f, 0, errors.New("parameter value: needs scope")
		}
		nv, err := normalizeValue(f.Scope, v)
		if err != nil {
			return f, 0, fmt.Errorf("parameter %s", strings.TrimPrefix(err.Error(), "field "))
		}
		f.Value = nv
	}
	if s := p["ip"]; s != "" {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return f, 0, fmt.Errorf("parameter ip: %q is not an IP address", s)
		}
		f.IP = ip
	}
	switch p["state"] {
	case "", "active":
	case "all":
		f.All = true
	default:
		return f, 0, fmt.Errorf("parameter state: %q is not active or all", p["state"])
	}
	limit := DefaultLimit
	if s := p["limit"]; s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxListLimit {
			return f, 0, fmt.Errorf("parameter limit: %q is not a number from 1 to %d", s, MaxListLimit)
		}
		limit = n
	}
	return f, limit, nil
}

// AddRequest is the body of POST /api/v1/decisions.
type AddRequest struct {
	Type             string `json:"type"`  // ban (default) or throttle
	Scope            string `json:"scope"` // ip, range or user
	Value            string `json:"value"`
	TTL              string `json:"ttl"` // a duration: 90s, 30m, 1h, 7d; empty or "0": until removed
	Reason           string `json:"reason"`
	AlertFingerprint string `json:"alert_fingerprint"`
}

// AddAnswer is the answer of POST /api/v1/decisions: 201 for a new
// decision, 200 when one was already in force (extended or kept).
type AddAnswer struct {
	Result   AddResult `json:"result"`
	Decision Decision  `json:"decision"`
}

// ParseTTL reads a TTL: a Go duration (90s, 30m, 1h30m) or a number of
// days (7d); "" and "0" mean none.
func ParseTTL(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return 0, nil
	}
	var d time.Duration
	var err error
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days int
		days, err = strconv.Atoi(n)
		d = time.Duration(days) * 24 * time.Hour
		if days > int(MaxTTL/(24*time.Hour)) {
			d = MaxTTL + 1
		}
	} else {
		d, err = time.ParseDuration(s)
	}
	switch {
	case err != nil:
		return 0, fmt.Errorf("%q is not a duration (90s, 30m, 1h, 7d)", s)
	case d < time.Second:
		return 0, fmt.Errorf("%q is shorter than 1s", s)
	case d > MaxTTL:
		return 0, fmt.Errorf("%q is longer than 10 years; leave it empty for a decision that lasts until removed", s)
	}
	return d, nil
}

func (h *Handler) add(w http.ResponseWriter, r *http.Request) {
	if _, err := params(r); err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			httperr.Msg(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", MaxBodyBytes))
			return
		}
		httperr.Msg(w, http.StatusBadRequest, "read body: "+err.Error())
		return
	}
	req, err := ParseAddRequest(body)
	if err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	ttl, _ := ParseTTL(req.TTL) // checked by ParseAddRequest
	d := Decision{Type: req.Type, Scope: req.Scope, Value: req.Value, Reason: req.Reason,
		AlertFingerprint: req.AlertFingerprint, Origin: ManualOrigin(h.actor(r))}
	if ttl > 0 {
		d.Until = h.m.now().Add(ttl)
	}
	d, res, err := h.m.Add(r.Context(), d)
	var fe *FieldError
	switch {
	case errors.As(err, &fe):
		httperr.Msg(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, ErrAllowlisted):
		httperr.Msg(w, http.StatusConflict, err.Error())
	case errors.Is(err, ErrFull):
		httperr.Msg(w, http.StatusInsufficientStorage, err.Error())
	case err != nil:
		h.o.Log.Error("add decision", "err", err)
		httperr.Msg(w, http.StatusServiceUnavailable, err.Error())
	case res == Added:
		httperr.JSON(w, http.StatusCreated, AddAnswer{Result: res, Decision: d})
	default:
		httperr.JSON(w, http.StatusOK, AddAnswer{Result: res, Decision: d})
	}
}

// ParseAddRequest decodes and checks the body of POST /api/v1/decisions:
// one JSON object, unknown fields refused, every error naming its field.
func ParseAddRequest(body []byte) (AddRequest, error) {
	var req AddRequest
	if len(body) > MaxBodyBytes {
		return req, fmt.Errorf("body over %d bytes", MaxBodyBytes)
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te) && te.Field != "":
			return req, fmt.Errorf("field %s: want a %s", te.Field, te.Type)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return req, fmt.Errorf("field %s: unknown (known: type, scope, value, ttl, reason, alert_fingerprint)",
				strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`))
		case errors.Is(err, io.EOF):
			return req, errors.New("empty body: send a JSON object {\"scope\":…,\"value\":…}")
		}
		return req, fmt.Errorf("body is not a JSON object: %v", err)
	}
	if dec.More() {
		return req, errors.New("body holds more than one JSON value")
	}
	if _, err := ParseTTL(req.TTL); err != nil {
		return req, fmt.Errorf("field ttl: %v", err)
	}
	switch req.Type {
	case "", TypeBan, TypeThrottle:
	default:
		return req, &FieldError{"type", fmt.Sprintf("%q is not %q or %q", req.Type, TypeBan, TypeThrottle)}
	}
	if _, err := normalizeValue(req.Scope, req.Value); err != nil {
		return req, err
	}
	if len(req.Reason) > MaxReasonBytes {
		return req, &FieldError{"reason", fmt.Sprintf("longer than %d bytes", MaxReasonBytes)}
	}
	if err := checkText("reason", req.Reason, MaxReasonBytes, false); err != nil {
		return req, err
	}
	if err := checkText("alert_fingerprint", req.AlertFingerprint, MaxFingerprintBytes, false); err != nil {
		return req, err
	}
	return req, nil
}

func (h *Handler) removeValue(w http.ResponseWriter, r *http.Request) {
	p, err := params(r, "scope", "value")
	if err == nil && (p["scope"] == "" || p["value"] == "") {
		err = errors.New("DELETE /api/v1/decisions needs the parameters scope and value (or use DELETE /api/v1/decisions/{id})")
	}
	if err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	d, err := h.m.RemoveValue(r.Context(), p["scope"], p["value"], ManualOrigin(h.actor(r)))
	h.removed(w, d, err)
}

func (h *Handler) removed(w http.ResponseWriter, d Decision, err error) {
	var fe *FieldError
	switch {
	case errors.As(err, &fe):
		httperr.Msg(w, http.StatusBadRequest, "parameter "+strings.TrimPrefix(err.Error(), "field "))
	case errors.Is(err, ErrNotFound):
		httperr.Msg(w, http.StatusNotFound, err.Error())
	case err != nil:
		h.o.Log.Error("remove decision", "err", err)
		httperr.Msg(w, http.StatusServiceUnavailable, err.Error())
	default:
		httperr.JSON(w, http.StatusOK, d)
	}
}

func (h *Handler) export(w http.ResponseWriter, r *http.Request) {
	p, err := params(r, "format", "type")
	if err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	format := p["format"]
	if !slices.Contains(Formats, format) {
		httperr.Msg(w, http.StatusBadRequest, fmt.Sprintf("parameter format: %q is not one of %s", format, strings.Join(Formats, ", ")))
		return
	}
	f := Filter{Type: TypeBan}
	what := "bans"
	switch p["type"] {
	case "", TypeBan:
	case TypeThrottle:
		f.Type, what = TypeThrottle, "throttles"
	case "any":
		f.Type, what = "", "bans and throttles"
	default:
		httperr.Msg(w, http.StatusBadRequest, fmt.Sprintf("parameter type: %q is not ban, throttle or any", p["type"]))
		return
	}
	ds := h.m.List(f)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if err := Export(w, format, ds, what, h.m.now()); err != nil {
		h.o.Log.Warn("export decisions", "format", format, "err", err)
	}
}
