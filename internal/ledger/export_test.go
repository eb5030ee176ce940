package ledger

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// exportOf returns an export of a ledger of n events (checkpoints at each
// of sizes and at n), the range given, and the public key.
func exportOf(t *testing.T, n int, req ExportRange, sizes ...int) ([]byte, note.Verifier, *Ledger) {
	t.Helper()
	dir := t.TempDir()
	st := openStore(t, dir)
	t.Cleanup(func() { st.Close() })
	c := newClock()
	l := openLedger(t, dir, st, Options{Now: c.Now, Origin: "vigil.test/log"})
	done := 0
	for _, s := range append(sizes, n) {
		if s > n {
			continue
		}
		appendEvents(t, st, done, s)
		done = s
		c.Add(time.Second)
		if _, err := l.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := l.WriteExport(context.Background(), &buf, req); err != nil {
		t.Fatal(err)
	}
	v, _ := ParsePublicKey(l.PublicKey())
	return buf.Bytes(), v, l
}

// lines splits an export into its lines, each with its newline.
func lines(b []byte) []string {
	ls := strings.SplitAfter(string(b), "\n")
	return ls[:len(ls)-1]
}

// forge changes the user name in an event's JSON.
func forge(s string) string {
	return strings.Replace(s, `"user":{"name":"`, `"user":{"name":"eve-`, 1)
}

func TestExportVerifies(t *testing.T) {
	_, v, l := exportOf(t, 100, ExportRange{}, 50)
	_, v1, l1 := exportOf(t, 1, ExportRange{})
	for _, tc := range []struct {
		l        *Ledger
		v        note.Verifier
		req      ExportRange
		from, to uint64
	}{
		{l1, v1, ExportRange{}, 1, 1},
		{l, v, ExportRange{}, 1, 100},
		{l, v, ExportRange{FromSeq: 37}, 37, 100},
		{l, v, ExportRange{FromSeq: 37, ToSeq: 64}, 37, 64},
		{l, v, ExportRange{ToSeq: 1}, 1, 1},
		{l, v, ExportRange{FromSeq: 100, ToSeq: 100}, 100, 100},
		{l, v, ExportRange{Size: 50}, 1, 50},
		{l, v, ExportRange{FromSeq: 20, ToSeq: 30, Size: 50}, 20, 30},
		// Times: event seq has @timestamp t0 + (seq-1) s.
		{l, v, ExportRange{From: t0.Add(10 * time.Second), To: t0.Add(20 * time.Second)}, 11, 20},
		{l, v, ExportRange{From: t0.Add(95 * time.Second)}, 96, 100},
	} {
		t.Run(fmt.Sprintf("events %d..%d", tc.from, tc.to), func(t *testing.T) {
			var exp bytes.Buffer
			if err := tc.l.WriteExport(context.Background(), &exp, tc.req); err != nil {
				t.Fatal(err)
			}
			var calls int
			rep, err := VerifyExport(context.Background(), bytes.NewReader(exp.Bytes()), tc.v, VerifyOptions{Progress: func(d, tot uint64) { calls++ }})
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK() || rep.FromSeq != tc.from || rep.ToSeq != tc.to || rep.Events != tc.to-tc.from+1 {
				t.Fatalf("report %+v, want OK for %d..%d", rep, tc.from, tc.to)
			}
			if calls == 0 {
				t.Error("no progress")
			}
			// Compressed, the same file verifies.
			var z bytes.Buffer
			zw := gzip.NewWriter(&z)
			zw.Write(exp.Bytes())
			zw.Close()
			rep, err = VerifyExport(context.Background(), &z, tc.v, VerifyOptions{})
			if err != nil || !rep.OK() {
				t.Fatalf("gzip: %v %+v", err, rep)
			}
		})
	}
}

func TestExportRefusesRanges(t *testing.T) {
	_, _, l := exportOf(t, 10, ExportRange{})
	for _, req := range []ExportRange{
		{FromSeq: 11},
		{ToSeq: 11},
		{FromSeq: 5, ToSeq: 4},
		{Size: 7}, // no checkpoint of that size
		{From: t0.Add(time.Hour)},
	} {
		if err := l.WriteExport(context.Background(), &bytes.Buffer{}, req); !errors.Is(err, ErrOutOfRange) {
			t.Errorf("%+v: %v, want out of range", req, err)
		}
	}
}

// TestExportTampering alters an export of events 1..100 (checkpoints at 50
// and 100) and checks what VerifyExport names.
func TestExportTampering(t *testing.T) {
	exp, v, _ := exportOf(t, 100, ExportRange{FromSeq: 11, ToSeq: 90}, 50)
	ls := lines(exp) // ls[0] is the header, ls[i] event 10+i
	ev := func(seq int) int { return seq - 10 }
	other, _ := parseSignerKey(otherSignerKey)
	cases := []struct {
		name       string
		edit       func(ls []string) []string
		wantSeq    uint64
		wantReason Reason
		wantDetail string
	}{
		{"one field changed", func(ls []string) []string {
			ls[ev(42)] = forge(ls[ev(42)])
			return ls
		}, 42, Changed, "differs from the leaf recorded"},
		{"line removed", func(ls []string) []string {
			return append(ls[:ev(42)], ls[ev(42)+1:]...)
		}, 42, Missing, "no line for it"},
		{"events swapped", func(ls []string) []string {
			a, b := eventField(ls[ev(20)]), eventField(ls[ev(70)])
			ls[ev(20)] = strings.Replace(ls[ev(20)], a, b, 1)
			ls[ev(70)] = strings.Replace(ls[ev(70)], b, a, 1)
			return ls
		}, 20, Reordered, "recorded at sequence 70"},
		{"lines swapped", func(ls []string) []string {
			ls[ev(20)], ls[ev(21)] = ls[ev(21)], ls[ev(20)]
			return ls
		}, 20, Missing, "line 11 holds event 21"},
		{"cut short", func(ls []string) []string { return ls[:ev(80)] }, 80, Missing, "ends after event 79"},
		{"extra line", func(ls []string) []string { return append(ls, ls[len(ls)-1]) }, 90, Malformed, "ends at event 90"},
		{"garbled line", func(ls []string) []string { ls[ev(33)] = "{\"seq\":33,\n"; return ls }, 33, Malformed, "line 24"},
		{"leaf hashes recomputed for a changed event", func(ls []string) []string {
			var line ExportLine
			json.Unmarshal([]byte(ls[ev(42)]), &line)
			forged := forge(string(line.Event))
			ls[ev(42)] = string(appendExportLine(nil, 42, recordHash(forged), []byte(forged)))
			return ls
		}, 11, Rewritten, "events 11..90"},
		{"re-signed by another key", func(ls []string) []string {
			var h ExportHeader
			json.Unmarshal([]byte(ls[0]), &h)
			cp, _ := ParseCheckpointText(h.Checkpoint[:strings.Index(h.Checkpoint, "\n\n")+1])
			forged, _ := signCheckpoint(other, cp.Size, cp.Hash, cp.Time)
			h.Checkpoint = forged.Note
			b, _ := json.Marshal(h)
			ls[0] = string(b) + "\n"
			return ls
		}, 0, SignatureInvalid, "signed only by other keys"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			edited := strings.Join(tc.edit(append([]string(nil), ls...)), "")
			rep, err := VerifyExport(context.Background(), strings.NewReader(edited), v, VerifyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%v", rep.Problems)
			p, ok := rep.FirstBad()
			if !ok {
				t.Fatalf("nothing found")
			}
			if p.Seq != tc.wantSeq || p.Reason != tc.wantReason || !strings.Contains(p.Detail, tc.wantDetail) {
				t.Fatalf("first bad: %v\nwant event %d: %s: …%s…", p, tc.wantSeq, tc.wantReason, tc.wantDetail)
			}
		})
	}

	// Only a recorded leaf altered: the events are authentic.
	alt := append([]string(nil), ls...)
	line, err := ParseExportLine([]byte(strings.TrimSuffix(alt[ev(42)], "\n")))
	if err != nil {
		t.Fatal(err)
	}
	line.Leaf[0] ^= 1
	alt[ev(42)] = string(appendExportLine(nil, 42, line.Leaf, line.Event))
	rep, err := VerifyExport(context.Background(), strings.NewReader(strings.Join(alt, "")), v, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || len(rep.Notes) == 0 {
		t.Fatalf("altered leaf only: %+v", rep)
	}
}

func TestVerifyExportNotAnExport(t *testing.T) {
	v, _ := ParsePublicKey(mustPub(t))
	for _, in := range []string{"", "hello\n", `{"format":"other"}` + "\n", "\x1f\x8b garbage"} {
		if _, err := VerifyExport(context.Background(), strings.NewReader(in), v, VerifyOptions{}); err == nil {
			t.Errorf("%q verified", in)
		}
	}
}

// eventField returns the "event":{…} part of an export line.
func eventField(line string) string {
	i := strings.Index(line, `"event":`)
	return strings.TrimSuffix(strings.TrimSuffix(line[i:], "\n"), "}")
}

func recordHash(s string) tlog.Hash { return tlog.RecordHash([]byte(s)) }

// TestReadExport reads an export's lines back, gzip or plain, without
// checking them, and stops at fn's error.
func TestReadExport(t *testing.T) {
	exp, _, _ := exportOf(t, 30, ExportRange{FromSeq: 5, ToSeq: 12})
	var zbuf bytes.Buffer
	zw := gzip.NewWriter(&zbuf)
	zw.Write(exp)
	zw.Close()
	for _, in := range [][]byte{exp, zbuf.Bytes()} {
		var seqs []uint64
		hdr, err := ReadExport(bytes.NewReader(in), func(l ExportLine) error {
			seqs = append(seqs, l.Seq)
			return nil
		})
		if err != nil || hdr.FromSeq != 5 || hdr.ToSeq != 12 || len(seqs) != 8 || seqs[0] != 5 || seqs[7] != 12 {
			t.Fatalf("read: %v %+v %v", err, hdr, seqs)
		}
	}
	stop := errors.New("stop")
	n := 0
	if _, err := ReadExport(bytes.NewReader(exp), func(ExportLine) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("fn's error: %v after %d lines", err, n)
	}
	if _, err := ReadExport(strings.NewReader("not an export\n"), func(ExportLine) error { return nil }); err == nil {
		t.Error("a file that is not an export was read")
	}
}
