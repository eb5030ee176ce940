package webhook

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/alert"
	"github.com/vigilsec/vigil/internal/notify/message"
)

var (
	secret = []byte("0123456789abcdef-webhook-secret")
	now    = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
)

// receiver is a webhook endpoint that checks what Vigil documents: the
// signature, the content type and the payload schema.
type receiver struct {
	t      *testing.T
	mu     sync.Mutex
	got    []Payload
	status []int // answered in turn; the last one repeats
	clock  func() time.Time
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		rc.t.Errorf("read body: %v", err)
		return
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		rc.t.Errorf("%s with content type %q", r.Method, r.Header.Get("Content-Type"))
	}
	if err := Verify(secret, r.Header, body, rc.clock(), time.Minute); err != nil {
		rc.t.Errorf("signature: %v", err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	rc.t.Helper()
	p := checkSchema(rc.t, body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.got = append(rc.got, p)
	st := rc.status[min(len(rc.got)-1, len(rc.status)-1)]
	if st == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "7")
	}
	w.WriteHeader(st)
}

// checkSchema decodes the body strictly: every documented field present with
// its type, nothing else.
func checkSchema(t *testing.T, body []byte) Payload {
	t.Helper()
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("payload is not a JSON object: %v", err)
	}
	for _, k := range []string{"version", "receiver", "status", "alerts", "groupKey", "groupLabels", "commonLabels", "commonAnnotations", "externalURL", "truncatedAlerts"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("payload lacks %q", k)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var p Payload
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("payload does not match the schema: %v", err)
	}
	if p.Version != "1" || (p.Status != "firing" && p.Status != "resolved") || p.Alerts == nil {
		t.Errorf("payload header fields: %+v", p)
	}
	for i, a := range p.Alerts {
		if a.Status != "firing" && a.Status != "resolved" || a.Labels == nil || a.Annotations == nil || a.Evidence == nil || a.Fingerprint == "" || a.StartsAt.IsZero() {
			t.Errorf("alert %d: %+v", i, a)
		}
		if a.Status == "resolved" && a.EndsAt.IsZero() {
			t.Errorf("resolved alert %d without endsAt", i)
		}
	}
	return p
}

func TestNotify(t *testing.T) {
	cases := []struct {
		name      string
		status    int
		wantRetry bool
		wantErr   string
	}{
		{"200", 200, false, ""},
		{"204", 204, false, ""},
		{"400 not retried", 400, false, "400"},
		{"401 not retried", 401, false, "401"},
		{"429 retried", 429, true, "retry after 7s"},
		{"500 retried", 500, true, "500"},
		{"502 retried", 502, true, "502"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rc := &receiver{t: t, status: []int{c.status}, clock: func() time.Time { return now.Add(10 * time.Second) }}
			srv := httptest.NewServer(rc)
			defer srv.Close()
			n, err := New(Options{URL: srv.URL, Secret: secret, Receiver: "sec", ExternalURL: "https://vigil.test", Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			retry, err := n.Notify(context.Background(), message.SampleAlerts())
			if retry != c.wantRetry {
				t.Errorf("retry %v, want %v", retry, c.wantRetry)
			}
			if c.wantErr == "" && err != nil || c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
				t.Fatalf("error %v, want %q", err, c.wantErr)
			}
			if len(rc.got) != 1 {
				t.Fatalf("%d requests", len(rc.got))
			}
			p := rc.got[0]
			if p.Receiver != "sec" || p.Status != "firing" || len(p.Alerts) != 2 || p.ExternalURL != "https://vigil.test" ||
				p.CommonLabels["alertname"] != "BruteForceLogin" || p.GroupKey != `{alertname="BruteForceLogin", rule="brute_force_login"}` {
				t.Errorf("payload %+v", p)
			}
			a := p.Alerts[0]
			if a.Labels["source.ip"] != "203.0.113.7" || a.Annotations["runbook"] == "" || len(a.Evidence) != 3 || a.GeneratorURL == "" {
				t.Errorf("first alert %+v", a)
			}
		})
	}
}

