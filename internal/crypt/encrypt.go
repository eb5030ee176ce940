package crypt

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/vigilsec/vigil/internal/event"
)

// An encrypted field's value is an envelope, a JSON string:
//
//	vigil:enc:v1:<key id>:<payload>
//
// where the payload is unpadded base64url of nonce (24 bytes) || ciphertext
// || tag (16 bytes), XAES-256-GCM under the data key <key id>, of the field's
// value as JSON text. The additional data binds the key, the event and the
// field: "vigil:enc:v1" NUL key id NUL event.id NUL field path.
const (
	envelopePrefix = "vigil:enc:v1:"
	// reservedPrefix starts every envelope, of this version or a later one.
	reservedPrefix = "vigil:enc:"
	aadLabel       = "vigil:enc:v1"
)

// IsEnvelope reports whether a string value is an envelope (of any version).
func IsEnvelope(s string) bool {
	return len(s) >= len(reservedPrefix) && s[:len(reservedPrefix)] == reservedPrefix
}

func hasReservedPrefix(b []byte) bool {
	return len(b) >= len(reservedPrefix) && string(b[:len(reservedPrefix)]) == reservedPrefix
}

// Errors of DecryptEvent, in a *FieldError.
var (
	ErrUnknownKey      = errors.New("encrypted with a data key this keyring does not hold (shredded, or another keyring's)")
	ErrNotAuthentic    = errors.New("ciphertext does not authenticate: altered, or moved from another event or field")
	ErrUnsupported     = errors.New("envelope version not supported")
	errMalformed       = errors.New("malformed envelope")
	errNotJSON         = errors.New("decrypted value is not JSON")
	errEncryptedTwice  = errors.New("appears twice in the event")
	errSplitDottedKeys = errors.New("is split across dotted keys: encrypt the canonical event (the output of event.Parse)")
)

// FieldError reports a field that could not be encrypted or decrypted.
type FieldError struct {
	Field string // dotted path
	KeyID string // key ID of the envelope, when there is one
	Err   error
}

func (e *FieldError) Error() string {
	s := "field " + e.Field + ": " + e.Err.Error()
	if e.KeyID != "" {
		s += " (key " + e.KeyID + ")"
	}
	return s
}

func (e *FieldError) Unwrap() error { return e.Err }

// Encrypter encrypts and decrypts the selected fields of events with a
// Keyring. It is safe for concurrent use. A nil *Encrypter means encryption
// is off: EncryptEvent and DecryptEvent return their input.
type Encrypter struct {
	ring   *Keyring
	fields []string
}

// NewEncrypter returns an Encrypter of the given fields (ECS dotted paths;
// none may hold another), typically Config.AllFields.
func NewEncrypter(ring *Keyring, fields []string) (*Encrypter, error) {
	if ring == nil {
		return nil, errors.New("new encrypter: no keyring")
	}
	if err := checkFields(fields); err != nil {
		return nil, fmt.Errorf("new encrypter: %w", err)
	}
	return &Encrypter{ring: ring, fields: append([]string(nil), fields...)}, nil
}

