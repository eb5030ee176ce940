package crypt

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"
)

// Fields are sealed with XAES-256-GCM, as specified at c2sp.org/XAES-256-GCM:
// AES-256-GCM under a key derived, for each message, from the data key and
// the first 12 bytes of a random 24-byte nonce (a NIST SP 800-108 counter
// KDF with AES-256-CMAC), the last 12 bytes being the GCM nonce. Plain
// AES-256-GCM with random 96-bit nonces must stay under 2^32 messages per key;
// at ingest rates of 100,000 events a second with two encrypted fields each
// that is six hours. With the derived keys, random nonces are safe for any
// number of messages a data key will ever see.

const (
	xaesNonceSize = 24
	gcmTagSize    = 16
)

// xaes holds a data key ready for XAES-256-GCM: its AES-256 block cipher and
// the CMAC subkey K1.
type xaes struct {
	block cipher.Block
	k1    [aes.BlockSize]byte
}

func newXAES(key []byte) (*xaes, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("data key is %d bytes, want 32", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	x := &xaes{block: block}
	var l [aes.BlockSize]byte
	block.Encrypt(l[:], l[:])
	// K1 = L << 1, reduced by the polynomial of GF(2^128) when L's top bit
	// was set.
	for i := 0; i < aes.BlockSize-1; i++ {
		x.k1[i] = l[i]<<1 | l[i+1]>>7
	}
	x.k1[aes.BlockSize-1] = l[aes.BlockSize-1]<<1 ^ (l[0]>>7)*0x87
	return x, nil
}

// aead returns the AES-256-GCM instance for a 24-byte nonce; the caller uses
// nonce[12:] as its GCM nonce.
func (x *xaes) aead(nonce []byte) (cipher.AEAD, error) {
	var m [2][aes.BlockSize]byte
	for j := range m {
		m[j][1] = byte(j + 1)
		m[j][2] = 'X'
		copy(m[j][4:], nonce[:12])
		for i := range m[j] {
			m[j][i] ^= x.k1[i]
		}
	}
	var kx [32]byte
	x.block.Encrypt(kx[:16], m[0][:])
	x.block.Encrypt(kx[16:], m[1][:])
	block, err := aes.NewCipher(kx[:])
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// seal appends nonce || ciphertext || tag of plaintext to dst.
func (x *xaes) seal(dst, nonce, plaintext, aad []byte) ([]byte, error) {
	g, err := x.aead(nonce)
	if err != nil {
		return nil, err
	}
	dst = append(dst, nonce...)
	return g.Seal(dst, nonce[12:], plaintext, aad), nil
}

// open decrypts what seal made (nonce included) and appends the plaintext
// to dst.
func (x *xaes) open(dst, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < xaesNonceSize+gcmTagSize {
		return nil, errMalformed
	}
	g, err := x.aead(sealed[:xaesNonceSize])
	if err != nil {
		return nil, err
	}
	out, err := g.Open(dst, sealed[12:xaesNonceSize], sealed[xaesNonceSize:], aad)
	if err != nil {
		return nil, ErrNotAuthentic
	}
	return out, nil
}
