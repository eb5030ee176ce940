package crypt

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestOpenCreatesKeysFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	ring := openRing(t, dir, testMaster(1))
	path := filepath.Join(dir, KeysFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("keys.json has mode %04o, want 0600", fi.Mode().Perm())
	}
	if di, err := os.Stat(dir); err != nil || di.Mode().Perm() != 0o700 {
		t.Errorf("data directory: %v, mode %04o, want 0700", err, di.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f keysFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("keys.json is not JSON: %v", err)
	}
	if f.Version != 1 || len(f.Keys) != 1 || f.Current != ring.Current() || f.Keys[0].ID != ring.Current() {
		t.Errorf("keys.json = %s", b)
	}
	// Neither the data key nor the master key is in the file, in any usual
	// form.
	raw := ring.state.Load().current.raw
	for _, secret := range [][]byte{raw, testMaster(1)} {
		for _, form := range [][]byte{secret, []byte(base64.StdEncoding.EncodeToString(secret)),
			[]byte(base64.RawURLEncoding.EncodeToString(secret)), []byte(strings.ToLower(string(hexOf(secret))))} {
			if bytes.Contains(b, form) {
				t.Errorf("keys.json holds a key in clear: %s", b)
			}
		}
	}
	// Opening again reads the same key.
	again := openRing(t, dir, testMaster(1))
	if again.Current() != ring.Current() || !bytes.Equal(again.state.Load().current.raw, raw) {
		t.Error("a second Open does not find the same data key")
	}
	if len(again.Keys()) != 1 {
		t.Errorf("a second Open made another key: %+v", again.Keys())
	}
	// The fingerprint is stable, of this key, and not the key.
	fp := ring.Keys()[0].Fingerprint
	if len(fp) != 64 || fp != again.Keys()[0].Fingerprint || fp == string(hexOf(raw)) {
		t.Errorf("fingerprint %q (reopened: %q)", fp, again.Keys()[0].Fingerprint)
	}
	if other := openRing(t, t.TempDir(), testMaster(1)).Keys()[0].Fingerprint; other == fp {
		t.Error("two data keys have the same fingerprint")
	}
}

func hexOf(b []byte) []byte {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return out
}

func TestWrongMasterKey(t *testing.T) {
	dir := t.TempDir()
	ring := openRing(t, dir, testMaster(1))
	if _, err := ring.Rotate(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, KeysFile)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f keysFile
	if err := json.Unmarshal(good, &f); err != nil {
		t.Fatal(err)
	}
	edit := func(change func(*keysFile)) []byte {
		g := f
		g.Keys = append([]wrappedKey(nil), f.Keys...)
		change(&g)
		b, err := json.Marshal(g)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name    string
		file    []byte
		master  []byte
		isWrong bool   // errors.Is ErrWrongMasterKey
		want    string // in the message
	}{
		{"wrong master key", good, testMaster(2), true, "wrong master key"},
		{"master key too short", good, testMaster(1)[:16], false, "master key is 16 bytes, want 32"},
		{"damaged wrapped key", edit(func(g *keysFile) {
			b, _ := base64.StdEncoding.DecodeString(g.Keys[1].Wrapped)
			b[20] ^= 1
			g.Keys[1].Wrapped = base64.StdEncoding.EncodeToString(b)
		}), testMaster(1), false, "keys[1] (" + f.Keys[1].ID + "): wrapped value does not authenticate"},
		{"wrapped keys swapped", edit(func(g *keysFile) {
			g.Keys[0].Wrapped, g.Keys[1].Wrapped = g.Keys[1].Wrapped, g.Keys[0].Wrapped
		}), testMaster(1), false, "keys[0] (" + f.Keys[0].ID + "): wrapped value does not authenticate"},
		{"creation time edited", edit(func(g *keysFile) { g.Keys[0].Created = "2001-01-01T00:00:00Z" }),
			testMaster(1), false, "keys[0] (" + f.Keys[0].ID + "): wrapped value does not authenticate"},
		{"unknown current key", edit(func(g *keysFile) { g.Current = "ffffffffffff" }), testMaster(1), false, `current key "ffffffffffff" is not among the keys`},
		{"duplicate id", edit(func(g *keysFile) { g.Keys[1].ID = g.Keys[0].ID }), testMaster(1), false, "appears twice"},
		{"bad id", edit(func(g *keysFile) { g.Keys[0].ID = "a:b" }), testMaster(1), false, `id "a:b" is not 1 to 32`},
		{"later version", edit(func(g *keysFile) { g.Version = 2 }), testMaster(1), false, "version 2 is not supported"},
		{"no keys", edit(func(g *keysFile) { g.Keys = nil }), testMaster(1), false, "no data keys"},
		{"unknown member", []byte(`{"version":1,"extra":1}`), testMaster(1), false, `unknown field "extra"`},
		{"not JSON", []byte("{"), testMaster(1), false, "not a keys file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(path, tt.file, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Open(dir, tt.master)
			if err == nil || !strings.Contains(err.Error(), tt.want) || errors.Is(err, ErrWrongMasterKey) != tt.isWrong {
				t.Fatalf("Open error = %v; want one with %q (ErrWrongMasterKey: %v)", err, tt.want, tt.isWrong)
			}
		})
	}
	if err := os.WriteFile(path, good, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, testMaster(1)); err != nil {
		t.Errorf("Open of the restored file: %v", err)
	}
}