// New sets up encryption as configured: it validates cfg, loads the master
// key, opens the keyring of dataDir and returns the Encrypter of
// cfg.AllFields. When cfg.Enabled is false it returns nil, nil.
func New(cfg Config, dataDir string) (*Encrypter, error) {
	if !cfg.Enabled {
		return nil, nil
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	mk, err := LoadMasterKey(cfg.MasterKeyFile, cfg.MasterKeyEnv)
	if err != nil {
		return nil, err
	}
	ring, err := Open(dataDir, mk)
	clear(mk)
	if err != nil {
		return nil, err
	}
	return NewEncrypter(ring, cfg.AllFields())
}

// Keyring returns the keyring, for rotation.
func (e *Encrypter) Keyring() *Keyring { return e.ring }

// Fields returns the fields e encrypts.
func (e *Encrypter) Fields() []string { return append([]string(nil), e.fields...) }

// span is a value of the input to replace: bytes [start, end).
type span struct {
	start, end int
	field      int    // EncryptEvent: index in fields
	path       string // DecryptEvent: where the envelope is
}

// walker goes through an event's objects, keeping the dotted path of the
// current member, and notes the values to replace.
type walker struct {
	s       scanner
	fields  []string // EncryptEvent: the fields to encrypt; nil when decrypting
	path    []byte
	pathBuf [128]byte
	spans   []span
	spanBuf [4]span
	id      string // event.id as found
	idSet   bool
	// ingested is event.ingested as found (the bytes between the quotes).
	ingested []byte
	scratch  []byte // sealed bytes of one field
}

// Walkers are reused: they carry buffers.
var walkers = sync.Pool{New: func() any { return new(walker) }}

func getWalker(fields []string) *walker {
	w := walkers.Get().(*walker)
	w.fields = fields
	return w
}

// maxKeptScratch is the largest scratch buffer a pooled walker keeps.
const maxKeptScratch = 64 << 10

func putWalker(w *walker) {
	scratch := w.scratch
	if cap(scratch) > maxKeptScratch {
		scratch = nil
	}
	*w = walker{scratch: scratch[:0]} // drop references to the event
	walkers.Put(w)
}

const (
	eventIDPath  = "event.id"
	ingestedPath = "event.ingested"
)

// object walks the object at s.i, at depth.
func (w *walker) object(depth int) error {
	s := &w.s
	empty, err := s.openObject(depth)
	if err != nil || empty {
		return err
	}
	for {
		ks, ke, esc, err := s.key()
		if err != nil {
			return err
		}
		key := s.b[ks:ke]
		if esc {
			u, err := s.unquote(ks, ke)
			if err != nil {
				return err
			}
			key = []byte(u)
		}
		mark := len(w.path)
		if mark > 0 {
			w.path = append(w.path, '.')
		}
		keyStart := len(w.path)
		w.path = append(w.path, key...)
		err = w.member(key, keyStart, depth)
		w.path = w.path[:mark]
		if err != nil {
			return err
		}
		if more, err := s.next(); err != nil || !more {
			return err
		}
	}
}

// member walks the value of the member whose key ends the current path.
func (w *walker) member(key []byte, keyStart, depth int) error {
	s := &w.s
	if w.fields != nil {
		for i, f := range w.fields {
			p := w.path
			switch {
			case string(p) == f:
				start := s.i
				s.reserved = false // the value is encrypted whole
				err := s.skipValue(depth)
				s.reserved = true
				if err != nil {
					return err
				}
				w.spans = append(w.spans, span{start: start, end: s.i, field: i})
				return nil
			case len(p) > len(f) && p[len(f)] == '.' && string(p[:len(f)]) == f &&
				keyStart <= len(f) && splittable(key):
				return &FieldError{Field: f, Err: errSplitDottedKeys}
			}
		}
	}
	switch s.peek() {
	case '{':
		return w.object(depth + 1)
	case '"':
		start, end, esc, err := s.str()
		if err != nil {
			return err
		}
		if string(w.path) == eventIDPath {
			return w.setID(start, end, esc)
		}
		if string(w.path) == ingestedPath && !esc {
			w.ingested = s.b[start:end]
		}
		if w.fields != nil {
			if err := s.checkReserved(start, end, esc); err != nil {
				return &FieldError{Field: string(w.path), Err: err}
			}
		} else if !esc && hasReservedPrefix(s.b[start:end]) {
			w.spans = append(w.spans, span{start: start - 1, end: end + 1, path: string(w.path)})
		}
		return nil
	}
	if err := s.skipValue(depth); err != nil {
		var re *ReservedError
		if errors.As(err, &re) {
			return &FieldError{Field: string(w.path), Err: err}
		}
		return err
	}
	return nil
}

func (w *walker) setID(start, end int, esc bool) error {
	if w.idSet {
		return &FieldError{Field: eventIDPath, Err: errEncryptedTwice}
	}
	w.idSet = true
	if esc {
		u, err := w.s.unquote(start, end)
		if err != nil {
			return err
		}
		w.id = u
		return nil
	}
	w.id = string(w.s.b[start:end])
	return nil
}

// splittable reports whether event.Parse expands a dotted key into nested
// objects: it does unless the key has an empty part.
func splittable(key []byte) bool {
	if len(key) == 0 || key[0] == '.' || key[len(key)-1] == '.' {
		return false
	}
	for i := 1; i < len(key); i++ {
		if key[i] == '.' && key[i-1] == '.' {
			return false
		}
	}
	return true
}

// walk walks the event b, which must be one JSON object, and returns the
// event ID to bind the envelopes to: eventID, or event.id when eventID is
// empty.
func (w *walker) walk(b []byte, eventID string) (string, error) {
	if len(b) > MaxEventBytes {
		return "", fmt.Errorf("event of %d bytes is larger than %d", len(b), MaxEventBytes)
	}
	w.s = scanner{b: b, reserved: w.fields != nil}
	w.s.stack = w.s.stackBuf[:0]
	w.path = w.pathBuf[:0]
	w.spans = w.spanBuf[:0]
	if err := w.object(1); err != nil {
		return "", err
	}
	if err := w.s.end(); err != nil {
		return "", err
	}
	switch {
	case eventID == "" && !w.idSet:
		return "", errors.New("no event ID: the event has no event.id and none was given")
	case eventID == "":
		eventID = w.id
	case w.idSet && w.id != eventID:
		return "", fmt.Errorf("event ID %q given, but the event's event.id is %q", eventID, w.id)
	}
	if err := checkEventID(eventID); err != nil {
		return "", err
	}
	return eventID, nil
}

// checkEventID checks an event ID as event.Parse does: 1 to 128 bytes of
// visible ASCII. (The additional data separates its parts with NUL bytes.)
func checkEventID(id string) error {
	if len(id) == 0 || len(id) > 128 {
		return fmt.Errorf("event ID of %d bytes: want 1 to 128", len(id))
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("event ID %q has a character other than visible ASCII", id)
		}
	}
	return nil
}

