package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// buildExport writes an export of the given events (sequence numbers 1…)
// for the range from..to, signed with signerKey, without a store.
func buildExport(t testing.TB, signerKey string, events []string, from, to int) []byte {
	t.Helper()
	k, err := parseSignerKey(signerKey)
	if err != nil {
		t.Fatal(err)
	}
	var ref memHashes
	for i, e := range events {
		hs, err := tlog.StoredHashes(int64(i), []byte(e), ref)
		if err != nil {
			t.Fatal(err)
		}
		ref = append(ref, hs...)
	}
	root, _ := tlog.TreeHash(int64(len(events)), ref)
	cp, err := signCheckpoint(k, int64(len(events)), root, t0)
	if err != nil {
		t.Fatal(err)
	}
	left, _ := readNodes(ref, rangeNodes(0, int64(from)-1))
	right, _ := readNodes(ref, rangeNodes(int64(to), int64(len(events))))
	hdr, _ := json.Marshal(ExportHeader{Format: ExportFormat, Origin: cp.Origin, KeyName: KeyID(k.verifier), Checkpoint: cp.Note,
		TreeSize: cp.Size, FromSeq: uint64(from), ToSeq: uint64(to), Left: left, Right: right, Created: t0})
	out := append(hdr, '\n')
	for seq := from; seq <= to; seq++ {
		out = appendExportLine(out, uint64(seq), tlog.RecordHash([]byte(events[seq-1])), []byte(events[seq-1]))
	}
	return out
}

func fuzzVerifier(t testing.TB) note.Verifier {
	k, err := parseSignerKey(testSignerKey)
	if err != nil {
		t.Fatal(err)
	}
	return k.verifier
}

func TestBuildExportVerifies(t *testing.T) {
	evs := []string{`{"a":1}`, `{"a":2}`, "not json\n", `{"a":4}`, `{"a":5}`}
	for _, r := range [][2]int{{1, 5}, {2, 4}, {3, 3}} {
		rep, err := VerifyExport(context.Background(), bytes.NewReader(buildExport(t, testSignerKey, evs, r[0], r[1])), fuzzVerifier(t), VerifyOptions{})
		if err != nil || !rep.OK() {
			t.Fatalf("%v: %v %+v", r, err, rep)
		}
	}
}

func FuzzOpenCheckpoint(f *testing.F) {
	k, _ := parseSignerKey(testSignerKey)
	other, _ := parseSignerKey(otherSignerKey)
	h := tlog.RecordHash([]byte("x"))
	for _, key := range []*key{k, other} {
		cp, _ := signCheckpoint(key, 42, h, t0)
		f.Add([]byte(cp.Note))
	}
	cp, _ := signCheckpoint(k, 0, h, t0)
	f.Add([]byte(cp.Note))
	f.Add([]byte(strings.Replace(cp.Note, "\n0\n", "\n00\n", 1)))
	f.Add([]byte(strings.Replace(cp.Note, "time ", "time x", 1)))
	f.Add([]byte("vigil.test/log\n1\nAAAA\n\n— vigil.test/log AAAAAAA=\n"))
	v := k.verifier
	f.Fuzz(func(t *testing.T, msg []byte) {
		cp, err := OpenCheckpoint(msg, v)
		if err != nil {
			return
		}
		if cp.Size < 0 || cp.Size > MaxTreeSize || cp.Origin != v.Name() || cp.Note != string(msg) {
			t.Fatalf("accepted %+v", cp)
		}
	})
}

func FuzzParseCheckpointText(f *testing.F) {
	f.Add("vigil.test/log\n42\n" + tlog.RecordHash(nil).String() + "\ntime 2026-11-23T10:00:00Z\n")
	f.Add("o\n0\n" + tlog.RecordHash(nil).String() + "\n")
	f.Add("o\n-1\nAAAA\n")
	f.Add("o\n18446744073709551616\n" + tlog.RecordHash(nil).String() + "\nx\n\n")
	f.Fuzz(func(t *testing.T, text string) {
		cp, err := ParseCheckpointText(text)
		if err != nil {
			return
		}
		again, err := ParseCheckpointText(checkpointText(cp.Origin, cp.Size, cp.Hash, cp.Time))
		if err != nil || again.Size != cp.Size || again.Hash != cp.Hash || again.Origin != cp.Origin {
			t.Fatalf("%q: reformatted: %+v, %v", text, again, err)
		}
	})
}

