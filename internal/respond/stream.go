package respond

import (
	"bufio"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/vigilsec/vigil/internal/httperr"
)

// Stream operations: the "op" of each line of GET /api/v1/decisions/stream.
const (
	OpAdded     = "added"     // {"op":"added","decision":{…}}: a decision in force (new, extended, or part of the initial state)
	OpRemoved   = "removed"   // {"op":"removed","decision":{…}}: removed or expired (decision.removed_by says which)
	OpSynced    = "synced"    // {"op":"synced","count":N,"heartbeat_ms":15000,"time":…}: the initial state is complete
	OpHeartbeat = "heartbeat" // {"op":"heartbeat","time":…}: nothing changed
	OpError     = "error"     // {"op":"error","error":"…"}: the server ends the stream; reconnect
)

// StreamContentType is the media type of the stream: newline-delimited
// JSON, one object per line.
const StreamContentType = "application/x-ndjson"

type decisionLine struct {
	Op       string   `json:"op"`
	Decision Decision `json:"decision"`
}

type syncedLine struct {
	Op          string    `json:"op"`
	Count       int       `json:"count"`
	HeartbeatMS int64     `json:"heartbeat_ms"`
	Time        time.Time `json:"time"`
}

type heartbeatLine struct {
	Op   string    `json:"op"`
	Time time.Time `json:"time"`
}

type errorLine struct {
	Op    string `json:"op"`
	Error string `json:"error"`
}

// stream serves GET /api/v1/decisions/stream: every decision in force, a
// "synced" line, then changes as they happen and heartbeats. See
// docs/response.md for the format.
func (h *Handler) stream(w http.ResponseWriter, r *http.Request) {
	if _, err := params(r); err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	rc := http.NewResponseController(w)
	// The server's ReadTimeout would otherwise end this long request (and
	// cancel its context) while it is streaming.
	_ = rc.SetReadDeadline(time.Time{})

	snap, sub := h.m.Subscribe()
	defer sub.Close()
	w.Header().Set("Content-Type", StreamContentType)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no") // nginx in front: do not buffer
	w.Header().Set("Connection", "close")     // when the stream ends, so does the connection
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)

	bw := bufio.NewWriterSize(w, 32<<10)
	enc := json.NewEncoder(bw)
	deadline := func() { _ = rc.SetWriteDeadline(time.Now().Add(h.o.WriteTimeout)) }
	flush := func() error {
		deadline()
		if err := bw.Flush(); err != nil {
			return err
		}
		return rc.Flush()
	}
	deadline()
	for i, d := range snap {
		if i%256 == 0 {
			deadline()
		}
		if err := enc.Encode(decisionLine{OpAdded, d}); err != nil {
			return
		}
	}
	if enc.Encode(syncedLine{OpSynced, len(snap), h.o.Heartbeat.Milliseconds(), h.m.now()}) != nil || flush() != nil {
		return
	}
	snap = nil

	tick := time.NewTicker(h.o.Heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-h.closing:
			_ = enc.Encode(errorLine{OpError, "server shutting down; reconnect"})
			_ = flush()
			return
		case <-sub.Lost():
			h.o.Log.Warn("decision stream client too slow: disconnected", "remote", r.RemoteAddr)
			_ = enc.Encode(errorLine{OpError, "too slow: changes were dropped; reconnect to get the whole state again"})
			_ = flush()
			return
		case c := <-sub.Changes():
			if err := h.writeChange(enc, c); err != nil {
				return
			}
			// Send what else is waiting in the same write.
			for more := true; more; {
				select {
				case c := <-sub.Changes():
					if err := h.writeChange(enc, c); err != nil {
						return
					}
				default:
					more = false
				}
			}
			if err := flush(); err != nil {
				return
			}
		case <-tick.C:
			if enc.Encode(heartbeatLine{OpHeartbeat, h.m.now()}) != nil || flush() != nil {
				return
			}
		}
	}
}

func (h *Handler) writeChange(enc *json.Encoder, c Change) error {
	op := OpRemoved
	if c.Action == ActionDecisionAdded {
		op = OpAdded
	}
	if err := enc.Encode(decisionLine{op, c.Decision}); err != nil {
		return errors.Join(errors.New("write stream"), err)
	}
	return nil
}
