package shipper

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The workers. Each loops: take a job under the mutex, do it without the
// mutex, record the outcome under the mutex. A job is one of:
//
//   - post: send a memory batch to Vigil (healthy mode);
//   - spill: write a memory batch to the spool (spool mode);
//   - replay: read the next batch from the spool and send it (one at a time,
//     so the spool is replayed in order).
//
// Spool mode is on while there is a spool and Vigil is failing, or the spool
// holds events not yet acknowledged, or a spill is under way: new events
// then go behind the spooled ones, so nothing overtakes the spool.

type jobKind int

const (
	jobNone jobKind = iota
	jobPost
	jobSpill
	jobReplay
)

type worker struct {
	zw    *gzip.Writer
	zbuf  bytes.Buffer
	rbuf  bytes.Buffer
	timer *time.Timer
}

func (s *Shipper) work() {
	defer s.wg.Done()
	w := &worker{timer: time.NewTimer(time.Hour)}
	w.timer.Stop()
	w.zw, _ = gzip.NewWriterLevel(&w.zbuf, gzip.BestSpeed)
	for {
		kind, b, wait, ok := s.take()
		if !ok {
			return
		}
		switch kind {
		case jobNone:
			s.sleep(w, wait)
		case jobPost:
			s.postMemory(w, b)
		case jobSpill:
			s.spill(b)
		case jobReplay:
			s.replay(w)
		}
	}
}

// sleep waits for a wake-up, the stop, or wait (when not negative).
func (s *Shipper) sleep(w *worker, wait time.Duration) {
	if wait < 0 {
		select {
		case <-s.wake:
		case <-s.stopCh:
		}
		return
	}
	w.timer.Reset(wait)
	select {
	case <-s.wake:
	case <-s.stopCh:
	case <-w.timer.C:
	}
	w.timer.Stop()
}

// take chooses the next job, or how long to sleep; false means exit.
func (s *Shipper) take() (jobKind, *batch, time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.halted {
		return jobNone, nil, 0, false
	}
	now := time.Now()
	wait := time.Duration(-1)
	sp := s.spool
	spoolOK := sp != nil && !now.Before(s.spoolErrUntil)
	if sp != nil && !spoolOK {
		wait = minWait(wait, s.spoolErrUntil.Sub(now))
	}
	spoolMode := spoolOK && (s.failing || s.stopping || s.spilling > 0 || sp.pending.Load() > 0)
	if spoolMode && !s.spoolFull {
		if b := s.popLocked(now, &wait); b != nil {
			s.spilling++
			return jobSpill, b, 0, true
		}
	}
	if s.stopping {
		return jobNone, nil, 0, false
	}
	gate := true
	if s.failing {
		if s.probing {
			gate = false
		} else if now.Before(s.notBefore) {
			gate = false
			wait = minWait(wait, s.notBefore.Sub(now))
		}
	}
	if !gate {
		return jobNone, nil, wait, true
	}
	if spoolMode {
		if !s.replaying && sp.unread.Load() > 0 {
			s.replaying = true
			s.probing = s.failing
			return jobReplay, nil, 0, true
		}
		return jobNone, nil, wait, true
	}
	if s.posting < s.cfg.Concurrency {
		if b := s.popLocked(now, &wait); b != nil {
			s.posting++
			s.probing = s.failing
			return jobPost, b, 0, true
		}
	}
	return jobNone, nil, wait, true
}

// Outcomes of one request.

type outKind int

const (
	outOK       outKind = iota
	outBadLines         // 400: drop the named lines, send the rest
	outTooLarge         // 413: send smaller batches
	outAgain            // send again at once (gzip was turned off)
	outFail             // Vigil unreachable or refusing: back off, spool
)

type badLine struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

type outcome struct {
	kind       outKind
	err        string
	retryAfter time.Duration
	lines      []badLine
	dup        int
}