func TestNotifyResolvedTruncatedUnsigned(t *testing.T) {
	var body []byte
	var hdr http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ = io.ReadAll(r.Body)
		hdr = r.Header
	}))
	defer srv.Close()
	as := message.SampleAlerts()
	for i := range as {
		as[i].Status = alert.StateResolved
		as[i].EndsAt = as[i].StartsAt.Add(time.Hour)
	}
	n, err := New(Options{URL: srv.URL, MaxAlerts: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Notify(context.Background(), as); err != nil {
		t.Fatal(err)
	}
	p := checkSchema(t, body)
	if p.Status != "resolved" || len(p.Alerts) != 1 || p.TruncatedAlerts != 1 || !p.Alerts[0].EndsAt.Equal(as[0].EndsAt) {
		t.Errorf("payload %+v", p)
	}
	if hdr.Get(HeaderSignature) != "" || hdr.Get(HeaderTimestamp) != "" {
		t.Errorf("unsigned webhook sent signature headers: %v", hdr)
	}
}

func TestVerify(t *testing.T) {
	body := []byte(`{"version":"1"}`)
	ts, sig := Sign(secret, now, body)
	other := "sha256=" + strings.Repeat("ab", 32)
	h := func(ts, sig string) http.Header {
		out := http.Header{}
		if ts != "" {
			out.Set(HeaderTimestamp, ts)
		}
		if sig != "" {
			out.Set(HeaderSignature, sig)
		}
		return out
	}
	cases := []struct {
		name   string
		secret []byte
		h      http.Header
		body   []byte
		now    time.Time
		want   error
	}{
		{"good", secret, h(ts, sig), body, now, nil},
		{"good within window, late", secret, h(ts, sig), body, now.Add(4 * time.Minute), nil},
		{"good within window, clock behind", secret, h(ts, sig), body, now.Add(-4 * time.Minute), nil},
		{"one of several signatures", secret, h(ts, other+", "+sig), body, now, nil},
		{"replayed after the window", secret, h(ts, sig), body, now.Add(6 * time.Minute), ErrStale},
		{"from the future", secret, h(ts, sig), body, now.Add(-6 * time.Minute), ErrStale},
		{"body changed", secret, h(ts, sig), []byte(`{"version":"2"}`), now, ErrBadSignature},
		{"timestamp changed", secret, h("1777636801", sig), body, now, ErrBadSignature},
		{"wrong secret", []byte("another secret of enough length"), h(ts, sig), body, now, ErrBadSignature},
		{"no headers", secret, http.Header{}, body, now, ErrNoSignature},
		{"no timestamp", secret, h("", sig), body, now, ErrNoSignature},
		{"timestamp not digits", secret, h("12e9", sig), body, now, ErrMalformed},
		{"timestamp too long", secret, h("1234567890123", sig), body, now, ErrMalformed},
		{"negative timestamp", secret, h("-1", sig), body, now, ErrMalformed},
		{"other algorithm", secret, h(ts, "sha1="+strings.Repeat("a", 40)), body, now, ErrMalformed},
		{"short hex", secret, h(ts, sig[:len(sig)-2]), body, now, ErrMalformed},
		{"not hex", secret, h(ts, "sha256="+strings.Repeat("zz", 32)), body, now, ErrMalformed},
		{"too many signatures", secret, h(ts, strings.Repeat(other+",", 8)+sig), body, now, ErrMalformed},
		{"header too long", secret, h(ts, strings.Repeat(" ", 2000)+sig), body, now, ErrMalformed},
		{"repeated header", secret, http.Header{HeaderTimestamp: {ts, ts}, HeaderSignature: {sig}}, body, now, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Verify(c.secret, c.h, c.body, c.now, 0)
			if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, c.want)
			}
		})
	}
	if err := Verify(nil, h(ts, sig), body, now, 0); err == nil {
		t.Error("empty secret accepted")
	}
	if err := Verify(secret, h(ts, sig), body, now.Add(2*time.Minute), time.Minute); !errors.Is(err, ErrStale) {
		t.Errorf("custom tolerance ignored: %v", err)
	}
}

// TestSignatureRecipe checks Sign against a value computed outside Go with
// the recipe docs/notifications.md gives receivers:
//
//	printf '%s' '1767323045.{"alerts":[]}' | openssl dgst -sha256 -hmac 's3cr3t-s3cr3t-s3cr3t'
func TestSignatureRecipe(t *testing.T) {
	body := []byte(`{"alerts":[]}`)
	ts, sig := Sign([]byte("s3cr3t-s3cr3t-s3cr3t"), time.Unix(1767323045, 0), body)
	if ts != "1767323045" || sig != "sha256=8acfa9e849c5eee0eae6cd04510f7a0d6144e5c2eb4cb3a4f0a4d73c7265c33e" {
		t.Fatalf("Sign = %q, %q", ts, sig)
	}
}

// FuzzVerify feeds arbitrary headers and bodies to Verify: it must not
// panic, and whatever it accepts must carry the genuine HMAC of that
// timestamp and body with a timestamp inside the window.
func FuzzVerify(f *testing.F) {
	body := []byte(`{"version":"1"}`)
	ts, sig := Sign(secret, now, body)
	f.Add(ts, sig, body)
	f.Add(ts, "sha256="+strings.Repeat("0", 64)+" , sha256="+strings.Repeat("f", 64), body)
	f.Add(ts, strings.ToUpper(sig[:7])+sig[7:], body)
	f.Add("", "", []byte{})
	f.Add("99999999999", "sha256=,,,,", []byte("x"))
	f.Add("0001", "sha256=ZZ", []byte(nil))
	f.Fuzz(func(t *testing.T, ts, sig string, body []byte) {
		h := http.Header{HeaderTimestamp: {ts}, HeaderSignature: {sig}}
		if Verify(secret, h, body, now, time.Minute) != nil {
			return
		}
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil || sec < now.Add(-time.Minute).Unix() || sec > now.Add(time.Minute).Unix() {
			t.Fatalf("accepted timestamp %q", ts)
		}
		want := hex.EncodeToString(mac(secret, ts, body))
		if !strings.Contains(strings.ToLower(sig), want) {
			t.Fatalf("accepted signature %q for timestamp %q body %q", sig, ts, body)
		}
	})
}

func TestNotifyNothing(t *testing.T) {
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls++ }))
	defer srv.Close()
	n, err := New(Options{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if retry, err := n.Notify(context.Background(), nil); retry || err != nil || calls != 0 {
		t.Fatalf("empty notification: retry %v err %v, %d requests", retry, err, calls)
	}
}
