package throttle

import (
	"fmt"
	"hash/maphash"
	"math"
	"net/netip"
	"sync"
	"time"
)

// Request is what validators see of an HTTP request.
type Request struct {
	IP           netip.Addr
	Method, Path string
	Route        string // route pattern ("POST /login") or, when unknown, the path
	User         string // "" when anonymous or unknown
}

// A Validator decides whether a request may proceed. Record is called for
// every request that proceeded.
type Validator interface {
	Name() string
	Allow(r Request, now time.Time) (retryAfter time.Duration, ok bool)
	Record(r Request, now time.Time)
}

// DefaultValidators returns django-security-logger's default limits: 20
// requests a minute and 1,000 an hour from one IP address.
func DefaultValidators() []Validator {
	return []Validator{PerIP(20, time.Minute), PerIP(1000, time.Hour)}
}

// Buckets is the number of buckets of a sliding window: a window of one
// minute counts in 2-second buckets, one of an hour in 2-minute buckets.
const Buckets = 30

// DefaultMaxKeys is how many keys (addresses, users, …) a window tracks at
// most, unless WindowConfig.MaxKeys says otherwise. A key takes about 150
// bytes, so a full window holds about 10 MB.
const DefaultMaxKeys = 1 << 16

// WindowConfig describes a sliding-window validator.
type WindowConfig struct {
	Name   string        // reported to OnLimit; default describes the window
	Limit  int           // requests allowed in Window; 0 or less refuses everything
	Window time.Duration // length of the window, at least Buckets nanoseconds
	// Key returns the key a request is counted under, and false when the
	// validator does not apply to the request. Required.
	Key     func(Request) (string, bool)
	MaxKeys int // default DefaultMaxKeys
}

// NewWindow returns a Validator that counts, per key, the requests that
// proceeded in a sliding window, and refuses a request when the count
// (which does not include the request itself) reaches the limit.
func NewWindow(c WindowConfig) (*Window, error) {
	if c.Key == nil {
		return nil, fmt.Errorf("throttle: window %q: Key is required", c.Name)
	}
	if c.Window < Buckets {
		return nil, fmt.Errorf("throttle: window %q: Window %v is too short", c.Name, c.Window)
	}
	if c.Name == "" {
		c.Name = fmt.Sprintf("custom:%d/%s", c.Limit, shortDuration(c.Window))
	}
	w := newWindow(c.Name, c.Limit, c.Window, keyCustom, c.MaxKeys)
	w.custom = c.Key
	return w, nil
}

// PerIP counts the requests from one IP address in a sliding window and
// refuses a request when the count reaches limit. Requests without a valid
// address are not counted (set Config.ClientIP when RemoteAddr does not
// hold one, as on a Unix socket).
func PerIP(limit int, window time.Duration) Validator {
	return newWindow(fmt.Sprintf("per_ip:%d/%s", limit, shortDuration(window)), limit, window, keyIP, 0)
}

// PerIPRoute is PerIP counting separately per method, path and route, as
// django-security-logger's validators do (ip, path, method and view).
func PerIPRoute(limit int, window time.Duration) Validator {
	return newWindow(fmt.Sprintf("per_ip_route:%d/%s", limit, shortDuration(window)), limit, window, keyIPRoute, 0)
}

// PerUser counts the requests of one user (Request.User, compared
// ignoring case); anonymous requests are not counted.
func PerUser(limit int, window time.Duration) Validator {
	return newWindow(fmt.Sprintf("per_user:%d/%s", limit, shortDuration(window)), limit, window, keyUser, 0)
}

// PerNetwork counts the requests from one network: the address's first
// v4Bits bits for IPv4 and v6Bits for IPv6. A client usually holds a whole
// IPv6 /64, so PerNetwork(n, w, 32, 64) stops one from spreading requests
// over its addresses.
func PerNetwork(limit int, window time.Duration, v4Bits, v6Bits int) Validator {
	w := newWindow(fmt.Sprintf("per_network:%d/%s", limit, shortDuration(window)), limit, window, keyNetwork, 0)
	w.v4Bits, w.v6Bits = v4Bits, v6Bits
	return w
}

