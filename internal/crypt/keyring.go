package crypt

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// KeysFile is the name of the wrapped data keys' file in the data directory.
const KeysFile = "keys.json"

// MasterKeySize is the size of the master key, in bytes.
const MasterKeySize = 32

// maxKeysFile bounds what Open reads of keys.json: room for thousands of keys.
const maxKeysFile = 4 << 20

// ErrWrongMasterKey is returned when the master key is not the one keys.json
// was written with.
var ErrWrongMasterKey = errors.New("wrong master key: keys.json was written with another one")

// KeyInfo describes a data key; the key itself never leaves the Keyring.
type KeyInfo struct {
	ID      string
	Created time.Time
	Current bool // the key new encryptions use
	// Fingerprint commits to the key without revealing it: hex of
	// SHA-256("vigil data key v1" NUL key). Logged when the key is made,
	// it pins the key an auditor will later be shown.
	Fingerprint string
}

// Keyring holds the data keys, unwrapped in memory, and keeps keys.json, the
// file where they are stored wrapped by the master key. It is safe for
// concurrent use. A data directory's keyring must have one writer: the
// Vigil process that opened it (Rotate refuses to overwrite a keys.json
// changed behind its back).
type Keyring struct {
	dir string

	state atomic.Pointer[ringState] // read without locking by encryption

	mu     sync.Mutex // serializes changes; guards the fields below
	master *master
	onDisk [sha256.Size]byte // hash of keys.json as last read or written

	// fsync syncs the temporary file before it replaces keys.json; tests
	// make it fail.
	fsync func(*os.File) error
}

// ringState is an immutable set of data keys.
type ringState struct {
	current *dataKey
	keys    []*dataKey // in the order of keys.json: oldest first
}

func (st *ringState) find(id string) *dataKey {
	for _, k := range st.keys {
		if k.id == id {
			return k
		}
	}
	return nil
}

type dataKey struct {
	id      string
	created string // RFC 3339, as stored
	wrapped string // as stored: base64(nonce || AES-256-GCM(master, key))
	raw     []byte
	x       *xaes
}

// master is what the master key is used for. Two keys are derived from it
// with HKDF-SHA-256: one wraps the data keys (AES-256-GCM), the other's
// only use is to be compared with the check stored in keys.json, so that a
// wrong master key is told apart from a damaged file.
type master struct {
	wrap  cipher.AEAD
	check []byte
}

