package throttle

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// RouteConfig overrides the limits of one route.
type RouteConfig struct {
	Exempt     bool        // no limits at all (bans still apply)
	Validators []Validator // replace Config.Validators for the route; include them again to add to them
}

// Config configures a Limiter. The zero Config applies DefaultValidators to
// every request, by RemoteAddr.
type Config struct {
	Validators []Validator                    // nil = DefaultValidators(); an empty non-nil slice = no limits
	Routes     map[string]RouteConfig         // keyed by route pattern ("POST /login", as registered on a ServeMux) or path ("/login")
	ClientIP   func(*http.Request) netip.Addr // nil = from RemoteAddr
	User       func(*http.Request) string     // optional: the user of a request
	Route      func(*http.Request) string     // optional: the route pattern of a request; default r.Pattern, else path
	Limited    http.Handler                   // answer when limited; default DefaultLimited
	Banned     http.Handler                   // answer when banned; default DefaultBanned
	Enforcer   Enforcer                       // optional: bans and throttles decided elsewhere
	ExemptIPs  []netip.Prefix                 // never limited (bans still apply)
	Now        func() time.Time               // clock; default time.Now
	// OnLimit is called when a validator refuses a request, so that the
	// SDK can log an excess_rate_limit_exceeded event.
	OnLimit func(r *http.Request, validator string, retryAfter time.Duration)
	// OnBan is called when a decision of Enforcer refuses a request, of
	// either type (a "throttle" decision is answered by Limited, 429).
	OnBan func(r *http.Request, d Decision)
}

// Limiter applies limits and bans to HTTP requests. It is safe for
// concurrent use.
type Limiter struct {
	validators []Validator
	routes     map[string]RouteConfig
	clientIP   func(*http.Request) netip.Addr
	user       func(*http.Request) string
	route      func(*http.Request) string
	limited    http.Handler
	banned     http.Handler
	enforcer   Enforcer
	exempt     []netip.Prefix
	now        func() time.Time
	onLimit    func(*http.Request, string, time.Duration)
	onBan      func(*http.Request, Decision)
}

// New checks c and returns a Limiter. Errors name the field at fault.
func New(c Config) (*Limiter, error) {
	l := &Limiter{
		validators: c.Validators,
		routes:     c.Routes,
		clientIP:   c.ClientIP,
		user:       c.User,
		route:      c.Route,
		limited:    c.Limited,
		banned:     c.Banned,
		enforcer:   c.Enforcer,
		now:        c.Now,
		onLimit:    c.OnLimit,
		onBan:      c.OnBan,
	}
	if l.validators == nil {
		l.validators = DefaultValidators()
	}
	for i, v := range l.validators {
		if v == nil {
			return nil, fmt.Errorf("throttle: Validators[%d] is nil", i)
		}
	}
	for pattern, rc := range c.Routes {
		if pattern == "" {
			return nil, fmt.Errorf("throttle: Routes has an empty key")
		}
		if rc.Exempt && rc.Validators != nil {
			return nil, fmt.Errorf("throttle: Routes[%q]: both Exempt and Validators set", pattern)
		}
		for i, v := range rc.Validators {
			if v == nil {
				return nil, fmt.Errorf("throttle: Routes[%q].Validators[%d] is nil", pattern, i)
			}
		}
	}
	for i, p := range c.ExemptIPs {
		if !p.IsValid() {
			return nil, fmt.Errorf("throttle: ExemptIPs[%d] is not a valid prefix", i)
		}
		l.exempt = append(l.exempt, unmapPrefix(p).Masked())
	}
	if l.clientIP == nil {
		l.clientIP = RemoteIP
	}
	if l.limited == nil {
		l.limited = DefaultLimited
	}
	if l.banned == nil {
		l.banned = DefaultBanned
	}
	if l.now == nil {
		l.now = time.Now
	}
	return l, nil
}

func unmapPrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}

// RemoteIP returns the address of r.RemoteAddr (IPv4-mapped addresses
// unmapped), or the zero Addr. Behind a reverse proxy, set Config.ClientIP
// to a function that trusts the proxy's header instead.
func RemoteIP(r *http.Request) netip.Addr {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap()
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, _ := netip.ParseAddr(host)
	return ip.Unmap()
}

// Verdict is the outcome of checking a request.
type Verdict struct {
	OK         bool
	RetryAfter time.Duration // when refused by a limit or a throttle decision
	Validator  string        // the validator that refused ("decision" for a decision)
	Banned     bool          // refused by Decision
	Decision   Decision
}

// Middleware applies the limiter to every request before next.
//
// The route of a request (for Config.Routes and Request.Route) is
// Config.Route's answer if set, else r.Pattern if a ServeMux outside this
// middleware has set it, else, when next is a *http.ServeMux, the pattern
// that mux will route the request to, else the path. So
// lim.Middleware(mux) knows the patterns of mux; to use patterns with
// another router, wrap its handlers with Route instead (not both: a request
// passing both would be counted twice).
func (l *Limiter) Middleware(next http.Handler) http.Handler {
	mux, _ := next.(*http.ServeMux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if l.serve(w, r, l.routeOf(r, mux)) {
			next.ServeHTTP(w, r)
		}
	})
}

// Route wraps the handler of one route so that the limiter applies to it
// with pattern as its route, for applications that do not use Middleware:
//
//	mux.Handle("POST /login", lim.Route("POST /login", loginHandler))
//
// Config.Routes[pattern] applies if present, else Config.Validators.
func (l *Limiter) Route(pattern string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if l.serve(w, r, pattern) {
			h.ServeHTTP(w, r)
		}
	})
}

