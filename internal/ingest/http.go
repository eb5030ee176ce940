package ingest

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/httperr"
	"github.com/vigilsec/vigil/internal/store"
)

// Limits bound what the native HTTP receiver accepts.
type Limits struct {
	MaxBodyBytes    int64 // request body after decompression
	MaxEventBytes   int   // one event's JSON
	MaxDepth        int   // nesting depth of one event
	MaxBatchEvents  int   // events in one request
	MaxConcurrent   int   // requests being decoded or committed at once; more get 429
	MaxQueuedEvents int   // events decoded and waiting for commit; more get 503
}

// DefaultLimits are the receiver's limits unless configured otherwise.
var DefaultLimits = Limits{
	MaxBodyBytes:    8 << 20,
	MaxEventBytes:   event.DefaultLimits.MaxBytes,
	MaxDepth:        event.DefaultLimits.MaxDepth,
	MaxBatchEvents:  10000,
	MaxConcurrent:   64,
	MaxQueuedEvents: 200000,
}

// Metrics are the receiver's Prometheus metrics.
type Metrics struct {
	Events     *prometheus.CounterVec
	Bytes      *prometheus.CounterVec
	Rejects    *prometheus.CounterVec
	Duplicates prometheus.Counter
	Queued     prometheus.Gauge
}

// NewMetrics creates the receiver metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_ingest_events_total", Help: "Events stored, by receiver.",
		}, []string{"receiver"}),
		Bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_ingest_bytes_total", Help: "Request body bytes received (after decompression), by receiver.",
		}, []string{"receiver"}),
		Rejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_ingest_rejected_total", Help: "Ingest requests refused, by receiver and reason.",
		}, []string{"receiver", "reason"}),
		Duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_ingest_duplicate_events_total", Help: "Events whose event.id was already stored.",
		}),
		Queued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_ingest_queued_events", Help: "Events decoded and waiting to be committed.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Events, m.Bytes, m.Rejects, m.Duplicates, m.Queued)
	}
	return m
}

// HTTP is the native receiver: POST /api/v1/events. Authentication is the
// caller's: wrap it with auth.Tokens.Require.
//
// A batch is all or nothing: when any line is bad the whole request is
// refused with 400 naming the bad lines, and nothing of it is stored. The
// answer 200 comes only after the batch is durable in the store.
type HTTP struct {
	lim     Limits
	store   store.Store
	metrics *Metrics
	now     func() time.Time
	queued  atomic.Int64
	slots   chan struct{}
	bufs    sync.Pool
	gzips   sync.Pool // *gzip.Reader, reset for each body (one costs ~40 KiB to make)
	// OnCommit, when set, is called with the last sequence number of every
	// stored batch.
	OnCommit func(lastSeq uint64)
	// Prepare, when set, may rewrite each event of a valid batch before it
	// is stored (encryption at rest of sensitive fields). An error refuses
	// the batch and stores nothing: with 400 when it wraps ErrRefused (the
	// event's fault), else 500.
	Prepare func(e *event.Event) error
}

// NewHTTP returns the native receiver. metrics may be nil.
func NewHTTP(s store.Store, lim Limits, metrics *Metrics) *HTTP {
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	return &HTTP{
		lim: lim, store: s, metrics: metrics, now: time.Now,
		slots: make(chan struct{}, lim.MaxConcurrent),
		bufs:  sync.Pool{New: func() any { return new(bytes.Buffer) }},
	}
}

// Accepted is the answer to a stored batch.
type Accepted struct {
	Accepted   int    `json:"accepted"`
	Duplicates int    `json:"duplicates"`
	FirstSeq   uint64 `json:"first_seq,omitempty"`
	LastSeq    uint64 `json:"last_seq,omitempty"`
}

const receiver = "http"

// ErrRefused marks a Prepare error caused by the event itself.
var ErrRefused = errors.New("event refused")