func shortDuration(d time.Duration) string {
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d >= time.Minute && d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

type keyKind uint8

const (
	keyIP keyKind = iota
	keyIPRoute
	keyUser
	keyNetwork
	keyCustom
)

const shardCount = 16 // a power of two

// Window is a sliding-window counter per key. It is safe for concurrent
// use.
//
// Each key has Buckets+1 counters, one per bucket of Window/Buckets; a
// request counts until the end of its bucket is a whole window old, so the
// count never misses a request of the last Window (it may include requests
// up to one bucket older). Keys whose requests are all older than the
// window are swept once per window. At MaxKeys, a new key evicts one of 8
// sampled keys, sparing keys at their limit, then the most recently seen,
// then the busiest: an attacker rotating through more addresses than
// MaxKeys makes the window forget quiet keys first, and a key that is being
// refused is forgotten only if all 8 sampled keys are at their limit too.
type Window struct {
	name   string
	limit  int
	window time.Duration
	width  int64 // bucket width in nanoseconds
	kind   keyKind
	custom func(Request) (string, bool)
	v4Bits int
	v6Bits int
	seed   maphash.Seed
	max    int // keys per shard
	shards [shardCount]windowShard
}

type windowShard struct {
	mu      sync.Mutex
	m       map[uint64]*counter
	sweepAt int64 // bucket number of the next sweep
	sweptAt int64 // bucket number of the last sweep
	free    []*counter
	_       [16]byte // keep shards on separate cache lines
}

// counter holds the counts of the Buckets+1 latest buckets of one key.
type counter struct {
	last int64 // number of the newest bucket
	c    [Buckets + 1]uint32
}

func newWindow(name string, limit int, window time.Duration, kind keyKind, maxKeys int) *Window {
	if window < Buckets {
		window = Buckets
	}
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	w := &Window{
		name:   name,
		limit:  limit,
		window: window,
		width:  int64(window) / Buckets,
		kind:   kind,
		seed:   maphash.MakeSeed(),
		max:    max(1, maxKeys/shardCount),
	}
	for i := range w.shards {
		w.shards[i].m = make(map[uint64]*counter)
	}
	return w
}

// Name returns the validator's name, such as "per_ip:20/1m".
func (w *Window) Name() string { return w.name }

// Limit returns the number of requests allowed in the window.
func (w *Window) Limit() int { return w.limit }

// Len returns the number of keys tracked.
func (w *Window) Len() int {
	n := 0
	for i := range w.shards {
		s := &w.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

func (w *Window) key(r Request) (uint64, bool) {
	switch w.kind {
	case keyIP, keyIPRoute, keyNetwork:
		if !r.IP.IsValid() {
			return 0, false
		}
		ip := r.IP.Unmap()
		if w.kind == keyNetwork {
			bits := w.v6Bits
			if ip.Is4() {
				bits = w.v4Bits
			}
			if p, err := ip.Prefix(bits); err == nil {
				ip = p.Addr()
			}
		}
		a := ip.As16()
		if w.kind != keyIPRoute {
			return maphash.Bytes(w.seed, a[:]), true
		}
		var h maphash.Hash
		h.SetSeed(w.seed)
		h.Write(a[:])
		h.WriteString(r.Method)
		h.WriteByte(0)
		h.WriteString(r.Path)
		h.WriteByte(0)
		h.WriteString(r.Route)
		return h.Sum64(), true
	case keyUser:
		if r.User == "" {
			return 0, false
		}
		return hashFold(w.seed, r.User), true
	default:
		k, ok := w.custom(r)
		if !ok {
			return 0, false
		}
		return maphash.String(w.seed, k), true
	}
}

// hashFold hashes s ignoring ASCII case, without allocating for ASCII.
func hashFold(seed maphash.Seed, s string) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		h.WriteByte(c)
	}
	return h.Sum64()
}

func (w *Window) shard(k uint64) *windowShard { return &w.shards[k>>60&(shardCount-1)] }

func slot(n int64) int {
	i := int(n % (Buckets + 1))
	if i < 0 {
		i += Buckets + 1
	}
	return i
}

// advance moves c to bucket n, clearing the buckets that fell out. A clock
// that goes back is treated as standing still.
func (c *counter) advance(n int64) {
	switch {
	case n <= c.last:
		return
	case n-c.last > Buckets:
		c.c = [Buckets + 1]uint32{}
	default:
		for k := c.last + 1; k <= n; k++ {
			c.c[slot(k)] = 0
		}
	}
	c.last = n
}

func (c *counter) total() uint64 {
	var t uint64
	for _, v := range c.c {
		t += uint64(v)
	}
	return t
}

// Allow reports whether a request may proceed and, when not, how long until
// it could.
func (w *Window) Allow(r Request, now time.Time) (time.Duration, bool) {
	k, ok := w.key(r)
	if !ok {
		return 0, true
	}
	if w.limit <= 0 {
		return w.window, false
	}
	t := now.UnixNano()
	n := t / w.width
	s := w.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.m[k]
	if c == nil {
		return 0, true
	}
	c.advance(n)
	total := c.total()
	limit := uint64(w.limit)
	if total < limit {
		return 0, true
	}
	// The oldest buckets leave the window first; find the one whose
	// leaving brings the count under the limit.
	for b := c.last - Buckets; b <= c.last; b++ {
		v := uint64(c.c[slot(b)])
		if v == 0 {
			continue
		}
		total -= v
		if total < limit {
			return time.Duration((b+Buckets+1)*w.width - t), false
		}
	}
	return w.window, false // not reached
}

// Record counts a request that proceeded.
func (w *Window) Record(r Request, now time.Time) {
	if w.limit <= 0 {
		return
	}
	k, ok := w.key(r)
	if !ok {
		return
	}
	n := now.UnixNano() / w.width
	s := w.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.m[k]
	if c == nil {
		// Sweep once per window, or once per bucket when full.
		if n >= s.sweepAt || len(s.m) >= w.max && n > s.sweptAt {
			s.sweep(n)
		}
		if len(s.m) >= w.max {
			s.evict(n, w.limit)
		}
		c = s.alloc(n)
		s.m[k] = c
	}
	c.advance(n)
	if i := slot(n); c.c[i] < math.MaxUint32 {
		c.c[i]++
	}
}

// sweep forgets the keys with nothing left in the window.
func (s *windowShard) sweep(n int64) {
	for k, c := range s.m {
		if n-c.last > Buckets {
			delete(s.m, k)
			s.release(c)
		}
	}
	s.sweepAt = n + Buckets
	s.sweptAt = n
}

// evict forgets one of a few sampled keys (map iteration starts at a
// random place): keys that reached the limit are kept if possible, then the
// least recently seen, then the one with the fewest requests goes.
func (s *windowShard) evict(n int64, limit int) {
	var victim uint64
	var best [3]int64
	i := 0
	for k, c := range s.m {
		c.advance(n)
		t := int64(c.total())
		atLimit := int64(0)
		if t >= int64(limit) {
			atLimit = 1
		}
		score := [3]int64{atLimit, c.last, t}
		if i == 0 || less(score, best) {
			victim, best = k, score
		}
		if i++; i == 8 {
			break
		}
	}
	if c, ok := s.m[victim]; ok {
		delete(s.m, victim)
		s.release(c)
	}
}

func less(a, b [3]int64) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

func (s *windowShard) alloc(n int64) *counter {
	if l := len(s.free); l > 0 {
		c := s.free[l-1]
		s.free = s.free[:l-1]
		*c = counter{last: n}
		return c
	}
	return &counter{last: n}
}

func (s *windowShard) release(c *counter) {
	if len(s.free) < 64 {
		s.free = append(s.free, c)
	}
}
