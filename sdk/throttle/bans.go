package throttle

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// Decision is a ban or throttle decided by Vigil (or by the application).
type Decision struct {
	Type   string    // "ban" (answered 403) or "throttle" (answered 429 until Until)
	Scope  string    // "ip", "range" or "user"
	Value  string    // an address, a CIDR range or a user name
	Reason string    // why, for logs
	Until  time.Time // when it ends; the zero time means never
}

// Decision types and scopes.
const (
	TypeBan      = "ban"
	TypeThrottle = "throttle"
	ScopeIP      = "ip"
	ScopeRange   = "range"
	ScopeUser    = "user"
)

func (d Decision) activeAt(t time.Time) bool { return d.Until.IsZero() || t.Before(d.Until) }

// An Enforcer says whether a request's address or user is under a decision.
type Enforcer interface {
	Check(ip netip.Addr, user string, now time.Time) (Decision, bool)
}

// StaticBans is an in-memory Enforcer. The zero value is empty and ready to
// use; it is safe for concurrent use. Expired decisions are ignored by
// Check and removed by Prune, which whoever fills a StaticBans should call
// from time to time (or use Set to replace everything).
//
// When several decisions apply, a ban wins over a throttle, and among the
// same type the one that lasts longest. An address is looked up directly,
// and ranges by prefix length, so Check costs one map lookup per distinct
// prefix length in use.
type StaticBans struct {
	mu     sync.RWMutex
	ips    map[netip.Addr]Decision
	ranges map[netip.Prefix]Decision
	bits4  []int // prefix lengths in ranges, longest first
	bits6  []int
	users  map[string]Decision // by lower-case name
}