func (l *Limiter) routeOf(r *http.Request, mux *http.ServeMux) string {
	if l.route != nil {
		return l.route(r)
	}
	if r.Pattern != "" {
		return r.Pattern
	}
	if mux != nil {
		if _, p := mux.Handler(r); p != "" {
			return p
		}
	}
	return r.URL.Path
}

// serve checks r, answers it if refused, and reports whether it may go on.
func (l *Limiter) serve(w http.ResponseWriter, r *http.Request, route string) bool {
	v := l.decide(r, route)
	if v.OK {
		return true
	}
	refused := new(Verdict) // only refused requests allocate
	*refused = v
	r = r.WithContext(context.WithValue(r.Context(), verdictKey{}, refused))
	if v.Banned && v.Decision.Type == TypeBan {
		l.banned.ServeHTTP(w, r)
	} else {
		l.limited.ServeHTTP(w, r)
	}
	return false
}

// Check decides on r as the middleware would, for callers that do not use
// it: a request that may proceed is counted, and OnLimit or OnBan are
// called for a refused one. validator names what refused the request
// ("decision" for a ban or throttle of the Enforcer). The route is found
// as by Middleware without a ServeMux.
func (l *Limiter) Check(r *http.Request) (retryAfter time.Duration, validator string, ok bool) {
	v := l.Decide(r)
	return v.RetryAfter, v.Validator, v.OK
}

// Decide is Check with the whole verdict.
func (l *Limiter) Decide(r *http.Request) Verdict {
	return l.decide(r, l.routeOf(r, nil))
}

// decide checks r and calls the hooks when it is refused.
func (l *Limiter) decide(r *http.Request, route string) Verdict {
	v := l.verdict(r, route)
	switch {
	case v.OK:
	case v.Banned && l.onBan != nil:
		l.onBan(r, v.Decision)
	case !v.Banned && l.onLimit != nil:
		l.onLimit(r, v.Validator, v.RetryAfter)
	}
	return v
}

func (l *Limiter) verdict(r *http.Request, route string) Verdict {
	now := l.now()
	ip := l.clientIP(r)
	var user string
	if l.user != nil {
		user = l.user(r)
	}
	if l.enforcer != nil {
		if d, ok := l.enforcer.Check(ip, user, now); ok {
			v := Verdict{Banned: true, Decision: d, Validator: "decision"}
			if d.Type == TypeThrottle {
				v.RetryAfter = d.Until.Sub(now)
			}
			return v
		}
	}
	if l.isExempt(ip) {
		return Verdict{OK: true}
	}
	validators := l.validators
	if len(l.routes) > 0 {
		rc, found := l.routes[route]
		if !found && route != r.URL.Path {
			rc, found = l.routes[r.URL.Path]
		}
		if found {
			if rc.Exempt {
				return Verdict{OK: true}
			}
			if rc.Validators != nil {
				validators = rc.Validators
			}
		}
	}
	req := Request{IP: ip, Method: r.Method, Path: r.URL.Path, Route: route, User: user}
	var refused Verdict
	for _, v := range validators {
		if wait, ok := v.Allow(req, now); !ok && (refused.Validator == "" || wait > refused.RetryAfter) {
			refused = Verdict{RetryAfter: wait, Validator: v.Name()}
		}
	}
	if refused.Validator != "" {
		return refused
	}
	for _, v := range validators {
		v.Record(req, now)
	}
	return Verdict{OK: true}
}

func (l *Limiter) isExempt(ip netip.Addr) bool {
	if len(l.exempt) == 0 || !ip.IsValid() {
		return false
	}
	ip = ip.Unmap()
	for _, p := range l.exempt {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

type verdictKey struct{}

func verdictOf(r *http.Request) (*Verdict, bool) {
	v, ok := r.Context().Value(verdictKey{}).(*Verdict)
	return v, ok
}

// RetryAfter returns, inside a Limited or Banned handler, how long the
// client should wait.
func RetryAfter(r *http.Request) (time.Duration, bool) {
	if v, ok := verdictOf(r); ok {
		return v.RetryAfter, true
	}
	return 0, false
}

// RefusedBy returns, inside a Limited or Banned handler, the name of the
// validator that refused the request ("decision" for a decision).
func RefusedBy(r *http.Request) (string, bool) {
	if v, ok := verdictOf(r); ok {
		return v.Validator, true
	}
	return "", false
}

// DecisionOf returns, inside a Limited or Banned handler, the decision that
// refused the request, if one did.
func DecisionOf(r *http.Request) (Decision, bool) {
	if v, ok := verdictOf(r); ok && v.Banned {
		return v.Decision, true
	}
	return Decision{}, false
}

// RetryAfterSeconds is the value of a Retry-After header for d: whole
// seconds, rounded up, at least 1.
func RetryAfterSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	return max(s, 1)
}

// DefaultLimited answers 429 Too Many Requests with a Retry-After header
// and {"error":"too many requests","retry_after":N}.
var DefaultLimited http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	wait, _ := RetryAfter(r)
	n := RetryAfterSeconds(wait)
	h := w.Header()
	h.Set("Retry-After", strconv.Itoa(n))
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusTooManyRequests)
	fmt.Fprintf(w, `{"error":"too many requests","retry_after":%d}`+"\n", n)
})

// DefaultBanned answers 403 Forbidden with {"error":"forbidden"}.
var DefaultBanned http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusForbidden)
	fmt.Fprint(w, `{"error":"forbidden"}`+"\n")
})