// CountUnauthorized counts a request refused for a missing or bad token.
func (h *HTTP) CountUnauthorized() {
	h.metrics.Rejects.WithLabelValues(receiver, "unauthorized").Inc()
}

func (h *HTTP) reject(w http.ResponseWriter, status int, reason string, b httperr.Body) {
	h.metrics.Rejects.WithLabelValues(receiver, reason).Inc()
	httperr.Write(w, status, b)
}

func (h *HTTP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		h.reject(w, http.StatusMethodNotAllowed, "method", httperr.Body{Error: "use POST to send events"})
		return
	}
	format, err := formatOf(r.Header.Get("Content-Type"))
	if err != nil {
		h.reject(w, http.StatusUnsupportedMediaType, "content_type", httperr.Body{Error: err.Error()})
		return
	}
	gz := false
	switch enc := r.Header.Get("Content-Encoding"); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		gz = true
	default:
		h.reject(w, http.StatusUnsupportedMediaType, "content_encoding", httperr.Body{Error: fmt.Sprintf("unsupported Content-Encoding %q: send gzip or no encoding", enc)})
		return
	}
	if !gz && r.ContentLength > h.lim.MaxBodyBytes {
		h.reject(w, http.StatusRequestEntityTooLarge, "body_too_large", httperr.Body{Error: fmt.Sprintf("body is %d bytes, limit is %d", r.ContentLength, h.lim.MaxBodyBytes)})
		return
	}

	select {
	case h.slots <- struct{}{}:
		defer func() { <-h.slots }()
	default:
		h.reject(w, http.StatusTooManyRequests, "concurrency", httperr.Body{Error: "too many ingest requests in progress, retry later", RetryAfter: 1})
		return
	}

	buf := h.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 1<<20 {
			h.bufs.Put(buf)
		}
	}()
	if err := h.readBody(buf, r, gz); err != nil {
		var tooLarge *bodyTooLarge
		if errors.As(err, &tooLarge) {
			h.reject(w, http.StatusRequestEntityTooLarge, "body_too_large", httperr.Body{Error: err.Error()})
		} else {
			h.reject(w, http.StatusBadRequest, "body_read", httperr.Body{Error: err.Error()})
		}
		return
	}
	h.metrics.Bytes.WithLabelValues(receiver).Add(float64(buf.Len()))

	now := h.now()
	events, lineErrs, err := DecodeBatch(buf.Bytes(), format,
		event.Limits{MaxBytes: h.lim.MaxEventBytes, MaxDepth: h.lim.MaxDepth}, h.lim.MaxBatchEvents, now)
	if errors.Is(err, ErrTooManyEvents) {
		h.reject(w, http.StatusRequestEntityTooLarge, "batch_too_large", httperr.Body{Error: fmt.Sprintf("%v: limit is %d events per request", err, h.lim.MaxBatchEvents)})
		return
	}
	if err != nil {
		h.reject(w, http.StatusBadRequest, "malformed", httperr.Body{Error: err.Error()})
		return
	}
	if len(lineErrs) > 0 {
		b := httperr.Body{Error: fmt.Sprintf("%d bad line(s), nothing of this batch was stored; first: %v", len(lineErrs), lineErrs[0])}
		for _, le := range lineErrs {
			b.Lines = append(b.Lines, httperr.Line{Line: le.Line, Error: le.Err.Error()})
		}
		h.reject(w, http.StatusBadRequest, "malformed", b)
		return
	}

	if h.Prepare != nil {
		for i := range events {
			if err := h.Prepare(&events[i]); err != nil {
				status := http.StatusInternalServerError
				if errors.Is(err, ErrRefused) {
					status = http.StatusBadRequest
				}
				h.reject(w, status, "prepare", httperr.Body{Error: fmt.Sprintf("event %d of the batch: %v", i+1, err), Lines: []httperr.Line{{Line: i + 1, Error: err.Error()}}})
				return
			}
		}
	}
	n := int64(len(events))
	if q := h.queued.Add(n); q > int64(h.lim.MaxQueuedEvents) && q != n {
		h.queued.Add(-n)
		h.reject(w, http.StatusServiceUnavailable, "queue_full", httperr.Body{Error: "ingest queue is full, retry later", RetryAfter: 1})
		return
	}
	h.metrics.Queued.Add(float64(n))
	res, err := h.store.Append(r.Context(), events)
	h.queued.Add(-n)
	h.metrics.Queued.Sub(float64(n))
	if err != nil {
		if errors.Is(err, store.ErrClosed) {
			h.reject(w, http.StatusServiceUnavailable, "shutting_down", httperr.Body{Error: "Vigil is shutting down, retry later", RetryAfter: 5})
			return
		}
		if r.Context().Err() != nil {
			h.metrics.Rejects.WithLabelValues(receiver, "client_gone").Inc()
			return
		}
		h.reject(w, http.StatusServiceUnavailable, "store_error", httperr.Body{Error: "events could not be stored, retry later", RetryAfter: 1})
		return
	}
	stored := len(events) - res.Duplicates
	h.metrics.Events.WithLabelValues(receiver).Add(float64(stored))
	h.metrics.Duplicates.Add(float64(res.Duplicates))
	ans := Accepted{Accepted: stored, Duplicates: res.Duplicates}
	if len(res.Seqs) > 0 {
		ans.FirstSeq, ans.LastSeq = res.Seqs[0], res.Seqs[0]
		for _, s := range res.Seqs {
			ans.FirstSeq = min(ans.FirstSeq, s)
			ans.LastSeq = max(ans.LastSeq, s)
		}
		if h.OnCommit != nil && stored > 0 {
			h.OnCommit(ans.LastSeq)
		}
	}
	httperr.JSON(w, http.StatusOK, ans)
}

