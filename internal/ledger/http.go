package ledger

import (
	"compress/gzip"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vigilsec/vigil/internal/api"
	"github.com/vigilsec/vigil/internal/httperr"
)

// The ledger's API paths.
const (
	PathCheckpoint  = "/api/v1/ledger/checkpoint"
	PathCheckpoints = "/api/v1/ledger/checkpoints"
	PathPubkey      = "/api/v1/ledger/pubkey"
	PathRotations   = "/api/v1/ledger/rotations"
	PathInclusion   = "/api/v1/ledger/proof/inclusion"
	PathConsistency = "/api/v1/ledger/proof/consistency"
	PathExport      = "/api/v1/ledger/export"
)

// Limits of the checkpoints listing.
const (
	DefaultCheckpoints = 100
	MaxCheckpoints     = 1000
)

// Register mounts the ledger's routes on mux. The public key, the signed
// checkpoints and consistency proofs reveal no event and are what an
// outside witness needs, so they are mounted as they are; inclusion proofs
// (a leaf hash can confirm a guessed event) and exports (the events
// themselves) go through protect, which should require a token.
func (l *Ledger) Register(mux *http.ServeMux, protect func(http.Handler) http.Handler) {
	mux.Handle("GET "+PathPubkey, http.HandlerFunc(l.servePubkey))
	mux.Handle("GET "+PathCheckpoint, http.HandlerFunc(l.serveCheckpoint))
	mux.Handle("GET "+PathCheckpoints, http.HandlerFunc(l.serveCheckpoints))
	mux.Handle("GET "+PathRotations, http.HandlerFunc(l.serveRotations))
	mux.Handle("GET "+PathConsistency, http.HandlerFunc(l.serveConsistency))
	mux.Handle("GET "+PathInclusion, protect(http.HandlerFunc(l.serveInclusion)))
	mux.Handle("GET "+PathExport, protect(http.HandlerFunc(l.serveExport)))
}

// Handler serves all the ledger's routes without authentication (mount it
// behind your own, or use Register).
func (l *Ledger) Handler() http.Handler {
	mux := http.NewServeMux()
	l.Register(mux, func(h http.Handler) http.Handler { return h })
	return mux
}

func (l *Ledger) servePubkey(w http.ResponseWriter, r *http.Request) {
	if err := onlyParams(r.URL.Query()); err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	writeText(w, l.PublicKey()+"\n")
}

func (l *Ledger) serveCheckpoint(w http.ResponseWriter, r *http.Request) {
	if err := onlyParams(r.URL.Query()); err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	cp := l.Checkpoint()
	if cp.Note == "" {
		httperr.Msg(w, http.StatusServiceUnavailable, "no checkpoint signed yet")
		return
	}
	writeText(w, cp.Note)
}

func writeText(w http.ResponseWriter, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write([]byte(s))
}

// CheckpointsAnswer is the answer of GET /api/v1/ledger/checkpoints.
type CheckpointsAnswer struct {
	Checkpoints []Checkpoint `json:"checkpoints"`
	// NextBefore, when not 0, is the "before" parameter of the next page.
	NextBefore int64 `json:"next_before,omitempty"`
}

func (l *Ledger) serveCheckpoints(w http.ResponseWriter, r *http.Request) {
	before, limit, err := ParseCheckpointsQuery(r.URL.Query())
	if err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	cps, err := l.Checkpoints(r.Context(), before, limit)
	if err != nil {
		l.serveError(w, err)
		return
	}
	ans := CheckpointsAnswer{Checkpoints: cps}
	if ans.Checkpoints == nil {
		ans.Checkpoints = []Checkpoint{}
	}
	if len(cps) == limit && cps[len(cps)-1].Size > 0 {
		ans.NextBefore = cps[len(cps)-1].Size
	}
	httperr.JSON(w, http.StatusOK, ans)
}

// RotationsAnswer is the answer of GET /api/v1/ledger/rotations.
type RotationsAnswer struct {
	Rotations []Rotation `json:"rotations"`
}