// normalize checks d and returns it with its value in canonical form, and
// its key.
func normalize(d Decision) (Decision, any, error) {
	switch d.Type {
	case TypeBan, TypeThrottle:
	case "":
		d.Type = TypeBan
	default:
		return d, nil, fmt.Errorf("throttle: decision type %q: want %q or %q", d.Type, TypeBan, TypeThrottle)
	}
	switch d.Scope {
	case ScopeIP:
		ip, err := netip.ParseAddr(strings.TrimSpace(d.Value))
		if err != nil {
			return d, nil, fmt.Errorf("throttle: decision value %q: not an IP address", d.Value)
		}
		ip = ip.Unmap().WithZone("")
		d.Value = ip.String()
		return d, ip, nil
	case ScopeRange:
		p, err := netip.ParsePrefix(strings.TrimSpace(d.Value))
		if err != nil {
			return d, nil, fmt.Errorf("throttle: decision value %q: not a CIDR range", d.Value)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		p = p.Masked()
		d.Value = p.String()
		return d, p, nil
	case ScopeUser:
		u := strings.ToLower(strings.TrimSpace(d.Value))
		if u == "" {
			return d, nil, fmt.Errorf("throttle: decision for scope user has no user name")
		}
		return d, u, nil
	}
	return d, nil, fmt.Errorf("throttle: decision scope %q: want %q, %q or %q", d.Scope, ScopeIP, ScopeRange, ScopeUser)
}

// Add adds or replaces the decision for d's scope and value.
func (b *StaticBans) Add(d Decision) error {
	d, key, err := normalize(d)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.add(d, key)
	return nil
}

func (b *StaticBans) add(d Decision, key any) {
	switch k := key.(type) {
	case netip.Addr:
		if b.ips == nil {
			b.ips = make(map[netip.Addr]Decision)
		}
		b.ips[k] = d
	case netip.Prefix:
		if b.ranges == nil {
			b.ranges = make(map[netip.Prefix]Decision)
		}
		b.ranges[k] = d
		b.reindex()
	case string:
		if b.users == nil {
			b.users = make(map[string]Decision)
		}
		b.users[k] = d
	}
}

// reindex recomputes the prefix lengths in use.
func (b *StaticBans) reindex() {
	b.bits4, b.bits6 = b.bits4[:0], b.bits6[:0]
	for p := range b.ranges {
		if p.Addr().Is4() {
			if !slices.Contains(b.bits4, p.Bits()) {
				b.bits4 = append(b.bits4, p.Bits())
			}
		} else if !slices.Contains(b.bits6, p.Bits()) {
			b.bits6 = append(b.bits6, p.Bits())
		}
	}
	slices.Sort(b.bits4)
	slices.Reverse(b.bits4)
	slices.Sort(b.bits6)
	slices.Reverse(b.bits6)
}

// Remove removes the decision for scope and value, and reports whether
// there was one.
func (b *StaticBans) Remove(scope, value string) bool {
	_, key, err := normalize(Decision{Type: TypeBan, Scope: scope, Value: value})
	if err != nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch k := key.(type) {
	case netip.Addr:
		_, ok := b.ips[k]
		delete(b.ips, k)
		return ok
	case netip.Prefix:
		_, ok := b.ranges[k]
		delete(b.ranges, k)
		b.reindex()
		return ok
	case string:
		_, ok := b.users[k]
		delete(b.users, k)
		return ok
	}
	return false
}

// Set replaces all decisions with ds, as a client of a decision stream does
// after a full resynchronisation. Nothing changes if one of ds is invalid.
func (b *StaticBans) Set(ds []Decision) error {
	type entry struct {
		d   Decision
		key any
	}
	es := make([]entry, 0, len(ds))
	for i, d := range ds {
		d, key, err := normalize(d)
		if err != nil {
			return fmt.Errorf("decision %d: %w", i, err)
		}
		es = append(es, entry{d, key})
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ips, b.ranges, b.users = nil, nil, nil
	b.bits4, b.bits6 = nil, nil
	for _, e := range es {
		b.add(e.d, e.key)
	}
	return nil
}

// Check returns the decision that applies to ip or user at now, if any.
func (b *StaticBans) Check(ip netip.Addr, user string, now time.Time) (Decision, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var best Decision
	found := false
	consider := func(d Decision, ok bool) {
		if ok && d.activeAt(now) && (!found || better(d, best)) {
			best, found = d, true
		}
	}
	if ip.IsValid() {
		ip = ip.Unmap().WithZone("")
		if len(b.ips) > 0 {
			d, ok := b.ips[ip]
			consider(d, ok)
		}
		bits := b.bits6
		if ip.Is4() {
			bits = b.bits4
		}
		for _, n := range bits {
			p, err := ip.Prefix(n)
			if err == nil {
				d, ok := b.ranges[p]
				consider(d, ok)
			}
		}
	}
	if user != "" && len(b.users) > 0 {
		u := strings.TrimSpace(user)
		if hasUpper(u) {
			u = strings.ToLower(u)
		}
		d, ok := b.users[u]
		consider(d, ok)
	}
	return best, found
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 'A' && s[i] <= 'Z' || s[i] >= 0x80 {
			return true
		}
	}
	return false
}

// better reports whether d should be reported rather than e.
func better(d, e Decision) bool {
	if (d.Type == TypeBan) != (e.Type == TypeBan) {
		return d.Type == TypeBan
	}
	switch {
	case d.Until.IsZero():
		return !e.Until.IsZero()
	case e.Until.IsZero():
		return false
	}
	return d.Until.After(e.Until)
}

// Prune removes the decisions that have expired at now and returns how
// many it removed.
func (b *StaticBans) Prune(now time.Time) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.prune(now)
}

func (b *StaticBans) prune(now time.Time) int {
	n := 0
	for k, d := range b.ips {
		if !d.activeAt(now) {
			delete(b.ips, k)
			n++
		}
	}
	r := 0
	for k, d := range b.ranges {
		if !d.activeAt(now) {
			delete(b.ranges, k)
			r++
		}
	}
	if r > 0 {
		b.reindex()
	}
	for k, d := range b.users {
		if !d.activeAt(now) {
			delete(b.users, k)
			n++
		}
	}
	return n + r
}

// Len returns the number of decisions held, expired ones included until
// pruned.
func (b *StaticBans) Len() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.ips) + len(b.ranges) + len(b.users)
}