func FuzzParseExportLine(f *testing.F) {
	h := tlog.RecordHash([]byte(`{"a":1}`))
	f.Add(appendExportLine(nil, 1, h, []byte(`{"a":1}`)))
	f.Add(appendExportLine(nil, 7, h, []byte("two\nlines")))
	f.Add([]byte(`{"seq":1,"leaf":"` + h.String() + `","event":null}`))
	f.Add([]byte(`{"seq":1,"leaf":"` + h.String() + `","event":{},"canonical_b64":"e30="}`))
	f.Add([]byte(`{"seq":0}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		l, err := ParseExportLine(line)
		if err != nil {
			return
		}
		b := l.Bytes()
		out := appendExportLine(nil, l.Seq, l.Leaf, b)
		again, err := ParseExportLine(bytes.TrimSuffix(out, []byte("\n")))
		if err != nil || again.Seq != l.Seq || again.Leaf != l.Leaf || !bytes.Equal(again.Bytes(), b) {
			t.Fatalf("%q: round trip %q: %+v %v", line, out, again, err)
		}
	})
}

func FuzzParseExportHeader(f *testing.F) {
	exp := buildExport(f, testSignerKey, []string{`{"a":1}`, `{"a":2}`, `{"a":3}`}, 2, 2)
	f.Add(exp[:bytes.IndexByte(exp, '\n')])
	f.Add([]byte(`{"format":"vigil-ledger-export/1","tree_size":1,"from_seq":1,"to_seq":1,"left":[],"right":[]}`))
	f.Add([]byte(`{"format":"vigil-ledger-export/1","tree_size":9007199254740992,"from_seq":1,"to_seq":9007199254740992}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		h, err := ParseExportHeader(line)
		if err != nil {
			return
		}
		if h.FromSeq < 1 || h.FromSeq > h.ToSeq || h.ToSeq > uint64(h.TreeSize) {
			t.Fatalf("accepted range %d..%d of %d", h.FromSeq, h.ToSeq, h.TreeSize)
		}
		if _, err := newFrontier(int64(h.FromSeq)-1, h.Left); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzVerifyExport feeds whole files: never a panic, never OK for a file
// that differs from a genuine export in its events.
func FuzzVerifyExport(f *testing.F) {
	evs := []string{`{"a":1}`, `{"a":2}`, `{"a":3}`, `{"a":4}`, `{"a":5}`}
	genuine := buildExport(f, testSignerKey, evs, 2, 4)
	f.Add(genuine)
	f.Add(buildExport(f, testSignerKey, evs, 1, 5))
	f.Add(buildExport(f, otherSignerKey, evs, 1, 5))
	f.Add(bytes.Replace(genuine, []byte(`{"a":3}`), []byte(`{"a":9}`), 1))
	f.Add(genuine[:len(genuine)-5])
	v := fuzzVerifier(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := VerifyExport(context.Background(), bytes.NewReader(data), v, VerifyOptions{})
		if err != nil || !rep.OK() {
			return
		}
		// An export that verifies holds exactly the genuine events of its range.
		lr, _, _ := newExportReader(bytes.NewReader(data))
		lr.next(MaxExportHeader)
		for {
			line, err := lr.next(MaxExportLine)
			if err != nil {
				break
			}
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			l, err := ParseExportLine(line)
			if err != nil {
				t.Fatalf("verified with a bad line: %v", err)
			}
			if string(l.Bytes()) != evs[l.Seq-1] {
				t.Fatalf("verified a forged event %d: %q", l.Seq, l.Bytes())
			}
		}
	})
}

func FuzzQueries(f *testing.F) {
	for _, q := range []string{"seq=5&size=10", "seq=0", "old=3&new=9", "old=9&new=3", "from_seq=1&to_seq=2&size=3",
		"from=2026-11-23&to=1h", "before=10&limit=1000", "seq=05", "seq=9007199254740993", "seq=1&seq=2", "%zz"} {
		f.Add(q)
	}
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		if seq, size, err := ParseInclusionQuery(v); err == nil && (seq < 1 || seq > uint64(MaxTreeSize) || (size != 0 && uint64(size) < seq)) {
			t.Fatalf("inclusion %d in %d accepted", seq, size)
		}
		if o, n, err := ParseConsistencyQuery(v); err == nil && (o < 0 || n < 0 || (n != 0 && n < o) || n > MaxTreeSize) {
			t.Fatalf("consistency %d..%d accepted", o, n)
		}
		if r, err := ParseExportQuery(v, now); err == nil && r.ToSeq != 0 && r.FromSeq > r.ToSeq {
			t.Fatalf("export %+v accepted", r)
		}
		if b, l, err := ParseCheckpointsQuery(v); err == nil && (b < 0 || l < 1 || l > MaxCheckpoints) {
			t.Fatalf("checkpoints %d %d accepted", b, l)
		}
	})
}

