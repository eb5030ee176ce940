// Package ledger makes Vigil's event log tamper-evident.
//
// Every event is a leaf of an RFC 6962 / RFC 9162 Merkle tree: leaf i
// (0-based) is the event with sequence number i+1, and its hash is
// tlog.RecordHash of the event's canonical bytes exactly as the store keeps
// them. A Ledger follows the store like any other consumer (a cursor),
// appends the leaves in batches to ledger.db in the data directory, and
// signs a checkpoint (origin, tree size, root hash, time) in the C2SP
// signed-note format with an Ed25519 key every second while the tree grows
// and at shutdown.
//
// The verification half of the package needs nothing but the public key:
// VerifyExport checks an export file offline, VerifyDataDir checks a stopped
// server's data directory, InclusionProof.Verify and VerifyConsistency check
// proofs, and Witness keeps the checkpoints it has seen and raises an alarm
// when the log is rewritten, rolled back or forked.
//
// See docs/integrity.md for the formats and docs/decisions/0005-ledger.md
// for the storage decision.
package ledger
