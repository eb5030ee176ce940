package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigilsec/vigil/sdk/shipper"
	"github.com/vigilsec/vigil/sdk/throttle"
	"github.com/vigilsec/vigil/sdk/vigil"
)

// shopConfig is what newShop needs; main fills it from flags and environment,
// the tests directly.
type shopConfig struct {
	VigilURL   string        // Vigil's base URL
	Token      string        // Vigil ingest token
	SpoolDir   string        // shipper spool; "" = memory only
	JobEvery   time.Duration // period of the newsletter job; 0 = never
	RateLimit  int           // requests per minute per IP; 0 = 20
	PaymentKey string        // API key sent to the payment provider
	Log        io.Writer     // text log; nil = io.Discard
	// Now is the clock of the rate limiter and the login lockout;
	// nil = time.Now.
	Now func() time.Time
	// FollowBans makes the shop refuse the addresses and users Vigil bans
	// (403) or throttles (429), following Vigil's decision stream.
	FollowBans bool
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
}

const sessionCookie = "shop_session"

type user struct {
	id, name, password string
	admin              bool
}

type product struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Cents int    `json:"price_cents"`
}

var products = []product{
	{"p1", "Padlock", 1299},
	{"p2", "Tamper-evident tape", 499},
	{"p3", "Security camera", 8999},
}

type shop struct {
	cfg    shopConfig
	c      *vigil.Client
	log    *slog.Logger
	logins *throttle.Logins
	pay    *http.Client
	payURL string

	users map[string]user // by name

	mu       sync.Mutex
	sessions map[string]string // session token → user name
	settings map[string]string

	orders atomic.Int64
}

// newShop builds the shop: its handler (with the Vigil middleware and the
// rate limiter around it), and a function that stops the background job and
// the fake payment provider, and flushes and closes the Vigil client.
func newShop(cfg shopConfig) (http.Handler, func(context.Context) error, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RateLimit <= 0 {
		cfg.RateLimit = 20
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.PaymentKey == "" {
		cfg.PaymentKey = "pk_live_" + randomHex(12)
	}

	sh, err := shipper.New(shipper.Config{URL: cfg.VigilURL, Token: cfg.Token, SpoolDir: cfg.SpoolDir})
	if err != nil {
		return nil, nil, err
	}
	c, err := vigil.New(vigil.Config{
		Service:        "shop",
		Release:        "0.1.0",
		Sink:           sh,
		CaptureBodies:  true,
		CaptureHeaders: true,
		TrustedProxies: cfg.TrustedProxies,
		ErrorLog:       slog.New(slog.NewTextHandler(cfg.Log, nil)),
	})
	if err != nil {
		sh.Close(context.Background())
		return nil, nil, err
	}

	s := &shop{
		cfg:    cfg,
		c:      c,
		log:    slog.New(c.SlogHandler(vigil.SlogOptions{Next: slog.NewTextHandler(cfg.Log, nil), Logger: "shop"})),
		logins: throttle.NewLogins(throttle.LoginConfig{}),
		pay:    &http.Client{Timeout: 10 * time.Second, Transport: c.Transport(nil, vigil.TransportSlug("payment-provider"))},
		users: map[string]user{
			"alice": {id: "1", name: "alice", password: "alice-password"},
			"admin": {id: "2", name: "admin", password: "admin-password", admin: true},
		},
		sessions: map[string]string{},
		settings: map[string]string{
			"newsletter.enabled": "true",
			"payments.provider":  "fakepay",
			"shop.currency":      "EUR",
		},
	}

	// The fake payment provider, on its own port: a third party as far as
	// the shop is concerned, so it is not behind the shop's middleware.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.Close(context.Background())
		return nil, nil, err
	}
	paySrv := &http.Server{Handler: fakePayments(cfg.PaymentKey), ReadHeaderTimeout: 5 * time.Second}
	go paySrv.Serve(ln)
	s.payURL = "http://" + ln.Addr().String()

	var bans *throttle.VigilBans
	if cfg.FollowBans {
		bans, err = throttle.FollowVigil(context.Background(), cfg.VigilURL, cfg.Token, throttle.FollowConfig{
			Log: slog.New(slog.NewTextHandler(cfg.Log, nil)),
		})
		if err != nil {
			paySrv.Close()
			c.Close(context.Background())
			return nil, nil, err
		}
	}
	tc := throttle.Config{
		Validators: []throttle.Validator{throttle.PerIP(cfg.RateLimit, time.Minute), throttle.PerIP(1000, time.Hour)},
		Now:        cfg.Now,
		ClientIP:   vigil.ClientIP,
		OnLimit: func(r *http.Request, v string, wait time.Duration) {
			c.Audit(r.Context(), "excess_rate_limit_exceeded",
				vigil.String("labels.validator", v), vigil.Int("labels.retry_after_s", int64(throttle.RetryAfterSeconds(wait))))
		},
	}
	if bans != nil {
		tc.Enforcer = bans
	}
	lim, err := throttle.New(tc)
	if err != nil {
		paySrv.Close()
		c.Close(context.Background())
		return nil, nil, err
	}

	mux := http.NewServeMux()
	route := func(pattern string, h http.HandlerFunc, opts ...vigil.RouteOption) {
		mux.Handle(pattern, c.Route(pattern, h, opts...))
	}
	route("GET /{$}", s.home, vigil.Slug("home"))
	route("GET /products", s.listProducts, vigil.Slug("products"))
	route("POST /login", s.login, vigil.Slug("login"))
	route("POST /logout", s.logout, vigil.Slug("logout"))
	route("POST /admin/settings", s.changeSetting, vigil.Slug("admin-settings"))
	route("POST /checkout", s.checkout, vigil.Slug("checkout"))
	mux.Handle("GET /metrics", c.Route("GET /metrics", c.Metrics(), vigil.Exempt()))

	// Background job.
	jobCtx, stopJobs := context.WithCancel(context.Background())
	var jobs sync.WaitGroup
	if cfg.JobEvery > 0 {
		jobs.Go(func() {
			t := time.NewTicker(cfg.JobEvery)
			defer t.Stop()
			for {
				select {
				case <-jobCtx.Done():
					return
				case queued := <-t.C:
					if err := s.runNewsletter(jobCtx, queued); err != nil {
						s.log.ErrorContext(jobCtx, "newsletter job failed", "err", err)
					}
				}
			}
		})
	}

	closeFn := func(ctx context.Context) error {
		stopJobs()
		jobs.Wait()
		paySrv.Close()
		if bans != nil {
			bans.Close()
		}
		return c.Close(ctx)
	}
	return c.Middleware(lim.Middleware(mux)), closeFn, nil
}

