package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/vigilsec/vigil/internal/ledger"
)

// Exit codes of vigil verify and vigil witness (see docs/integrity.md).
const (
	exitTampered   = 1 // tampering found, or a witness alert
	exitUnreadable = 3 // the data, the file or the server could not be read
)

// exitCodeError is an error with its own exit code. The command runner must
// honour it: if errors.As(err, &e) for an interface{ ExitCode() int }, the
// process exits with e.ExitCode().
type exitCodeError struct {
	code int
	err  error
}

func (e exitCodeError) Error() string { return e.err.Error() }
func (e exitCodeError) Unwrap() error { return e.err }

// ExitCode is the process exit code for the error.
func (e exitCodeError) ExitCode() int { return e.code }

func unreadableErr(err error) error { return exitCodeError{exitUnreadable, err} }

// ledgerClientFlags registers the server flags of the ledger commands:
// --server (env VIGIL_URL) with --url as another name, and --token.
func ledgerClientFlags(fs *flag.FlagSet) *clientFlags {
	var cf clientFlags
	cf.register(fs)
	fs.StringVar(&cf.server, "url", cf.server, "same as --server")
	return &cf
}

// ledgerFlagGiven reports whether one of the named flags was set.
func ledgerFlagGiven(fs *flag.FlagSet, names ...string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) {
		for _, n := range names {
			if f.Name == n {
				given = true
			}
		}
	})
	return given
}

func noLedgerArgs(words []string) error {
	if len(words) > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", words[0])}
	}
	return nil
}

func loadLedgerPubkey(arg string) (note.Verifier, error) {
	if arg == "" {
		return nil, usageError{errors.New("--pubkey KEY is required: the public key as printed by 'vigil pubkey' (or a file holding it), from a copy you trust, not from the server being checked")}
	}
	v, _, err := ledger.LoadPublicKey(arg)
	if err != nil {
		return nil, usageError{err}
	}
	return v, nil
}

