// Package respond holds Vigil's automatic response: decisions to ban or
// throttle an address, a range of addresses or a user, each with a time to
// live. Detection rules and people (API, CLI) make decisions; applications
// enforce them through the SDK (sdk/throttle), which follows the decision
// stream, and firewalls load them from exports (nginx, iptables, ipset,
// nftables).
//
// Decisions persist through the event log: every change is written as an
// audit event (vigil_decision_added, _removed, _expired) before it takes
// effect, and Manager.Replay rebuilds the decisions from those events at
// start. See docs/response.md.
package respond

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/vigilsec/vigil/sdk/throttle"
)

// Decision types and scopes, the same words as the SDK's.
const (
	TypeBan      = throttle.TypeBan      // refuse every request (403)
	TypeThrottle = throttle.TypeThrottle // answer 429 until the decision ends
	ScopeIP      = throttle.ScopeIP      // one address
	ScopeRange   = throttle.ScopeRange   // a CIDR range
	ScopeUser    = throttle.ScopeUser    // a user name, compared without case
)

// Why a decision was removed, in Decision.RemovedBy besides "manual:<who>".
const (
	RemovedByExpiry    = "expiry"    // its TTL passed
	RemovedByAllowlist = "allowlist" // its value was allowlisted after it was made
)

// Limits on the text of a decision.
const (
	MaxValueBytes       = 256
	MaxReasonBytes      = 1024 // longer reasons are cut by Manager.Add
	MaxOriginBytes      = 256
	MaxFingerprintBytes = 256
	// MinRangeBits4 and MinRangeBits6 bound how wide a range can be banned:
	// a /0 typed by mistake must not cut off the whole Internet.
	MinRangeBits4 = 8
	MinRangeBits6 = 16
)

// Decision is one ban or throttle.
type Decision struct {
	ID     string `json:"id"`
	Type   string `json:"type"`  // TypeBan or TypeThrottle
	Scope  string `json:"scope"` // ScopeIP, ScopeRange or ScopeUser
	Value  string `json:"value"` // canonical: 192.0.2.1, 2001:db8::/32, a lower-case user name
	Reason string `json:"reason,omitempty"`
	// Origin says who decided: a detection rule's name, or "manual:<who>"
	// for a person (see ManualOrigin).
	Origin string `json:"origin"`
	// AlertFingerprint links the decision to the alert that caused it.
	AlertFingerprint string    `json:"alert_fingerprint,omitempty"`
	CreatedAt        time.Time `json:"created_at"`
	// Until is when the decision ends; the zero time means when removed.
	Until time.Time `json:"until,omitzero"`
	// RemovedAt and RemovedBy are set once the decision no longer applies:
	// RemovedBy is "manual:<who>", RemovedByExpiry or RemovedByAllowlist.
	RemovedAt time.Time `json:"removed_at,omitzero"`
	RemovedBy string    `json:"removed_by,omitempty"`
}

// ActiveAt reports whether d applies at t.
func (d Decision) ActiveAt(t time.Time) bool {
	return d.RemovedAt.IsZero() && (d.Until.IsZero() || t.Before(d.Until))
}

// ManualOrigin is the Origin of a decision made by a person.
func ManualOrigin(who string) string {
	if who == "" {
		who = "unknown"
	}
	return "manual:" + who
}

// throttleDecision converts d for the SDK's enforcer.
func (d Decision) throttleDecision() throttle.Decision {
	return throttle.Decision{Type: d.Type, Scope: d.Scope, Value: d.Value, Reason: d.Reason, Until: d.Until}
}

// key identifies what a decision is about: one decision per key is active.
type key struct{ scope, value string }

func (d Decision) key() key { return key{d.Scope, d.Value} }

// FieldError is a decision field that is missing or malformed.
type FieldError struct {
	Field string // JSON name: "type", "scope", "value", "reason", "origin", "until"...
	Msg   string
}

func (e *FieldError) Error() string { return "field " + e.Field + ": " + e.Msg }

// normalize checks d's type, scope, value and texts, and returns it with its
// value in canonical form: addresses as the SDK writes them (an IPv4
// address mapped into IPv6 is unmapped, zones dropped), ranges masked, user
// names trimmed and lower-cased. An empty type is a ban. Reasons longer than
// MaxReasonBytes are cut.
func normalize(d Decision) (Decision, error) {
	switch d.Type {
	case TypeBan, TypeThrottle:
	case "":
		d.Type = TypeBan
	default:
		return d, &FieldError{"type", fmt.Sprintf("%q is not %q or %q", d.Type, TypeBan, TypeThrottle)}
	}
	v, err := normalizeValue(d.Scope, d.Value)
	if err != nil {
		return d, err
	}
	d.Value = v
	d.Reason = cut(strings.ToValidUTF8(d.Reason, "\uFFFD"), MaxReasonBytes)
	if err := checkText("origin", d.Origin, MaxOriginBytes, true); err != nil {
		return d, err
	}
	if err := checkText("alert_fingerprint", d.AlertFingerprint, MaxFingerprintBytes, false); err != nil {
		return d, err
	}
	return d, nil
}