func (s *shop) runNewsletter(ctx context.Context, queued time.Time) error {
	return s.c.RunJob(ctx, "send-newsletter", func(ctx context.Context, out io.Writer) error {
		s.mu.Lock()
		enabled := s.settings["newsletter.enabled"] == "true"
		s.mu.Unlock()
		if !enabled {
			fmt.Fprintln(out, "newsletter disabled, nothing sent")
			return nil
		}
		for _, u := range []string{"alice", "admin"} {
			fmt.Fprintf(out, "sent newsletter to %s\n", u)
		}
		return nil
	}, vigil.Queue("mail"), vigil.QueuedAt(queued), vigil.MaxWait(time.Hour))
}

// --- handlers ---

func (s *shop) home(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "Welcome to the Vigil demo shop. GET /products, POST /login, POST /checkout.")
}

func (s *shop) listProducts(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, products)
}

func (s *shop) login(w http.ResponseWriter, r *http.Request) {
	in, err := readInput(w, r)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	name, pw := in["user"], in["password"]
	if name == "" {
		name = in["username"]
	}
	ctx := r.Context()
	ip, now := vigil.ClientIP(r), s.cfg.Now()
	if wait, ok := s.logins.Allow(ip, name, now); !ok {
		s.c.LoginFailed(ctx, name, "locked out")
		w.Header().Set("Retry-After", strconv.Itoa(throttle.RetryAfterSeconds(wait)))
		writeJSON(w, http.StatusTooManyRequests, map[string]string{"error": "too many failed logins"})
		return
	}
	u, known := s.users[name]
	if !known || subtle.ConstantTimeCompare([]byte(pw), []byte(u.password)) != 1 {
		reason := "bad password"
		if !known {
			reason = "unknown user"
		}
		s.c.LoginFailed(ctx, name, reason)
		if s.logins.Failed(ip, name, now) {
			s.c.Audit(ctx, "authn_login_lock", vigil.String("user.name", name))
		}
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "wrong user or password"})
		return
	}
	s.logins.Succeeded(ip, name, now)
	ctx = vigil.WithActor(ctx, u.id, u.name)
	if err := s.c.LoginSucceeded(ctx, u.name); err != nil {
		http.Error(w, "try again", http.StatusServiceUnavailable)
		return
	}
	tok := randomHex(32)
	s.mu.Lock()
	s.sessions[tok] = u.name
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: tok, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	s.log.InfoContext(ctx, "user logged in", "user", u.name)
	writeJSON(w, http.StatusOK, map[string]string{"user": u.name})
}

