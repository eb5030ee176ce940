package server

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/vigilsec/vigil/internal/respond"
)

// maxQueuedDecisions bounds the decisions waiting to be made; detection
// waits for room beyond it, and then moves at the pace of the log.
const maxQueuedDecisions = 10000

// decisionQueue makes the decisions of detection's signals in the
// background, in order and in batches: one append to the log for all the
// decisions queued while the previous batch was being written.
//
// Detection used to make each decision itself and wait for its commit. Under
// load a commit waits behind the ingest queue (tens of milliseconds at
// peak), and with an attacker banned every few thousand events detection
// spent most of its time waiting: it evaluated 267,000 of the first 1M
// events of bench/ingest.sh instead of keeping up. Now it only hands
// decisions over. Before the detection cursor saves its position it waits
// for the decisions queued so far (flush), so a crash never loses a
// decision whose events the saved position has passed: after a restart
// detection evaluates those events again and makes it again.
type decisionQueue struct {
	mgr *respond.Manager
	log *slog.Logger

	mu       sync.Mutex
	pending  []queuedDecision
	queued   uint64        // decisions ever queued
	done     uint64        // decisions ever made or refused
	progress chan struct{} // closed, and replaced, whenever done advances
	wake     chan struct{} // buffered: something was queued
}

type queuedDecision struct {
	d    respond.Decision
	rule string
}

func newDecisionQueue(mgr *respond.Manager, log *slog.Logger) *decisionQueue {
	return &decisionQueue{mgr: mgr, log: log, progress: make(chan struct{}), wake: make(chan struct{}, 1)}
}

// add queues d, made for a signal of rule. It waits while the queue is
// full, until ctx ends.
func (q *decisionQueue) add(ctx context.Context, d respond.Decision, rule string) error {
	q.mu.Lock()
	for len(q.pending) >= maxQueuedDecisions {
		if err := q.awaitProgress(ctx); err != nil {
			q.mu.Unlock()
			return err
		}
	}
	q.pending = append(q.pending, queuedDecision{d: d, rule: rule})
	q.queued++
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
	return nil
}

// waiting returns the number of decisions queued and not yet made.
func (q *decisionQueue) waiting() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.queued - q.done
}

// flush waits until every decision queued before the call was made (or
// refused), or ctx ends.
func (q *decisionQueue) flush(ctx context.Context) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	target := q.queued
	for q.done < target {
		if err := q.awaitProgress(ctx); err != nil {
			return err
		}
	}
	return nil
}

// awaitProgress waits until done advances or ctx ends. The caller holds
// q.mu, which is released while waiting and held again on return.
func (q *decisionQueue) awaitProgress(ctx context.Context) error {
	ch := q.progress
	q.mu.Unlock()
	defer q.mu.Lock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run makes the queued decisions until stop is closed and nothing is left
// queued. Appends outlive ctx's cancellation (the last decisions are made
// at shutdown, before the store closes); ctx's values are kept.
func (q *decisionQueue) run(ctx context.Context, stop <-chan struct{}) {
	ctx = context.WithoutCancel(ctx)
	for {
		q.mu.Lock()
		batch := q.pending
		q.pending = nil
		q.mu.Unlock()
		if len(batch) == 0 {
			select {
			case <-q.wake:
			case <-stop:
				q.mu.Lock()
				left := len(q.pending)
				q.mu.Unlock()
				if left == 0 {
					return
				}
			}
			continue
		}
		q.decide(ctx, batch, stop)
		q.mu.Lock()
		q.done += uint64(len(batch))
		close(q.progress)
		q.progress = make(chan struct{})
		q.mu.Unlock()
	}
}

// Retrying a batch whose append failed: the first wait, and the longest.
var (
	decideRetryMin = 100 * time.Millisecond
	decideRetryMax = 5 * time.Second
)

// decide makes one batch of decisions and logs what became of each.
//
// When the append to the log fails (the store refuses writes: disk full, an
// I/O error), none of the batch was made. It is tried again, after
// decideRetryMin doubling up to decideRetryMax, and until then the batch
// is not done: a flush waits, so the detection cursor does not save a
// position past the events of a decision not made, and detection stalls
// (vigil_detect_lag_events grows) rather than lose it. Once stop is closed,
// a failed batch is given up and logged as an error: the cursor stopped
// first, and its last save timed out waiting for this batch, so after a
// restart detection evaluates those events again.
func (q *decisionQueue) decide(ctx context.Context, batch []queuedDecision, stop <-chan struct{}) {
	ds := make([]respond.Decision, len(batch))
	for i, b := range batch {
		ds[i] = b.d
	}
	var outs []respond.AddOutcome
	for wait := decideRetryMin; ; wait = min(2*wait, decideRetryMax) {
		var err error
		if outs, err = q.mgr.AddBatch(ctx, ds); err == nil {
			break
		}
		select {
		case <-stop:
			q.log.Error("automatic responses not made: given up at shutdown; detection evaluates their events again at the next start",
				"decisions", len(batch), "err", err)
			return
		default:
		}
		q.log.Warn("automatic responses not made yet: the log refused them; retrying",
			"decisions", len(batch), "retry_in", wait, "err", err)
		select {
		case <-time.After(wait):
		case <-stop:
		}
	}
	for i, o := range outs {
		dec, rule := batch[i].d, batch[i].rule
		switch {
		case errors.Is(o.Err, respond.ErrAllowlisted):
			q.log.Info("no automatic response: allowlisted", "rule", rule, "scope", dec.Scope, "value", dec.Value)
		case o.Err != nil:
			q.log.Warn("automatic response refused", "rule", rule, "scope", dec.Scope, "value", dec.Value, "err", o.Err)
		default:
			got := o.Decision
			q.log.Info("automatic response", "result", o.Result, "type", got.Type, "scope", got.Scope,
				"value", got.Value, "until", got.Until, "rule", rule)
		}
	}
}