type bodyTooLarge struct{ limit int64 }

func (e *bodyTooLarge) Error() string {
	return fmt.Sprintf("body exceeds %d bytes (after decompression)", e.limit)
}

// readBody reads the (possibly gzip-compressed) body into buf, refusing more
// than MaxBodyBytes of decompressed data, which also defeats gzip bombs.
func (h *HTTP) readBody(buf *bytes.Buffer, r *http.Request, gz bool) error {
	var src io.Reader = r.Body
	if gz {
		// The compressed stream is bounded too, so a slow trickle of a huge
		// compressed body cannot hold a slot forever.
		zsrc := io.LimitReader(r.Body, h.lim.MaxBodyBytes+1)
		zr, _ := h.gzips.Get().(*gzip.Reader)
		var err error
		if zr == nil {
			zr, err = gzip.NewReader(zsrc)
		} else {
			err = zr.Reset(zsrc)
		}
		if err != nil {
			return fmt.Errorf("body is not valid gzip: %w", err)
		}
		defer func() {
			_ = zr.Close()
			h.gzips.Put(zr)
		}()
		src = zr
	}
	if r.ContentLength > 0 && !gz {
		buf.Grow(int(r.ContentLength))
	}
	n, err := buf.ReadFrom(io.LimitReader(src, h.lim.MaxBodyBytes+1))
	if n > h.lim.MaxBodyBytes {
		return &bodyTooLarge{limit: h.lim.MaxBodyBytes}
	}
	if err != nil {
		if gz {
			return fmt.Errorf("body is not valid gzip: %w", err)
		}
		return fmt.Errorf("read body: %w", err)
	}
	return nil
}

func formatOf(contentType string) (Format, error) {
	if contentType == "" {
		return 0, errors.New("missing Content-Type: send application/x-ndjson or application/json")
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return 0, fmt.Errorf("bad Content-Type %q: %v", contentType, err)
	}
	switch mt {
	case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines", "application/jsonlines":
		return FormatNDJSON, nil
	case "application/json":
		return FormatJSON, nil
	}
	return 0, fmt.Errorf("unsupported Content-Type %q: send application/x-ndjson or application/json", mt)
}
