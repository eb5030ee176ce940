// Package post sends notification payloads over HTTP: one shared way to build
// clients with timeouts, send a JSON body, read a bounded response, and tell
// whether a failure is worth a retry.
package post

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Limits and defaults.
const (
	// DefaultTimeout bounds one request when the channel sets none.
	DefaultTimeout = 10 * time.Second
	// MaxResponseBytes is how much of a response body is read.
	MaxResponseBytes = 64 << 10
	// MaxRetryAfter caps the delay a server may ask for.
	MaxRetryAfter = time.Hour
	// maxErrorBody is how much of a response body an error message quotes.
	maxErrorBody = 256
)

// UserAgent is sent with every request.
const UserAgent = "Vigil-Notifier/1"

// NewClient returns an HTTP client for notifications: it dials, handshakes
// and waits for response headers within bounded times, uses the proxy from
// the environment, verifies TLS with tlsConfig (nil: system roots) and does
// not follow redirects (a redirected webhook is a configuration error, and
// following it would send signed payloads elsewhere).
func NewClient(tlsConfig *tls.Config) *http.Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsConfig,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   4,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// Request is one POST.
type Request struct {
	URL         string
	Header      http.Header // added to Content-Type and User-Agent
	Body        []byte
	ContentType string // default application/json
	// SecretURL hides the URL's path and query in errors (Slack webhook
	// URLs carry their token in the path).
	SecretURL bool
	// Timeout bounds the request; 0 means DefaultTimeout.
	Timeout time.Duration
}

// Response is a response with its body read up to MaxResponseBytes.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends r with c and reads the response. An error means no response was
// received (network error, timeout, TLS failure); a response of any status
// is returned without error.
func Do(ctx context.Context, c *http.Client, r Request) (*Response, error) {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	shown := RedactURL(r.URL, r.SecretURL)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		return nil, fmt.Errorf("build request to %s: %w", shown, unwrapURL(err))
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	ct := r.ContentType
	if ct == "" {
		ct = "application/json"
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set("User-Agent", UserAgent)
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("post to %s: %w", shown, unwrapURL(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes))
	if err != nil {
		return nil, fmt.Errorf("read response from %s: %w", shown, unwrapURL(err))
	}
	// Drain a little more so the connection can be reused; give up on
	// huge bodies.
	_, _ = io.CopyN(io.Discard, resp.Body, MaxResponseBytes)
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// unwrapURL strips *url.Error, whose message repeats the full URL.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// RedactURL returns u fit for logs and errors: never its user information
// or query, and with secret set not its path either.
func RedactURL(u string, secret bool) string {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return "<invalid URL>"
	}
	s := p.Scheme + "://" + p.Host
	if secret {
		if p.Path != "" && p.Path != "/" {
			s += "/<redacted>"
		}
		return s
	}
	return s + p.EscapedPath()
}

// StatusError is a response whose status is not the channel's success.
type StatusError struct {
	Status int
	// Body is the start of the response body, control characters removed.
	Body string
	// After is the delay the server asked for with Retry-After (0: none).
	After time.Duration
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("unexpected status %d %s", e.Status, http.StatusText(e.Status))
	if e.Body != "" {
		s += ": " + e.Body
	}
	if e.After > 0 {
		s += fmt.Sprintf(" (retry after %s)", e.After)
	}
	return s
}

// RetryAfter returns the delay the server asked for before a retry. Retry
// loops find it with errors.As on an interface{ RetryAfter() time.Duration }.
func (e *StatusError) RetryAfter() time.Duration { return e.After }

// Check turns a response into the Notifier result: success when its status
// is one of ok; otherwise a *StatusError, retried on 429 and 5xx but not on
// other statuses (a 4xx means the request or its credentials are wrong and
// will stay wrong). now serves the HTTP-date form of Retry-After.
func Check(resp *Response, now time.Time, ok ...int) (retry bool, err error) {
	for _, s := range ok {
		if resp.Status == s {
			return false, nil
		}
	}
	e := &StatusError{Status: resp.Status, Body: snippet(resp.Body)}
	if resp.Status == http.StatusTooManyRequests || resp.Status == http.StatusServiceUnavailable {
		if d, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), now); ok {
			e.After = d
		}
	}
	return RetryStatus(resp.Status), e
}

// RetryStatus reports whether a failed request with this status is worth
// retrying: 408, 429 and 5xx.
func RetryStatus(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusRequestTimeout || status >= 500
}

// RetryError reports whether a request that got no response is worth
// retrying: network errors and timeouts are; a certificate that does not
// verify, or a URL that cannot be used, is not (it will fail the same way).
func RetryError(err error) bool {
	var (
		cv *tls.CertificateVerificationError
		ua x509.UnknownAuthorityError
		hn x509.HostnameError
		ci x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &cv), errors.As(err, &ua), errors.As(err, &hn), errors.As(err, &ci):
		return false
	case strings.Contains(err.Error(), "unsupported protocol scheme"):
		return false
	}
	return true
}

// ParseRetryAfter reads a Retry-After header: delay-seconds or an HTTP-date.
// It returns false for a missing or malformed value; the delay is capped at
// MaxRetryAfter and never negative.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" || len(v) > 64 {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		if !allDigits(v) {
			return 0, false
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n > uint64(MaxRetryAfter/time.Second) { // all digits: only too large
			return MaxRetryAfter, true
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now)
	return min(max(d, 0), MaxRetryAfter), true
}

func allDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// snippet returns the start of a response body, printable runes only.
func snippet(b []byte) string {
	s := strings.Map(func(r rune) rune {
		if r == unicode.ReplacementChar || !unicode.IsPrint(r) {
			if r == '\n' || r == '\t' {
				return ' '
			}
			return -1
		}
		return r
	}, string(b[:min(len(b), maxErrorBody*4)]))
	s = strings.TrimSpace(s)
	if len(s) > maxErrorBody {
		cut := maxErrorBody
		for cut > 0 && s[cut]&0xC0 == 0x80 {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
