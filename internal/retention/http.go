package retention

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// maxRequestBytes bounds the body of a purge request.
const maxRequestBytes = 64 << 10

// PurgeRequest is the JSON body of POST /api/v1/purge.
type PurgeRequest struct {
	DryRun    bool   `json:"dry_run"`
	Types     []Type `json:"types,omitempty"`
	Before    string `json:"before,omitempty"`     // RFC 3339 or YYYY-MM-DD
	OlderThan string `json:"older_than,omitempty"` // 90d, 2w, 36h
	Force     bool   `json:"force,omitempty"`
}

// ParseRequest turns a PurgeRequest into a Request at now.
func (r PurgeRequest) Request(now time.Time) (Request, error) {
	req := Request{DryRun: r.DryRun, Selection: Selection{Types: r.Types, Force: r.Force}}
	for _, t := range r.Types {
		if !t.Valid() {
			return req, fmt.Errorf("types: %q is not one of %s", t, typeNames())
		}
	}
	switch {
	case r.Before != "" && r.OlderThan != "":
		return req, errors.New("give before or older_than, not both")
	case r.Before != "":
		t, err := ParseDate(r.Before)
		if err != nil {
			return req, fmt.Errorf("before: %w", err)
		}
		req.Before = t
	case r.OlderThan != "":
		d, err := ParseDuration(r.OlderThan)
		if err != nil {
			return req, fmt.Errorf("older_than: %w", err)
		}
		req.Before = now.Add(-d)
	}
	return req, nil
}

// ParseDate reads an RFC 3339 time or a YYYY-MM-DD date (UTC midnight).
func ParseDate(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return t, fmt.Errorf("%q is not an RFC 3339 time or a YYYY-MM-DD date", s)
	}
	return t, nil
}

// Handler serves POST /api/v1/purge: the body is a PurgeRequest, the answer
// the Result as JSON (400 for a bad request, 409 while a purge runs, 422
// for a purge inside the floor without force). The wiring mounts it behind
// the API's authentication (admin role).
func (p *Purger) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeError(w, http.StatusMethodNotAllowed, "use POST")
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
			writeError(w, http.StatusUnsupportedMediaType, "the body must be application/json")
			return
		}
		var body PurgeRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBytes))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is over %d bytes", maxRequestBytes))
				return
			}
			writeError(w, http.StatusBadRequest, "bad JSON body: "+err.Error())
			return
		}
		req, err := body.Request(p.now())
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		res, err := p.Run(r.Context(), req)
		switch {
		case errors.Is(err, ErrBusy):
			writeError(w, http.StatusConflict, err.Error())
			return
		case errors.Is(err, ErrFloor):
			writeError(w, http.StatusUnprocessableEntity, err.Error())
			return
		case err != nil:
			p.log().Error("retention: purge through the API failed", "err", err)
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(res)
	})
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
