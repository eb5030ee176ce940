package client

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vigilsec/vigil/internal/httperr"
	"github.com/vigilsec/vigil/internal/ingest"
)

// TestSendRetriesBusyServer: a batch refused with 503 and Retry-After is sent
// again, with the token, and the answer of the retry is returned.
func TestSendRetriesBusyServer(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get("Authorization"); got != "Bearer vgl_test" {
			t.Errorf("Authorization = %q", got)
		}
		if calls.Add(1) == 1 {
			httperr.Write(w, http.StatusServiceUnavailable, httperr.Body{Error: "busy", RetryAfter: 1})
			return
		}
		httperr.JSON(w, http.StatusOK, ingest.Accepted{Accepted: 2, FirstSeq: 1, LastSeq: 2})
	}))
	defer srv.Close()
	c := New(srv.URL+"/", "vgl_test")
	ans, err := c.Send(context.Background(), []byte("{}\n{}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if ans.Accepted != 2 || calls.Load() != 2 {
		t.Errorf("accepted %d after %d calls, want 2 after 2", ans.Accepted, calls.Load())
	}
}

// TestSendBadLinesNotRetried: a 400 is final, and its error names the lines.
func TestSendBadLinesNotRetried(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		httperr.Write(w, http.StatusBadRequest, httperr.Body{Error: "1 bad line(s)",
			Lines: []httperr.Line{{Line: 2, Error: "invalid character"}}})
	}))
	defer srv.Close()
	_, err := New(srv.URL, "t").Send(context.Background(), []byte("{}\n{\n"))
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusBadRequest {
		t.Fatalf("err = %v, want a 400 *Error", err)
	}
	if !strings.Contains(err.Error(), "line 2: invalid character") || calls.Load() != 1 {
		t.Errorf("err %q after %d calls", err, calls.Load())
	}
}

// TestSendGzipsLargeBatches: a large batch travels gzip-compressed and arrives
// intact.
func TestSendGzipsLargeBatches(t *testing.T) {
	batch := bytes.Repeat([]byte(`{"message":"hello"}`+"\n"), 10000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Encoding") != "gzip" {
			t.Errorf("Content-Encoding = %q, want gzip", r.Header.Get("Content-Encoding"))
		}
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(zr)
		if !bytes.Equal(got, batch) {
			t.Errorf("server got %d bytes, want %d", len(got), len(batch))
		}
		httperr.JSON(w, http.StatusOK, ingest.Accepted{Accepted: 10000})
	}))
	defer srv.Close()
	if _, err := New(srv.URL, "t").Send(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
}

// TestSendStopsWithContext: retries end when the context does.
func TestSendStopsWithContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httperr.Write(w, http.StatusTooManyRequests, httperr.Body{Error: "slow down", RetryAfter: 30})
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	c := New(srv.URL, "t")
	done := make(chan error)
	go func() { _, err := c.Send(ctx, []byte("{}\n")); done <- err }()
	cancel()
	if err := <-done; err == nil {
		t.Fatal("Send returned nil after its context was cancelled while the server refused")
	}
}

// TestErrorAnswerNotJSON: a non-JSON error body is reported as text.
func TestErrorAnswerNotJSON(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "proxy says no", http.StatusBadGateway)
	}))
	defer srv.Close()
	_, err := New(srv.URL, "t").Count(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "502: proxy says no") {
		t.Fatalf("err = %v", err)
	}
}