func appendAAD(dst []byte, keyID, eventID, path string) []byte {
	dst = append(dst, aadLabel...)
	dst = append(dst, 0)
	dst = append(dst, keyID...)
	dst = append(dst, 0)
	dst = append(dst, eventID...)
	dst = append(dst, 0)
	return append(dst, path...)
}

// envelopeLen is the length of the envelope of n bytes, quotes included.
func envelopeLen(keyID string, n int) int {
	return 2 + len(envelopePrefix) + len(keyID) + 1 +
		base64.RawURLEncoding.EncodedLen(xaesNonceSize+n+gcmTagSize)
}

// EncryptEvent returns the event with the value of each selected field that
// it has replaced by an envelope (a JSON string), the rest of the bytes
// untouched. When no selected field is present it returns canonical itself.
//
// canonical should be the canonical form of the event (event.Parse's
// output): then the result is canonical too, and DecryptEvent gives back
// canonical exactly. Other JSON is handled, but a selected field split
// across dotted keys is refused. eventID is the event's ID (event.id);
// empty means take it from the event. A string value starting with
// "vigil:enc:" outside the selected fields is refused (*FieldError wrapping
// a *ReservedError), so that every envelope stored is one Vigil made.
func (e *Encrypter) EncryptEvent(canonical []byte, eventID string) ([]byte, error) {
	if e == nil {
		return canonical, nil
	}
	w := getWalker(e.fields)
	defer putWalker(w)
	return e.encrypt(w, canonical, eventID)
}

func (e *Encrypter) encrypt(w *walker, canonical []byte, eventID string) ([]byte, error) {
	id, err := w.walk(canonical, eventID)
	if err != nil {
		return nil, fmt.Errorf("encrypt event: %w", err)
	}
	if len(w.spans) == 0 {
		return canonical, nil
	}
	dk := e.ring.state.Load().current
	size := len(canonical)
	for _, sp := range w.spans {
		size += envelopeLen(dk.id, sp.end-sp.start) - (sp.end - sp.start)
	}
	out := make([]byte, 0, size)
	scratch := w.scratch[:0]
	var aad [512]byte
	var nonce [xaesNonceSize]byte
	last := 0
	for _, sp := range w.spans {
		out = append(out, canonical[last:sp.start]...)
		rand.Read(nonce[:])
		a := appendAAD(aad[:0], dk.id, id, e.fields[sp.field])
		scratch, err = dk.x.seal(scratch[:0], nonce[:], canonical[sp.start:sp.end], a)
		if err != nil {
			return nil, fmt.Errorf("encrypt event: %w", &FieldError{Field: e.fields[sp.field], KeyID: dk.id, Err: err})
		}
		out = append(out, '"')
		out = append(out, envelopePrefix...)
		out = append(out, dk.id...)
		out = append(out, ':')
		out = base64.RawURLEncoding.AppendEncode(out, scratch)
		out = append(out, '"')
		last = sp.end
	}
	w.scratch = scratch
	return append(out, canonical[last:]...), nil
}

// EncryptParsed encrypts the selected fields of a parsed event and parses
// the result again, which is what ingest does between event.Parse and the
// store's Append: the indexed fields of the returned Event (UserName,
// Message, ...) then hold the envelopes too, so nothing selected reaches
// the store's indexes in clear. Its canonical bytes are those of
// EncryptEvent: the second parse keeps the first one's event.ingested.
// lim are the limits of the first parse; MaxBytes grows by what the
// envelopes add. A nil Encrypter returns ev.
func (e *Encrypter) EncryptParsed(ev event.Event, lim event.Limits) (event.Event, error) {
	if e == nil {
		return ev, nil
	}
	w := getWalker(e.fields)
	defer putWalker(w)
	out, err := e.encrypt(w, ev.Canonical, ev.ID)
	if err != nil {
		return event.Event{}, err
	}
	if len(w.spans) == 0 {
		return ev, nil
	}
	now, err := time.Parse(time.RFC3339Nano, string(w.ingested))
	if err != nil {
		return event.Event{}, fmt.Errorf("encrypt event: event.ingested %q: not set by event.Parse", w.ingested)
	}
	if lim.MaxBytes <= 0 {
		lim.MaxBytes = event.DefaultLimits.MaxBytes
	}
	lim.MaxBytes += len(out) - len(ev.Canonical)
	sealed, err := event.Parse(out, lim, now)
	if err != nil {
		return event.Event{}, fmt.Errorf("encrypt event: parse the encrypted event: %w", err)
	}
	return sealed, nil
}

