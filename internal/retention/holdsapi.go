package retention

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"

	"github.com/vigilsec/vigil/internal/atomicfile"
	"github.com/vigilsec/vigil/internal/httperr"
)

// HoldsFile keeps, in the data directory, the holds added through the API
// (those of the configuration stay in the configuration).
const HoldsFile = "holds.json"

// maxHoldBody bounds a hold request.
const maxHoldBody = 64 << 10

// HoldAPI serves the legal holds: GET /api/v1/holds lists them,
// POST /api/v1/holds adds or replaces one ({"id", "query" or "incident",
// "reason", "until"}), DELETE /api/v1/holds/{id} lifts one. Holds added here
// are saved in HoldsFile and survive restarts; those of the configuration
// cannot be lifted here.
type HoldAPI struct {
	holds *Holds
	path  string
	fixed map[string]bool // from the configuration

	mu      sync.Mutex // serializes changes and saves
	dynamic map[string]Hold

	// Audit, when set, records each change in the log before it is
	// answered: action is "vigil_hold_added" or "vigil_hold_removed", who
	// the token's name. An error refuses the change.
	Audit func(r *http.Request, action string, h Hold) error
}

// NewHoldAPI loads the holds saved in path into holds (which holds those of
// the configuration, listed in fixed).
func NewHoldAPI(holds *Holds, path string, fixed []Hold) (*HoldAPI, error) {
	a := &HoldAPI{holds: holds, path: path, fixed: map[string]bool{}, dynamic: map[string]Hold{}}
	for _, h := range fixed {
		a.fixed[h.ID] = true
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return a, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read holds: %w", err)
	}
	var saved []Hold
	if err := json.Unmarshal(b, &saved); err != nil {
		return nil, fmt.Errorf("read holds %s: %w", path, err)
	}
	for _, h := range saved {
		if a.fixed[h.ID] {
			continue // the configuration's hold of that ID wins
		}
		if err := holds.Add(h); err != nil {
			return nil, fmt.Errorf("read holds %s: %w", path, err)
		}
		a.dynamic[h.ID] = h
	}
	return a, nil
}

func (a *HoldAPI) save() error {
	list := make([]Hold, 0, len(a.dynamic))
	for _, h := range a.dynamic {
		list = append(list, h)
	}
	b, err := json.Marshal(list)
	if err != nil {
		return err
	}
	return atomicfile.Write(a.path, b)
}

// Register mounts the routes on mux behind wrap (authentication).
func (a *HoldAPI) Register(mux *http.ServeMux, wrap func(http.Handler) http.Handler) {
	mux.Handle("GET /api/v1/holds", wrap(http.HandlerFunc(a.list)))
	mux.Handle("POST /api/v1/holds", wrap(http.HandlerFunc(a.add)))
	mux.Handle("DELETE /api/v1/holds/{id}", wrap(http.HandlerFunc(a.remove)))
}

func (a *HoldAPI) list(w http.ResponseWriter, r *http.Request) {
	httperr.JSON(w, http.StatusOK, map[string]any{"holds": a.holds.List()})
}

func (a *HoldAPI) add(w http.ResponseWriter, r *http.Request) {
	var h Hold
	if !httperr.DecodeBody(w, r, maxHoldBody, "hold", &h) {
		return
	}
	if a.fixed[h.ID] {
		httperr.Msg(w, http.StatusConflict, fmt.Sprintf("hold %q is in the configuration: change it there", h.ID))
		return
	}
	if _, err := h.compile(); err != nil {
		httperr.Msg(w, http.StatusBadRequest, fmt.Sprintf("hold %q: %v", h.ID, err))
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.Audit != nil {
		if err := a.Audit(r, "vigil_hold_added", h); err != nil {
			httperr.Msg(w, http.StatusInternalServerError, "record the hold in the log: "+err.Error())
			return
		}
	}
	if err := a.holds.Add(h); err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	prev, had := a.dynamic[h.ID]
	a.dynamic[h.ID] = h
	if err := a.save(); err != nil {
		// Not durable: undo, so that memory says what a restart will.
		if had {
			a.dynamic[h.ID] = prev
			_ = a.holds.Add(prev)
		} else {
			delete(a.dynamic, h.ID)
			a.holds.Remove(h.ID)
		}
		httperr.Msg(w, http.StatusInternalServerError, "save holds: "+err.Error())
		return
	}
	httperr.JSON(w, http.StatusCreated, h)
}

func (a *HoldAPI) remove(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if a.fixed[id] {
		httperr.Msg(w, http.StatusConflict, fmt.Sprintf("hold %q is in the configuration: remove it there", id))
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	prev, ok := a.dynamic[id]
	if !ok {
		httperr.Msg(w, http.StatusNotFound, fmt.Sprintf("no hold %q", id))
		return
	}
	if a.Audit != nil {
		if err := a.Audit(r, "vigil_hold_removed", prev); err != nil {
			httperr.Msg(w, http.StatusInternalServerError, "record the change in the log: "+err.Error())
			return
		}
	}
	delete(a.dynamic, id)
	if err := a.save(); err != nil {
		a.dynamic[id] = prev
		httperr.Msg(w, http.StatusInternalServerError, "save holds: "+err.Error())
		return
	}
	a.holds.Remove(id)
	httperr.JSON(w, http.StatusOK, map[string]string{"removed": id})
}