func (l *Ledger) serveRotations(w http.ResponseWriter, r *http.Request) {
	if err := onlyParams(r.URL.Query()); err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	ans := RotationsAnswer{Rotations: []Rotation{}}
	for _, n := range l.Rotations() {
		rot, err := OpenRotation([]byte(n))
		if err != nil {
			l.serveError(w, fmt.Errorf("stored key rotation: %w", err))
			return
		}
		ans.Rotations = append(ans.Rotations, rot)
	}
	httperr.JSON(w, http.StatusOK, ans)
}

func (l *Ledger) serveInclusion(w http.ResponseWriter, r *http.Request) {
	seq, size, err := ParseInclusionQuery(r.URL.Query())
	if err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	p, err := l.InclusionProof(r.Context(), seq, size)
	if err != nil {
		l.serveError(w, err)
		return
	}
	httperr.JSON(w, http.StatusOK, p)
}

func (l *Ledger) serveConsistency(w http.ResponseWriter, r *http.Request) {
	oldSize, newSize, err := ParseConsistencyQuery(r.URL.Query())
	if err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	p, err := l.ConsistencyProof(r.Context(), oldSize, newSize)
	if err != nil {
		l.serveError(w, err)
		return
	}
	httperr.JSON(w, http.StatusOK, p)
}