func runVerify(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("verify", "--pubkey KEY (--data-dir DIR | --export FILE | [--server URL])\n\n"+
		"Checks that the event log was not altered, with nothing but the public key:\n"+
		"  --data-dir DIR   a stopped server's data directory (read-only)\n"+
		"  --export FILE    an export file, offline (plain or gzip)\n"+
		"  otherwise        a running server: its latest checkpoint and an export of\n"+
		"                   the events streamed from it (needs a token)\n"+
		"It names the first bad event and what is wrong with it: changed, missing,\n"+
		"reordered, rewritten, or a checkpoint whose signature is invalid.\n\n"+
		"Exit status: 0 verified, 1 tampering found, 2 usage error, 3 could not read\n"+
		"the data, the file or the server.", stderr)
	cf := ledgerClientFlags(fs)
	dataDir := fs.String("data-dir", "", "data directory of a stopped server")
	exportFile := fs.String("export", "", "export file to verify offline")
	pubkey := fs.String("pubkey", "", "public key NAME+HASH+BASE64, or a file holding it (required)")
	fromSeq := fs.Uint64("from-seq", 0, "with a server: first event to verify (default 1)")
	toSeq := fs.Uint64("to-seq", 0, "with a server: last event to verify (default: the latest checkpoint's)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	quiet := fs.Bool("quiet", false, "no progress output")
	words, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := noLedgerArgs(words); err != nil {
		return err
	}
	if *dataDir != "" && *exportFile != "" {
		return usageError{errors.New("give --data-dir or --export, not both")}
	}
	if (*dataDir != "" || *exportFile != "") && (*fromSeq != 0 || *toSeq != 0) {
		return usageError{errors.New("--from-seq and --to-seq apply to a server; an export holds its own range")}
	}
	v, err := loadLedgerPubkey(*pubkey)
	if err != nil {
		return err
	}
	var tok string
	if *dataDir == "" && *exportFile == "" {
		if tok, err = cf.resolveToken(); err != nil {
			return err
		}
	}
	ctx, stop := signalContext()
	defer stop()
	prog := newVerifyProgress(stderr, "verifying", *quiet)
	opts := ledger.VerifyOptions{Progress: prog.update}

	var rep *ledger.Report
	var what string
	switch {
	case *dataDir != "":
		what = "data directory " + *dataDir
		rep, err = ledger.VerifyDataDir(ctx, *dataDir, v, opts)
	case *exportFile != "":
		what = "export " + *exportFile
		var f *os.File
		if f, err = os.Open(*exportFile); err == nil {
			rep, err = ledger.VerifyExport(ctx, f, v, opts)
			f.Close()
		}
	default:
		what = "server " + cf.server
		rep, err = verifyServer(ctx, ledger.NewClient(cf.server, tok), v, *fromSeq, *toSeq, opts)
	}
	prog.finish()
	if err != nil {
		return unreadableErr(fmt.Errorf("%s: %w", what, err))
	}
	return printVerifyReport(stdout, rep, what, v, *asJSON)
}

// verifyServer checks a running server: its latest checkpoint must be
// signed by v, and the events of an export streamed from it must prove it.
func verifyServer(ctx context.Context, c *ledger.Client, v note.Verifier, from, to uint64, opts ledger.VerifyOptions) (*ledger.Report, error) {
	msg, err := c.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	rots, err := c.Rotations(ctx)
	if err != nil {
		return nil, err
	}
	keys, err := ledger.NewKeys(v, rots)
	if err != nil {
		return &ledger.Report{Problems: []ledger.Problem{{Reason: ledger.SignatureInvalid, Detail: "the server's key rotations: " + err.Error()}}}, nil
	}
	cp, err := keys.Open(msg)
	if err != nil {
		rep := &ledger.Report{}
		reason := ledger.Malformed
		var se *ledger.SignatureError
		if errors.As(err, &se) {
			reason = ledger.SignatureInvalid
		}
		rep.Problems = append(rep.Problems, ledger.Problem{Reason: reason, Detail: "the server's latest checkpoint: " + err.Error()})
		return rep, nil
	}
	if cp.Size == 0 {
		return &ledger.Report{Checkpoint: cp, Checkpoints: 1, SignedBy: ledger.KeyID(keys.Current())}, nil
	}
	q := url.Values{"size": {strconv.FormatInt(cp.Size, 10)}}
	if from != 0 {
		q.Set("from_seq", strconv.FormatUint(from, 10))
	}
	if to != 0 {
		q.Set("to_seq", strconv.FormatUint(to, 10))
	}
	body, err := c.Export(ctx, q)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	rep, err := ledger.VerifyExport(ctx, body, v, opts)
	if err == nil && rep.OK() && rep.Checkpoint.Size != cp.Size {
		rep.Problems = append(rep.Problems, ledger.Problem{Reason: ledger.Malformed, Detail: fmt.Sprintf(
			"asked for an export proven by the checkpoint of %d events, the server sent one for %d", cp.Size, rep.Checkpoint.Size)})
	}
	return rep, err
}

// printVerifyReport prints a verification report and returns the command's outcome.
func printVerifyReport(w io.Writer, rep *ledger.Report, what string, v note.Verifier, asJSON bool) error {
	if asJSON {
		out := struct {
			OK bool `json:"ok"`
			*ledger.Report
		}{rep.OK(), rep}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(out)
	} else if rep.OK() {
		cp := rep.Checkpoint
		signer := rep.SignedBy
		if signer == "" {
			signer = ledger.KeyID(v)
		}
		switch {
		case cp.Size == 0:
			fmt.Fprintf(w, "OK: %s: the log is empty (checkpoint of 0 events signed by %s)\n", what, signer)
		default:
			fmt.Fprintf(w, "OK: %s: events %d..%d match the checkpoint of %d events signed at %s by %s\n",
				what, rep.FromSeq, min(rep.ToSeq, uint64(cp.Size)), cp.Size, cp.Time.Format(time.RFC3339), signer)
			fmt.Fprintf(w, "  %d events read, %d signed checkpoint(s) checked, root %s\n", rep.Events, rep.Checkpoints, cp.Hash)
		}
		if rep.Uncovered > 0 {
			fmt.Fprintf(w, "  %d event(s) stored after the last checkpoint are not covered yet\n", rep.Uncovered)
		}
		for _, n := range rep.Notes {
			fmt.Fprintf(w, "  note: %s\n", n)
		}
	} else {
		first, _ := rep.FirstBad()
		if first.Seq != 0 {
			fmt.Fprintf(w, "TAMPERED: %s: first bad event: %d (%s): %s\n", what, first.Seq, first.Reason, first.Detail)
		} else {
			fmt.Fprintf(w, "TAMPERED: %s: %s: %s\n", what, first.Reason, first.Detail)
		}
		n := len(rep.Problems) + rep.Dropped
		if n > 1 {
			fmt.Fprintf(w, "%d problems:\n", n)
			for i, p := range rep.Problems {
				if i == 20 {
					fmt.Fprintf(w, "  … and %d more (--json lists up to 1000)\n", n-20)
					break
				}
				fmt.Fprintf(w, "  %s\n", p)
			}
		}
		for _, nt := range rep.Notes {
			fmt.Fprintf(w, "  note: %s\n", nt)
		}
	}
	if rep.OK() {
		return nil
	}
	first, _ := rep.FirstBad()
	if first.Seq != 0 {
		return exitCodeError{exitTampered, fmt.Errorf("tampering found: event %d %s", first.Seq, first.Reason)}
	}
	return exitCodeError{exitTampered, fmt.Errorf("tampering found: %s", first.Reason)}
}

func runPubkey(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("pubkey", "[--data-dir DIR | --server URL]\n       vigil pubkey rotate [--server URL] [--token T]\n\n"+
		"Prints the public key of the ledger's checkpoint signatures (NAME+HASH+BASE64),\n"+
		"read from the data directory's signing key, or fetched from a server. Keep a\n"+
		"copy where the server cannot change it: verifiers and witnesses need it.\n\n"+
		"rotate: the server replaces its signing key (admin token). The old and the new\n"+
		"key sign a statement linking them, so verifiers holding the old public key keep\n"+
		"working; the old key can no longer sign larger trees. Prints the new key.", stderr)
	cf := ledgerClientFlags(fs)
	dataDir := fs.String("data-dir", "vigil-data", "data directory")
	words, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(words) == 1 && words[0] == "rotate" {
		if ledgerFlagGiven(fs, "data-dir") {
			return usageError{errors.New("rotate asks a running server (--server); the server owns the key")}
		}
		return rotateLedgerKey(*cf, stdout, stderr)
	}
	if err := noLedgerArgs(words); err != nil {
		return err
	}
	if ledgerFlagGiven(fs, "server", "url") {
		if ledgerFlagGiven(fs, "data-dir") {
			return usageError{errors.New("give --data-dir or --server, not both")}
		}
		ctx, stop := signalContext()
		defer stop()
		k, err := ledger.NewClient(cf.server, "").PublicKey(ctx)
		if err != nil {
			return unreadableErr(err)
		}
		if _, err := ledger.ParsePublicKey(k); err != nil {
			return unreadableErr(fmt.Errorf("the server's answer: %w", err))
		}
		fmt.Fprintln(stdout, k)
		fmt.Fprintln(stderr, "vigil pubkey: fetched from the server: compare it with a copy you trust before relying on it")
		return nil
	}
	k, err := ledger.PublicKeyFromFile(filepath.Join(*dataDir, ledger.KeyFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return unreadableErr(fmt.Errorf("%s has no signing key (%s): the server creates it on its first start", *dataDir, ledger.KeyFile))
		}
		return unreadableErr(err)
	}
	fmt.Fprintln(stdout, k)
	return nil
}

// rotateLedgerKey asks the server to rotate its checkpoint signing key and
// prints the new public key.
func rotateLedgerKey(cf clientFlags, stdout, stderr io.Writer) error {
	c, err := cf.client()
	if err != nil {
		return err
	}
	var answer struct {
		Rotation  ledger.Rotation `json:"rotation"`
		PublicKey string          `json:"public_key"`
	}
	ctx, stop := signalContext()
	defer stop()
	if err := c.Call(ctx, http.MethodPost, "/api/v1/ledger/rotate", nil, &answer); err != nil {
		return err
	}
	if _, err := ledger.OpenRotation([]byte(answer.Rotation.Note)); err != nil {
		return fmt.Errorf("the server's answer: %w", err)
	}
	fmt.Fprintln(stdout, answer.PublicKey)
	fmt.Fprintf(stderr, "vigil pubkey: the signing key was rotated at %d events; the old key %s signed the hand-over.\n"+
		"Keep the new public key with the old one; verifiers holding either keep working.\n", answer.Rotation.Size, answer.Rotation.Old)
	return nil
}

func runExport(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("export", "[--from-seq N] [--to-seq M | --from TIME --to TIME] --out FILE\n\n"+
		"Downloads events with what is needed to verify them offline: NDJSON, a header\n"+
		"line (the signed checkpoint and the hashes of the rest of the tree) then one\n"+
		"line per event. Verify it anywhere with:\n"+
		"  vigil verify --export FILE --pubkey KEY\n"+
		"Compression is gzip (standard library; zstd would need a dependency): on with\n"+
		"--gzip or a FILE ending in .gz.", stderr)
	cf := ledgerClientFlags(fs)
	fromSeq := fs.Uint64("from-seq", 0, "first event (default 1)")
	toSeq := fs.Uint64("to-seq", 0, "last event (default: the latest checkpoint's)")
	from := fs.String("from", "", "first event by time: RFC 3339, YYYY-MM-DD, or a duration back (24h, 7d)")
	to := fs.String("to", "", "end of the time range (exclusive), same forms")
	size := fs.Int64("size", 0, "prove against the checkpoint of this tree size (default: the latest)")
	out := fs.String("out", "", "output file, created with mode 0600 (- for standard output)")
	zip := fs.Bool("gzip", false, "compress with gzip (default when FILE ends in .gz)")
	force := fs.Bool("force", false, "overwrite FILE if it exists")
	words, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := noLedgerArgs(words); err != nil {
		return err
	}
	if *out == "" {
		return usageError{errors.New("--out FILE is required (- for standard output)")}
	}
	if (*fromSeq != 0 || *toSeq != 0) && (*from != "" || *to != "") {
		return usageError{errors.New("give --from-seq/--to-seq or --from/--to, not both")}
	}
	if *toSeq != 0 && *fromSeq > *toSeq {
		return usageError{errors.New("--to-seq is before --from-seq")}
	}
	tok, err := cf.resolveToken()
	if err != nil {
		return err
	}
	q := url.Values{}
	for k, s := range map[string]string{"from": *from, "to": *to} {
		if s != "" {
			q.Set(k, s)
		}
	}
	for k, n := range map[string]uint64{"from_seq": *fromSeq, "to_seq": *toSeq, "size": uint64(max(*size, 0))} {
		if n != 0 {
			q.Set(k, strconv.FormatUint(n, 10))
		}
	}
	ctx, stop := signalContext()
	defer stop()
	body, err := ledger.NewClient(cf.server, tok).Export(ctx, q)
	if err != nil {
		return unreadableErr(err)
	}
	defer body.Close()

	var w io.Writer = stdout
	var f *os.File
	if *out != "-" {
		flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
		if *force {
			flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
		}
		if f, err = os.OpenFile(*out, flags, 0o600); err != nil {
			if errors.Is(err, os.ErrExist) {
				return usageError{fmt.Errorf("%s exists (--force to overwrite)", *out)}
			}
			return err
		}
		defer f.Close()
		w = f
	}
	var zw *gzip.Writer
	if *zip || strings.HasSuffix(*out, ".gz") {
		zw = gzip.NewWriter(w)
		w = zw
	}
	br := bufio.NewReaderSize(body, 64<<10)
	head, err := br.ReadSlice('\n')
	if err != nil {
		return unreadableErr(fmt.Errorf("read the export header: %w", err))
	}
	hdr, err := ledger.ParseExportHeader(head[:len(head)-1])
	if err != nil {
		return unreadableErr(fmt.Errorf("the server's export: %w", err))
	}
	if _, err := w.Write(head); err != nil {
		return fmt.Errorf("write %s: %w", *out, err)
	}
	n, err := io.Copy(w, br)
	if err != nil {
		if f != nil {
			os.Remove(*out)
		}
		return unreadableErr(fmt.Errorf("download interrupted after %d bytes (removed the partial file): %w", n, err))
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			return fmt.Errorf("write %s: %w", *out, err)
		}
	}
	if f != nil {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("write %s: %w", *out, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("write %s: %w", *out, err)
		}
		fmt.Fprintf(stderr, "vigil export: events %d..%d, proven by the checkpoint of %d events, written to %s\nverify it with: vigil verify --export %s --pubkey KEY\n",
			hdr.FromSeq, hdr.ToSeq, hdr.TreeSize, *out, *out)
	}
	return nil
}

