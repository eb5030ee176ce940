package ledger

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Key rotation.
//
// The ledger's signing key can be replaced (RotateKey). The log stays one
// log: same origin, same tree. What links the keys is a rotation
// statement, a signed note whose text is
//
//	vigil key rotation
//	ORIGIN
//	SIZE
//	OLD-PUBLIC-KEY
//	NEW-PUBLIC-KEY
//	time RFC3339
//
// signed by both keys: the old key's signature says its holder handed the
// log over at tree size SIZE, the new key's that the new holder has the
// key. The old key signs checkpoints of sizes up to SIZE, the new one from
// SIZE on. A verifier that trusts any one key of the chain can therefore
// follow it both ways, and a checkpoint signed by a retired key for a tree
// larger than its rotation size (what a thief of that key would make) is
// refused.

// rotationHeader is the first line of a rotation statement.
const rotationHeader = "vigil key rotation"

// MaxRotations bounds the rotation statements a verifier accepts.
const MaxRotations = 1000

// Rotation is an opened rotation statement.
type Rotation struct {
	Origin string    `json:"origin"`
	Size   int64     `json:"size"`
	Old    string    `json:"old"` // verifier keys
	New    string    `json:"new"`
	Time   time.Time `json:"time"`
	Note   string    `json:"note"`

	oldV, newV note.Verifier
}

func rotationText(origin string, size int64, old, new string, t time.Time) string {
	return fmt.Sprintf("%s\n%s\n%d\n%s\n%s\ntime %s\n", rotationHeader, origin, size, old, new, t.UTC().Format(time.RFC3339Nano))
}

// signRotation makes the statement that new takes over from old at size.
func signRotation(old, new *key, size int64, t time.Time) (Rotation, error) {
	t = t.UTC().Round(0)
	msg, err := note.Sign(&note.Note{Text: rotationText(old.signer.Name(), size, old.public, new.public, t)}, old.signer, new.signer)
	if err != nil {
		return Rotation{}, fmt.Errorf("sign key rotation: %w", err)
	}
	return OpenRotation(msg)
}