// tempFiles lists what the atomic writes may leave behind.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, ".keys.json.*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestKeysFileAtomicWrite(t *testing.T) {
	dir := t.TempDir()
	ring := openRing(t, dir, testMaster(1))
	enc := newEncrypter(t, ring)
	path := filepath.Join(dir, KeysFile)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	first := ring.Current()

	// A write that fails before the rename leaves keys.json and the
	// keyring as they were, and no temporary file.
	ring.fsync = func(*os.File) error { return errors.New("disk on fire") }
	id, err := ring.Rotate()
	if err == nil || id != "" || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("Rotate with a failing fsync = %q, %v", id, err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
		t.Errorf("keys.json changed by a failed Rotate:\n%s", after)
	}
	if tmp := tempFiles(t, dir); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
	if ring.Current() != first || len(ring.Keys()) != 1 {
		t.Errorf("a failed Rotate changed the keyring: %+v", ring.Keys())
	}
	ev := parse(t, `{"event.id":"e","http.request.body.content":"x"}`)
	out, err := enc.EncryptEvent(ev.Canonical, ev.ID)
	if err != nil || !strings.Contains(string(out), envelopePrefix+first+":") {
		t.Errorf("after a failed Rotate, encryption gives %s, %v", out, err)
	}
	ring.fsync = (*os.File).Sync

	// Readers never see a partial file while keys.json is replaced again
	// and again.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			b, err := os.ReadFile(path)
			if err == nil {
				var f keysFile
				err = json.Unmarshal(b, &f)
			}
			if err != nil {
				select {
				case errs <- err:
				default:
				}
				return
			}
		}
	}()
	const rotations = 30
	for range rotations {
		if _, err := ring.Rotate(); err != nil {
			t.Error(err)
			break
		}
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errs:
		t.Errorf("a reader saw a broken keys.json: %v", err)
	default:
	}
	if tmp := tempFiles(t, dir); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("keys.json after rotations: %v, mode %04o", err, fi.Mode().Perm())
	}
	if got := len(openRing(t, dir, testMaster(1)).Keys()); got != rotations+1 {
		t.Errorf("keys.json holds %d keys, want %d", got, rotations+1)
	}
}

func TestRotateRefusesExternalChange(t *testing.T) {
	dir := t.TempDir()
	a := openRing(t, dir, testMaster(1))
	b := openRing(t, dir, testMaster(1))
	bID, err := b.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	// a would drop b's key if it wrote its own view.
	if _, err := a.Rotate(); err == nil || !strings.Contains(err.Error(), "changed since this keyring read it") {
		t.Fatalf("Rotate over a changed keys.json: %v", err)
	}
	if err := a.ChangeMasterKey(testMaster(3)); err == nil || !strings.Contains(err.Error(), "changed since this keyring read it") {
		t.Fatalf("ChangeMasterKey over a changed keys.json: %v", err)
	}
	ids := map[string]bool{}
	for _, k := range openRing(t, dir, testMaster(1)).Keys() {
		ids[k.ID] = true
	}
	if !ids[bID] || len(ids) != 2 {
		t.Errorf("keys.json holds %v, want the first key and %s", ids, bID)
	}
}

