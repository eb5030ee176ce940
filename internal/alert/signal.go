package alert

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"
	"unicode/utf8"
)

// Signal is what the detection engine tells the manager: a rule's condition
// for one group key started or kept holding (Firing), or stopped holding.
// The wiring converts detection results into Signals.
type Signal struct {
	Rule     string
	Severity string
	// For is how long the condition must hold before the alert fires; while
	// it runs the alert is pending. Zero fires at once.
	For time.Duration
	// Labels identify the alert. They include "alertname", "severity",
	// "rule" and the group-by values; missing "alertname" and "rule" are set
	// to Rule, a missing "severity" to Severity.
	Labels      map[string]string
	Annotations map[string]string
	// Firing is true while the condition holds, false when it stopped.
	Firing bool
	// At is the event time of the signal (the clock's now when zero).
	At time.Time
	// Evidence lists the sequence numbers of the events behind the signal.
	Evidence []uint64
}

// Limits on one signal.
const (
	MaxLabels          = 64
	MaxAnnotations     = 32
	MaxAnnotationBytes = 16 << 10
	MaxSignalEvidence  = 100000
)

// Evidence bounds: an alert keeps the first EvidenceFirst and the latest
// EvidenceLast sequence numbers, and counts all of them.
const (
	EvidenceFirst = 10
	EvidenceLast  = 40
)

// Fingerprint returns the identity of an alert with these labels: the first
// 8 bytes, in hex, of the SHA-256 of the labels sorted by name, each written
// as name, 0xff, value, 0xff (0xff never occurs in UTF-8, so the encoding is
// unambiguous). It depends on nothing but the labels, so the same rule and
// group key always give the same fingerprint, across restarts and versions.
func Fingerprint(labels map[string]string) string {
	names := make([]string, 0, len(labels))
	for n := range labels {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		h.Write([]byte(n))
		h.Write([]byte{0xff})
		h.Write([]byte(labels[n]))
		h.Write([]byte{0xff})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// normalize checks a signal against the limits and fills the conventional
// labels. It returns the labels to use (a copy).
func (s Signal) normalize() (map[string]string, error) {
	if s.Rule == "" {
		return nil, errors.New("signal without rule")
	}
	if len(s.Labels) > MaxLabels {
		return nil, fmt.Errorf("rule %s: %d labels, more than %d", s.Rule, len(s.Labels), MaxLabels)
	}
	if len(s.Annotations) > MaxAnnotations {
		return nil, fmt.Errorf("rule %s: %d annotations, more than %d", s.Rule, len(s.Annotations), MaxAnnotations)
	}
	if len(s.Evidence) > MaxSignalEvidence {
		return nil, fmt.Errorf("rule %s: %d evidence sequence numbers, more than %d", s.Rule, len(s.Evidence), MaxSignalEvidence)
	}
	if s.For < 0 {
		return nil, fmt.Errorf("rule %s: negative for %s", s.Rule, s.For)
	}
	labels := make(map[string]string, len(s.Labels)+3)
	for n, v := range s.Labels {
		if n == "" || len(n) > MaxLabelNameLen || !utf8.ValidString(n) {
			return nil, fmt.Errorf("rule %s: bad label name %q", s.Rule, n)
		}
		if len(v) > MaxLabelValueLen || !utf8.ValidString(v) {
			return nil, fmt.Errorf("rule %s: label %s: value too long or not UTF-8", s.Rule, n)
		}
		labels[n] = v
	}
	for n, v := range s.Annotations {
		if len(n) > MaxLabelNameLen || len(v) > MaxAnnotationBytes {
			return nil, fmt.Errorf("rule %s: annotation %.40q too long", s.Rule, n)
		}
	}
	if labels["alertname"] == "" {
		labels["alertname"] = s.Rule
	}
	if labels["rule"] == "" {
		labels["rule"] = s.Rule
	}
	if labels["severity"] == "" && s.Severity != "" {
		labels["severity"] = s.Severity
	}
	return labels, nil
}

// evidence keeps a bounded sample of an alert's event sequence numbers.
// Sequence numbers grow with time, so a number not above the highest one
// already kept has been counted before and is skipped: a detection engine
// that repeats a window's evidence in every signal is not double counted.
type evidence struct {
	First []uint64 `json:"first,omitempty"`
	Last  []uint64 `json:"last,omitempty"` // ring, oldest at index Next when full
	Next  int      `json:"next,omitempty"`
	Total int      `json:"total"`
	Max   uint64   `json:"max,omitempty"`
}

func (e *evidence) add(seqs []uint64) {
	if len(seqs) == 0 {
		return
	}
	s := slices.Clone(seqs)
	slices.Sort(s)
	for _, q := range s {
		if e.Total > 0 && q <= e.Max {
			continue
		}
		e.Max = q
		e.Total++
		if len(e.First) < EvidenceFirst {
			e.First = append(e.First, q)
			continue
		}
		if len(e.Last) < EvidenceLast {
			e.Last = append(e.Last, q)
			continue
		}
		e.Last[e.Next] = q
		e.Next = (e.Next + 1) % EvidenceLast
	}
}

// seqs returns the kept sequence numbers in ascending order.
func (e *evidence) seqs() []uint64 {
	out := make([]uint64, 0, len(e.First)+len(e.Last))
	out = append(out, e.First...)
	if len(e.Last) < EvidenceLast {
		return append(out, e.Last...)
	}
	out = append(out, e.Last[e.Next:]...)
	return append(out, e.Last[:e.Next]...)
}

// valid checks a restored evidence record.
func (e *evidence) valid() error {
	if len(e.First) > EvidenceFirst || len(e.Last) > EvidenceLast || e.Next < 0 || e.Next >= EvidenceLast {
		return errors.New("evidence over its bounds")
	}
	if len(e.Last) > 0 && len(e.First) < EvidenceFirst {
		return errors.New("evidence: latest kept before first is full")
	}
	if e.Next != 0 && len(e.Last) < EvidenceLast {
		return errors.New("evidence: ring position without a full ring")
	}
	if e.Total < len(e.First)+len(e.Last) {
		return errors.New("evidence: total below the kept count")
	}
	return nil
}
