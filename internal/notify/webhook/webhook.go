// Package webhook posts alerts as JSON to any HTTP endpoint, in a format
// close to Prometheus Alertmanager's webhook, signed with HMAC-SHA256 so the
// receiver can tell the payload came from Vigil and is fresh.
//
// # Signature
//
// With a secret configured, every request carries
//
//	X-Vigil-Timestamp: 1767323045                  (Unix seconds when sent)
//	X-Vigil-Signature: sha256=<64 lowercase hex digits>
//
// where the hex digits are HMAC-SHA256, keyed with the secret, of the
// timestamp's decimal digits, a full stop, and the raw request body:
//
//	HMAC-SHA256(secret, "1767323045" + "." + body)
//
// A receiver recomputes the HMAC over the body bytes exactly as received,
// compares it in constant time, and refuses timestamps further than its
// tolerance from its own clock (the replay window). Verify does all three.
// The signature header may hold several comma-separated signatures, any one
// of which may match (room for signing with two secrets during a rotation).
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigilsec/vigil/internal/alert"
	"github.com/vigilsec/vigil/internal/notify/message"
	"github.com/vigilsec/vigil/internal/notify/post"
)

// Header names.
const (
	HeaderTimestamp = "X-Vigil-Timestamp"
	HeaderSignature = "X-Vigil-Signature"
)

// Version is the payload schema version.
const Version = "1"

// DefaultTolerance is the replay window Verify applies when given none.
const DefaultTolerance = 5 * time.Minute

// Limits on what Verify accepts.
const (
	maxSignatureHeader = 1024
	maxSignatures      = 8
)

// Payload is the JSON body of one webhook request.
type Payload struct {
	Version  string  `json:"version"`  // "1"
	Receiver string  `json:"receiver"` // receiver name from the configuration
	Status   string  `json:"status"`   // "firing" if any alert fires, else "resolved"
	Alerts   []Alert `json:"alerts"`
	// GroupKey identifies the group: its group labels as {name="value", …}.
	GroupKey          string            `json:"groupKey"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	// TruncatedAlerts counts the alerts left out by max_alerts.
	TruncatedAlerts int `json:"truncatedAlerts"`
}

// Alert is one alert in a Payload.
type Alert struct {
	Status       string            `json:"status"` // "firing" or "resolved"
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"` // 0001-01-01T00:00:00Z while firing
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
	Evidence     []uint64          `json:"evidence"` // sequence numbers of events
}

// NewPayload builds the payload for alerts; maxAlerts > 0 keeps that many
// (firing first) and counts the rest in TruncatedAlerts.
func NewPayload(receiver, externalURL string, alerts []alert.Alert, maxAlerts int) Payload {
	d := message.NewData(receiver, externalURL, alerts)
	p := Payload{
		Version:           Version,
		Receiver:          receiver,
		Status:            d.Status,
		GroupKey:          d.GroupLabels.String(),
		GroupLabels:       nonNil(d.GroupLabels),
		CommonLabels:      nonNil(d.CommonLabels),
		CommonAnnotations: nonNil(d.CommonAnnotations),
		ExternalURL:       externalURL,
		Alerts:            []Alert{},
	}
	for i, a := range d.Alerts {
		if maxAlerts > 0 && i >= maxAlerts {
			p.TruncatedAlerts = len(d.Alerts) - maxAlerts
			break
		}
		ev := a.Evidence
		if ev == nil {
			ev = []uint64{}
		}
		p.Alerts = append(p.Alerts, Alert{
			Status: a.Status, Labels: nonNil(a.Labels), Annotations: nonNil(a.Annotations),
			StartsAt: a.StartsAt.UTC(), EndsAt: a.EndsAt.UTC(), GeneratorURL: a.GeneratorURL,
			Fingerprint: a.Fingerprint, Evidence: ev,
		})
	}
	return p
}

func nonNil(kv map[string]string) map[string]string {
	if kv == nil {
		return map[string]string{}
	}
	return maps.Clone(kv)
}

// Options configure a Notifier.
type Options struct {
	URL string
	// Secret signs requests; empty sends them unsigned.
	Secret      []byte
	Receiver    string
	ExternalURL string
	MaxAlerts   int           // 0: all
	Timeout     time.Duration // 0: post.DefaultTimeout
	Client      *http.Client  // nil: post.NewClient(nil)
	Now         func() time.Time
}

// Notifier posts alerts to one webhook URL.
type Notifier struct{ o Options }

