// Package event defines Vigil's canonical security event: a JSON object whose
// field names follow the Elastic Common Schema (ECS) and whose actions follow
// the OWASP Logging Vocabulary.
//
// An event travels as JSON. Parse validates one JSON object, expands dotted keys
// ("source.ip": ...) into nested objects, fills event.id and @timestamp when the
// sender left them out, and produces the canonical bytes: compact JSON with
// object keys sorted, which is what the store keeps and what the ledger hashes.
// Fields Vigil does not know are kept, never dropped.
package event

import (
	"net/netip"
	"time"
)

// SchemaVersion is the version of the event schema documented in
// docs/event-schema.md. It is written to vigil.schema in every canonical event.
const SchemaVersion = "1"

// Event is one parsed event: the fields Vigil indexes, extracted from the
// canonical JSON, plus the canonical JSON itself.
type Event struct {
	ID        string     // event.id: set by the sender or by Vigil; an ID sent twice is stored once
	Time      time.Time  // @timestamp
	Kind      string     // event.kind
	Category  string     // event.category (first value when an array)
	Action    string     // event.action, OWASP vocabulary where one applies
	Outcome   string     // event.outcome: success, failure, unknown
	Severity  int        // event.severity (0 when absent)
	SourceIP  netip.Addr // source.ip (zero when absent)
	UserID    string     // user.id
	UserName  string     // user.name
	Method    string     // http.request.method
	Path      string     // url.path
	Status    int        // http.response.status_code (0 when absent)
	RequestID string     // http.request.id
	Service   string     // service.name
	Host      string     // host.name
	Message   string     // message
	Related   []string   // related.objects: "type:id" strings naming the objects an event concerns

	// Canonical is the event as stored and hashed: compact JSON, keys sorted
	// byte-wise at every level, no insignificant whitespace.
	Canonical []byte
}

// Limits bound what Parse accepts from one event.
type Limits struct {
	MaxBytes int // size of one event's JSON, in bytes
	MaxDepth int // nesting depth of objects and arrays
}

// DefaultLimits are the limits Vigil applies unless configured otherwise.
var DefaultLimits = Limits{MaxBytes: 1 << 20, MaxDepth: 32}
