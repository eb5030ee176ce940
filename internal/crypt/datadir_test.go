package crypt

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/store/sqlite"
)

// findInDir returns, for each needle, the files under dir that hold it.
func findInDir(t *testing.T, dir string, needles [][]byte) map[string][]string {
	t.Helper()
	found := map[string][]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, n := range needles {
			if bytes.Contains(b, n) {
				found[string(n)] = append(found[string(n)], filepath.Base(path))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestDataDirHoldsNoPlaintext stores events the way ingest does (Parse,
// EncryptParsed, Append to the SQLite store in the data directory),
// rotating the data key half way, and scans every file of the data
// directory for the encrypted values and the keys. Without encryption the
// same scan finds the values, so the scan can see them.
func TestDataDirHoldsNoPlaintext(t *testing.T) {
	master := testMaster(5)
	for _, encrypt := range []bool{false, true} {
		t.Run(fmt.Sprintf("encrypt=%v", encrypt), func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			var enc *Encrypter
			if encrypt {
				enc = newEncrypter(t, openRing(t, dir, master), "user.name")
			}
			st, err := sqlite.Open(filepath.Join(dir, "events.db"), sqlite.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			secretsHere := append([]string{"alice"}, secrets...)
			want := map[string][]byte{} // event ID -> canonical bytes before encryption
			for batch := 0; batch < 2; batch++ {
				if batch == 1 && encrypt {
					if _, err := enc.Keyring().Rotate(); err != nil {
						t.Fatal(err)
					}
				}
				var evs []event.Event
				for i := 0; i < 20; i++ {
					id := fmt.Sprintf("ev-%d-%02d", batch, i)
					ev := parse(t, strings.Replace(webEvent, "0195519c-4f2a-7b3e-9c1d-2e8f6a7b5c4d", id, 1))
					want[id] = ev.Canonical
					if ev, err = enc.EncryptParsed(ev, event.Limits{}); err != nil {
						t.Fatal(err)
					}
					evs = append(evs, ev)
				}
				if _, err := st.Append(ctx, evs); err != nil {
					t.Fatal(err)
				}
			}
			// The read path gets the plaintext back from the store.
			recs, err := st.Read(ctx, 0, 100)
			if err != nil || len(recs) != len(want) {
				t.Fatalf("Read: %d records, %v", len(recs), err)
			}
			for _, r := range recs {
				got, err := enc.DecryptEvent(r.Canonical, "")
				if err != nil {
					t.Fatalf("DecryptEvent of seq %d: %v", r.Seq, err)
				}
				id, _ := valueAt(t, got, "event.id")
				if !bytes.Equal(got, want[id.(string)]) {
					t.Errorf("seq %d decrypts to\n%s\nwant\n%s", r.Seq, got, want[id.(string)])
				}
			}

			needles := make([][]byte, 0, len(secretsHere))
			for _, s := range secretsHere {
				needles = append(needles, []byte(s))
			}
			var keys [][]byte
			if encrypt {
				keys = append(keys, master, []byte(base64.StdEncoding.EncodeToString(master)))
				for _, dk := range enc.Keyring().state.Load().keys {
					keys = append(keys, dk.raw, []byte(base64.StdEncoding.EncodeToString(dk.raw)),
						[]byte(base64.RawURLEncoding.EncodeToString(dk.raw)), hexOf(dk.raw))
				}
			}
			check := func(when string) {
				found := findInDir(t, dir, append(needles, keys...))
				for _, n := range needles {
					files := found[string(n)]
					if encrypt && len(files) > 0 {
						t.Errorf("%s: %q is in clear in %v", when, n, files)
					}
					if !encrypt && len(files) == 0 {
						t.Errorf("%s: without encryption, the scan does not find %q", when, n)
					}
				}
				for _, k := range keys {
					if files := found[string(k)]; len(files) > 0 {
						t.Errorf("%s: a key is in clear in %v", when, files)
					}
				}
			}
			check("store open")
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			check("store closed")
		})
	}
}