// normalizeValue checks value for scope and returns its canonical form.
func normalizeValue(scope, value string) (string, error) {
	switch scope {
	case ScopeIP, ScopeRange, ScopeUser:
	case "":
		return "", &FieldError{"scope", "missing"}
	default:
		return "", &FieldError{"scope", fmt.Sprintf("%q is not %q, %q or %q", scope, ScopeIP, ScopeRange, ScopeUser)}
	}
	value = strings.TrimSpace(value)
	if value == "" {
		return "", &FieldError{"value", "missing"}
	}
	if len(value) > MaxValueBytes {
		return "", &FieldError{"value", fmt.Sprintf("longer than %d bytes", MaxValueBytes)}
	}
	switch scope {
	case ScopeIP:
		ip, err := netip.ParseAddr(value)
		if err != nil {
			return "", &FieldError{"value", fmt.Sprintf("%q is not an IP address", value)}
		}
		return ip.Unmap().WithZone("").String(), nil
	case ScopeRange:
		p, err := netip.ParsePrefix(value)
		if err != nil {
			return "", &FieldError{"value", fmt.Sprintf("%q is not a CIDR range (203.0.113.0/24, 2001:db8::/32)", value)}
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		p = p.Masked()
		if lo := minBits(p.Addr()); p.Bits() < lo {
			return "", &FieldError{"value", fmt.Sprintf("range %s is wider than /%d, the widest Vigil bans", p, lo)}
		}
		return p.String(), nil
	}
	// ScopeUser
	if err := checkText("value", value, MaxValueBytes, true); err != nil {
		return "", err
	}
	return strings.ToLower(value), nil
}

func minBits(a netip.Addr) int {
	if a.Is4() {
		return MinRangeBits4
	}
	return MinRangeBits6
}

// checkText refuses invalid UTF-8, control characters and over-long text.
func checkText(field, s string, max int, required bool) error {
	switch {
	case s == "" && required:
		return &FieldError{field, "missing"}
	case len(s) > max:
		return &FieldError{field, fmt.Sprintf("longer than %d bytes", max)}
	case !utf8.ValidString(s):
		return &FieldError{field, "not valid UTF-8"}
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return &FieldError{field, fmt.Sprintf("contains the control character %U", r)}
		}
	}
	return nil
}

// cut shortens s to at most n bytes without splitting a character.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// ErrAllowlisted is matched (errors.Is) by an *AllowlistError.
var ErrAllowlisted = errors.New("allowlisted")

// AllowlistError refuses a decision on an allowlisted address, range or
// user.
type AllowlistError struct {
	Scope, Value string
	Entry        string // the allowlist entry it meets
}

func (e *AllowlistError) Error() string {
	if e.Scope == ScopeRange {
		return fmt.Sprintf("refused: range %s covers the allowlist entry %s; allowlisted values are never banned or throttled", e.Value, e.Entry)
	}
	return fmt.Sprintf("refused: %s %s is on the allowlist (entry %s); allowlisted values are never banned or throttled", e.Scope, e.Value, e.Entry)
}

// Is makes errors.Is(err, ErrAllowlisted) true.
func (e *AllowlistError) Is(target error) bool { return target == ErrAllowlisted }

// Allowlist names what is never banned or throttled. It is empty by
// default: Vigil does not exempt loopback or private addresses on its own
// (a brute force from 127.0.0.1 in a demo must be banned); list the
// addresses of your offices, monitoring and load balancers here.
type Allowlist struct {
	// IPs holds addresses (192.0.2.10) and CIDR ranges (10.0.0.0/8). A
	// decision on an address inside one, or on a range overlapping one, is
	// refused.
	IPs []string `yaml:"ips"`
	// Users holds user names, compared without case.
	Users []string `yaml:"users"`
}

// allowlist is an Allowlist parsed.
type allowlist struct {
	nets  []netip.Prefix
	names []string // nets as written in the configuration
	users map[string]bool
}

func (a Allowlist) parse() (allowlist, error) {
	var al allowlist
	for i, s := range a.IPs {
		s = strings.TrimSpace(s)
		var p netip.Prefix
		if ip, err := netip.ParseAddr(s); err == nil {
			ip = ip.Unmap().WithZone("")
			p = netip.PrefixFrom(ip, ip.BitLen())
		} else if p, err = netip.ParsePrefix(s); err == nil {
			if p.Addr().Is4In6() && p.Bits() >= 96 {
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			p = p.Masked()
		} else {
			return al, fmt.Errorf("allowlist.ips[%d]: %q is not an IP address or CIDR range", i, s)
		}
		al.nets = append(al.nets, p)
		al.names = append(al.names, s)
	}
	for i, u := range a.Users {
		u = strings.TrimSpace(u)
		if err := checkText("user", u, MaxValueBytes, true); err != nil {
			return al, fmt.Errorf("allowlist.users[%d]: %q: %s", i, u, err.(*FieldError).Msg)
		}
		if al.users == nil {
			al.users = make(map[string]bool)
		}
		al.users[strings.ToLower(u)] = true
	}
	return al, nil
}

// conflict returns the allowlist entry that d (normalized) would hit.
func (al allowlist) conflict(d Decision) (string, bool) {
	switch d.Scope {
	case ScopeIP:
		ip, err := netip.ParseAddr(d.Value)
		if err != nil {
			return "", false
		}
		for i, n := range al.nets {
			if n.Contains(ip) {
				return al.names[i], true
			}
		}
	case ScopeRange:
		p, err := netip.ParsePrefix(d.Value)
		if err != nil {
			return "", false
		}
		for i, n := range al.nets {
			if n.Overlaps(p) {
				return al.names[i], true
			}
		}
	case ScopeUser:
		if al.users[d.Value] {
			return d.Value, true
		}
	}
	return "", false
}
