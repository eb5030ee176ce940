package main

import (
	"fmt"
	"io"
	"maps"
	"math/bits"
	"slices"
	"strings"
	"time"
)

// histogram records durations in bounded memory with a relative error under
// 0.4%: values below 128µs are exact to the microsecond, larger ones fall in
// buckets of 128 per power of two.
type histogram struct {
	counts []uint64
	n      uint64
	sum    time.Duration
	max    time.Duration
}

const histSub = 128 // buckets per power of two

func bucketOf(d time.Duration) int {
	us := uint64(max(d, 0) / time.Microsecond)
	if us < histSub {
		return int(us)
	}
	shift := bits.Len64(us) - 8 // us>>shift is in [128, 256)
	return histSub + shift*histSub + int(us>>shift) - histSub
}

// bucketMid returns the middle of bucket i.
func bucketMid(i int) time.Duration {
	if i < histSub {
		return time.Duration(i) * time.Microsecond
	}
	shift := (i - histSub) / histSub
	m := uint64(i-histSub)%histSub + histSub
	lo := m << shift
	hi := (m+1)<<shift - 1
	return time.Duration(lo+(hi-lo)/2) * time.Microsecond
}

func (h *histogram) record(d time.Duration) {
	i := bucketOf(d)
	if i >= len(h.counts) {
		h.counts = append(h.counts, make([]uint64, i+1-len(h.counts))...)
	}
	h.counts[i]++
	h.n++
	h.sum += d
	h.max = max(h.max, d)
}

func (h *histogram) merge(o *histogram) {
	if len(o.counts) > len(h.counts) {
		h.counts = append(h.counts, make([]uint64, len(o.counts)-len(h.counts))...)
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// percentile returns the nearest-rank p-th percentile (0 < p ≤ 100): the
// smallest recorded value with at least p% of the values at or below it.
func (h *histogram) percentile(p float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(p / 100 * float64(h.n))
	if float64(rank) < p/100*float64(h.n) {
		rank++ // ceiling
	}
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(bucketMid(i), h.max)
		}
	}
	return h.max
}

// latency is a latency summary in milliseconds.
type latency struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

func (h *histogram) summary() latency {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	l := latency{Count: int64(h.n), P50: ms(h.percentile(50)), P90: ms(h.percentile(90)),
		P99: ms(h.percentile(99)), Max: ms(h.max)}
	if h.n > 0 {
		l.Mean = ms(h.sum / time.Duration(h.n))
	}
	return l
}

// report is the outcome of a run; -json prints it as is.
type report struct {
	URL         string  `json:"url"`
	RunID       string  `json:"run_id"`
	Connections int     `json:"connections"`
	Batch       int     `json:"batch"`
	Gzip        bool    `json:"gzip"`
	EventSize   int     `json:"event_size"`  // requested mean bytes per event (-size)
	TargetRate  float64 `json:"target_rate"` // events/s, 0: as fast as possible

	BodyMode       string  `json:"body_mode"` // unique, or patched: templates reused with new ids
	BodyBytes      int64   `json:"body_bytes_held"`
	EventBytes     float64 `json:"event_bytes_mean"` // actual mean bytes per event, uncompressed
	PrepareSeconds float64 `json:"prepare_seconds"`

	Stopped     string `json:"stopped"` // completed, duration, interrupted or aborted
	AbortReason string `json:"abort_reason,omitempty"`

	EventsRequested int64            `json:"events_requested"`
	EventsSent      int64            `json:"events_sent"` // events of the batches sent at least once
	Accepted        int64            `json:"accepted"`
	Duplicates      int64            `json:"duplicates"`
	Requests        int64            `json:"requests"` // batches acknowledged with 200
	Attempts        int64            `json:"attempts"` // HTTP requests made, retries included
	Errors          int64            `json:"errors"`   // batches given up: error status or transport error
	ErrorsByStatus  map[string]int64 `json:"errors_by_status"`
	SampleError     string           `json:"sample_error,omitempty"` // the text of one error
	Retries         int64            `json:"retries"`
	RetriesByStatus map[string]int64 `json:"retries_by_status"`
	RetryWait       float64          `json:"retry_wait_seconds"` // sum over workers
	AckMismatches   int64            `json:"ack_mismatches"`     // 200s whose accepted+duplicates ≠ batch size
	Unfinished      int64            `json:"unfinished"`         // batches cut off by the end of the run, sent or not

	WallSeconds       float64 `json:"wall_seconds"`
	CPUSeconds        float64 `json:"cpu_seconds,omitempty"` // the load generator's own, during the timed loop
	AcceptedPerSecond float64 `json:"accepted_per_second"`
	MBPerSecond       float64 `json:"mb_per_second"`      // acknowledged NDJSON, uncompressed, 1 MB = 10^6 bytes
	WireMBPerSecond   float64 `json:"wire_mb_per_second"` // request bodies as sent, retries included

	Latency             latency  `json:"ack_latency_ms"`                         // per acknowledged request, send to answer
	LatencyFromSchedule *latency `json:"ack_latency_from_schedule_ms,omitempty"` // with -rate: from the planned send time
}

