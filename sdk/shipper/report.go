package shipper

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// The Shipper's own event, sent after best-effort events were dropped, so
// the loss is visible in Vigil and not only in Stats.
type dropReport struct {
	Timestamp string   `json:"@timestamp"`
	ID        string   `json:"event.id"`
	Kind      string   `json:"event.kind"`
	Category  []string `json:"event.category"`
	Type      []string `json:"event.type"`
	Action    string   `json:"event.action"`
	Outcome   string   `json:"event.outcome"`
	Level     string   `json:"log.level"`
	Dropped   uint64   `json:"labels.dropped"`
	From      string   `json:"labels.dropped_from"`
	To        string   `json:"labels.dropped_to"`
	Service   string   `json:"service.name,omitempty"`
	Host      string   `json:"host.name,omitempty"`
	Message   string   `json:"message"`
}

// ReportAction is the event.action of the event the Shipper sends after
// dropping best-effort events; its labels.dropped is how many.
const ReportAction = "vigil_shipper_dropped"

// queueReportLocked queues an event reporting the drops not yet reported. It
// is critical (never dropped) and bypasses the memory bound: it is one event.
func (s *Shipper) queueReportLocked() {
	n := s.unreported
	if n == 0 {
		return
	}
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	r := dropReport{
		Timestamp: ts(s.cfg.Now()),
		ID:        newUUID(),
		Kind:      "event",
		Category:  []string{"process"},
		Type:      []string{"info"},
		Action:    ReportAction,
		Outcome:   "failure",
		Level:     "warn",
		Dropped:   n,
		From:      ts(s.dropFirst),
		To:        ts(s.dropLast),
		Service:   s.cfg.Service,
		Host:      s.host,
		Message: fmt.Sprintf("Vigil shipper dropped %d best-effort events between %s and %s: memory or spool full while Vigil was unreachable or slow",
			n, ts(s.dropFirst), ts(s.dropLast)),
	}
	line, err := json.Marshal(r)
	if err != nil {
		return
	}
	s.addLocked(line, true, false)
	s.unreported = 0
	s.lastReport = time.Now()
	s.st.Reports++
	s.log.Warn("shipper: dropped best-effort events; reporting it to Vigil", "dropped", n, "event_id", r.ID)
	s.wakeOne()
}

// newUUID returns a random UUID (version 4).
func newUUID() string {
	var u [16]byte
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}
