package event

import (
	"crypto/rand"
	"encoding/binary"
	"time"
)

// NewID returns a new event ID: a UUID version 7 (RFC 9562), the current Unix
// time in milliseconds followed by 74 random bits, as 36 characters of
// lowercase hex and dashes. IDs made later sort after earlier ones, to the
// millisecond.
func NewID() string {
	return string(appendNewID(nil))
}

// appendNewID appends a new ID to dst.
func appendNewID(dst []byte) []byte {
	var u [16]byte
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(time.Now().UnixMilli()))
	copy(u[:6], ms[2:])
	rand.Read(u[6:])
	u[6] = u[6]&0x0f | 0x70 // version 7
	u[8] = u[8]&0x3f | 0x80 // variant 10
	const hex = "0123456789abcdef"
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hex[c>>4], hex[c&15])
	}
	return dst
}
