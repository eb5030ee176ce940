package throttle

import (
	"fmt"
	"hash/maphash"
	"math"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// Defaults of LoginConfig, those of django-defender (django-axes also locks
// after 3 failures).
const (
	DefaultLoginLimit   = 3
	DefaultCoolOff      = 5 * time.Minute
	DefaultMaxCoolOff   = 24 * time.Hour
	DefaultMaxLoginKeys = 1 << 17
)

// LoginConfig configures brute-force lockout.
type LoginConfig struct {
	// Limit is the number of failures, counted per lock group, after which
	// the group is locked. Default DefaultLoginLimit (3).
	Limit int
	// CoolOff is how long a lock lasts; failures older than CoolOff are
	// forgotten too. Default DefaultCoolOff (5 minutes).
	CoolOff time.Duration
	// Escalate doubles the cool-off at each new lock of the same group
	// (5 min, 10 min, 20 min, …), up to MaxCoolOff. The count of locks is
	// forgotten after MaxCoolOff without a lock or failure, or on success.
	Escalate bool
	// MaxCoolOff caps an escalated cool-off. Default DefaultMaxCoolOff
	// (24 hours).
	MaxCoolOff time.Duration
	// LockBy lists the lock groups, as django-axes: failures are counted
	// separately for each group, and a login is refused while any group it
	// belongs to is locked (an OR of AND-groups). Parts are "ip" and
	// "user". Default {{"ip"}, {"user"}}, as django-defender.
	LockBy [][]string
	// NoUserLockout drops the groups made of "user" alone, as
	// django-defender's DISABLE_USERNAME_LOCKOUT: with them, anyone can
	// lock any account out by failing to log in as its user.
	NoUserLockout bool
	// MaxKeys caps the lock groups tracked; see Logins. Default
	// DefaultMaxLoginKeys.
	MaxKeys int
}

// Validate checks c without changing anything.
func (c LoginConfig) Validate() error {
	if c.Limit < 0 {
		return fmt.Errorf("throttle: LoginConfig.Limit %d is negative", c.Limit)
	}
	if c.CoolOff < 0 || c.MaxCoolOff < 0 {
		return fmt.Errorf("throttle: LoginConfig: negative cool-off")
	}
	for i, g := range c.LockBy {
		if len(g) == 0 {
			return fmt.Errorf("throttle: LoginConfig.LockBy[%d] is empty", i)
		}
		for _, p := range g {
			if p != "ip" && p != "user" {
				return fmt.Errorf("throttle: LoginConfig.LockBy[%d]: unknown part %q (want \"ip\" or \"user\")", i, p)
			}
		}
	}
	return nil
}

// Logins counts failed logins and locks out brute-force attempts, like
// django-axes and django-defender. It is safe for concurrent use. Usage in
// a login handler:
//
//	if wait, ok := logins.Allow(ip, user, now); !ok {
//		// answer 429 with Retry-After: wait, without checking the password
//	}
//	if checkPassword(user, password) {
//		logins.Succeeded(ip, user, now)
//	} else if logins.Failed(ip, user, now) {
//		// this failure locked the login: log authn_login_lock
//	}
//
// Memory is bounded by MaxKeys groups. At the cap, groups that are neither
// locked nor recently failed are forgotten first (the least recently failed
// of a few sampled); a locked group is forgotten only when every sampled
// group is locked.
type Logins struct {
	cfg    LoginConfig
	groups []lockGroup
	seed   maphash.Seed
	max    int
	shards [shardCount]loginShard
}

type lockGroup struct{ ip, user bool }

type loginShard struct {
	mu      sync.Mutex
	m       map[uint64]*loginState
	sweepAt int64 // time of the next sweep (Unix ns)
	sweptAt int64 // time of the last sweep
	_       [32]byte
}

type loginState struct {
	failures    int
	lastFailure int64 // Unix nanoseconds
	lockedUntil int64
	locks       int // locks so far, for escalation
}

// NewLogins returns a Logins for c, with defaults for zero fields. It
// panics if c is invalid (see Validate), like regexp.MustCompile: the
// configuration is part of the program.
func NewLogins(c LoginConfig) *Logins {
	if err := c.Validate(); err != nil {
		panic(err)
	}
	if c.Limit == 0 {
		c.Limit = DefaultLoginLimit
	}
	if c.CoolOff == 0 {
		c.CoolOff = DefaultCoolOff
	}
	if c.MaxCoolOff == 0 {
		c.MaxCoolOff = DefaultMaxCoolOff
	}
	if c.MaxCoolOff < c.CoolOff {
		c.MaxCoolOff = c.CoolOff
	}
	if c.LockBy == nil {
		c.LockBy = [][]string{{"ip"}, {"user"}}
	}
	if c.MaxKeys <= 0 {
		c.MaxKeys = DefaultMaxLoginKeys
	}
	l := &Logins{cfg: c, seed: maphash.MakeSeed(), max: max(1, c.MaxKeys/shardCount)}
	for _, g := range c.LockBy {
		lg := lockGroup{ip: slices.Contains(g, "ip"), user: slices.Contains(g, "user")}
		if c.NoUserLockout && !lg.ip {
			continue
		}
		if !slices.Contains(l.groups, lg) {
			l.groups = append(l.groups, lg)
		}
	}
	for i := range l.shards {
		l.shards[i].m = make(map[uint64]*loginState)
	}
	return l
}

// key returns the key of group g for ip and user, false when the group
// does not apply (no valid address, or no user name).
func (l *Logins) key(g lockGroup, ip netip.Addr, user string) (uint64, bool) {
	if g.ip && !ip.IsValid() || g.user && user == "" {
		return 0, false
	}
	var h maphash.Hash
	h.SetSeed(l.seed)
	var tag byte
	if g.ip {
		tag |= 1
		a := ip.Unmap().As16()
		h.Write(a[:])
	}
	if g.user {
		tag |= 2
		// User names are compared ignoring case and surrounding space, so
		// "Bob" and "bob " share a counter.
		h.WriteString(strings.ToLower(strings.TrimSpace(user)))
	}
	h.WriteByte(tag)
	return h.Sum64(), true
}

func (l *Logins) shard(k uint64) *loginShard { return &l.shards[k>>60&(shardCount-1)] }

// Allow reports whether a login by user from ip may be tried now and, if
// not, how long until the lock ends.
func (l *Logins) Allow(ip netip.Addr, user string, now time.Time) (retryAfter time.Duration, ok bool) {
	t := now.UnixNano()
	var wait int64
	for _, g := range l.groups {
		k, applies := l.key(g, ip, user)
		if !applies {
			continue
		}
		s := l.shard(k)
		s.mu.Lock()
		if st := s.m[k]; st != nil && st.lockedUntil > t {
			wait = max(wait, st.lockedUntil-t)
		}
		s.mu.Unlock()
	}
	return time.Duration(wait), wait == 0
}

// Failed records a failed login and reports whether the login is now
// locked for ip or user (by this failure or an earlier one).
func (l *Logins) Failed(ip netip.Addr, user string, now time.Time) (locked bool) {
	t := now.UnixNano()
	for _, g := range l.groups {
		k, applies := l.key(g, ip, user)
		if !applies {
			continue
		}
		s := l.shard(k)
		s.mu.Lock()
		st := s.m[k]
		if st == nil {
			l.makeRoom(s, t)
			st = &loginState{}
			s.m[k] = st
		}
		if l.fail(st, t) {
			locked = true
		}
		s.mu.Unlock()
	}
	return locked
}

// fail counts one failure of a group and reports whether it is locked.
func (l *Logins) fail(st *loginState, t int64) bool {
	if st.lockedUntil > t {
		return true
	}
	if t-st.lastFailure >= int64(l.cfg.CoolOff) {
		st.failures = 0
	}
	if t-max(st.lastFailure, st.lockedUntil) >= int64(l.cfg.MaxCoolOff) {
		st.locks = 0
	}
	st.failures++
	st.lastFailure = t
	if st.failures < l.cfg.Limit {
		return false
	}
	st.failures = 0
	st.locks++
	st.lockedUntil = t + int64(l.coolOff(st.locks))
	return true
}

// coolOff returns the length of the n-th lock (n ≥ 1).
func (l *Logins) coolOff(n int) time.Duration {
	d := l.cfg.CoolOff
	if !l.cfg.Escalate {
		return d
	}
	for i := 1; i < n && d < l.cfg.MaxCoolOff; i++ {
		d *= 2
	}
	return min(d, l.cfg.MaxCoolOff)
}

// Succeeded records a successful login: the failures and locks of the
// groups that include the user are forgotten. Groups made of the address
// alone keep their count, so that an attacker cannot reset the count of
// an address by logging in to an account of their own between guesses.
func (l *Logins) Succeeded(ip netip.Addr, user string, now time.Time) {
	for _, g := range l.groups {
		if !g.user {
			continue
		}
		k, applies := l.key(g, ip, user)
		if !applies {
			continue
		}
		s := l.shard(k)
		s.mu.Lock()
		delete(s.m, k)
		s.mu.Unlock()
	}
}

// Len returns the number of lock groups tracked.
func (l *Logins) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// makeRoom sweeps forgotten groups once per cool-off (at the cap, at most
// once a second) and, at the cap, evicts one.
func (l *Logins) makeRoom(s *loginShard, t int64) {
	if t >= s.sweepAt || len(s.m) >= l.max && t-s.sweptAt >= int64(time.Second) {
		for k, st := range s.m {
			if l.expired(st, t) {
				delete(s.m, k)
			}
		}
		s.sweepAt = t + int64(l.cfg.CoolOff)
		s.sweptAt = t
	}
	if len(s.m) < l.max {
		return
	}
	var victim uint64
	best := int64(math.MaxInt64)
	i := 0
	for k, st := range s.m {
		// Unlocked groups go first, then the least recently failed.
		score := st.lastFailure
		if st.lockedUntil > t {
			score = math.MaxInt64/2 + st.lastFailure/2
		}
		if score < best {
			victim, best = k, score
		}
		if i++; i == 8 {
			break
		}
	}
	delete(s.m, victim)
}

// expired reports whether a group holds nothing worth keeping.
func (l *Logins) expired(st *loginState, t int64) bool {
	if st.lockedUntil > t {
		return false
	}
	if st.locks > 0 && l.cfg.Escalate {
		return t-max(st.lastFailure, st.lockedUntil) >= int64(l.cfg.MaxCoolOff)
	}
	return t-st.lastFailure >= int64(l.cfg.CoolOff)
}

// SuccessLimit limits successful logins per IP address and per user in a
// sliding window, as django-security-logger's successful-login validator
// does: many successful logins from one address are a sign of credential
// stuffing with a list that works, or of a shared account. Call Allow
// before checking the password and Succeeded after a success.
type SuccessLimit struct {
	byIP, byUser *Window
}

// SuccessfulLogins returns a SuccessLimit allowing limit successful logins
// per window from one address and for one user.
func SuccessfulLogins(limit int, window time.Duration) *SuccessLimit {
	return &SuccessLimit{
		byIP:   newWindow(fmt.Sprintf("successful_logins_ip:%d/%s", limit, shortDuration(window)), limit, window, keyIP, 0),
		byUser: newWindow(fmt.Sprintf("successful_logins_user:%d/%s", limit, shortDuration(window)), limit, window, keyUser, 0),
	}
}

// Allow reports whether another successful login of user from ip is
// allowed now and, if not, how long until it is.
func (s *SuccessLimit) Allow(ip netip.Addr, user string, now time.Time) (retryAfter time.Duration, ok bool) {
	r := Request{IP: ip, User: user}
	a, okA := s.byIP.Allow(r, now)
	b, okB := s.byUser.Allow(r, now)
	return max(a, b), okA && okB
}

// Succeeded counts a successful login.
func (s *SuccessLimit) Succeeded(ip netip.Addr, user string, now time.Time) {
	r := Request{IP: ip, User: user}
	s.byIP.Record(r, now)
	s.byUser.Record(r, now)
}
