package vigil

import (
	crand "crypto/rand"
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"time"
)

// idSources hands out ChaCha8 generators, each seeded from crypto/rand: one
// per goroutine at a time, so making an ID takes no lock and no system call.
// A generator lost by the pool is never reused, so no two IDs share random
// bits; with 74 random bits per millisecond a collision is out of reach.
var idSources = sync.Pool{New: func() any {
	var seed [32]byte
	crand.Read(seed[:])
	return rand.NewChaCha8(seed)
}}

// uuidLen is the length of a UUID in its text form.
const uuidLen = 36

// appendUUIDv7 appends a UUID version 7 (RFC 9562) for time t: 48 bits of
// Unix milliseconds, then 74 random bits, as lowercase hex with dashes.
func appendUUIDv7(dst []byte, t time.Time) []byte {
	var u [16]byte
	src := idSources.Get().(*rand.ChaCha8)
	binary.LittleEndian.PutUint64(u[6:14], src.Uint64())
	binary.LittleEndian.PutUint16(u[14:16], uint16(src.Uint64()))
	idSources.Put(src)
	ms := uint64(t.UnixMilli())
	u[0], u[1], u[2], u[3], u[4], u[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	u[6] = u[6]&0x0f | 0x70 // version 7
	u[8] = u[8]&0x3f | 0x80 // variant 10
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hexDigits[c>>4], hexDigits[c&15])
	}
	return dst
}

// NewID returns a new UUID version 7, as used for event.id and generated
// request IDs.
func NewID() string {
	var b [uuidLen]byte
	return string(appendUUIDv7(b[:0], time.Now()))
}
