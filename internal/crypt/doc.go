// Package crypt encrypts the sensitive fields of events at rest: request and
// response bodies and headers, and any field configured, each replaced in the
// stored event by an envelope string holding its value encrypted with
// XAES-256-GCM (AES-256-GCM with derived keys) under a data key. The data
// keys are kept in keys.json in the data directory, wrapped by a master key
// that stays outside it (a file or an environment variable).
//
// The envelope binds the event's ID and the field's path, so a ciphertext
// moved to another event or field does not decrypt. Leaves of the integrity
// log hash the stored bytes, ciphertext included: an auditor verifies the
// log without any key (see docs/decisions/0006-encryption-at-rest.md and
// docs/encryption.md).
//
// Ingest calls EncryptEvent on the canonical bytes after event.Parse and
// before the store's Append; the read paths call DecryptEvent. Rotate makes
// a new data key for new writes; older keys stay for reading until shredded.
package crypt