func runWitness(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("witness", "--server URL --dir DIR --pubkey KEY [--interval 10s] [--webhook URL] [--once]\n\n"+
		"Polls a Vigil server's signed checkpoint, keeps every one it accepts in DIR,\n"+
		"and checks that each new one is signed by KEY and extends the last (with a\n"+
		"consistency proof from the server, verified here). It raises an alert (log,\n"+
		"webhook POST with a JSON body, exit status 1) on a rollback (smaller tree),\n"+
		"a fork (same size, other root), a rewrite (a larger tree that does not\n"+
		"extend the last) or a bad signature. Run it on another machine than the\n"+
		"server, so that whoever controls the server cannot change what it saw.\n\n"+
		"Exit status: 0 no alert, 1 alert, 2 usage error, 3 server unreachable (--once).", stderr)
	cf := ledgerClientFlags(fs)
	dir := fs.String("dir", "", "witness directory, created with mode 0700 (required)")
	pubkey := fs.String("pubkey", "", "public key NAME+HASH+BASE64, or a file holding it (required)")
	interval := fs.Duration("interval", 10*time.Second, "time between two polls")
	webhook := fs.String("webhook", "", "URL to POST each new alert to (JSON)")
	once := fs.Bool("once", false, "check once and exit")
	words, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := noLedgerArgs(words); err != nil {
		return err
	}
	if *dir == "" {
		return usageError{errors.New("--dir DIR is required: where the witness keeps the checkpoints it saw")}
	}
	if *interval < time.Second {
		return usageError{errors.New("--interval must be at least 1s")}
	}
	v, err := loadLedgerPubkey(*pubkey)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	opts := ledger.WitnessOptions{Source: cf.server, Log: log}
	if *webhook != "" {
		u, err := url.Parse(*webhook)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usageError{fmt.Errorf("--webhook %q: want an http or https URL", *webhook)}
		}
		opts.Notify = ledger.WebhookNotifier(*webhook, nil)
	}
	tok := cf.token
	if tok == "" {
		tok = os.Getenv("VIGIL_TOKEN")
	}
	w, err := ledger.OpenWitness(*dir, v, ledger.NewClient(cf.server, tok), opts)
	if err != nil {
		return unreadableErr(err)
	}
	ctx, stop := signalContext()
	defer stop()
	check := func() (alerted bool, err error) {
		cctx, cancel := context.WithTimeout(ctx, max(*interval, 30*time.Second))
		defer cancel()
		a, err := w.Check(cctx)
		if err != nil {
			return false, err
		}
		if a != nil {
			fmt.Fprintf(stdout, "ALERT %s: %s\n  served by %s; kept as %s\n", a.Kind, a.Message, a.Source, a.Evidence)
			return true, nil
		}
		cp, _ := w.Latest()
		if *once {
			fmt.Fprintf(stdout, "OK: checkpoint of %d events (root %s) is signed and consistent with what this witness saw\n", cp.Size, cp.Hash)
		}
		return false, nil
	}
	if *once {
		alerted, err := check()
		if err != nil {
			return unreadableErr(err)
		}
		if alerted {
			return exitCodeError{exitTampered, errors.New("alert raised")}
		}
		return nil
	}
	t := time.NewTicker(*interval)
	defer t.Stop()
	alerted := false
	for {
		a, err := check()
		if err != nil && ctx.Err() == nil {
			log.Warn("witness: check failed; will retry", "err", err)
		}
		alerted = alerted || a
		select {
		case <-ctx.Done():
			if alerted {
				return exitCodeError{exitTampered, errors.New("stopped; alerts were raised")}
			}
			return nil
		case <-t.C:
		}
	}
}