func (l *Ledger) serveExport(w http.ResponseWriter, r *http.Request) {
	req, err := ParseExportQuery(r.URL.Query(), l.opts.Now())
	if err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	plan, err := l.planExport(r.Context(), req)
	if err != nil {
		l.serveError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="vigil-export-%d-%d.ndjson"`, plan.header.FromSeq, plan.header.ToSeq))
	w.Header().Set("Vary", "Accept-Encoding")
	var err2 error
	if acceptsGzip(r) {
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		if err2 = l.writeExport(r.Context(), zw, plan); err2 == nil {
			err2 = zw.Close()
		}
	} else {
		err2 = l.writeExport(r.Context(), w, plan)
	}
	if err2 != nil {
		// The header is sent: cut the connection so that the client sees a
		// broken transfer, not a short export.
		if r.Context().Err() == nil {
			l.log.Warn("ledger: export failed", "err", err2)
		}
		panic(http.ErrAbortHandler)
	}
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		name, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(name), "gzip") && strings.ReplaceAll(strings.TrimSpace(q), " ", "") != "q=0" {
			return true
		}
	}
	return false
}

func (l *Ledger) serveError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrOutOfRange):
		httperr.Msg(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrClosed):
		httperr.Msg(w, http.StatusServiceUnavailable, "shutting down")
	default:
		l.log.Error("ledger: request failed", "err", err)
		httperr.Msg(w, http.StatusInternalServerError, "ledger: internal error; see the server's log")
	}
}

// onlyParams refuses any query parameter not in allowed, and repeated ones.
func onlyParams(v url.Values, allowed ...string) error {
	for k, vals := range v {
		ok := false
		for _, a := range allowed {
			if k == a {
				ok = true
			}
		}
		if !ok && len(allowed) == 0 {
			return fmt.Errorf("unknown parameter %q: this route takes no parameters", trimForMessage(k))
		}
		if !ok {
			return fmt.Errorf("unknown parameter %q (allowed: %s)", trimForMessage(k), strings.Join(allowed, ", "))
		}
		if len(vals) > 1 {
			return fmt.Errorf("parameter %s given %d times", k, len(vals))
		}
	}
	return nil
}

// sizeParam parses an optional size or sequence number parameter.
func sizeParam(v url.Values, name string) (int64, bool, error) {
	s, ok := v[name]
	if !ok {
		return 0, false, nil
	}
	n, err := parseSize(s[0])
	if err != nil {
		return 0, false, fmt.Errorf("parameter %s: %v", name, err)
	}
	return n, true, nil
}

// ParseInclusionQuery parses the parameters of an inclusion proof:
// seq (required, at least 1) and size (optional, 0 for the latest).
func ParseInclusionQuery(v url.Values) (seq uint64, size int64, err error) {
	if err := onlyParams(v, "seq", "size"); err != nil {
		return 0, 0, err
	}
	n, ok, err := sizeParam(v, "seq")
	if err != nil {
		return 0, 0, err
	}
	if !ok || n < 1 {
		return 0, 0, errors.New("parameter seq: required, a sequence number from 1")
	}
	size, _, err = sizeParam(v, "size")
	if err != nil {
		return 0, 0, err
	}
	if size != 0 && uint64(size) < uint64(n) {
		return 0, 0, fmt.Errorf("parameter size: %d is smaller than seq %d", size, n)
	}
	return uint64(n), size, nil
}

// ParseConsistencyQuery parses the parameters of a consistency proof: old
// (required) and new (optional, 0 for the latest), old <= new.
func ParseConsistencyQuery(v url.Values) (oldSize, newSize int64, err error) {
	if err := onlyParams(v, "old", "new"); err != nil {
		return 0, 0, err
	}
	oldSize, ok, err := sizeParam(v, "old")
	if err != nil {
		return 0, 0, err
	}
	if !ok {
		return 0, 0, errors.New("parameter old: required, a tree size")
	}
	newSize, _, err = sizeParam(v, "new")
	if err != nil {
		return 0, 0, err
	}
	if newSize != 0 && newSize < oldSize {
		return 0, 0, fmt.Errorf("parameter new: %d is smaller than old %d", newSize, oldSize)
	}
	return oldSize, newSize, nil
}

// ParseCheckpointsQuery parses the parameters of the checkpoints listing:
// before (a size, optional) and limit (1..MaxCheckpoints).
func ParseCheckpointsQuery(v url.Values) (before int64, limit int, err error) {
	if err := onlyParams(v, "before", "limit"); err != nil {
		return 0, 0, err
	}
	if before, _, err = sizeParam(v, "before"); err != nil {
		return 0, 0, err
	}
	limit = DefaultCheckpoints
	if s, ok := v["limit"]; ok {
		n, err := strconv.Atoi(s[0])
		if err != nil || n < 1 || n > MaxCheckpoints {
			return 0, 0, fmt.Errorf("parameter limit: want 1..%d", MaxCheckpoints)
		}
		limit = n
	}
	return before, limit, nil
}

// ParseExportQuery parses the parameters of an export: from_seq and to_seq,
// or from and to (RFC 3339, a date, or a duration back from now), and size
// (the checkpoint to prove against).
func ParseExportQuery(v url.Values, now time.Time) (ExportRange, error) {
	var req ExportRange
	if err := onlyParams(v, "from_seq", "to_seq", "from", "to", "size"); err != nil {
		return req, err
	}
	from, _, err := sizeParam(v, "from_seq")
	if err != nil {
		return req, err
	}
	to, _, err := sizeParam(v, "to_seq")
	if err != nil {
		return req, err
	}
	if to != 0 && from > to {
		return req, fmt.Errorf("parameter to_seq: %d is smaller than from_seq %d", to, from)
	}
	req.FromSeq, req.ToSeq = uint64(from), uint64(to)
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"from", &req.From}, {"to", &req.To}} {
		if s, ok := v[p.name]; ok {
			if len(s[0]) > 64 {
				return req, fmt.Errorf("parameter %s: too long", p.name)
			}
			t, err := api.ParseTime(s[0], now)
			if err != nil {
				return req, fmt.Errorf("parameter %s: %v", p.name, err)
			}
			*p.t = t
		}
	}
	if (from != 0 || to != 0) && (!req.From.IsZero() || !req.To.IsZero()) {
		return req, errors.New("give from_seq/to_seq or from/to, not both")
	}
	if !req.From.IsZero() && !req.To.IsZero() && !req.From.Before(req.To) {
		return req, errors.New("parameter to: must be after from")
	}
	if req.Size, _, err = sizeParam(v, "size"); err != nil {
		return req, err
	}
	if req.Size != 0 && to > req.Size {
		return req, fmt.Errorf("parameter to_seq: %d is beyond the checkpoint size %d", to, req.Size)
	}
	return req, nil
}