func deriveMaster(key []byte) (*master, error) {
	if len(key) != MasterKeySize {
		return nil, fmt.Errorf("master key is %d bytes, want %d", len(key), MasterKeySize)
	}
	wk, err := hkdf.Key(sha256.New, key, nil, "vigil keyring wrap v1", 32)
	if err != nil {
		return nil, err
	}
	check, err := hkdf.Key(sha256.New, key, nil, "vigil keyring check v1", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(wk)
	if err != nil {
		return nil, err
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &master{wrap: g, check: check}, nil
}

// wrapAAD binds a wrapped key to its ID and creation time: a wrapped key
// copied to another entry of keys.json does not unwrap.
func wrapAAD(id, created string) []byte {
	return []byte("vigil keyring v1\x00" + id + "\x00" + created)
}

func (m *master) wrapKey(id, created string, raw []byte) string {
	nonce := make([]byte, m.wrap.NonceSize(), m.wrap.NonceSize()+len(raw)+m.wrap.Overhead())
	rand.Read(nonce)
	return base64.StdEncoding.EncodeToString(m.wrap.Seal(nonce, nonce, raw, wrapAAD(id, created)))
}

func (m *master) unwrapKey(id, created, wrapped string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(wrapped)
	if err != nil || len(b) != m.wrap.NonceSize()+32+m.wrap.Overhead() {
		return nil, errors.New("wrapped value is malformed")
	}
	n := m.wrap.NonceSize()
	raw, err := m.wrap.Open(nil, b[:n], b[n:], wrapAAD(id, created))
	if err != nil {
		return nil, errors.New("wrapped value does not authenticate under the master key: the file is damaged or was edited")
	}
	return raw, nil
}

// keysFile is the JSON form of keys.json.
type keysFile struct {
	Version     int          `json:"version"`
	MasterCheck string       `json:"master_check"`
	Current     string       `json:"current"`
	Keys        []wrappedKey `json:"keys"`
}

type wrappedKey struct {
	ID      string `json:"id"`
	Created string `json:"created"`
	Wrapped string `json:"wrapped"`
}

// validKeyID reports whether id can be a data key's ID: 1 to 32 lower-case
// letters and digits (an envelope uses ':' around it).
func validKeyID(id string) bool {
	if len(id) == 0 || len(id) > 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// Open opens the keyring of a data directory with the master key (32 bytes,
// see LoadMasterKey). On first use it creates the directory (mode 0700) if
// needed, a first data key, and keys.json. A master key other than the one
// keys.json was written with gives ErrWrongMasterKey.
func Open(dataDir string, masterKey []byte) (*Keyring, error) {
	m, err := deriveMaster(masterKey)
	if err != nil {
		return nil, fmt.Errorf("open keyring: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("open keyring: %w", err)
	}
	k := &Keyring{dir: dataDir, master: m, fsync: (*os.File).Sync}
	path := k.path()
	b, err := readSmall(path, maxKeysFile)
	if errors.Is(err, os.ErrNotExist) {
		dk, err := newDataKey(m, nil, time.Now())
		if err != nil {
			return nil, fmt.Errorf("open keyring: %w", err)
		}
		st := &ringState{current: dk, keys: []*dataKey{dk}}
		if err := k.write(st, m); err != nil {
			return nil, fmt.Errorf("open keyring: create %s: %w", path, err)
		}
		k.state.Store(st)
		return k, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open keyring: %w", err)
	}
	st, err := parseKeysFile(b, m)
	if err != nil {
		if errors.Is(err, ErrWrongMasterKey) {
			return nil, fmt.Errorf("open keyring %s: %w", path, err)
		}
		return nil, fmt.Errorf("open keyring: %s: %w", path, err)
	}
	k.onDisk = sha256.Sum256(b)
	k.state.Store(st)
	return k, nil
}

func (k *Keyring) path() string { return filepath.Join(k.dir, KeysFile) }

// parseKeysFile reads keys.json and unwraps every key with m.
func parseKeysFile(b []byte, m *master) (*ringState, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f keysFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("not a keys file: %w", err)
	}
	if dec.More() {
		return nil, errors.New("not a keys file: data after the JSON object")
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("version %d is not supported (this Vigil reads version 1)", f.Version)
	}
	check, err := base64.StdEncoding.DecodeString(f.MasterCheck)
	if err != nil || len(check) != len(m.check) {
		return nil, errors.New("master_check is malformed")
	}
	if subtle.ConstantTimeCompare(check, m.check) != 1 {
		return nil, ErrWrongMasterKey
	}
	if len(f.Keys) == 0 {
		return nil, errors.New("no data keys")
	}
	st := &ringState{keys: make([]*dataKey, 0, len(f.Keys))}
	for i, w := range f.Keys {
		if !validKeyID(w.ID) {
			return nil, fmt.Errorf("keys[%d]: id %q is not 1 to 32 lower-case letters and digits", i, w.ID)
		}
		if st.find(w.ID) != nil {
			return nil, fmt.Errorf("keys[%d]: id %q appears twice", i, w.ID)
		}
		if _, err := time.Parse(time.RFC3339Nano, w.Created); err != nil {
			return nil, fmt.Errorf("keys[%d] (%s): created %q is not an RFC 3339 time", i, w.ID, w.Created)
		}
		raw, err := m.unwrapKey(w.ID, w.Created, w.Wrapped)
		if err != nil {
			return nil, fmt.Errorf("keys[%d] (%s): %w", i, w.ID, err)
		}
		x, err := newXAES(raw)
		if err != nil {
			return nil, fmt.Errorf("keys[%d] (%s): %w", i, w.ID, err)
		}
		st.keys = append(st.keys, &dataKey{id: w.ID, created: w.Created, wrapped: w.Wrapped, raw: raw, x: x})
	}
	st.current = st.find(f.Current)
	if st.current == nil {
		return nil, fmt.Errorf("current key %q is not among the keys", f.Current)
	}
	return st, nil
}

// newDataKey makes a random data key with an ID not in st, wrapped by m.
func newDataKey(m *master, st *ringState, now time.Time) (*dataKey, error) {
	raw := make([]byte, 32)
	rand.Read(raw)
	var id string
	for {
		var b [6]byte
		rand.Read(b[:])
		id = hex.EncodeToString(b[:])
		if st == nil || st.find(id) == nil {
			break
		}
	}
	x, err := newXAES(raw)
	if err != nil {
		return nil, err
	}
	created := now.UTC().Format(time.RFC3339Nano)
	return &dataKey{id: id, created: created, wrapped: m.wrapKey(id, created, raw), raw: raw, x: x}, nil
}

// marshal returns the content of keys.json for st under m.
func marshal(st *ringState, m *master) []byte {
	f := keysFile{
		Version:     1,
		MasterCheck: base64.StdEncoding.EncodeToString(m.check),
		Current:     st.current.id,
		Keys:        make([]wrappedKey, len(st.keys)),
	}
	for i, dk := range st.keys {
		f.Keys[i] = wrappedKey{ID: dk.id, Created: dk.created, Wrapped: dk.wrapped}
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		panic(err) // strings and an int: cannot fail
	}
	return append(b, '\n')
}

// write replaces keys.json by st under m, atomically: a temporary file in
// the same directory, mode 0600, written, synced, renamed over keys.json,
// and the directory synced. A reader sees the old file or the new one,
// never a mix, also after a crash.
func (k *Keyring) write(st *ringState, m *master) error {
	data := marshal(st, m)
	f, err := os.CreateTemp(k.dir, "."+KeysFile+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	renamed := false
	defer func() {
		if !renamed {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := k.fsync(f); err != nil {
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, k.path()); err != nil {
		return err
	}
	renamed = true
	k.onDisk = sha256.Sum256(data)
	d, err := os.Open(k.dir)
	if err != nil {
		return fmt.Errorf("%w: %w", errReplaced, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("%w: sync directory: %w", errReplaced, err)
	}
	return nil
}

// errReplaced marks a write error that came after keys.json was replaced:
// the change took effect, but its durability is not certain.
var errReplaced = errors.New("keys.json was replaced")

// checkUnchanged refuses to overwrite a keys.json that is not the one this
// Keyring last read or wrote.
func (k *Keyring) checkUnchanged() error {
	b, err := readSmall(k.path(), maxKeysFile)
	if err != nil {
		return err
	}
	if sha256.Sum256(b) != k.onDisk {
		return fmt.Errorf("%s changed since this keyring read it (another vigil process?): restart to load it", k.path())
	}
	return nil
}

// commit writes st and makes it the keyring's state. On an error after the
// file was replaced, the new state is kept (it is what the file holds).
func (k *Keyring) commit(st *ringState, m *master) error {
	err := k.write(st, m)
	if err != nil && !errors.Is(err, errReplaced) {
		return err
	}
	k.master = m
	k.state.Store(st)
	return err
}

// Rotate makes a new data key, stores it wrapped in keys.json and makes it
// the key of new encryptions; the old keys stay, for reading. It returns
// the new key's ID. If the error says keys.json was replaced, the rotation
// took effect (only the directory's sync failed) and the ID is returned too.
func (k *Keyring) Rotate() (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.checkUnchanged(); err != nil {
		return "", fmt.Errorf("rotate data key: %w", err)
	}
	old := k.state.Load()
	dk, err := newDataKey(k.master, old, time.Now())
	if err != nil {
		return "", fmt.Errorf("rotate data key: %w", err)
	}
	st := &ringState{current: dk, keys: append(slices.Clip(old.keys), dk)}
	if err := k.commit(st, k.master); err != nil {
		if errors.Is(err, errReplaced) {
			return dk.id, fmt.Errorf("rotate data key: %w", err)
		}
		return "", fmt.Errorf("rotate data key: %w", err)
	}
	return dk.id, nil
}

// Shred deletes a data key from keys.json: the fields it encrypted can no
// longer be read by anyone (crypto-shredding), while the events and the
// integrity log stay whole. The current key cannot be shredded; rotate
// first. Copies of keys.json elsewhere (backups) still hold the key.
func (k *Keyring) Shred(id string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	old := k.state.Load()
	if old.find(id) == nil {
		return fmt.Errorf("shred data key %q: no such key", id)
	}
	if old.current.id == id {
		return fmt.Errorf("shred data key %q: it is the current key; rotate first", id)
	}
	if err := k.checkUnchanged(); err != nil {
		return fmt.Errorf("shred data key %q: %w", id, err)
	}
	st := &ringState{current: old.current}
	for _, dk := range old.keys {
		if dk.id != id {
			st.keys = append(st.keys, dk)
		}
	}
	if err := k.commit(st, k.master); err != nil {
		return fmt.Errorf("shred data key %q: %w", id, err)
	}
	return nil
}

// ChangeMasterKey wraps every data key again under a new master key and
// rewrites keys.json. The data keys, and so the stored events, do not
// change. Afterwards Open needs the new master key.
func (k *Keyring) ChangeMasterKey(newMasterKey []byte) error {
	m, err := deriveMaster(newMasterKey)
	if err != nil {
		return fmt.Errorf("change master key: %w", err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.checkUnchanged(); err != nil {
		return fmt.Errorf("change master key: %w", err)
	}
	old := k.state.Load()
	st := &ringState{keys: make([]*dataKey, len(old.keys))}
	for i, dk := range old.keys {
		n := *dk
		n.wrapped = m.wrapKey(dk.id, dk.created, dk.raw)
		st.keys[i] = &n
		if dk == old.current {
			st.current = &n
		}
	}
	if err := k.commit(st, m); err != nil {
		return fmt.Errorf("change master key: %w", err)
	}
	return nil
}

// Current returns the ID of the key new encryptions use.
func (k *Keyring) Current() string { return k.state.Load().current.id }

// Keys lists the data keys, oldest first.
func (k *Keyring) Keys() []KeyInfo {
	st := k.state.Load()
	out := make([]KeyInfo, len(st.keys))
	for i, dk := range st.keys {
		t, _ := time.Parse(time.RFC3339Nano, dk.created)
		out[i] = KeyInfo{ID: dk.id, Created: t, Current: dk == st.current, Fingerprint: fingerprint(dk.raw)}
	}
	return out
}

func fingerprint(raw []byte) string {
	h := sha256.New()
	h.Write([]byte("vigil data key v1\x00"))
	h.Write(raw)
	return hex.EncodeToString(h.Sum(nil))
}

// readSmall reads a file of at most max bytes.
func readSmall(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, max)
	}
	return b, nil
}
