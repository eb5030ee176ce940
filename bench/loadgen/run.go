package main

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
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// config is what a run needs, from the flags.
type config struct {
	Target   *url.URL      // checked by eventsURL
	Token    string        // bearer token; empty sends no Authorization header
	Events   int64         // total events to send
	Conns    int           // concurrent workers, one connection each
	Batch    int           // events per request
	Duration time.Duration // sending stops when it is reached
	Rate     float64       // events/s; 0 sends as fast as possible
	Gzip     bool
	Size     int // mean bytes per event
	Seed     uint64
	RunID    string        // 16 hex digits, the first half of every event id
	MemLimit int64         // bytes of request bodies kept in memory
	Timeout  time.Duration // per HTTP request
	Progress time.Duration // interval of progress lines on the log writer; 0: none
}

// deps are the parts of a run that tests replace.
type deps struct {
	client *http.Client
	sleep  func(ctx context.Context, d time.Duration) error
	now    func() time.Time
	log    io.Writer
	// cpu, when set, returns the CPU time the process has used (user and
	// system): the report gives what the timed loop used, which on a
	// shared machine is taken from the server under test.
	cpu func() time.Duration
}

// processCPU returns the CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ackBody is the answer to an accepted batch.
type ackBody struct {
	Accepted   int64  `json:"accepted"`
	Duplicates int64  `json:"duplicates"`
	FirstSeq   uint64 `json:"first_seq"`
	LastSeq    uint64 `json:"last_seq"`
}

// errAbort stops the whole run: every other batch would fail the same way.
type errAbort struct{ reason string }

func (e *errAbort) Error() string { return e.reason }

// workerStats are one worker's counters, merged at the end.
type workerStats struct {
	eventsSent, accepted, duplicates int64
	requests, attempts, errors       int64
	retries, ackMismatches           int64
	unfinished                       int64
	retryWait                        time.Duration
	sampleError                      string
	rawBytes, wireBytes              int64
	errorsBy, retriesBy              map[string]int64
	latency, fromPlan                histogram
}

// run sends the prepared bodies and reports. The run ends when every batch is
// sent, cfg.Duration has passed, ctx is cancelled, or the server refuses in a
// way no retry can fix (401, 403, 413, 415).
func run(ctx context.Context, cfg config, b *bodies, d deps) *report {
	rep := &report{
		URL: cfg.Target.String(), RunID: cfg.RunID, Connections: cfg.Conns, Batch: cfg.Batch,
		Gzip: cfg.Gzip, EventSize: cfg.Size, TargetRate: cfg.Rate,
		BodyMode: b.mode(), BodyBytes: b.heldBytes, EventBytes: b.meanEventBytes(), EventsRequested: cfg.Events,
	}
	runCtx, cancelRun := context.WithTimeout(ctx, cfg.Duration)
	defer cancelRun()
	var abortOnce sync.Once
	abort := func(reason string) {
		abortOnce.Do(func() { rep.AbortReason = reason; cancelRun() })
	}

	total := b.requests()
	var next, acceptedSoFar atomic.Int64
	stats := make([]*workerStats, cfg.Conns)
	start := d.now()
	var cpu0 time.Duration
	if d.cpu != nil {
		cpu0 = d.cpu()
	}

	stopProgress := make(chan struct{})
	var progressDone sync.WaitGroup
	if cfg.Progress > 0 && d.log != nil {
		progressDone.Go(func() {
			t := time.NewTicker(cfg.Progress)
			defer t.Stop()
			for {
				select {
				case <-stopProgress:
					return
				case <-t.C:
					n := acceptedSoFar.Load()
					el := d.now().Sub(start).Seconds()
					fmt.Fprintf(d.log, "loadgen: %.0fs, %d events accepted, %.0f/s\n", el, n, float64(n)/el)
				}
			}
		})
	}

	var wg sync.WaitGroup
	for w := range cfg.Conns {
		st := &workerStats{errorsBy: map[string]int64{}, retriesBy: map[string]int64{}}
		stats[w] = st
		wg.Go(func() {
			var s scratch
			for runCtx.Err() == nil {
				k := next.Add(1) - 1
				if k >= total {
					return
				}
				planned := start
				if cfg.Rate > 0 {
					planned = start.Add(time.Duration(float64(k*int64(cfg.Batch)) / cfg.Rate * float64(time.Second)))
					if err := d.sleep(runCtx, planned.Sub(d.now())); err != nil {
						st.unfinished++ // claimed, never sent
						return
					}
				}
				body, events, rawLen := b.get(k, &s)
				st.eventsSent += int64(events)
				ack, err := send(runCtx, cfg, d, body, events, st)
				switch {
				case err == nil:
					st.requests++
					st.accepted += ack.Accepted
					st.duplicates += ack.Duplicates
					st.rawBytes += int64(rawLen)
					if ack.Accepted+ack.Duplicates != int64(events) {
						st.ackMismatches++
					}
					if cfg.Rate > 0 {
						st.fromPlan.record(d.now().Sub(planned))
					}
					acceptedSoFar.Add(ack.Accepted)
				case runCtx.Err() != nil:
					st.unfinished++
				default:
					st.errors++
					if st.sampleError == "" {
						st.sampleError = err.Error()
					}
					if a := (*errAbort)(nil); errors.As(err, &a) {
						abort(a.reason)
					}
				}
			}
		})
	}
	wg.Wait()
	wall := d.now().Sub(start)
	if d.cpu != nil {
		rep.CPUSeconds = (d.cpu() - cpu0).Seconds()
	}
	close(stopProgress)
	progressDone.Wait()

	// Why did it stop? Cancellations are checked before the last batch
	// finishing, so a run cut short is never reported as completed.
	var all workerStats
	all.errorsBy, all.retriesBy = map[string]int64{}, map[string]int64{}
	for _, st := range stats {
		all.eventsSent += st.eventsSent
		all.accepted += st.accepted
		all.duplicates += st.duplicates
		all.requests += st.requests
		all.attempts += st.attempts
		all.errors += st.errors
		all.retries += st.retries
		all.ackMismatches += st.ackMismatches
		all.unfinished += st.unfinished
		all.retryWait += st.retryWait
		if all.sampleError == "" {
			all.sampleError = st.sampleError
		}
		all.rawBytes += st.rawBytes
		all.wireBytes += st.wireBytes
		for k, v := range st.errorsBy {
			all.errorsBy[k] += v
		}
		for k, v := range st.retriesBy {
			all.retriesBy[k] += v
		}
		all.latency.merge(&st.latency)
		all.fromPlan.merge(&st.fromPlan)
	}
	switch {
	case rep.AbortReason != "":
		rep.Stopped = "aborted"
	case ctx.Err() != nil:
		rep.Stopped = "interrupted"
	case all.unfinished > 0 || next.Load() < total:
		rep.Stopped = "duration"
	default:
		rep.Stopped = "completed"
	}
	rep.EventsSent, rep.Accepted, rep.Duplicates = all.eventsSent, all.accepted, all.duplicates
	rep.Requests, rep.Attempts, rep.Errors, rep.ErrorsByStatus = all.requests, all.attempts, all.errors, all.errorsBy
	rep.Retries, rep.RetriesByStatus, rep.RetryWait = all.retries, all.retriesBy, all.retryWait.Seconds()
	rep.AckMismatches, rep.Unfinished = all.ackMismatches, all.unfinished
	rep.SampleError = all.sampleError
	rep.WallSeconds = wall.Seconds()
	if secs := wall.Seconds(); secs > 0 {
		rep.AcceptedPerSecond = float64(all.accepted) / secs
		rep.MBPerSecond = float64(all.rawBytes) / 1e6 / secs
		rep.WireMBPerSecond = float64(all.wireBytes) / 1e6 / secs
	}
	rep.Latency = all.latency.summary()
	if cfg.Rate > 0 {
		s := all.fromPlan.summary()
		rep.LatencyFromSchedule = &s
	}
	return rep
}