// post sends b once and classifies the answer.
func (s *Shipper) post(w *worker, b *batch) outcome {
	body := b.buf
	gz := !s.gzipOff.Load()
	if gz {
		w.zbuf.Reset()
		w.zw.Reset(&w.zbuf)
		w.zw.Write(body)
		w.zw.Close()
		body = w.zbuf.Bytes()
	}
	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return outcome{kind: outFail, err: "build request: " + err.Error()}
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	if gz {
		req.Header.Set("Content-Encoding", "gzip")
	}
	req.Header.Set("Authorization", s.auth)
	resp, err := s.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL
		}
		return outcome{kind: outFail, err: "POST /api/v1/events: " + err.Error()}
	}
	w.rbuf.Reset()
	_, rerr := w.rbuf.ReadFrom(io.LimitReader(resp.Body, 1<<20))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	var ans struct {
		Duplicates int       `json:"duplicates"`
		Error      string    `json:"error"`
		Lines      []badLine `json:"lines"`
	}
	json.Unmarshal(w.rbuf.Bytes(), &ans)
	msg := ans.Error
	if msg == "" {
		msg = strings.TrimSpace(w.rbuf.String())
	}
	msg = fmt.Sprintf("Vigil answered %d: %s", resp.StatusCode, truncate(msg, 300))
	switch resp.StatusCode {
	case http.StatusOK:
		if rerr != nil {
			// Stored, probably; sending again is harmless.
			return outcome{kind: outFail, err: "read answer: " + rerr.Error()}
		}
		return outcome{kind: outOK, dup: ans.Duplicates}
	case http.StatusBadRequest:
		if gz && len(ans.Lines) == 0 && strings.Contains(ans.Error, "gzip") {
			s.turnOffGzip(msg)
			return outcome{kind: outAgain}
		}
		return outcome{kind: outBadLines, err: msg, lines: ans.Lines}
	case http.StatusRequestEntityTooLarge:
		return outcome{kind: outTooLarge, err: msg}
	case http.StatusUnsupportedMediaType:
		if gz {
			s.turnOffGzip(msg)
			return outcome{kind: outAgain}
		}
	}
	return outcome{kind: outFail, err: msg, retryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
}

func (s *Shipper) turnOffGzip(msg string) {
	if !s.gzipOff.Swap(true) {
		s.log.Warn("shipper: Vigil refused a gzip body; sending uncompressed from now on", "answer", msg)
	}
}

func retryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	if n, err := strconv.Atoi(h); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// postMemory delivers a memory batch; when Vigil fails, the batch goes to the
// spool, or back to the head of the queue when there is no spool.
func (s *Shipper) postMemory(w *worker, b *batch) {
	defer s.wakeAll()
	for {
		// A synchronous critical event must not wait on a Vigil that hangs:
		// if the answer is slow, a copy of the batch's critical events goes
		// to the spool (a later replay of the copy is a harmless duplicate).
		var early *time.Timer
		var earlyDone chan struct{}
		earlyOK := false
		if b.res != nil && s.spool != nil {
			earlyDone = make(chan struct{})
			early = time.AfterFunc(s.spillAfter, func() {
				defer close(earlyDone)
				earlyOK = s.spillCriticalCopy(b)
			})
		}
		out := s.post(w, b)
		if early != nil && !early.Stop() {
			<-earlyDone
		}
		if earlyOK && out.kind == outFail {
			// The critical events are in the spool already.
			b.keep(func(i int) bool { return !b.crit[i] })
		}
		switch out.kind {
		case outAgain:
			continue
		case outBadLines:
			if s.rejectLines(b, out) > 0 && b.n() > 0 {
				continue
			}
			s.mu.Lock()
			s.posting--
			s.reachedLocked(b.n(), 0)
			s.doneMemLocked(b)
			s.mu.Unlock()
			return
		case outOK:
			s.mu.Lock()
			s.posting--
			s.reachedLocked(b.n(), out.dup)
			s.doneMemLocked(b)
			s.mu.Unlock()
			return
		case outTooLarge:
			s.mu.Lock()
			s.posting--
			s.reachedLocked(0, 0)
			s.learnLimitsLocked(b, out)
			if b.n() == 1 {
				s.rejectOneLocked(b, out)
				s.doneMemLocked(b)
			} else {
				s.splitLocked(b)
			}
			s.mu.Unlock()
			return
		case outFail:
			s.mu.Lock()
			s.posting--
			s.failedLocked(out)
			toSpool := s.spool != nil && !time.Now().Before(s.spoolErrUntil)
			if toSpool {
				s.spilling++
			} else {
				s.requeueLocked(b)
			}
			s.mu.Unlock()
			if toSpool {
				s.spill(b)
			}
			return
		}
	}
}

// spill writes a memory batch to the spool. Best-effort events that do not
// fit under 90 % of the bound are dropped; what does not fit at all goes
// back to the head of the queue until a replay frees room.
func (s *Shipper) spill(b *batch) {
	consumed, written, dropped, err := s.spool.appendBatch(b, s.beSpool)
	b.dropPrefix(consumed)
	s.mu.Lock()
	s.spilling--
	s.st.Spooled += uint64(written)
	if dropped > 0 {
		s.droppedLocked(dropped)
	}
	if err != nil {
		s.errorLocked("spool: " + err.Error())
		s.spoolErrUntil = time.Now().Add(max(s.cfg.MinBackoff, time.Second))
		s.log.Error("shipper: cannot write the spool; keeping events in memory", "err", err)
	}
	if b.n() == 0 {
		s.doneMemLocked(b)
	} else {
		if err == nil {
			s.spoolFull = true
		}
		s.requeueLocked(b)
	}
	s.mu.Unlock()
	s.wakeAll()
}

