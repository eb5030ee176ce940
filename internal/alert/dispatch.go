package alert

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Delivery statuses in the delivery log.
const (
	DeliverySent     = "sent"     // the notifier accepted the notification
	DeliveryRetrying = "retrying" // the attempt failed; another follows
	DeliveryFailed   = "failed"   // the attempt failed; no more attempts
	DeliveryDropped  = "dropped"  // never attempted: queue full or shutting down
)

// job is one notification for one notifier of a receiver.
type job struct {
	groupKey string
	receiver string
	index    int // notifier index within the receiver
	notifier Notifier
	alerts   []Alert
	firing   []string // fingerprints notified as firing
	flushAt  time.Time
	deadline time.Time // retries stop here (the next group interval)
}

// enqueue hands jobs to the workers without blocking; a full queue or a
// stopped manager drops the job, which the next group interval retries.
func (m *Manager) enqueue(jobs []*job) {
	for _, j := range jobs {
		m.qmu.Lock()
		queued := false
		if !m.closed {
			select {
			case m.queue <- j:
				queued = true
				if m.inflight == 0 {
					m.idle = make(chan struct{})
				}
				m.inflight++
			default:
			}
		}
		closed := m.closed
		m.qmu.Unlock()
		if queued {
			continue
		}
		reason := "delivery queue full"
		if closed {
			reason = "alert manager stopped"
		}
		m.log.Warn("notification dropped", "receiver", j.receiver, "group", j.groupKey, "reason", reason)
		m.record(j, DeliveryDropped, errors.New(reason), 0)
		m.metrics.failed.WithLabelValues(j.receiver).Inc()
		m.delivered(j, false)
	}
}

func (m *Manager) jobDone() {
	m.qmu.Lock()
	m.inflight--
	if m.inflight == 0 && m.idle != nil {
		close(m.idle)
		m.idle = nil
	}
	m.qmu.Unlock()
}

// worker delivers queued jobs until runCtx ends, then drains the queue
// with single attempts bounded by workCtx.
func (m *Manager) worker(runCtx, workCtx context.Context) {
	for {
		select {
		case j := <-m.queue:
			m.deliver(runCtx, workCtx, j)
		case <-runCtx.Done():
			for {
				select {
				case j := <-m.queue:
					m.deliver(runCtx, workCtx, j)
				default:
					return
				}
			}
		}
	}
}

// deliver sends one job, retrying retryable failures with exponential
// backoff and jitter while attempts and the retry window last.
func (m *Manager) deliver(runCtx, workCtx context.Context, j *job) {
	defer m.jobDone()
	var waited time.Duration
	for attempt := 1; ; attempt++ {
		retry, err := m.attempt(workCtx, j)
		if err == nil {
			m.record(j, DeliverySent, nil, attempt)
			m.metrics.sent.WithLabelValues(j.receiver).Inc()
			m.delivered(j, true)
			return
		}
		wait := m.backoff(attempt)
		// A receiver that said when to come back (HTTP 429 or 503 with
		// Retry-After) is not called before then.
		var ra interface{ RetryAfter() time.Duration }
		if errors.As(err, &ra) && ra.RetryAfter() > wait {
			wait = ra.RetryAfter()
		}
		reason := ""
		switch {
		case !retry:
			reason = "not retryable"
		case attempt >= m.cfg.Retry.Attempts:
			reason = fmt.Sprintf("gave up after %d attempts", attempt)
		case j.flushAt.Add(waited+wait).After(j.deadline) || m.now().Add(wait).After(j.deadline):
			reason = "retry window (group_interval) exhausted"
		case runCtx.Err() != nil:
			reason = "shutting down"
		}
		if reason != "" {
			m.record(j, DeliveryFailed, fmt.Errorf("%w (%s)", err, reason), attempt)
			m.metrics.failed.WithLabelValues(j.receiver).Inc()
			m.log.Warn("notification failed", "receiver", j.receiver, "group", j.groupKey,
				"attempt", attempt, "reason", reason, "err", safeError(err))
			m.delivered(j, false)
			return
		}
		m.record(j, DeliveryRetrying, err, attempt)
		m.log.Info("notification failed, retrying", "receiver", j.receiver, "group", j.groupKey,
			"attempt", attempt, "wait", wait, "err", safeError(err))
		if m.sleep(runCtx, wait) != nil {
			m.record(j, DeliveryFailed, errors.New("shutting down before the next attempt"), attempt)
			m.metrics.failed.WithLabelValues(j.receiver).Inc()
			m.delivered(j, false)
			return
		}
		waited += wait
	}
}

