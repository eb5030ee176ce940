package crypt

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// TestXAESVectors checks the implementation against the test vectors of the
// XAES-256-GCM specification (c2sp.org/XAES-256-GCM).
func TestXAESVectors(t *testing.T) {
	tests := []struct {
		key       byte
		aad       string
		sealedHex string // ciphertext || tag
	}{
		{0x01, "", "ce546ef63c9cc60765923609" + "b33a9a1974e96e52daf2fcf7075e2271"},
		{0x03, "c2sp.org/XAES-256-GCM", "986ec1832593df5443a17943" + "7fd083bf3fdb41abd740a21f71eb769d"},
	}
	for _, tt := range tests {
		x, err := newXAES(bytes.Repeat([]byte{tt.key}, 32))
		if err != nil {
			t.Fatal(err)
		}
		nonce := []byte("ABCDEFGHIJKLMNOPQRSTUVWX")
		sealed, err := x.seal(nil, nonce, []byte("XAES-256-GCM"), []byte(tt.aad))
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(sealed[xaesNonceSize:]); got != tt.sealedHex {
			t.Errorf("key %02x: sealed %s, want %s", tt.key, got, tt.sealedHex)
		}
		plain, err := x.open(nil, sealed, []byte(tt.aad))
		if err != nil || string(plain) != "XAES-256-GCM" {
			t.Errorf("key %02x: open = %q, %v", tt.key, plain, err)
		}
		sealed[len(sealed)-1] ^= 1
		if _, err := x.open(nil, sealed, []byte(tt.aad)); err != ErrNotAuthentic {
			t.Errorf("key %02x: open of an altered tag = %v, want ErrNotAuthentic", tt.key, err)
		}
	}
}
