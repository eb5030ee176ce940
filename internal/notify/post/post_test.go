package post

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func TestParseRetryAfter(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"120", 2 * time.Minute, true},
		{" 7 ", 7 * time.Second, true},
		{"99999", MaxRetryAfter, true},
		{"999999999999999999999", MaxRetryAfter, true},
		{"9227000000", MaxRetryAfter, true}, // seconds that overflow time.Duration (found by fuzzing)
		{"0000000000A", 0, false},           // long and not a number (found by fuzzing)
		{"3601", MaxRetryAfter, true},
		{"-5", 0, false},
		{"5s", 0, false},
		{"soon", 0, false},
		{"Fri, 01 May 2026 12:00:30 GMT", 30 * time.Second, true},
		{"Fri, 01 May 2026 11:00:00 GMT", 0, true}, // in the past
		{"Sat, 01 May 2027 12:00:00 GMT", MaxRetryAfter, true},
		{strings.Repeat("1", 65), 0, false},
	}
	for _, c := range cases {
		got, ok := ParseRetryAfter(c.in, now)
		if got != c.want || ok != c.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"", "0", "120", "Fri, 01 May 2026 12:00:30 GMT", "Monday, 02-Jan-06 15:04:05 MST", "Mon Jan  2 15:04:05 2006", "99999999999999999999", "-1", "1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := ParseRetryAfter(s, now)
		if d < 0 || d > MaxRetryAfter {
			t.Fatalf("ParseRetryAfter(%q) = %v outside 0..%v", s, d, MaxRetryAfter)
		}
		if !ok && d != 0 {
			t.Fatalf("ParseRetryAfter(%q) refused but returned %v", s, d)
		}
	})
}

func TestDoAndCheck(t *testing.T) {
	type step struct {
		status   int
		header   map[string]string
		body     string
		ok       []int
		retry    bool
		wantErr  string
		retryAft time.Duration
	}
	cases := map[string]step{
		"200 ok":               {status: 200, ok: []int{200}},
		"202 ok":               {status: 202, ok: []int{202}},
		"200 when 202 wanted":  {status: 200, ok: []int{202}, wantErr: "unexpected status 200"},
		"400 no retry":         {status: 400, body: `{"message":"Event object is invalid"}`, ok: []int{202}, wantErr: "Event object is invalid"},
		"404 no retry":         {status: 404, ok: []int{200}, wantErr: "404"},
		"429 retry after":      {status: 429, header: map[string]string{"Retry-After": "30"}, ok: []int{200}, retry: true, wantErr: "retry after 30s", retryAft: 30 * time.Second},
		"429 no header":        {status: 429, ok: []int{200}, retry: true, wantErr: "429"},
		"500 retry":            {status: 500, body: "oops\x00\x01 \u2028", ok: []int{200}, retry: true, wantErr: "oops"},
		"503 retry":            {status: 503, header: map[string]string{"Retry-After": "Fri, 01 May 2026 12:01:00 GMT"}, ok: []int{200}, retry: true, retryAft: time.Minute, wantErr: "503"},
		"301 is not followed":  {status: 301, header: map[string]string{"Location": "/elsewhere"}, ok: []int{200}, wantErr: "301"},
		"huge body is bounded": {status: 500, body: strings.Repeat("x", 3*MaxResponseBytes), ok: []int{200}, retry: true, wantErr: "xxx…"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var got struct{ ct, ua, body, custom string }
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/elsewhere" {
					t.Error("redirect followed")
				}
				b := make([]byte, 100)
				n, _ := r.Body.Read(b)
				got.ct, got.ua, got.body, got.custom = r.Header.Get("Content-Type"), r.Header.Get("User-Agent"), string(b[:n]), r.Header.Get("X-Test")
				for k, v := range c.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(c.status)
				w.Write([]byte(c.body))
			}))
			defer srv.Close()
			resp, err := Do(context.Background(), NewClient(nil), Request{URL: srv.URL + "/hook", Header: http.Header{"X-Test": {"1"}}, Body: []byte(`{"a":1}`)})
			if err != nil {
				t.Fatal(err)
			}
			if got.ct != "application/json" || got.ua != UserAgent || got.body != `{"a":1}` || got.custom != "1" {
				t.Errorf("request seen as %+v", got)
			}
			if len(resp.Body) > MaxResponseBytes {
				t.Errorf("read %d bytes of body", len(resp.Body))
			}
			retry, err := Check(resp, now, c.ok...)
			if retry != c.retry {
				t.Errorf("retry %v, want %v", retry, c.retry)
			}
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("error %v, want %q", err, c.wantErr)
			}
			if len(err.Error()) > 400 || strings.ContainsAny(err.Error(), "\x00\x01") {
				t.Errorf("error message not bounded or not cleaned: %q", err)
			}
			var ra interface{ RetryAfter() time.Duration }
			if !errors.As(err, &ra) || ra.RetryAfter() != c.retryAft {
				t.Errorf("RetryAfter: %v, want %v", ra, c.retryAft)
			}
		})
	}
}

func TestDoNetworkErrors(t *testing.T) {
	// A port nobody listens on: connection refused, worth a retry.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = Do(context.Background(), NewClient(nil), Request{URL: "http://" + addr + "/services/T000/B000/SECRETTOKEN?x=1", SecretURL: true})
	if err == nil || !RetryError(err) {
		t.Fatalf("refused connection: err %v retry %v", err, err != nil && RetryError(err))
	}
	if strings.Contains(err.Error(), "SECRETTOKEN") || !strings.Contains(err.Error(), "/<redacted>") {
		t.Errorf("secret URL shown in error: %v", err)
	}

	// A TLS server whose certificate is not trusted: not worth a retry.
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	_, err = Do(context.Background(), NewClient(nil), Request{URL: srv.URL})
	if err == nil || RetryError(err) {
		t.Fatalf("untrusted certificate: err %v, retry %v", err, err != nil && RetryError(err))
	}
	// Trusting it works.
	pool := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	resp, err := Do(context.Background(), NewClient(&tls.Config{RootCAs: pool}), Request{URL: srv.URL})
	if err != nil || resp.Status != 200 {
		t.Fatalf("trusted: %v %v", resp, err)
	}

	// A server that does not answer within the timeout: worth a retry.
	block := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer slow.Close()
	defer close(block)
	_, err = Do(context.Background(), NewClient(nil), Request{URL: slow.URL, Timeout: 50 * time.Millisecond})
	if err == nil || !RetryError(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timeout: err %v", err)
	}
}

func TestRedactURL(t *testing.T) {
	cases := []struct {
		in     string
		secret bool
		want   string
	}{
		{"https://user:pw@example.com/a/b?token=x", false, "https://example.com/a/b"},
		{"https://hooks.example.com/services/T/B/X", true, "https://hooks.example.com/<redacted>"},
		{"https://example.com", true, "https://example.com"},
		{"::nonsense", false, "<invalid URL>"},
	}
	for _, c := range cases {
		if got := RedactURL(c.in, c.secret); got != c.want {
			t.Errorf("RedactURL(%q, %v) = %q, want %q", c.in, c.secret, got, c.want)
		}
	}
}