// attempt calls the notifier once; a panic counts as a failure that is not
// retried.
func (m *Manager) attempt(ctx context.Context, j *job) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(m.cfg.NotifyTimeout))
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			retry, err = false, fmt.Errorf("notifier panicked: %v", p)
		}
	}()
	return j.notifier.Notify(ctx, j.alerts)
}

// backoff is the wait after a failed attempt: Initial doubled per attempt,
// capped at Max, drawn between half and all of that step.
func (m *Manager) backoff(attempt int) time.Duration {
	step := time.Duration(m.cfg.Retry.Initial)
	maxStep := time.Duration(m.cfg.Retry.Max)
	for i := 1; i < attempt && step < maxStep; i++ {
		step *= 2
	}
	step = min(step, maxStep)
	f := m.jitter()
	if f < 0 || f >= 1 {
		f = 0
	}
	return step/2 + time.Duration(f*float64(step/2))
}

// Delivery is one attempt in the delivery log.
type Delivery struct {
	Time         time.Time `json:"time"`
	Receiver     string    `json:"receiver"`
	Integration  int       `json:"integration"` // index of the notifier in the receiver
	Notifier     string    `json:"notifier,omitempty"`
	GroupKey     string    `json:"groupKey"`
	Fingerprints []string  `json:"fingerprints"`
	Firing       int       `json:"firing"`
	Resolved     int       `json:"resolved"`
	Status       string    `json:"status"`
	Error        string    `json:"error,omitempty"`
	Attempt      int       `json:"attempt"`
}

// DeliveryFilter selects deliveries; zero fields select everything.
type DeliveryFilter struct {
	Receiver string
	Status   string
	GroupKey string
	Limit    int
}

// deliveryLog is a bounded ring of deliveries.
type deliveryLog struct {
	mu   sync.Mutex
	ring []Delivery
	next int
	full bool
}

func newDeliveryLog(n int) *deliveryLog { return &deliveryLog{ring: make([]Delivery, n)} }

func (l *deliveryLog) add(d Delivery) {
	l.mu.Lock()
	l.ring[l.next] = d
	l.next = (l.next + 1) % len(l.ring)
	if l.next == 0 {
		l.full = true
	}
	l.mu.Unlock()
}

func (l *deliveryLog) list(f DeliveryFilter) []Delivery {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.next
	if l.full {
		n = len(l.ring)
	}
	out := []Delivery{}
	for i := 0; i < n; i++ {
		d := l.ring[(l.next-1-i+len(l.ring))%len(l.ring)]
		if (f.Receiver != "" && d.Receiver != f.Receiver) || (f.Status != "" && d.Status != f.Status) ||
			(f.GroupKey != "" && d.GroupKey != f.GroupKey) {
			continue
		}
		d.Fingerprints = append([]string(nil), d.Fingerprints...)
		out = append(out, d)
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
	}
	return out
}

func (m *Manager) record(j *job, status string, err error, attempt int) {
	d := Delivery{
		Time: m.now(), Receiver: j.receiver, Integration: j.index, GroupKey: j.groupKey,
		Status: status, Attempt: attempt,
	}
	if s, ok := j.notifier.(fmt.Stringer); ok {
		d.Notifier = s.String()
	}
	for _, a := range j.alerts {
		d.Fingerprints = append(d.Fingerprints, a.Fingerprint)
		if a.Status == StateResolved {
			d.Resolved++
		} else {
			d.Firing++
		}
	}
	if err != nil {
		d.Error = safeError(err)
	}
	m.dlog.add(d)
}

// safeError renders an error for logs and the delivery log without the
// secrets URLs often carry (webhook tokens in paths, credentials, query
// keys): a URL in a *url.Error is cut to its scheme and host. The text is
// bounded.
func safeError(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) && ue.URL != "" {
		short := "(url)"
		if u, perr := url.Parse(ue.URL); perr == nil && u.Host != "" {
			short = u.Scheme + "://" + u.Host + "/…"
		}
		s = strings.ReplaceAll(s, ue.URL, short)
	}
	const maxLen = 512
	if len(s) > maxLen {
		s = strings.ToValidUTF8(s[:maxLen], "") + "…"
	}
	return s
}