func (s *shop) logout(w http.ResponseWriter, r *http.Request) {
	u, ctx, ok := s.session(r)
	if !ok {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "not logged in"})
		return
	}
	ck, _ := r.Cookie(sessionCookie)
	s.mu.Lock()
	delete(s.sessions, ck.Value)
	s.mu.Unlock()
	s.c.Logout(ctx, u.name)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1})
	writeJSON(w, http.StatusOK, map[string]string{"status": "logged out"})
}

func (s *shop) changeSetting(w http.ResponseWriter, r *http.Request) {
	u, ctx, ok := s.session(r)
	if !ok {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "not logged in"})
		return
	}
	if !u.admin {
		s.c.AuthzFailed(ctx, "settings", "write")
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "admins only"})
		return
	}
	in, err := readInput(w, r)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	key, val := in["key"], in["value"]
	s.mu.Lock()
	old, known := s.settings[key]
	if known {
		s.settings[key] = val
	}
	s.mu.Unlock()
	if !known {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unknown setting"})
		return
	}
	ctx = vigil.WithRelated(ctx, "setting:"+key)
	if err := s.c.ConfigChanged(ctx, key, old, val); err != nil {
		http.Error(w, "try again", http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"key": key, "old": old, "new": val})
}

func (s *shop) checkout(w http.ResponseWriter, r *http.Request) {
	u, ctx, ok := s.session(r)
	if !ok {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "not logged in"})
		return
	}
	in, err := readInput(w, r)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	var p *product
	for i := range products {
		if products[i].ID == in["product"] {
			p = &products[i]
		}
	}
	if p == nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unknown product"})
		return
	}
	order := s.orders.Add(1)
	ctx = vigil.WithRelated(ctx, "shop.order:"+strconv.FormatInt(order, 10))

	body, _ := json.Marshal(map[string]any{"amount_cents": p.Cents, "currency": "EUR", "order": order})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.payURL+"/v1/charges", strings.NewReader(string(body)))
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "payment"})
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.cfg.PaymentKey)
	resp, err := s.pay.Do(req)
	if err != nil {
		s.log.ErrorContext(ctx, "payment provider unreachable", "err", err)
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": "payment provider unreachable"})
		return
	}
	var charge struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&charge)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		s.log.ErrorContext(ctx, "payment refused", "status", resp.StatusCode)
		writeJSON(w, http.StatusPaymentRequired, map[string]string{"error": "payment refused"})
		return
	}
	s.log.InfoContext(ctx, "order paid", "order", order, "product", p.ID, "charge", charge.ID, "user", u.name)
	writeJSON(w, http.StatusOK, map[string]any{"order": order, "charge": charge.ID, "status": charge.Status})
}

// fakePayments is a stand-in for a payment provider's API.
func fakePayments(key string) http.Handler {
	var n atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/charges", func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+key)) != 1 {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "bad api key"})
			return
		}
		var in struct {
			Amount int `json:"amount_cents"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&in); err != nil || in.Amount <= 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad charge"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"id": fmt.Sprintf("ch_%d", n.Add(1)), "status": "succeeded"})
	})
	return mux
}

// --- helpers ---

// session returns the user of the request's session cookie and a context
// carrying that user as the actor.
func (s *shop) session(r *http.Request) (user, context.Context, bool) {
	name := s.sessionUser(r)
	u, ok := s.users[name]
	if !ok {
		return user{}, r.Context(), false
	}
	return u, vigil.WithActor(r.Context(), u.id, u.name), true
}

func (s *shop) sessionUser(r *http.Request) string {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[ck.Value]
}

// readInput reads a JSON object of strings or an HTML form.
func readInput(w http.ResponseWriter, r *http.Request) (map[string]string, error) {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<16)
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	out := map[string]string{}
	if ct == "application/json" {
		var m map[string]any
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			return nil, errors.New("bad JSON")
		}
		for k, v := range m {
			switch v := v.(type) {
			case string:
				out[k] = v
			case float64:
				out[k] = strconv.FormatFloat(v, 'f', -1, 64)
			case bool:
				out[k] = strconv.FormatBool(v)
			}
		}
		return out, nil
	}
	if err := r.ParseForm(); err != nil {
		return nil, errors.New("bad form")
	}
	for k := range r.PostForm {
		out[k] = r.PostForm.Get(k)
	}
	return out, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