func TestShred(t *testing.T) {
	dir := t.TempDir()
	ring := openRing(t, dir, testMaster(1))
	enc := newEncrypter(t, ring)
	first := ring.Current()
	old := parse(t, `{"event.id":"old","http.request.body.content":"shred me","http.response.body.content":"me too"}`)
	oldEnc, err := enc.EncryptEvent(old.Canonical, old.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.Shred(first); err == nil || !strings.Contains(err.Error(), "it is the current key; rotate first") {
		t.Fatalf("Shred of the current key: %v", err)
	}
	if _, err := ring.Rotate(); err != nil {
		t.Fatal(err)
	}
	young := parse(t, `{"event.id":"young","http.request.body.content":"keep me"}`)
	youngEnc, err := enc.EncryptEvent(young.Canonical, young.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.Shred(first); err != nil {
		t.Fatalf("Shred: %v", err)
	}
	if err := ring.Shred(first); err == nil || !strings.Contains(err.Error(), "no such key") {
		t.Errorf("second Shred: %v", err)
	}
	for _, e := range []*Encrypter{enc, newEncrypter(t, openRing(t, dir, testMaster(1)))} {
		_, err := e.DecryptEvent(oldEnc, "")
		if !errors.Is(err, ErrUnknownKey) {
			t.Errorf("DecryptEvent of a shredded key's event: %v, want ErrUnknownKey", err)
		}
		kept, err := e.DecryptEvent(oldEnc, "", KeepUnknownKeys)
		if err != nil || !bytes.Equal(kept, oldEnc) {
			t.Errorf("DecryptEvent with KeepUnknownKeys = %s, %v; want the envelopes kept", kept, err)
		}
		if got, err := e.DecryptEvent(youngEnc, ""); err != nil || !bytes.Equal(got, young.Canonical) {
			t.Errorf("DecryptEvent of a kept key's event = %s, %v", got, err)
		}
	}
}

func TestChangeMasterKey(t *testing.T) {
	dir := t.TempDir()
	ring := openRing(t, dir, testMaster(1))
	enc := newEncrypter(t, ring)
	ev := parse(t, webEvent)
	out, err := enc.EncryptEvent(ev.Canonical, ev.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ring.Rotate(); err != nil {
		t.Fatal(err)
	}
	if err := ring.ChangeMasterKey(testMaster(7)); err != nil {
		t.Fatalf("ChangeMasterKey: %v", err)
	}
	if _, err := Open(dir, testMaster(1)); !errors.Is(err, ErrWrongMasterKey) {
		t.Errorf("Open with the old master key: %v, want ErrWrongMasterKey", err)
	}
	reopened := openRing(t, dir, testMaster(7))
	if reopened.Current() != ring.Current() || len(reopened.Keys()) != 2 {
		t.Errorf("keys after ChangeMasterKey: %+v", reopened.Keys())
	}
	if got, err := newEncrypter(t, reopened).DecryptEvent(out, ""); err != nil || !bytes.Equal(got, ev.Canonical) {
		t.Errorf("DecryptEvent after ChangeMasterKey = %s, %v", got, err)
	}
	// The keyring that changed it goes on rotating under the new key.
	if _, err := ring.Rotate(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, testMaster(7)); err != nil {
		t.Errorf("Open after a Rotate under the new master key: %v", err)
	}
	if err := ring.ChangeMasterKey(testMaster(7)[:31]); err == nil {
		t.Error("ChangeMasterKey accepted a 31-byte key")
	}
}

func TestLoadMasterKey(t *testing.T) {
	dir := t.TempDir()
	key := testMaster(9)
	b64 := base64.StdEncoding.EncodeToString(key)
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("VIGIL_TEST_KEY", " "+b64+"\n")
	t.Setenv("VIGIL_TEST_SHORT", base64.StdEncoding.EncodeToString(key[:31]))
	t.Setenv("VIGIL_TEST_EMPTY", "")
	tests := []struct {
		name      string
		file, env string
		want      string // error text; "" for success
	}{
		{"file 0600", write("k600", b64+"\n", 0o600), "", ""},
		{"file 0400", write("k400", b64, 0o400), "", ""},
		{"unpadded base64", write("kraw", strings.TrimRight(b64, "="), 0o600), "", ""},
		{"file 0640", write("k640", b64, 0o640), "", "has mode 0640: group or others may access it; it must be 0600 or stricter"},
		{"file 0644", write("k644", b64, 0o644), "", "has mode 0644"},
		{"file 0602", write("k602", b64, 0o602), "", "has mode 0602"},
		{"directory", dir, "", "is not a regular file"},
		{"missing file", filepath.Join(dir, "nope"), "", "no such file"},
		{"not base64", write("kbad", "this is not base64 at all!", 0o600), "", "not base64"},
		{"wrong length", write("kshort", base64.StdEncoding.EncodeToString(key[:16]), 0o600), "", "decodes to 16 bytes, want 32"},
		{"huge file", write("khuge", strings.Repeat("A", 2000), 0o600), "", "larger than 1024 bytes"},
		{"environment", "", "VIGIL_TEST_KEY", ""},
		{"environment short", "", "VIGIL_TEST_SHORT", "in environment variable VIGIL_TEST_SHORT: decodes to 31 bytes"},
		{"environment empty", "", "VIGIL_TEST_EMPTY", "VIGIL_TEST_EMPTY is not set or empty"},
		{"environment unset", "", "VIGIL_TEST_UNSET_XYZ", "VIGIL_TEST_UNSET_XYZ is not set or empty"},
		{"both", filepath.Join(dir, "k600"), "VIGIL_TEST_KEY", "not both"},
		{"neither", "", "", "no file or environment variable given"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LoadMasterKey(tt.file, tt.env)
			if tt.want == "" {
				if err != nil || !bytes.Equal(got, key) {
					t.Fatalf("LoadMasterKey = %x, %v; want the key", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("LoadMasterKey error = %v, want one with %q", err, tt.want)
			}
			if strings.Contains(err.Error(), b64[:20]) {
				t.Errorf("error shows the key: %v", err)
			}
		})
	}
}