func FuzzParseProofs(f *testing.F) {
	h := tlog.RecordHash(nil)
	b, _ := json.Marshal(ConsistencyProof{Old: 3, New: 9, OldHash: h, NewHash: h, Proof: []tlog.Hash{h, h}})
	f.Add(b)
	b, _ = json.Marshal(InclusionProof{Seq: 3, TreeSize: 9, LeafHash: h, RootHash: h, Proof: []tlog.Hash{h}})
	f.Add(b)
	f.Add([]byte(`{"old":-1,"new":2}`))
	f.Add([]byte(`{"seq":5,"tree_size":2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := ParseConsistencyProof(b); err == nil && (p.Old < 0 || p.New < p.Old || len(p.Proof) > maxProofHashes) {
			t.Fatalf("accepted %+v", p)
		}
		if p, err := ParseInclusionProof(b); err == nil && (p.Seq < 1 || p.TreeSize < int64(p.Seq) || len(p.Proof) > maxProofHashes) {
			t.Fatalf("accepted %+v", p)
		}
	})
}

func FuzzParsePublicKey(f *testing.F) {
	k, _ := parseSignerKey(testSignerKey)
	f.Add(k.public)
	f.Add("name+00000000+AQ==")
	f.Add(testSignerKey)
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParsePublicKey(s)
		if err == nil && v.Name() == "" {
			t.Fatal("a key without a name")
		}
	})
}

// FuzzRotations: rotation statements from outside (an export's header, a
// server's answer) never panic OpenRotation or NewKeys, and what they
// accept is signed by both keys it names and links to the trusted key.
func FuzzRotations(f *testing.F) {
	k, _ := parseSignerKey(testSignerKey)
	other, _ := parseSignerKey(otherSignerKey)
	third := newTestKey(f, k.signer.Name())
	r1, _ := signRotation(k, other, 10, t0)
	r2, _ := signRotation(other, third, 20, t0)
	f.Add([]byte(r1.Note), []byte(r2.Note))
	f.Add([]byte(r1.Note), []byte(strings.Replace(r2.Note, "\n20\n", "\n5\n", 1)))
	f.Add([]byte(strings.Replace(r1.Note, "time ", "time x", 1)), []byte{})
	f.Add([]byte(rotationHeader+"\nvigil.test/log\n1\n\n\ntime 2026-11-23T10:00:00Z\n\n— vigil.test/log AAAAAAA=\n"), []byte(r1.Note))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		if r, err := OpenRotation(a); err == nil {
			if r.Note != string(a) || r.Old == r.New || r.Size < 0 || r.Size > MaxTreeSize {
				t.Fatalf("accepted %+v", r)
			}
		}
		keys, err := NewKeys(k.verifier, []string{string(a), string(b)})
		if err != nil {
			return
		}
		if !keys.Rotated() || keys.keys[0].to < keys.keys[0].from {
			t.Fatalf("chain %s from two statements", keys)
		}
	})
}