// send posts one batch until it is acknowledged, retrying after 429 and 503
// as long as the server asks, and returns the acknowledgement. Other answers
// are errors, counted in st by status.
func send(ctx context.Context, cfg config, d deps, body []byte, events int, st *workerStats) (*ackBody, error) {
	for {
		st.attempts++
		st.wireBytes += int64(len(body))
		began := d.now()
		status, header, answer, err := post(ctx, cfg, d.client, body)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			st.errorsBy["transport"]++
			return nil, err
		}
		switch status {
		case http.StatusOK:
			st.latency.record(d.now().Sub(began))
			var ack ackBody
			if err := json.Unmarshal(answer, &ack); err != nil {
				st.errorsBy["bad_ack"]++
				return nil, fmt.Errorf("acknowledgement of %d events: %w", events, err)
			}
			return &ack, nil
		case http.StatusTooManyRequests, http.StatusServiceUnavailable:
			wait := retryAfter(header.Get("Retry-After"), d.now())
			st.retries++
			st.retriesBy[strconv.Itoa(status)]++
			st.retryWait += wait
			if err := d.sleep(ctx, wait); err != nil {
				return nil, err
			}
			continue
		}
		st.errorsBy[strconv.Itoa(status)]++
		err = fmt.Errorf("batch of %d events: HTTP %d: %s", events, status, serverError(answer))
		switch status {
		case http.StatusUnauthorized, http.StatusForbidden:
			return nil, &errAbort{fmt.Sprintf("the server refused the token (HTTP %d: %s); pass -token or set VIGIL_TOKEN", status, serverError(answer))}
		case http.StatusRequestEntityTooLarge:
			return nil, &errAbort{fmt.Sprintf("the server refused a batch of %d events as too large (HTTP 413: %s); lower -batch or -size", events, serverError(answer))}
		case http.StatusUnsupportedMediaType:
			return nil, &errAbort{fmt.Sprintf("the server refused the body format (HTTP 415: %s)", serverError(answer))}
		}
		return nil, err
	}
}

// post makes one request and reads the answer (at most 64 KiB of it; the
// rest is drained so that the connection can be reused).
func post(ctx context.Context, cfg config, client *http.Client, body []byte) (int, http.Header, []byte, error) {
	rctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, cfg.Target.String(), bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	if cfg.Gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	if cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+cfg.Token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("post batch: %w", err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("read answer: %w", err)
	}
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header, answer, nil
}

// retryAfter reads a Retry-After header: delay seconds or an HTTP date. A
// missing or unreadable value means one second.
func retryAfter(v string, now time.Time) time.Duration {
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil && secs >= 0 {
		return time.Duration(min(secs, 3600)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return time.Second
}

// serverError extracts the message of a {"error":"..."} answer.
func serverError(answer []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(answer, &e) == nil && e.Error != "" {
		return e.Error
	}
	s := string(bytes.TrimSpace(answer))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	if s == "" {
		s = "no message"
	}
	return strconv.Quote(s)
}
