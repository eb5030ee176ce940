package vigil

import (
	"context"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"unsafe"
)

// state is what the SDK keeps in a context: the request ID, the actor, the
// related objects, the slug, and for a request served by the middleware, the
// request itself and the route.
//
// The middleware allocates one state per request, inside the context value
// that carries it (reqCtx), and passes that context to the handler. The With*
// functions return a new context with a copy of the state (contexts stay
// immutable) and also record the actor, the related objects and the slug in
// the request's state (root), so that the request event reports what the
// handler learnt while it ran.
type state struct {
	root *state // the state of the request; itself for the request's own

	mu      sync.Mutex // guards the fields below in a request's state
	id      string     // request ID
	actorID string
	actor   string
	related []string
	slug    string

	// Set once by the middleware before the handler runs.
	method, path string
	ip           netip.Addr
	port         uint16
	inRequest    bool

	// Set by Route (under mu): the route and its options.
	rt *route

	// Buffers that keep the middleware free of allocations.
	idBuf [uuidLen]byte
	idHdr [1]string
}

// snapshot is a copy of the fields events read.
type snapshot struct {
	id, actorID, actor, slug string
	related                  []string
	method, path             string
	ip                       netip.Addr
	port                     uint16
	inRequest                bool
}

func (s *state) snapshot() snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return snapshot{id: s.id, actorID: s.actorID, actor: s.actor, slug: s.slug, related: s.related,
		method: s.method, path: s.path, ip: s.ip, port: s.port, inRequest: s.inRequest}
}

type ctxKey struct{}

var stateKey any = ctxKey{}

// reqCtx is a context carrying a state: one allocation for both, where
// context.WithValue and a separate state would take two.
type reqCtx struct {
	context.Context
	st state
}

func (c *reqCtx) Value(key any) any {
	if key == stateKey {
		return &c.st
	}
	return c.Context.Value(key)
}

func stateOf(ctx context.Context) *state {
	if ctx == nil {
		return nil
	}
	st, _ := ctx.Value(stateKey).(*state)
	return st
}

// derive returns a context holding a copy of ctx's state (or a new one) for
// change to change, and when toRoot, records the change in the request's
// state too.
func derive(ctx context.Context, toRoot bool, change func(*state)) context.Context {
	if ctx == nil {
		ctx = context.Background()
	}
	rc := &reqCtx{Context: ctx}
	if st := stateOf(ctx); st != nil {
		st.mu.Lock()
		rc.st.id, rc.st.actorID, rc.st.actor, rc.st.slug = st.id, st.actorID, st.actor, st.slug
		rc.st.related = slices.Clip(st.related)
		rc.st.method, rc.st.path, rc.st.ip, rc.st.port, rc.st.inRequest = st.method, st.path, st.ip, st.port, st.inRequest
		rc.st.root = st.root
		st.mu.Unlock()
		if root := st.root; toRoot && root != nil {
			root.mu.Lock()
			change(root)
			root.mu.Unlock()
		}
	}
	change(&rc.st)
	if rc.st.root == nil {
		rc.st.root = &rc.st
	}
	return rc
}

// RequestID returns the ID of the request ctx belongs to: the one the
// middleware read from the request header or generated, or the one given to
// WithRequestID. It is "" outside a request.
func RequestID(ctx context.Context) string {
	if st := stateOf(ctx); st != nil {
		return st.id // set before the context is handed out, never changed
	}
	return ""
}

// WithRequestID returns a context carrying request ID id, for work done
// outside the middleware on behalf of a request (a job that carries the ID of
// the request that queued it). It does not change the ID of the request ctx
// belongs to.
func WithRequestID(ctx context.Context, id string) context.Context {
	rc := derive(ctx, false, func(*state) {}).(*reqCtx)
	rc.st.id = id
	return rc
}

// WithActor returns a context whose events are done by the user with this ID
// and name (user.id, user.name). Inside a request served by the middleware,
// the request event reports this user too, unless Config.User names one.
func WithActor(ctx context.Context, id, name string) context.Context {
	return derive(ctx, true, func(s *state) { s.actorID, s.actor = id, name })
}

// Actor returns the user set by WithActor.
func Actor(ctx context.Context) (id, name string) {
	if st := stateOf(ctx); st != nil {
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.actorID, st.actor
	}
	return "", ""
}

// WithRelated returns a context whose events concern objects too, each
// written "type:id" ("auth.user:42", "shop.order:981"; related.objects in
// docs/event-schema.md). Inside a request served by the middleware, the
// request event lists them too.
func WithRelated(ctx context.Context, objects ...string) context.Context {
	return derive(ctx, true, func(s *state) {
		for _, o := range objects {
			if o != "" && !slices.Contains(s.related, o) {
				s.related = append(s.related, o)
			}
		}
	})
}

// WithSlug returns a context whose events carry slug, a stable name for what
// is being done ("payment-provider"; django-security-logger's slug). The
// Transport writes it to vigil.slug of outgoing request events.
func WithSlug(ctx context.Context, slug string) context.Context {
	return derive(ctx, false, func(s *state) { s.slug = slug })
}

// ClientIP returns the address of the client of r: the one the middleware
// resolved (X-Forwarded-For or Forwarded honoured from trusted proxies only),
// or the peer's address when r did not go through the middleware. It is the
// zero Addr when unknown.
func ClientIP(r *http.Request) netip.Addr {
	if st := stateOf(r.Context()); st != nil && st.inRequest {
		return st.ip
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// setID sets a generated request ID without allocating: the string points
// into the state's own buffer, which lives as long as the state and is never
// written again.
func (s *state) setGeneratedID(b []byte) {
	s.id = unsafe.String(&b[0], len(b))
}
