package main

// End-to-end test: a real Vigil, started in this process on a temporary data
// directory, receives the shop's events through the SDK's shipper; the test
// then searches them through Vigil's API and scans Vigil's files for the
// secrets it sent.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/client"
	"github.com/vigilsec/vigil/internal/server/servertest"
)

const adminToken = "vgl_shop-test-token-0123456789abcdef"

// Secrets the test sends; none may reach Vigil's files.
const (
	wrongPassword = "wrong-Pa55word-7d1f3c"
	bearerSecret  = "tok_bearer_9f8e7d6c5b4a39281706"
	querySecret   = "qtok_5e6f7a8b9c0d1e2f3a4b"
	paymentKey    = "pk_test_shopkey_44a1b2c3d4e5f6"
)

// event is a stored event with access by dotted path.
type event map[string]any

func (e event) get(path string) any {
	var cur any = map[string]any(e)
	parts := strings.Split(path, ".")
	for i := 0; i < len(parts); i++ {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		// Accept flat keys as well as nested objects.
		found := false
		for j := len(parts); j > i; j-- {
			if v, ok := m[strings.Join(parts[i:j], ".")]; ok {
				cur, i, found = v, j-1, true
				break
			}
		}
		if !found {
			return nil
		}
	}
	return cur
}

func (e event) str(path string) string {
	switch v := e.get(path).(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

func search(t *testing.T, c *client.Client, params ...string) []event {
	t.Helper()
	q := url.Values{"limit": {"1000"}}
	for i := 0; i+1 < len(params); i += 2 {
		q.Add(params[i], params[i+1])
	}
	res, err := c.Search(context.Background(), q)
	if err != nil {
		t.Fatalf("search %v: %v", q, err)
	}
	var out []event
	for _, h := range res.Events {
		var e event
		if err := json.Unmarshal(h.Event, &e); err != nil {
			t.Fatalf("event %s: %v", h.Event, err)
		}
		out = append(out, e)
	}
	return out
}

// one searches and requires exactly one event.
func one(t *testing.T, c *client.Client, params ...string) event {
	t.Helper()
	evs := search(t, c, params...)
	if len(evs) != 1 {
		t.Fatalf("search %v: %d events, want 1: %v", params, len(evs), evs)
	}
	return evs[0]
}

func wantFields(t *testing.T, what string, e event, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := e.str(k); got != v {
			t.Errorf("%s: %s = %q, want %q", what, k, got, v)
		}
	}
}

type shopClient struct {
	t    *testing.T
	base string
}

// do sends a request with the given request ID, cookie and body and returns
// the response with its body read.
func (sc shopClient) do(method, path, reqID, cookie, contentType, body string, hdr ...string) (*http.Response, string) {
	sc.t.Helper()
	req, err := http.NewRequest(method, sc.base+path, strings.NewReader(body))
	if err != nil {
		sc.t.Fatal(err)
	}
	if reqID != "" {
		req.Header.Set("X-Request-ID", reqID)
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: cookie})
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		sc.t.Fatalf("%s %s: %v", method, path, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func sessionOf(t *testing.T, resp *http.Response) string {
	t.Helper()
	for _, ck := range resp.Cookies() {
		if ck.Name == sessionCookie && ck.Value != "" {
			return ck.Value
		}
	}
	t.Fatalf("no session cookie in %v", resp.Header)
	return ""
}

func TestShopEndToEnd(t *testing.T) {
	v := servertest.Start(t, filepath.Join(t.TempDir(), "vigil-data"), "127.0.0.1:0", adminToken)
	api := client.New(v.URL, adminToken)

	// The rate limiter's and lockout's clock, moved by the test.
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }

	h, closeShop, err := newShop(shopConfig{
		VigilURL:   v.URL,
		Token:      adminToken,
		SpoolDir:   filepath.Join(t.TempDir(), "spool"),
		JobEvery:   50 * time.Millisecond,
		PaymentKey: paymentKey,
		Now:        now,
	})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			closeShop(context.Background())
		}
	})
	ts := httptest.NewServer(h)
	defer ts.Close()
	sc := shopClient{t: t, base: ts.URL}
	const form = "application/x-www-form-urlencoded"

	// A normal request, carrying a bearer token and a token in the query.
	resp, _ := sc.do("GET", "/products?page=1&token="+querySecret, "req-products", "", "", "", "Authorization", "Bearer "+bearerSecret)
	if resp.StatusCode != 200 || resp.Header.Get("X-Request-ID") != "req-products" {
		t.Fatalf("GET /products: %d, request ID %q", resp.StatusCode, resp.Header.Get("X-Request-ID"))
	}
	if resp, _ := sc.do("GET", "/", "req-home", "", "", ""); resp.StatusCode != 200 {
		t.Fatalf("GET /: %d", resp.StatusCode)
	}

	// A failed login (form), then a successful one (JSON).
	if resp, body := sc.do("POST", "/login", "req-login-fail", "", form, "user=alice&password="+url.QueryEscape(wrongPassword)); resp.StatusCode != 401 {
		t.Fatalf("failed login: %d %s", resp.StatusCode, body)
	}
	resp, body := sc.do("POST", "/login", "req-login-alice", "", "application/json", `{"user":"alice","password":"alice-password"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("login alice: %d %s", resp.StatusCode, body)
	}
	alice := sessionOf(t, resp)

	// An outgoing call: checkout pays through the fake provider.
	if resp, body := sc.do("POST", "/checkout", "req-checkout", alice, form, "product=p1"); resp.StatusCode != 200 || !strings.Contains(body, "succeeded") {
		t.Fatalf("checkout: %d %s", resp.StatusCode, body)
	}

	// Alice may not change settings; admin may.
	if resp, body := sc.do("POST", "/admin/settings", "req-settings-alice", alice, form, "key=shop.currency&value=GBP"); resp.StatusCode != 403 {
		t.Fatalf("settings as alice: %d %s", resp.StatusCode, body)
	}
	resp, body = sc.do("POST", "/login", "req-login-admin", "", form, "user=admin&password=admin-password")
	if resp.StatusCode != 200 {
		t.Fatalf("login admin: %d %s", resp.StatusCode, body)
	}
	admin := sessionOf(t, resp)
	if resp, body := sc.do("POST", "/admin/settings", "req-settings", admin, "application/json", `{"key":"shop.currency","value":"USD"}`); resp.StatusCode != 200 {
		t.Fatalf("settings as admin: %d %s", resp.StatusCode, body)
	}
	if resp, body := sc.do("POST", "/logout", "req-logout", alice, "", ""); resp.StatusCode != 200 {
		t.Fatalf("logout: %d %s", resp.StatusCode, body)
	}
	if resp, _ := sc.do("GET", "/metrics", "", "", "", ""); resp.StatusCode != 200 {
		t.Fatalf("metrics: %d", resp.StatusCode)
	}

	// Rate limit: a fresh minute (the clock moves past the window of the
	// requests above), 20 requests pass, the 21st gets 429 with Retry-After.
	clock.Add(int64(3 * time.Minute))
	for i := 1; i <= 20; i++ {
		if resp, _ := sc.do("GET", "/", fmt.Sprintf("req-burst-%d", i), "", "", ""); resp.StatusCode != 200 {
			t.Fatalf("request %d of the minute: %d", i, resp.StatusCode)
		}
	}
	resp, body = sc.do("GET", "/", "req-burst-21", "", "", "")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("21st request of the minute: %d, Retry-After %q, %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}

	// Login lockout: after 3 failures from one address, the next login is
	// answered 429 without checking the password.
	clock.Add(int64(3 * time.Minute))
	for i := 1; i <= 3; i++ {
		if resp, body := sc.do("POST", "/login", fmt.Sprintf("req-brute-%d", i), "", form, "user=mallory&password=guess"+fmt.Sprint(i)); resp.StatusCode != 401 {
			t.Fatalf("brute-force login %d: %d %s", i, resp.StatusCode, body)
		}
	}
	resp, body = sc.do("POST", "/login", "req-brute-4", "", form, "user=mallory&password=guess4")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("login after lockout: %d, Retry-After %q, %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}

	// One job run at least: wait for it in Vigil.
	deadline := time.Now().Add(15 * time.Second)
	for len(search(t, api, "action", "job_run", "outcome", "success")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no successful job_run event in Vigil")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Flush and close the client: everything is delivered.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	closed = true
	if err := closeShop(ctx); err != nil {
		t.Fatalf("close shop: %v", err)
	}

	t.Run("normal request", func(t *testing.T) {
		e := one(t, api, "action", "http_request", "request_id", "req-products")
		wantFields(t, "GET /products", e, map[string]string{
			"source.ip": "127.0.0.1", "url.path": "/products", "http.request.method": "GET",
			"http.response.status_code": "200", "service.name": "shop", "vigil.view": "products",
		})
	})
	t.Run("failed login", func(t *testing.T) {
		e := one(t, api, "action", "authn_login_fail", "user", "alice")
		wantFields(t, "authn_login_fail", e, map[string]string{
			"user.name": "alice", "source.ip": "127.0.0.1", "url.path": "/login",
			"http.request.id": "req-login-fail", "event.reason": "bad password", "event.outcome": "failure",
		})
		one(t, api, "action", "http_request", "request_id", "req-login-fail", "status", "401")
	})
	t.Run("successful login", func(t *testing.T) {
		e := one(t, api, "action", "authn_login_success", "user", "alice")
		wantFields(t, "authn_login_success", e, map[string]string{
			"user.name": "alice", "user.id": "1", "source.ip": "127.0.0.1", "url.path": "/login",
			"http.request.id": "req-login-alice", "event.outcome": "success",
		})
		r := one(t, api, "action", "http_request", "request_id", "req-login-alice")
		wantFields(t, "login request", r, map[string]string{"user.name": "alice", "http.response.status_code": "200"})
	})
	t.Run("outgoing call", func(t *testing.T) {
		e := one(t, api, "action", "http_request_outgoing", "request_id", "req-checkout")
		wantFields(t, "http_request_outgoing", e, map[string]string{
			"url.path": "/v1/charges", "http.request.method": "POST", "http.response.status_code": "200",
			"vigil.slug": "payment-provider", "http.request.id": "req-checkout",
		})
		r := one(t, api, "action", "http_request", "request_id", "req-checkout")
		wantFields(t, "checkout request", r, map[string]string{"user.name": "alice", "url.path": "/checkout", "source.ip": "127.0.0.1"})
		if len(search(t, api, "related", "shop.order:1")) == 0 {
			t.Error("no event related to shop.order:1")
		}
	})
	t.Run("config change", func(t *testing.T) {
		e := one(t, api, "action", "sys_config_change")
		wantFields(t, "sys_config_change", e, map[string]string{
			"user.name": "admin", "source.ip": "127.0.0.1", "url.path": "/admin/settings",
			"http.request.id": "req-settings", "vigil.change.key": "shop.currency",
			"vigil.change.old": "EUR", "vigil.change.new": "USD",
		})
		a := one(t, api, "action", "authz_fail", "user", "alice")
		wantFields(t, "authz_fail", a, map[string]string{"http.request.id": "req-settings-alice"})
	})
	t.Run("logout", func(t *testing.T) {
		e := one(t, api, "action", "session_expired", "user", "alice")
		wantFields(t, "session_expired", e, map[string]string{"http.request.id": "req-logout", "event.reason": "logout"})
	})
	t.Run("job", func(t *testing.T) {
		evs := search(t, api, "action", "job_run", "outcome", "success")
		if len(evs) == 0 {
			t.Fatal("no job_run success")
		}
		wantFields(t, "job_run", evs[0], map[string]string{
			"vigil.job.name": "send-newsletter", "vigil.job.state": "SUCCEEDED", "vigil.job.queue": "mail",
		})
		if !strings.Contains(evs[0].str("vigil.job.output"), "sent newsletter to alice") {
			t.Errorf("job output = %q", evs[0].str("vigil.job.output"))
		}
	})
	t.Run("rate limit", func(t *testing.T) {
		one(t, api, "action", "http_request", "request_id", "req-burst-21", "status", "429")
		e := one(t, api, "action", "excess_rate_limit_exceeded")
		wantFields(t, "excess_rate_limit_exceeded", e, map[string]string{"http.request.id": "req-burst-21", "source.ip": "127.0.0.1"})
	})
	t.Run("slog", func(t *testing.T) {
		evs := search(t, api, "request_id", "req-checkout", "q", "order paid")
		if len(evs) != 1 {
			t.Fatalf("slog record of checkout: %d events", len(evs))
		}
	})

	t.Run("lockout", func(t *testing.T) {
		if n := len(search(t, api, "action", "authn_login_fail", "user", "mallory")); n != 4 {
			t.Errorf("%d failed logins of mallory, want 4", n)
		}
		e := one(t, api, "action", "authn_login_lock")
		wantFields(t, "authn_login_lock", e, map[string]string{"user.name": "mallory", "http.request.id": "req-brute-3"})
		r := one(t, api, "action", "authn_login_fail", "request_id", "req-brute-4")
		wantFields(t, "locked login", r, map[string]string{"event.reason": "locked out"})
	})
	t.Run("bodies captured and redacted", func(t *testing.T) {
		e := one(t, api, "action", "http_request", "request_id", "req-login-fail")
		b := e.str("http.request.body.content")
		if !strings.Contains(b, "user=alice") || strings.Contains(b, wrongPassword) {
			t.Errorf("request body of the failed login = %q, want it with the user and without the password", b)
		}
		e = one(t, api, "action", "http_request", "request_id", "req-login-alice")
		if b := e.str("http.request.body.content"); !strings.Contains(b, "alice") {
			t.Errorf("request body of the login = %q, want it captured", b)
		}
	})

	// No secret in any file of Vigil's data directory: while Vigil runs
	// (the SQLite write-ahead log holds the recent events), and after it
	// stopped.
	secrets := []string{"alice-password", "admin-password", wrongPassword, alice, admin, bearerSecret, querySecret, paymentKey}
	scanForSecrets(t, v.DataDir, secrets)
	v.Stop()
	scanForSecrets(t, v.DataDir, secrets)
}

// scanForSecrets reads every file under dir as raw bytes and fails the test
// when one holds a secret, or when none holds a request ID (the scan would
// then prove nothing).
func scanForSecrets(t *testing.T, dir string, secrets []string) {
	t.Helper()
	var files []string
	var all []byte
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files = append(files, filepath.Base(path))
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("secret %q found in %s", s, path)
			}
		}
		all = append(all, b...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The scan must be able to see events at all: request IDs are stored
	// in clear.
	if !bytes.Contains(all, []byte("req-settings-alice")) {
		t.Errorf("the scan of %v found no request ID: are events stored where it looks?", files)
	}
	t.Logf("scanned %d files: %v", len(files), files)
}
