package event

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"time"
)

// NewID returns a new event ID: a UUID version 7 (RFC 9562), the current Unix
// time in milliseconds followed by 74 random bits, as 36 characters of
// lowercase hex and dashes. IDs made later sort after earlier ones: within
// a millisecond, the first 12 of the random bits count up from a random
// start (RFC 9562, section 6.2, method 1), so that things listed by ID, such
// as decisions made one after another, come in the order they were made.
func NewID() string {
	var r [10]byte
	rand.Read(r[:])
	ms := time.Now().UnixMilli()
	idClock.Lock()
	if ms <= idClock.ms {
		ms = idClock.ms
		if idClock.seq++; idClock.seq >= 1<<12 {
			// 4,096 IDs in a millisecond: borrow the next one.
			ms, idClock.seq = ms+1, 0
		}
	} else {
		idClock.seq = binary.BigEndian.Uint16(r[:2]) & 0x7ff // half the counter left to count
	}
	idClock.ms = ms
	seq := idClock.seq
	idClock.Unlock()
	r[0], r[1] = byte(seq>>8), byte(seq) // appendID keeps the low 4 bits of r[0]
	var b [36]byte
	return string(appendID(b[:0], time.UnixMilli(ms), &r))
}

// idClock is the millisecond and counter of the last NewID.
var idClock struct {
	sync.Mutex
	ms  int64
	seq uint16
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
