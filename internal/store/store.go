// Package store defines the Store: Vigil's append-only event log. Every
// consumer (search, tail, detection, forwarding, integrity) reads it by
// sequence number. Backends live in sub-packages (store/sqlite) and all pass
// the conformance suite in store/storetest.
package store

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/vigilsec/vigil/internal/event"
)

// ErrClosed is returned by a Store used after Close.
var ErrClosed = errors.New("store closed")

// Record is a committed event.
type Record struct {
	Seq       uint64 // gap-free sequence number, starting at 1
	Canonical []byte // the event's canonical bytes, exactly as appended
}

// AppendResult tells what Append did with a batch.
type AppendResult struct {
	// Seqs holds, for each event of the batch in order, the sequence number it
	// was stored under; for an event whose ID was already stored (earlier or
	// in the same batch) it is the sequence of the first copy.
	Seqs []uint64
	// Duplicates counts the events that were not stored again.
	Duplicates int
}

// Query selects events. Zero fields do not filter. All filters combine with AND.
type Query struct {
	From, To  time.Time    // @timestamp in [From, To)
	AfterSeq  uint64       // seq > AfterSeq
	BeforeSeq uint64       // seq < BeforeSeq (0: no bound)
	SourceIP  netip.Prefix // a single address is a /32 or /128 prefix
	UserName  string
	UserID    string
	Action    string
	Category  string
	Outcome   string
	Method    string
	Path      string
	Status    int
	RequestID string
	Service   string
	Related   string // one entry of related.objects
	Text      string // full-text search on message (words, all must match)
	Limit     int    // maximum records returned by Search (0: backend default 100)
	Desc      bool   // newest first
}

// DefaultLimit is the number of records Search and Read return when asked for
// 0; MaxLimit caps what they return in one call (page with AfterSeq or
// BeforeSeq for more).
const (
	DefaultLimit = 100
	MaxLimit     = 10000
)

// Bucket is one group of a Top result.
type Bucket struct {
	Value string `json:"value"`
	Count int64  `json:"count"`
}

// GroupFields are the field names Top can group by.
var GroupFields = []string{
	"source.ip", "user.name", "user.id", "event.action", "event.category",
	"event.outcome", "http.request.method", "url.path",
	"http.response.status_code", "service.name",
}

// Store is the event log.
type Store interface {
	// Append stores a batch atomically and returns only once it is durable.
	// Sequence numbers are assigned in batch order without gaps.
	Append(ctx context.Context, events []event.Event) (AppendResult, error)
	// Read returns up to limit committed records with seq > after, in order.
	Read(ctx context.Context, after uint64, limit int) ([]Record, error)
	// Search returns records matching q, ordered by seq (ascending unless q.Desc).
	Search(ctx context.Context, q Query) ([]Record, error)
	// Count returns how many events match q (q.Limit is ignored).
	Count(ctx context.Context, q Query) (int64, error)
	// Top returns the n most frequent values of field among events matching q,
	// most frequent first. field is one of GroupFields.
	// Ties are ordered by value ascending in the field's natural order
	// (addresses in address order, status codes numerically, strings
	// byte-wise). Events without the field are not counted. A source.ip
	// value is the address's string form (IPv4 in dotted form).
	Top(ctx context.Context, q Query, field string, n int) ([]Bucket, error)
	// LastSeq returns the highest committed sequence number (0 when empty).
	LastSeq(ctx context.Context) (uint64, error)
	// Cursor returns the position saved for a named consumer (0 when unknown).
	Cursor(ctx context.Context, name string) (uint64, error)
	// SetCursor durably saves a named consumer's position.
	SetCursor(ctx context.Context, name string, seq uint64) error
	// Close flushes and releases the store. Appends in flight finish first.
	Close() error
}

// PurgedRange is a run of sequence numbers whose events were removed by a
// purge (retention), in [First, Last]. The tree of the ledger keeps their
// leaves; the store keeps this record so that a verifier tells a purge from
// a deletion.
type PurgedRange struct {
	First, Last uint64
	Run         string // the purge run that removed them
}

// PurgeResult tells what Purge did.
type PurgeResult struct {
	Purged int64 // events removed
	Absent int64 // sequence numbers asked for that held no event (already purged, or never stored)
}

// Purger is implemented by stores that can remove events for retention.
// ParsedReader is implemented by stores that keep the parsed form of their
// latest records, so that a consumer following the log closely (detection)
// reads them without parsing their canonical bytes again.
type ParsedReader interface {
	// ReadParsed returns up to limit committed events with seq > after, in
	// order, with their sequence numbers; ok is false when they are not all
	// in memory (then use Read). The events are shared: never modify them.
	ReadParsed(ctx context.Context, after uint64, limit int) (seqs []uint64, events []*event.Event, ok bool, err error)
}

// A purged event is gone from Read, Search, Count and Top; its sequence
// number is never handed out again and is recorded as purged (PurgedRanges)
// in the same transaction as the removal.
type Purger interface {
	// Purge removes the events with the given sequence numbers (ascending,
	// no duplicates) under the name run, in bounded transactions that let
	// appends through between them. Purging an absent event is not an
	// error, so a purge interrupted by a crash can be run again. When ctx
	// ends between two transactions, the ones committed stay committed.
	Purge(ctx context.Context, run string, seqs []uint64) (PurgeResult, error)
	// PurgedRanges returns up to limit purged ranges with First > after,
	// in order.
	PurgedRanges(ctx context.Context, after uint64, limit int) ([]PurgedRange, error)
}
