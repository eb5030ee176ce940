// Package shipper sends events to Vigil's native ingest endpoint
// (POST /api/v1/events) in gzipped NDJSON batches, survives Vigil being
// unreachable by spooling to disk, and tells how much it had to drop. It uses
// the standard library only.
//
// # Use
//
//	s, err := shipper.New(shipper.Config{
//		URL:      "https://vigil.internal:8080",
//		Token:    os.Getenv("VIGIL_TOKEN"),
//		SpoolDir: "/var/lib/myapp/vigil-spool", // optional; without it, memory only
//	})
//	if err != nil { … } // errors name the bad field: "shipper: field URL: …"
//	defer s.Close(ctxWithDeadline)
//
//	// A request log: never blocks, may be dropped under pressure.
//	s.Send(ctx, requestEventJSON, false)
//
//	// An audit event: returns once it is durable, else the request can fail.
//	if err := s.Send(ctx, auditEventJSON, true); err != nil { … }
//
// Each event is one JSON object on one line, carrying its own "event.id".
// Send copies it; the caller may reuse its buffer. Events are batched up to
// BatchEvents events or BatchBytes bytes, or for at most FlushInterval, and
// sent with Concurrency requests in flight.
//
// # Delivery guarantees
//
// Delivery is at least once. Vigil stores an event.id once, so events with
// unique IDs are stored exactly once even when the Shipper sends them again
// (after a timeout, a crash, or a replay). An event without event.id gets a
// new ID from Vigil at each copy and may be stored twice.
//
// "Durable" below means: acknowledged by Vigil (which answers 200 only after
// committing and fsyncing the batch), or written to the spool and fsynced.
//
// Critical events (Send(ctx, line, true)), by default (AsyncCritical false):
//
//   - Send returns nil only once the event is durable. An event Send returned
//     nil for survives the application's crash (kill -9) and, with a spool on
//     a file system that honours fsync, a power cut.
//   - Events go to the spool when an attempt fails (connection refused or
//     reset, timeout, 401, 403, 404, 429, 5xx), while older events are still
//     in the spool, or, for a batch carrying critical events, when Vigil has
//     not answered within min(CriticalWait/4, 1 s): then a copy of its
//     critical events is spooled, so a hanging Vigil does not hold Send.
//     Writes to the spool are grouped: one fsync per batch.
//   - They are never dropped for lack of room: they may use the whole memory
//     and spool bounds, while best-effort events stop at 90 %. When both are
//     full, Send waits up to CriticalWait for room, then returns ErrFull and
//     the event is not queued.
//   - ErrNotDurable means the event is queued but did not become durable
//     within CriticalWait or before ctx ended; it is still delivered if it
//     can be. Without a spool, this is what every critical Send returns while
//     Vigil is unreachable, and such events die with the process.
//   - ErrRejected means Vigil refused the event as invalid (400); it is
//     logged and counted in Stats.Rejected. An event refused only later,
//     when its spooled copy is replayed, is logged and counted the same way.
//
// With AsyncCritical, Send returns once a critical event is queued in memory:
// it is still never dropped for lack of room, but a crash loses it until it
// is acknowledged or spooled.
//
// Best-effort events (Send(ctx, line, false)) never block. When memory holds
// 90 % of MemoryEvents or MemoryBytes, Send drops the event and returns
// ErrFull; when the spool holds 90 % of SpoolMaxBytes, events written to it
// are dropped instead. Every drop is counted in Stats.Dropped, and after
// Vigil answers again the Shipper sends an event of its own reporting them:
// event.action "vigil_shipper_dropped" (ReportAction), event.category
// ["process"], labels.dropped the count, labels.dropped_from/_to the time
// span, and a message. While drops go on, it reports at most every 10 s, and
// once more at Close. The sum of labels.dropped equals Stats.Dropped once
// the reports are delivered. Best-effort events in memory die with the
// process.
//
// Order: within a batch, events keep the order of Send. With Concurrency 1
// batches are sent in order; with more, batches in flight at the same time
// may be committed in either order. The spool is replayed oldest first, one
// batch at a time, and while it holds events new ones are queued behind
// them, so nothing overtakes the spool.
//
// Flush returns once every event queued before it is durable, dropped or
// refused; it does not wait for the spool to be replayed. Close stops Send
// (ErrClosed), then delivers memory and spool until everything is
// acknowledged or ctx ends; then it writes what is still in memory to the
// spool and returns. The next New with the same SpoolDir replays it. Events
// still in memory then that the spool cannot take (no spool, spool full or
// failing) are lost and counted in Stats.Lost.
//
// # Answers from Vigil
//
//   - 200: the batch is acknowledged.
//   - 400 with "lines": exactly those lines (1-based) are dropped, logged
//     with their event.id and Vigil's reason (never the event body), counted
//     in Stats.Rejected, and the rest is sent again at once. A 400 naming no
//     line refuses the whole batch.
//   - 413: the batch is split in half and retried, and later batches are
//     kept as small as what was accepted; a single event refused with 413 is
//     dropped as rejected.
//   - 415 to a gzipped body: gzip is turned off and the batch sent again.
//   - 401, 403, 404, other 4xx, 429, 5xx, network errors: the attempt failed.
//     The Shipper spools (or keeps in memory) and retries, one request at a
//     time, with exponential backoff from MinBackoff to MaxBackoff with
//     jitter, or after Retry-After (up to MaxBackoff) when Vigil sends one.
//     Stats.LastError says why, so a wrong token can be fixed on the server
//     without losing events.
//
// # Memory and disk
//
// Memory holds at most MemoryEvents events and MemoryBytes bytes of events
// (queued or in flight), plus the compressed body of each request in flight
// and one batch read back from the spool. Send
// copies into pooled batch buffers and makes no allocation in the common
// case.
//
// The spool is a directory (mode 0700, files 0600) of segment files of
// length-prefixed records, each with a CRC-32C, plus a cursor file marking
// what Vigil acknowledged. On New, a torn or corrupt record at the tail of a
// segment (a crash during a write) is cut off, never replayed. Segments
// wholly acknowledged are deleted. The segment files never exceed
// SpoolMaxBytes in total. A lock (flock) keeps a second Shipper out of the directory.
package shipper
