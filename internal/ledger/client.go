package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxProofBytes bounds a proof answer read from a server.
const maxProofBytes = 1 << 20

// maxProofHashes bounds the hashes of a proof (a tree of 2^53 leaves needs
// at most about 2×53).
const maxProofHashes = 128

// Client reads a Vigil server's ledger API. Token is sent when set (the
// public routes do not need it).
type Client struct {
	BaseURL string
	Token   string
	HTTP    *http.Client
}

// NewClient returns a client of the server at base (http://127.0.0.1:8080).
// An export may stream for long, so there is no overall timeout; a server
// that does not start answering within a minute is given up on.
func NewClient(base, token string) *Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = time.Minute
	return &Client{BaseURL: strings.TrimRight(base, "/"), Token: token, HTTP: &http.Client{Transport: t}}
}

// HTTPError is an error answer of the server.
type HTTPError struct {
	Status  int
	Message string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("server answered %d: %s", e.Status, e.Message)
}

func (c *Client) get(ctx context.Context, path string, q url.Values) (*http.Response, error) {
	u := c.BaseURL + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		var body struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &body) == nil && body.Error != "" {
			msg = body.Error
		}
		return nil, fmt.Errorf("GET %s: %w", path, &HTTPError{Status: resp.StatusCode, Message: trimForMessage(msg)})
	}
	return resp, nil
}

// readLimited reads a whole answer of at most limit bytes.
func (c *Client) readLimited(ctx context.Context, path string, q url.Values, limit int64) ([]byte, error) {
	resp, err := c.get(ctx, path, q)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: read answer: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("GET %s: answer longer than %d bytes", path, limit)
	}
	return b, nil
}

// Checkpoint fetches the latest signed checkpoint note (not verified).
func (c *Client) Checkpoint(ctx context.Context) ([]byte, error) {
	return c.readLimited(ctx, PathCheckpoint, nil, MaxNoteBytes)
}

// PublicKey fetches the server's public key. Verifying with a key fetched
// from the server itself proves only that the server is consistent with
// itself; a verifier should hold the key from a trusted source.
func (c *Client) PublicKey(ctx context.Context) (string, error) {
	b, err := c.readLimited(ctx, PathPubkey, nil, maxPublicKey)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// Rotations fetches the key rotation statements (not verified: NewKeys
// does), oldest first. A server older than key rotation (404) has none.
func (c *Client) Rotations(ctx context.Context) ([]string, error) {
	b, err := c.readLimited(ctx, PathRotations, nil, MaxRotations*4<<10)
	var he *HTTPError
	if errors.As(err, &he) && he.Status == http.StatusNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ans RotationsAnswer
	if err := json.Unmarshal(b, &ans); err != nil {
		return nil, fmt.Errorf("%w key rotations: %v", ErrMalformed, err)
	}
	if len(ans.Rotations) > MaxRotations {
		return nil, fmt.Errorf("%w key rotations: more than %d", ErrMalformed, MaxRotations)
	}
	out := make([]string, len(ans.Rotations))
	for i, r := range ans.Rotations {
		out[i] = r.Note
	}
	return out, nil
}

// ConsistencyProof fetches the proof that the tree of oldSize leaves is a
// prefix of the tree of newSize leaves.
func (c *Client) ConsistencyProof(ctx context.Context, oldSize, newSize int64) (ConsistencyProof, error) {
	q := url.Values{"old": {strconv.FormatInt(oldSize, 10)}, "new": {strconv.FormatInt(newSize, 10)}}
	b, err := c.readLimited(ctx, PathConsistency, q, maxProofBytes)
	if err != nil {
		return ConsistencyProof{}, err
	}
	p, err := ParseConsistencyProof(b)
	if err != nil {
		return p, err
	}
	if p.Old != oldSize || p.New != newSize {
		return p, fmt.Errorf("%w consistency proof: asked for %d..%d, got %d..%d", ErrMalformed, oldSize, newSize, p.Old, p.New)
	}
	return p, nil
}

// InclusionProof fetches the proof that event seq is in the tree of size
// leaves (0: the latest checkpoint's).
func (c *Client) InclusionProof(ctx context.Context, seq uint64, size int64) (InclusionProof, error) {
	q := url.Values{"seq": {strconv.FormatUint(seq, 10)}}
	if size != 0 {
		q.Set("size", strconv.FormatInt(size, 10))
	}
	b, err := c.readLimited(ctx, PathInclusion, q, maxProofBytes)
	if err != nil {
		return InclusionProof{}, err
	}
	return ParseInclusionProof(b)
}

// Export starts an export download; the caller reads and closes the body.
// The transfer is gzip-compressed on the wire and decompressed here.
func (c *Client) Export(ctx context.Context, q url.Values) (io.ReadCloser, error) {
	resp, err := c.get(ctx, PathExport, q)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// ParseConsistencyProof parses a consistency proof answer.
func ParseConsistencyProof(b []byte) (ConsistencyProof, error) {
	var p ConsistencyProof
	if len(b) > maxProofBytes {
		return p, fmt.Errorf("%w consistency proof: longer than %d bytes", ErrMalformed, maxProofBytes)
	}
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&p); err != nil {
		return p, fmt.Errorf("%w consistency proof: %v", ErrMalformed, err)
	}
	if p.Old < 0 || p.New < p.Old || p.New > MaxTreeSize || len(p.Proof) > maxProofHashes {
		return p, fmt.Errorf("%w consistency proof: sizes %d..%d with %d hashes", ErrMalformed, p.Old, p.New, len(p.Proof))
	}
	return p, nil
}

// ParseInclusionProof parses an inclusion proof answer.
func ParseInclusionProof(b []byte) (InclusionProof, error) {
	var p InclusionProof
	if len(b) > maxProofBytes {
		return p, fmt.Errorf("%w inclusion proof: longer than %d bytes", ErrMalformed, maxProofBytes)
	}
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&p); err != nil {
		return p, fmt.Errorf("%w inclusion proof: %v", ErrMalformed, err)
	}
	if p.Seq < 1 || p.Seq > uint64(MaxTreeSize) || p.TreeSize < int64(p.Seq) || p.TreeSize > MaxTreeSize || len(p.Proof) > maxProofHashes || len(p.Checkpoint) > MaxNoteBytes {
		return p, fmt.Errorf("%w inclusion proof: event %d in %d with %d hashes", ErrMalformed, p.Seq, p.TreeSize, len(p.Proof))
	}
	return p, nil
}