// verifyProgress shows how far a verification is: a bar redrawn in place on a
// terminal, a line every 10% otherwise.
type verifyProgress struct {
	w       io.Writer
	label   string
	off     bool
	tty     bool
	last    time.Time
	lastPct int
	drawn   bool
}

func newVerifyProgress(w io.Writer, label string, off bool) *verifyProgress {
	p := &verifyProgress{w: w, label: label, off: off, lastPct: -1}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *verifyProgress) update(done, total uint64) {
	if p.off || total == 0 {
		return
	}
	pct := int(done * 100 / total)
	if p.tty {
		if now := time.Now(); now.Sub(p.last) < 100*time.Millisecond && done != total {
			return
		} else {
			p.last = now
		}
		const width = 30
		fill := pct * width / 100
		fmt.Fprintf(p.w, "\r%s [%s%s] %3d%%  %d/%d events", p.label, strings.Repeat("#", fill), strings.Repeat("-", width-fill), pct, done, total)
		p.drawn = true
		return
	}
	if pct/10 == p.lastPct/10 && done != total {
		return
	}
	if done == total && p.lastPct == 100 {
		return
	}
	p.lastPct = pct
	fmt.Fprintf(p.w, "%s: %d of %d events (%d%%)\n", p.label, done, total, pct)
}

func (p *verifyProgress) finish() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}