// New returns a Notifier.
func New(o Options) (*Notifier, error) {
	if o.URL == "" {
		return nil, errors.New("webhook: no URL")
	}
	if o.Client == nil {
		o.Client = post.NewClient(nil)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Notifier{o: o}, nil
}

// Notify posts the alerts in one request. Any 2xx is success; 429, 5xx and
// network errors are worth a retry; other statuses are not.
func (n *Notifier) Notify(ctx context.Context, alerts []alert.Alert) (bool, error) {
	if len(alerts) == 0 {
		return false, nil
	}
	body, err := json.Marshal(NewPayload(n.o.Receiver, n.o.ExternalURL, alerts, n.o.MaxAlerts))
	if err != nil {
		return false, fmt.Errorf("webhook: encode payload: %w", err)
	}
	now := n.o.Now()
	h := http.Header{}
	if len(n.o.Secret) > 0 {
		ts, sig := Sign(n.o.Secret, now, body)
		h.Set(HeaderTimestamp, ts)
		h.Set(HeaderSignature, sig)
	}
	// The URL may carry a token (it is a secret in the configuration).
	resp, err := post.Do(ctx, n.o.Client, post.Request{URL: n.o.URL, Header: h, Body: body, SecretURL: true, Timeout: n.o.Timeout})
	if err != nil {
		return post.RetryError(err), fmt.Errorf("webhook: %w", err)
	}
	if resp.Status >= 200 && resp.Status < 300 {
		return false, nil
	}
	retry, err := post.Check(resp, n.o.Now())
	return retry, fmt.Errorf("webhook: %w", err)
}

// Sign returns the values of the timestamp and signature headers for body
// sent at t.
func Sign(secret []byte, t time.Time, body []byte) (timestamp, signature string) {
	timestamp = strconv.FormatInt(t.Unix(), 10)
	return timestamp, "sha256=" + hex.EncodeToString(mac(secret, timestamp, body))
}

func mac(secret []byte, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Errors returned by Verify.
var (
	ErrNoSignature  = errors.New("webhook: missing " + HeaderSignature + " or " + HeaderTimestamp + " header")
	ErrMalformed    = errors.New("webhook: malformed signature header")
	ErrStale        = errors.New("webhook: timestamp outside the tolerance window")
	ErrBadSignature = errors.New("webhook: signature does not match")
)

// Verify checks a request Vigil signed: h holds its headers, body its raw
// body. It returns nil when one of the signatures is HMAC-SHA256 of the
// timestamp and body under secret and the timestamp is within tolerance of
// now (tolerance <= 0 means DefaultTolerance). A receiver that must refuse
// every replay, not only old ones, also remembers the signatures it
// accepted for the tolerance window and refuses them when seen again.
func Verify(secret []byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	if len(secret) == 0 {
		return errors.New("webhook: empty secret")
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	tsv, sigv := h.Values(HeaderTimestamp), h.Values(HeaderSignature)
	if len(tsv) == 0 || len(sigv) == 0 {
		return ErrNoSignature
	}
	if len(tsv) != 1 || len(sigv) != 1 {
		return fmt.Errorf("%w: repeated header", ErrMalformed)
	}
	ts, sigs := tsv[0], sigv[0]
	if len(ts) == 0 || len(ts) > 12 || !digits(ts) {
		return fmt.Errorf("%w: timestamp is not Unix seconds", ErrMalformed)
	}
	if len(sigs) > maxSignatureHeader {
		return fmt.Errorf("%w: longer than %d bytes", ErrMalformed, maxSignatureHeader)
	}
	var macs [][]byte
	for part := range strings.SplitSeq(sigs, ",") {
		if len(macs) == maxSignatures {
			return fmt.Errorf("%w: more than %d signatures", ErrMalformed, maxSignatures)
		}
		hexsig, ok := strings.CutPrefix(strings.TrimSpace(part), "sha256=")
		if !ok || len(hexsig) != 2*sha256.Size {
			return fmt.Errorf("%w: want sha256=<64 hex digits>", ErrMalformed)
		}
		m, err := hex.DecodeString(hexsig)
		if err != nil {
			return fmt.Errorf("%w: want sha256=<64 hex digits>", ErrMalformed)
		}
		macs = append(macs, m)
	}
	sec, _ := strconv.ParseInt(ts, 10, 64) // at most 12 digits: fits
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrStale
	}
	want := mac(secret, ts, body)
	if slices.ContainsFunc(macs, func(m []byte) bool { return hmac.Equal(m, want) }) {
		return nil
	}
	return ErrBadSignature
}

func digits(s string) bool {
	return len(bytes.TrimLeft([]byte(s), "0123456789")) == 0
}
