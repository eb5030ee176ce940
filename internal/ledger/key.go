package ledger

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// KeyFile is the name of the signing key's file in the data directory.
const KeyFile = "ledger.key"

// maxKeyFile bounds what is read of a key file or a public key file.
const maxKeyFile = 4 << 10

// key is the ledger's signing key.
type key struct {
	signer   note.Signer
	verifier note.Verifier
	public   string // the verifier key: name+hash+base64(0x01 || public key)
}

// loadOrCreateKey reads the signer key at path, or creates one named origin
// (mode 0600) when the file does not exist.
func loadOrCreateKey(path, origin string) (*key, bool, error) {
	b, err := readSmallFile(path, maxKeyFile)
	if errors.Is(err, os.ErrNotExist) {
		if origin == "" {
			origin = defaultOrigin()
		}
		if !validName(origin) {
			return nil, false, fmt.Errorf("origin %q: must be non-empty, without spaces or '+'", origin)
		}
		skey, _, err := note.GenerateKey(rand.Reader, origin)
		if err != nil {
			return nil, false, fmt.Errorf("generate signing key: %w", err)
		}
		if err := writeFileExcl(path, []byte(skey+"\n")); err != nil {
			return nil, false, fmt.Errorf("write signing key: %w", err)
		}
		k, err := parseSignerKey(skey)
		return k, true, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("read signing key: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, false, fmt.Errorf("read signing key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, false, fmt.Errorf("signing key %s has mode %04o: other users could read it; fix with: chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	k, err := parseSignerKey(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, false, fmt.Errorf("signing key %s: %w", path, err)
	}
	if origin != "" && k.signer.Name() != origin {
		return nil, false, fmt.Errorf("signing key %s is for origin %q, not %q: the origin of an existing log cannot change", path, k.signer.Name(), origin)
	}
	return k, false, nil
}

// PublicKeyFromFile returns the verifier key (the public key, as "vigil
// pubkey" prints it) of the signing key file at path.
func PublicKeyFromFile(path string) (string, error) {
	b, err := readSmallFile(path, maxKeyFile)
	if err != nil {
		return "", fmt.Errorf("read signing key: %w", err)
	}
	k, err := parseSignerKey(strings.TrimSpace(string(b)))
	if err != nil {
		return "", fmt.Errorf("signing key %s: %w", path, err)
	}
	return k.public, nil
}

// parseSignerKey parses a note signer key, "PRIVATE+KEY+name+hash+base64",
// and derives its verifier key.
func parseSignerKey(skey string) (*key, error) {
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("not a signer key: %w", err)
	}
	parts := strings.SplitN(skey, "+", 5)
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return nil, errors.New("not an Ed25519 signer key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(signer.Name(), pub)
	if err != nil {
		return nil, err
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, err
	}
	if verifier.KeyHash() != signer.KeyHash() {
		return nil, errors.New("signer key hash does not match its public key")
	}
	return &key{signer: signer, verifier: verifier, public: vkey}, nil
}

// maxPublicKey bounds a verifier key string.
const maxPublicKey = 1 << 10

// ParsePublicKey parses a verifier key ("name+hash+base64", as printed by
// vigil pubkey). Only Ed25519 keys are accepted.
func ParsePublicKey(vkey string) (note.Verifier, error) {
	vkey = strings.TrimSpace(vkey)
	if len(vkey) > maxPublicKey {
		return nil, fmt.Errorf("public key: longer than %d bytes", maxPublicKey)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("public key %q: %w (want NAME+HASH+BASE64 as printed by vigil pubkey)", vkey, err)
	}
	return v, nil
}

// LoadPublicKey accepts a verifier key itself or the name of a file holding
// one, so that scripts can pass either.
func LoadPublicKey(arg string) (note.Verifier, string, error) {
	s := strings.TrimSpace(arg)
	v, keyErr := ParsePublicKey(s)
	if keyErr == nil {
		return v, s, nil
	}
	b, err := readSmallFile(arg, maxPublicKey)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if strings.Count(s, "+") >= 2 {
				return nil, "", keyErr
			}
			return nil, "", fmt.Errorf("public key %q is neither a key (NAME+HASH+BASE64) nor a file", trimForMessage(arg))
		}
		return nil, "", fmt.Errorf("read public key: %w", err)
	}
	s = strings.TrimSpace(string(b))
	v, err = ParsePublicKey(s)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", arg, err)
	}
	return v, s, nil
}

// KeyID names a verifier in messages: name+hash.
func KeyID(v note.Verifier) string { return fmt.Sprintf("%s+%08x", v.Name(), v.KeyHash()) }

func defaultOrigin() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return "vigil/" + hex.EncodeToString(b[:])
}

// validName reports whether s can be a note key name and checkpoint origin.
func validName(s string) bool {
	return s != "" && len(s) <= 255 && !strings.ContainsAny(s, " \t\n\r+") && strings.ToValidUTF8(s, "") == s && !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// readSmallFile reads a file of at most limit bytes.
func readSmallFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

// writeFileExcl creates path with mode 0600, failing if it exists, and
// syncs it.
func writeFileExcl(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}