// DecryptOption changes what DecryptEvent does.
type DecryptOption uint8

const (
	// KeepUnknownKeys leaves in place the envelopes of data keys the
	// keyring does not hold (shredded keys, another keyring's), instead of
	// failing. Altered envelopes are errors still.
	KeepUnknownKeys DecryptOption = 1 << iota
)

// DecryptEvent returns the event with every envelope (a string value of an
// object member starting with "vigil:enc:") replaced by the value it
// encrypts, the rest of the bytes untouched. When there is no envelope it
// returns canonical itself. eventID is the event's ID; empty means take it
// from the event's event.id.
//
// An envelope of an unknown key gives a *FieldError wrapping ErrUnknownKey
// (unless KeepUnknownKeys); one that was altered, or moved to another event
// or field, ErrNotAuthentic. Errors name the field.
func (e *Encrypter) DecryptEvent(canonical []byte, eventID string, opts ...DecryptOption) ([]byte, error) {
	if e == nil {
		return canonical, nil
	}
	var opt DecryptOption
	for _, o := range opts {
		opt |= o
	}
	w := getWalker(nil)
	defer putWalker(w)
	id, err := w.walk(canonical, eventID)
	if err != nil {
		return nil, fmt.Errorf("decrypt event: %w", err)
	}
	if len(w.spans) == 0 {
		return canonical, nil
	}
	st := e.ring.state.Load()
	out := make([]byte, 0, len(canonical))
	sealed := w.scratch[:0]
	defer func() { w.scratch = sealed }()
	var aad [512]byte
	last := 0
	for _, sp := range w.spans {
		v := canonical[sp.start+1 : sp.end-1]
		keyID, payload, err := parseEnvelope(v)
		if err != nil {
			return nil, fmt.Errorf("decrypt event: %w", &FieldError{Field: sp.path, KeyID: keyID, Err: err})
		}
		dk := st.find(keyID)
		if dk == nil {
			if opt&KeepUnknownKeys != 0 {
				continue
			}
			return nil, fmt.Errorf("decrypt event: %w", &FieldError{Field: sp.path, KeyID: keyID, Err: ErrUnknownKey})
		}
		sealed, err = base64.RawURLEncoding.AppendDecode(sealed[:0], payload)
		if err != nil {
			return nil, fmt.Errorf("decrypt event: %w", &FieldError{Field: sp.path, KeyID: keyID, Err: errMalformed})
		}
		out = append(out, canonical[last:sp.start]...)
		n := len(out)
		out, err = dk.x.open(out, sealed, appendAAD(aad[:0], keyID, id, sp.path))
		if err != nil {
			return nil, fmt.Errorf("decrypt event: %w", &FieldError{Field: sp.path, KeyID: keyID, Err: err})
		}
		if !json.Valid(out[n:]) {
			return nil, fmt.Errorf("decrypt event: %w", &FieldError{Field: sp.path, KeyID: keyID, Err: errNotJSON})
		}
		last = sp.end
	}
	if last == 0 {
		return canonical, nil // every envelope kept
	}
	return append(out, canonical[last:]...), nil
}

// parseEnvelope splits an envelope string into its key ID and payload.
func parseEnvelope(v []byte) (keyID string, payload []byte, err error) {
	if len(v) < len(envelopePrefix) || string(v[:len(envelopePrefix)]) != envelopePrefix {
		rest := v[len(reservedPrefix):]
		if i := indexByte(rest, ':'); i > 0 {
			return "", nil, fmt.Errorf("%w: %s", ErrUnsupported, strconv.Quote(string(rest[:min(i, 16)])))
		}
		return "", nil, errMalformed
	}
	rest := v[len(envelopePrefix):]
	i := indexByte(rest, ':')
	if i <= 0 || !validKeyID(string(rest[:i])) {
		return "", nil, errMalformed
	}
	return string(rest[:i]), rest[i+1:], nil
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}
