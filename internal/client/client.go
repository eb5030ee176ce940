// Package client talks to a Vigil server's REST API. The CLI uses it.
package client

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vigilsec/vigil/internal/api"
	"github.com/vigilsec/vigil/internal/httperr"
	"github.com/vigilsec/vigil/internal/ingest"
)

// Client is a Vigil API client.
type Client struct {
	BaseURL string
	Token   string
	HTTP    *http.Client
	// MaxRetries bounds re-sends of a batch refused with 429 or 503.
	MaxRetries int
}

// New returns a client for the server at base (http://127.0.0.1:8080).
func New(base, token string) *Client {
	return &Client{BaseURL: strings.TrimRight(base, "/"), Token: token, HTTP: &http.Client{Timeout: 2 * time.Minute}, MaxRetries: 20}
}

// Error is an error answer from the server.
type Error struct {
	Status int
	Body   httperr.Body
}

func (e *Error) Error() string {
	s := fmt.Sprintf("server answered %d: %s", e.Status, e.Body.Error)
	for i, l := range e.Body.Lines {
		if i == 5 {
			s += fmt.Sprintf("\n  … %d more", len(e.Body.Lines)-5)
			break
		}
		s += fmt.Sprintf("\n  line %d: %s", l.Line, l.Error)
	}
	return s
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, hdr http.Header, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		e := &Error{Status: resp.StatusCode}
		if json.Unmarshal(b, &e.Body) != nil || e.Body.Error == "" {
			e.Body.Error = strings.TrimSpace(string(b))
		}
		if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			e.Body.RetryAfter = ra
		}
		return e
	}
	if w, ok := out.(io.Writer); ok {
		_, err := w.Write(b)
		return err
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("decode answer: %w", err)
		}
	}
	return nil
}

// Call sends in, as JSON when not nil, to path (which may carry a query)
// with method, and reads the answer into out: decoded from JSON, or written
// as is when out is an io.Writer; nil ignores it. Any 2xx answer succeeds;
// others return *Error.
func (c *Client) Call(ctx context.Context, method, path string, in, out any) error {
	var (
		body []byte
		hdr  http.Header
	)
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body, hdr = b, http.Header{"Content-Type": {"application/json"}}
	}
	return c.do(ctx, method, path, body, hdr, out)
}

// Send posts an NDJSON batch, gzip-compressed when large, and retries it while
// the server answers 429 or 503 (waiting as Retry-After says). Re-sending is
// harmless: events keep their event.id.
func (c *Client) Send(ctx context.Context, ndjson []byte) (ingest.Accepted, error) {
	hdr := http.Header{"Content-Type": {"application/x-ndjson"}}
	body := ndjson
	if len(ndjson) > 64<<10 {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(ndjson)
		zw.Close()
		body = buf.Bytes()
		hdr.Set("Content-Encoding", "gzip")
	}
	var ans ingest.Accepted
	for attempt := 0; ; attempt++ {
		err := c.do(ctx, http.MethodPost, "/api/v1/events", body, hdr, &ans)
		e, ok := err.(*Error)
		if !ok || (e.Status != http.StatusTooManyRequests && e.Status != http.StatusServiceUnavailable) || attempt >= c.MaxRetries {
			return ans, err
		}
		wait := time.Duration(max(e.Body.RetryAfter, 1)) * time.Second
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ans, ctx.Err()
		}
	}
}

// Hit is one search result.
type Hit struct {
	Seq   uint64          `json:"seq"`
	Event json.RawMessage `json:"event"`
}

// SearchResult is the answer of a search.
type SearchResult struct {
	Events    []Hit  `json:"events"`
	NextAfter uint64 `json:"next_after"`
}

// Search runs GET /api/v1/events with the given parameters.
func (c *Client) Search(ctx context.Context, params url.Values) (SearchResult, error) {
	var r SearchResult
	err := c.do(ctx, http.MethodGet, "/api/v1/events?"+params.Encode(), nil, nil, &r)
	return r, err
}

// Count runs GET /api/v1/events/count.
func (c *Client) Count(ctx context.Context, params url.Values) (int64, error) {
	var r struct {
		Count int64 `json:"count"`
	}
	err := c.do(ctx, http.MethodGet, "/api/v1/events/count?"+params.Encode(), nil, nil, &r)
	return r.Count, err
}

// Top runs GET /api/v1/events/top.
func (c *Client) Top(ctx context.Context, params url.Values) (api.TopAnswer, error) {
	var r api.TopAnswer
	err := c.do(ctx, http.MethodGet, "/api/v1/events/top?"+params.Encode(), nil, nil, &r)
	return r, err
}
