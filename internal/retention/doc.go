// Package retention removes old events from the log while keeping it
// verifiable: policies say how long events are kept (by type, category and
// action, with a floor that only force overrides), holds keep what they
// match, a planner selects what is due at a time T in bounded batches, and
// each batch is archived (a gzip ledger export that verifies offline with
// the public key), recorded as a vigil_purge audit event, then purged
// through the store, which keeps the Merkle tree's leaves and records the
// purge so that "vigil verify --data-dir" accepts it. See docs/retention.md
// and docs/decisions/0007-retention.md.
package retention