// spillCriticalCopy writes the critical events of b, whose request is slow,
// to the spool and, once they are all fsynced there, releases their
// synchronous Sends. b is being posted: it is only read here.
func (s *Shipper) spillCriticalCopy(b *batch) bool {
	cp := &batch{}
	for i := range b.n() {
		if b.crit[i] {
			cp.add(b.line(i), true, b.idx[i])
		}
	}
	s.mu.Lock()
	if s.stopping || cp.n() == 0 {
		s.mu.Unlock()
		return false
	}
	s.spilling++
	s.mu.Unlock()
	consumed, written, _, err := s.spool.appendBatch(cp, s.beSpool)
	ok := err == nil && consumed == cp.n()
	s.mu.Lock()
	s.spilling--
	s.st.Spooled += uint64(written)
	if ok && b.res != nil {
		b.res.finishLocked()
	}
	s.mu.Unlock()
	if ok {
		s.log.Warn("shipper: Vigil is slow to answer; critical events of the pending request spooled", "events", written)
	}
	s.wakeAll()
	return ok
}

// replay sends the next batch of the spool.
func (s *Shipper) replay(w *worker) {
	defer s.wakeAll()
	s.mu.Lock()
	b := s.newBatchLocked()
	maxEv, maxBy := s.limEvents, s.limBytes
	s.mu.Unlock()

	if err := s.spool.readBatch(b, maxEv, maxBy); err != nil || b.n() == 0 {
		s.mu.Lock()
		s.replaying, s.probing = false, false
		if err != nil && !errors.Is(err, errSpoolClosed) {
			s.errorLocked("spool: " + err.Error())
			s.spoolErrUntil = time.Now().Add(max(s.cfg.MinBackoff, time.Second))
			s.log.Error("shipper: cannot read the spool", "err", err)
		}
		s.recycleLocked(b)
		s.mu.Unlock()
		return
	}
	dup := 0
	for b.n() > 0 {
		out := s.post(w, b)
		switch out.kind {
		case outAgain:
			continue
		case outOK:
			dup = out.dup
		case outBadLines:
			s.rejectLines(b, out)
			continue
		case outTooLarge:
			if b.n() == 1 {
				s.mu.Lock()
				s.rejectOneLocked(b, out)
				s.mu.Unlock()
				b.keep(func(int) bool { return false })
				break
			}
			s.spool.rewind()
			s.mu.Lock()
			s.replaying = false
			s.reachedLocked(0, 0)
			s.learnLimitsLocked(b, out)
			s.recycleLocked(b)
			s.mu.Unlock()
			return
		case outFail:
			s.spool.rewind()
			s.mu.Lock()
			s.replaying = false
			s.failedLocked(out)
			s.recycleLocked(b)
			s.mu.Unlock()
			return
		}
		break
	}
	err := s.spool.commit(b)
	s.mu.Lock()
	s.replaying = false
	s.spoolFull = false
	s.reachedLocked(b.n(), dup)
	if err != nil && !errors.Is(err, errSpoolClosed) {
		s.errorLocked("spool: " + err.Error())
		s.log.Error("shipper: cannot record spool progress", "err", err)
	}
	s.recycleLocked(b)
	s.broadcastLocked()
	s.mu.Unlock()
}