// printText writes the report for people.
func (r *report) printText(w io.Writer) {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	gz := "off"
	if r.Gzip {
		gz = "on"
	}
	rate := "as fast as possible"
	if r.TargetRate > 0 {
		rate = fmt.Sprintf("paced at %.0f events/s", r.TargetRate)
	}
	p("target:       %s (%d connections, batches of %d, gzip %s, %s)", r.URL, r.Connections, r.Batch, gz, rate)
	p("bodies:       %s, %.1f MB held, %.0f bytes per event, prepared in %.1fs (run id %s)",
		r.BodyMode, float64(r.BodyBytes)/1e6, r.EventBytes, r.PrepareSeconds, r.RunID)
	stopped := r.Stopped
	if r.AbortReason != "" {
		stopped += ": " + r.AbortReason
	}
	p("stopped:      %s", stopped)
	p("events sent:  %d of %d", r.EventsSent, r.EventsRequested)
	p("accepted:     %d", r.Accepted)
	p("duplicates:   %d", r.Duplicates)
	p("errors:       %d%s", r.Errors, byStatus(r.ErrorsByStatus))
	if r.SampleError != "" {
		p("  e.g.        %s", r.SampleError)
	}
	p("retries:      %d%s, %.1fs waited", r.Retries, byStatus(r.RetriesByStatus), r.RetryWait)
	if r.AckMismatches > 0 || r.Unfinished > 0 {
		p("incomplete:   %d acks not matching their batch, %d batches cut off", r.AckMismatches, r.Unfinished)
	}
	p("requests:     %d acknowledged, %d attempts", r.Requests, r.Attempts)
	if r.CPUSeconds > 0 {
		p("wall time:    %.3fs (the load generator used %.1fs of CPU)", r.WallSeconds, r.CPUSeconds)
	} else {
		p("wall time:    %.3fs", r.WallSeconds)
	}
	p("throughput:   %.0f accepted events/s, %.2f MB/s (uncompressed), %.2f MB/s on the wire",
		r.AcceptedPerSecond, r.MBPerSecond, r.WireMBPerSecond)
	l := r.Latency
	p("ack latency:  p50 %.2fms  p90 %.2fms  p99 %.2fms  max %.2fms  (%d requests)", l.P50, l.P90, l.P99, l.Max, l.Count)
	if s := r.LatencyFromSchedule; s != nil {
		p("from plan:    p50 %.2fms  p90 %.2fms  p99 %.2fms  max %.2fms", s.P50, s.P90, s.P99, s.Max)
	}
	io.WriteString(w, b.String())
}

func byStatus(m map[string]int64) string {
	if len(m) == 0 {
		return ""
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