// OpenRotation parses a rotation statement and checks that both keys it
// names signed it. It says nothing of whether either key is to be trusted:
// NewKeys does.
func OpenRotation(msg []byte) (Rotation, error) {
	bad := func(format string, args ...any) (Rotation, error) {
		return Rotation{}, fmt.Errorf("%w key rotation: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
	if len(msg) > MaxNoteBytes {
		return bad("%d bytes, more than %d", len(msg), MaxNoteBytes)
	}
	text, _, ok := strings.Cut(string(msg), "\n\n")
	if !ok {
		return bad("no signatures")
	}
	lines := strings.Split(text, "\n")
	if len(lines) != 6 || lines[0] != rotationHeader {
		return bad("want 6 lines starting with %q", rotationHeader)
	}
	r := Rotation{Origin: lines[1], Old: lines[3], New: lines[4], Note: string(msg)}
	if !validName(r.Origin) {
		return bad("origin %q", trimForMessage(r.Origin))
	}
	var err error
	if r.Size, err = parseSize(lines[2]); err != nil {
		return bad("size: %v", err)
	}
	ts, ok := strings.CutPrefix(lines[5], "time ")
	if !ok {
		return bad("no time line")
	}
	if r.Time, err = time.Parse(time.RFC3339Nano, ts); err != nil {
		return bad("time %q", trimForMessage(ts))
	}
	if r.oldV, err = ParsePublicKey(r.Old); err != nil {
		return bad("old key: %v", err)
	}
	if r.newV, err = ParsePublicKey(r.New); err != nil {
		return bad("new key: %v", err)
	}
	if r.oldV.Name() != r.Origin || r.newV.Name() != r.Origin {
		return bad("the keys are not named after the origin %q", r.Origin)
	}
	if r.oldV.KeyHash() == r.newV.KeyHash() {
		return bad("the old and the new key are the same")
	}
	n, err := note.Open(msg, note.VerifierList(r.oldV, r.newV))
	if err != nil {
		return Rotation{}, fmt.Errorf("key rotation at size %d: %w", r.Size, err)
	}
	signed := map[uint32]bool{}
	for _, s := range n.Sigs {
		signed[s.Hash] = true
	}
	if !signed[r.oldV.KeyHash()] || !signed[r.newV.KeyHash()] {
		return Rotation{}, fmt.Errorf("key rotation at size %d: not signed by both keys", r.Size)
	}
	return r, nil
}

// Keys is the chain of a log's signing keys, anchored on one key the
// verifier trusts, and what each key may sign: the tree sizes from its
// rotation in to its rotation out.
type Keys struct {
	origin string
	keys   []chainKey     // oldest first
	list   note.Verifiers // all of them, for note.Open
}

type chainKey struct {
	v        note.Verifier
	from, to int64 // the tree sizes it signs; to is MaxTreeSize for the current key
}

// SingleKey is the chain of a log whose key was never rotated.
func SingleKey(v note.Verifier) *Keys {
	return (&Keys{origin: v.Name(), keys: []chainKey{{v: v, from: 0, to: MaxTreeSize}}}).withList()
}

// withList sets k.list from k.keys.
func (k *Keys) withList() *Keys {
	vs := make([]note.Verifier, len(k.keys))
	for i, c := range k.keys {
		vs[i] = c.v
	}
	k.list = note.VerifierList(vs...)
	return k
}

// NewKeys opens the rotation statements (in any order) and builds the chain
// of keys they describe. trusted must be one of the chain's keys (any one:
// the statements carry both keys' signatures), and every statement must
// belong to the one chain: two rotations away from the same key (a fork, as
// a thief of a retired key could make) are refused.
func NewKeys(trusted note.Verifier, rotations []string) (*Keys, error) {
	if len(rotations) == 0 {
		return SingleKey(trusted), nil
	}
	if len(rotations) > MaxRotations {
		return nil, fmt.Errorf("%w: %d key rotations, more than %d", ErrMalformed, len(rotations), MaxRotations)
	}
	byOld := map[string]Rotation{}
	news := map[string]bool{}
	for _, msg := range rotations {
		r, err := OpenRotation([]byte(msg))
		if err != nil {
			return nil, err
		}
		if r.Origin != trusted.Name() {
			return nil, fmt.Errorf("key rotation at size %d is for origin %q, not %q", r.Size, r.Origin, trusted.Name())
		}
		if prev, ok := byOld[r.Old]; ok {
			if prev.Note == r.Note {
				continue
			}
			return nil, fmt.Errorf("key fork: %s was rotated twice, to %s (size %d) and to %s (size %d): the old key was used by someone else",
				KeyID(r.oldV), KeyID(prev.newV), prev.Size, KeyID(r.newV), r.Size)
		}
		byOld[r.Old] = r
		news[r.New] = true
	}
	var first *Rotation
	for _, r := range byOld {
		if !news[r.Old] {
			if first != nil {
				return nil, errors.New("the key rotations do not form one chain")
			}
			r := r
			first = &r
		}
	}
	if first == nil {
		return nil, errors.New("the key rotations form a cycle")
	}
	k := &Keys{origin: trusted.Name(), keys: []chainKey{{v: first.oldV, from: 0}}}
	anchored := false
	anchor := func(r Rotation, v note.Verifier) {
		if !anchored && v.KeyHash() == trusted.KeyHash() {
			// The trusted key itself must have signed the statement, not
			// only a key with the same name and hash.
			if _, err := note.Open([]byte(r.Note), note.VerifierList(trusted)); err == nil {
				anchored = true
			}
		}
	}
	for r, ok := *first, true; ok; r, ok = byOld[r.New] {
		last := &k.keys[len(k.keys)-1]
		if r.Size < last.from {
			return nil, fmt.Errorf("key rotation at size %d follows one at size %d", r.Size, last.from)
		}
		last.to = r.Size
		anchor(r, r.oldV)
		anchor(r, r.newV)
		k.keys = append(k.keys, chainKey{v: r.newV, from: r.Size})
		if len(k.keys) > len(byOld)+1 {
			return nil, errors.New("the key rotations form a cycle")
		}
	}
	if len(k.keys) != len(byOld)+1 {
		return nil, errors.New("the key rotations do not form one chain")
	}
	k.keys[len(k.keys)-1].to = MaxTreeSize
	if !anchored {
		return nil, &SignatureError{Key: KeyID(trusted), Reason: "the key is not in the log's chain of keys (" + k.names() + ")"}
	}
	return k.withList(), nil
}

// Current returns the latest key of the chain.
func (k *Keys) Current() note.Verifier { return k.keys[len(k.keys)-1].v }

// Rotated reports whether the chain has more than one key.
func (k *Keys) Rotated() bool { return len(k.keys) > 1 }

func (k *Keys) names() string {
	s := make([]string, len(k.keys))
	for i, c := range k.keys {
		s[i] = KeyID(c.v)
	}
	return strings.Join(s, ", ")
}

// String names the keys of the chain with the sizes each signs.
func (k *Keys) String() string {
	if len(k.keys) == 1 {
		return KeyID(k.keys[0].v)
	}
	s := make([]string, len(k.keys))
	for i, c := range k.keys {
		to := strconv.FormatInt(c.to, 10)
		if c.to == MaxTreeSize {
			to = ""
		}
		s[i] = fmt.Sprintf("%s (sizes %d..%s)", KeyID(c.v), c.from, to)
	}
	return strings.Join(s, ", ")
}

// forSize names the keys that may sign a tree of size n.
func (k *Keys) forSize(n int64) string {
	var s []string
	for _, c := range k.keys {
		if c.from <= n && n <= c.to {
			s = append(s, KeyID(c.v))
		}
	}
	return strings.Join(s, " or ")
}

// Open checks that msg is a checkpoint note for the chain's origin signed
// by a key of the chain that may sign a tree of its size, and parses it. A
// signature problem is a *SignatureError; a note that does not follow the
// format wraps ErrMalformed.
func (k *Keys) Open(msg []byte) (Checkpoint, error) {
	if len(msg) > MaxNoteBytes {
		return Checkpoint{}, fmt.Errorf("%w checkpoint: %d bytes, more than %d", ErrMalformed, len(msg), MaxNoteBytes)
	}
	n, err := note.Open(msg, k.list)
	if err != nil {
		expected := k.names()
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		switch {
		case errors.As(err, &unverified):
			signers := make([]string, 0, len(unverified.Note.UnverifiedSigs))
			for _, s := range unverified.Note.UnverifiedSigs {
				signers = append(signers, fmt.Sprintf("%s+%08x", s.Name, s.Hash))
			}
			return Checkpoint{}, &SignatureError{Key: expected, Reason: "signed only by other keys (" + strings.Join(signers, ", ") + ")"}
		case errors.As(err, &invalid):
			return Checkpoint{}, &SignatureError{Key: expected, Reason: "the signature does not verify"}
		}
		return Checkpoint{}, fmt.Errorf("%w checkpoint note: %v", ErrMalformed, err)
	}
	cp, err := ParseCheckpointText(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	if cp.Origin != k.origin {
		return Checkpoint{}, &SignatureError{Key: k.names(), Reason: fmt.Sprintf("the note is for origin %q", cp.Origin)}
	}
	for _, s := range n.Sigs {
		for _, c := range k.keys {
			if c.v.KeyHash() == s.Hash && c.from <= cp.Size && cp.Size <= c.to {
				cp.Note = string(msg)
				return cp, nil
			}
		}
	}
	return Checkpoint{}, &SignatureError{Key: k.forSize(cp.Size), Reason: fmt.Sprintf(
		"signed for a tree of %d events by a key that does not sign trees of that size (the log's keys: %s)", cp.Size, k.String())}
}
