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
	var r [10]byte
	rand.Read(r[:])
	var b [36]byte
	return string(appendID(b[:0], time.Now(), &r))
}

// appendID appends the UUIDv7 for time t and 10 random bytes to dst.
func appendID(dst []byte, t time.Time, r *[10]byte) []byte {
	var u [16]byte
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(t.UnixMilli()))
	copy(u[:6], ms[2:])
	copy(u[6:], r[:])
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

// randomBytes hands out random bytes read from crypto/rand in blocks: one
// system call for many IDs.
type randomBytes struct {
	buf [400]byte
	pos int
}

func (rb *randomBytes) next() *[10]byte {
	if rb.pos == 0 || rb.pos+10 > len(rb.buf) {
		rand.Read(rb.buf[:])
		rb.pos = 0
	}
	r := (*[10]byte)(rb.buf[rb.pos : rb.pos+10])
	rb.pos += 10
	return r
}