// rejectLines drops the lines of b that Vigil named bad (400) and returns
// how many it dropped; 0 means the answer named no line of b, and then the
// whole batch is refused and b emptied.
func (s *Shipper) rejectLines(b *batch, out outcome) int {
	bad := make(map[int]string, len(out.lines))
	for _, l := range out.lines {
		if l.Line >= 1 && l.Line <= b.n() {
			bad[l.Line-1] = l.Error
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reachedLocked(0, 0)
	if len(bad) == 0 {
		s.log.Error("shipper: Vigil refused a whole batch as invalid; dropping it", "events", b.n(), "answer", out.err)
		s.errorLocked(out.err)
		for i := range b.n() {
			s.rejectLocked(b, i)
		}
		b.keep(func(int) bool { return false })
		s.rechargeMemLocked(b)
		return 0
	}
	for i, msg := range bad {
		s.log.Warn("shipper: Vigil refused an event as invalid; dropping it",
			"event_id", eventID(b.line(i)), "critical", b.crit[i], "error", truncate(msg, 300))
		s.rejectLocked(b, i)
	}
	s.errorLocked(out.err)
	b.keep(func(i int) bool { _, isBad := bad[i]; return !isBad })
	s.rechargeMemLocked(b)
	return len(bad)
}

func (s *Shipper) rejectLocked(b *batch, i int) {
	s.st.Rejected++
	if b.crit[i] && b.res != nil {
		b.res.rejected = append(b.res.rejected, b.idx[i])
	}
}

func (s *Shipper) rejectOneLocked(b *batch, out outcome) {
	s.log.Warn("shipper: Vigil refused a single event as too large; dropping it",
		"event_id", eventID(b.line(0)), "bytes", len(b.buf)-1, "answer", out.err)
	s.errorLocked(out.err)
	s.rejectLocked(b, 0)
}

// rechargeMemLocked updates the memory accounting of a memory batch held by a
// worker (spool batches hold no charge).
func (s *Shipper) rechargeMemLocked(b *batch) {
	if b.chEv > 0 || b.chBy > 0 {
		s.rechargeLocked(b)
	}
}

// learnLimitsLocked halves the batch bounds after a 413, so later batches
// and replays fit what this Vigil accepts.
func (s *Shipper) learnLimitsLocked(b *batch, out outcome) {
	ev, by := s.limEvents, s.limBytes
	if b.n() > 1 {
		s.limEvents = max(1, min(s.limEvents, b.n()/2))
		s.limBytes = max(1024, min(s.limBytes, len(b.buf)/2))
	}
	if ev != s.limEvents || by != s.limBytes {
		s.log.Warn("shipper: Vigil refused a batch as too large; sending smaller batches",
			"events", b.n(), "bytes", len(b.buf), "batch_events", s.limEvents, "batch_bytes", s.limBytes, "answer", out.err)
	}
}

// splitLocked replaces a memory batch by its two halves, at the head of the
// queue.
func (s *Shipper) splitLocked(b *batch) {
	k := b.n() / 2
	h1, h2 := s.newBatchLocked(), s.newBatchLocked()
	h1.copyRange(b, 0, k)
	h2.copyRange(b, k, b.n())
	for _, h := range []*batch{h1, h2} {
		h.first, h.born, h.urgent, h.res = b.first, b.born, b.urgent, b.res
	}
	if b.res != nil {
		b.res.pending++ // b's share goes to h1, h2 adds one
		b.res = nil
	}
	s.removeInflightLocked(b)
	b.buf, b.ends = b.buf[:0], b.ends[:0]
	s.rechargeLocked(b)
	s.recycleLocked(b)
	s.inflight = append(s.inflight, h1, h2)
	s.requeueLocked(h1, h2)
}

// reachedLocked records an answer from Vigil other than a failure: n events
// acknowledged, dup of them already stored.
func (s *Shipper) reachedLocked(n, dup int) {
	s.st.Sent += uint64(n)
	s.st.Duplicates += uint64(dup)
	recovered := s.failing
	if s.failing {
		s.failing = false
		s.log.Info("shipper: Vigil reachable again", "down_for", time.Since(s.failSince).Round(time.Millisecond),
			"dropped_so_far", s.st.Dropped, "spooled_so_far", s.st.Spooled)
	}
	s.probing = false
	s.backoff = 0
	if s.unreported > 0 && (recovered || s.lastReport.IsZero() || time.Since(s.lastReport) >= reportEvery) {
		s.queueReportLocked()
	}
}

// failedLocked records a failed attempt and sets when to try again.
func (s *Shipper) failedLocked(out outcome) {
	if s.stopping {
		return // aborted by Close
	}
	now := time.Now()
	s.st.Retries++
	s.errorLocked(out.err)
	if !s.failing {
		s.failing = true
		s.failSince = now
		where := "retrying from memory"
		if s.spool != nil {
			where = "spooling to " + s.cfg.SpoolDir
		}
		s.log.Warn("shipper: cannot deliver to Vigil; "+where, "err", out.err)
	}
	s.probing = false
	var delay time.Duration
	if ra := out.retryAfter; ra > 0 {
		ra = min(ra, s.cfg.MaxBackoff)
		delay = ra + rand.N(ra/5+1)
	} else {
		if s.backoff == 0 {
			s.backoff = s.cfg.MinBackoff
		} else {
			s.backoff = min(2*s.backoff, s.cfg.MaxBackoff)
		}
		delay = s.backoff/2 + rand.N(s.backoff/2+1)
	}
	s.notBefore = now.Add(delay)
}

// eventID finds "event.id" in an event for logs, which never show bodies.
func eventID(line []byte) string {
	const key = `"event.id":"`
	i := bytes.Index(line, []byte(key))
	if i < 0 {
		return ""
	}
	rest := line[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 || j > 128 {
		return ""
	}
	return string(rest[:j])
}
