package ledger

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is a signed statement of the tree: the log's origin, the number
// of leaves, the root hash and the time it was signed. Note is the whole
// signed note (C2SP tlog-checkpoint body plus signature lines), which is what
// a verifier checks; the other fields are parsed from it.
type Checkpoint struct {
	Origin string    `json:"origin"`
	Size   int64     `json:"size"`
	Hash   tlog.Hash `json:"hash"`
	Time   time.Time `json:"time"`
	Note   string    `json:"note"`
}

// Limits on what OpenCheckpoint accepts.
const (
	// MaxNoteBytes bounds a signed checkpoint note.
	MaxNoteBytes = 16 << 10
	// maxExtensionLines bounds the extension lines of a checkpoint.
	maxExtensionLines = 16
	// MaxTreeSize bounds tree sizes and sequence numbers read from outside
	// (2^53, far above any real log, so sums of sizes never overflow).
	MaxTreeSize = int64(1) << 53
)

// ErrMalformed is wrapped by the errors of checkpoints, proofs and export
// lines that do not follow the format.
var ErrMalformed = errors.New("malformed")

// SignatureError reports a checkpoint that is not signed by the expected
// key: signed by another key, a bad signature, or another log's origin.
type SignatureError struct {
	Key    string // the expected key, name+hash
	Reason string
}

func (e *SignatureError) Error() string {
	return fmt.Sprintf("checkpoint signature invalid: %s (expected key %s)", e.Reason, e.Key)
}

// checkpointText is the body of a checkpoint note.
func checkpointText(origin string, size int64, h tlog.Hash, t time.Time) string {
	return fmt.Sprintf("%s\n%d\n%s\ntime %s\n", origin, size, base64.StdEncoding.EncodeToString(h[:]),
		t.UTC().Format(time.RFC3339Nano))
}

// signCheckpoint signs a checkpoint of the tree with the key.
func signCheckpoint(k *key, size int64, h tlog.Hash, t time.Time) (Checkpoint, error) {
	t = t.UTC().Round(0)
	msg, err := note.Sign(&note.Note{Text: checkpointText(k.signer.Name(), size, h, t)}, k.signer)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("sign checkpoint of size %d: %w", size, err)
	}
	return Checkpoint{Origin: k.signer.Name(), Size: size, Hash: h, Time: t, Note: string(msg)}, nil
}

// OpenCheckpoint checks that msg is a checkpoint note signed by v for v's
// origin, and parses it. A signature problem is a *SignatureError; a note
// that does not follow the format wraps ErrMalformed.
func OpenCheckpoint(msg []byte, v note.Verifier) (Checkpoint, error) {
	return SingleKey(v).Open(msg)
}

// ParseCheckpointText parses the body of a checkpoint note (the text before
// the signatures), without checking any signature: origin line, tree size,
// base64 root hash, then optional extension lines, of which Vigil writes
// "time RFC3339".
func ParseCheckpointText(text string) (Checkpoint, error) {
	bad := func(format string, args ...any) (Checkpoint, error) {
		return Checkpoint{}, fmt.Errorf("%w checkpoint: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
	if len(text) > MaxNoteBytes {
		return bad("longer than %d bytes", MaxNoteBytes)
	}
	if !strings.HasSuffix(text, "\n") {
		return bad("does not end with a newline")
	}
	lines := strings.Split(text[:len(text)-1], "\n")
	if len(lines) < 3 {
		return bad("%d lines, want origin, tree size and root hash", len(lines))
	}
	if len(lines) > 3+maxExtensionLines {
		return bad("more than %d extension lines", maxExtensionLines)
	}
	var cp Checkpoint
	cp.Origin = lines[0]
	if !validName(cp.Origin) {
		return bad("origin %q is empty or holds spaces or '+'", trimForMessage(cp.Origin))
	}
	size, err := parseSize(lines[1])
	if err != nil {
		return bad("tree size: %v", err)
	}
	cp.Size = size
	h, err := parseHash(lines[2])
	if err != nil {
		return bad("root hash: %v", err)
	}
	cp.Hash = h
	for _, l := range lines[3:] {
		if l == "" {
			return bad("empty extension line")
		}
		if v, ok := strings.CutPrefix(l, "time "); ok {
			if !cp.Time.IsZero() {
				return bad("two time lines")
			}
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return bad("time %q is not RFC 3339", trimForMessage(v))
			}
			cp.Time = t.UTC()
		}
	}
	return cp, nil
}

// parseSize parses a decimal tree size or sequence number: digits only, no
// sign, no leading zero, at most MaxTreeSize.
func parseSize(s string) (int64, error) {
	if s == "" || len(s) > 19 {
		return 0, errors.New("not a number")
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, errors.New("leading zero")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%q is not a number", trimForMessage(s))
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > MaxTreeSize {
		return 0, fmt.Errorf("%s is out of range", trimForMessage(s))
	}
	return n, nil
}

// parseHash parses a standard-base64 SHA-256 hash.
func parseHash(s string) (tlog.Hash, error) {
	var h tlog.Hash
	if len(s) != base64.StdEncoding.EncodedLen(len(h)) {
		return h, fmt.Errorf("%q is not a base64 SHA-256 hash", trimForMessage(s))
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, fmt.Errorf("%q is not a base64 SHA-256 hash", trimForMessage(s))
	}
	copy(h[:], b)
	return h, nil
}

// trimForMessage shortens outside input quoted in an error message.
func trimForMessage(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}
