// Command loadgen measures how fast a Vigil server on this machine accepts
// events: it sends web-request events over POST /api/v1/events from
// concurrent connections and reports throughput and acknowledgement latency.
//
//	go run ./bench/loadgen -url http://127.0.0.1:8080 -token T -n 1000000 -c 8 -batch 1000
//
// Request bodies are generated before the clock starts, so the figures are
// the server's, not the generator's. Only loopback targets are accepted.
// Batches answered 429 or 503 are resent after the Retry-After delay.
//
// The report goes to standard output, as text or with -json as one JSON
// object; progress lines go to standard error. The exit status is 0 when
// every batch sent was acknowledged (the run may have been cut short by
// -duration), 1 when batches failed or the run was aborted, 2 for bad flags.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// maxEvents bounds -n.
const maxEvents = 100_000_000

func main() {
	os.Exit(mainErr(context.Background(), os.Args[1:], os.Getenv("VIGIL_TOKEN"), os.Stdout, os.Stderr))
}

// options are the command-line flags, before checking.
type options struct {
	url, token, runID  string
	n                  int64
	conns, batch, size int
	duration, timeout  time.Duration
	progress           time.Duration
	rate               float64
	gzip, json         bool
	seed               uint64
	memMiB             int64
}

func parseFlags(args []string, envToken string, stderr io.Writer) (config, bool, error) {
	var o options
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.url, "url", "http://127.0.0.1:8080", "Vigil server, or the full events URL; loopback only")
	fs.StringVar(&o.token, "token", "", "API token (default $VIGIL_TOKEN)")
	fs.Int64Var(&o.n, "n", 0, fmt.Sprintf("events to send, 1 to %d (required)", maxEvents))
	fs.IntVar(&o.conns, "c", 8, "concurrent connections")
	fs.IntVar(&o.batch, "batch", 1000, "events per request")
	fs.DurationVar(&o.duration, "duration", 2*time.Minute, "stop sending after this long")
	fs.Float64Var(&o.rate, "rate", 0, "target events/s; 0 sends as fast as possible")
	fs.BoolVar(&o.gzip, "gzip", false, "send gzip-compressed bodies")
	fs.IntVar(&o.size, "size", 400, "approximate mean bytes per event: smaller events lose optional fields (with all fields an event is about 650 bytes, stripped about 450), larger ones get a padding label")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the event content")
	fs.StringVar(&o.runID, "run-id", "", "16 hex digits starting every event id (default random); reuse one to resend the same ids")
	fs.Int64Var(&o.memMiB, "mem", 1024, "MiB of request bodies to prepare; beyond it bodies are reused with new ids")
	fs.DurationVar(&o.timeout, "timeout", time.Minute, "timeout of one request")
	fs.DurationVar(&o.progress, "progress", 10*time.Second, "interval of progress lines on stderr; 0 for none")
	fs.BoolVar(&o.json, "json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return config{}, false, err
	}
	if fs.NArg() > 0 {
		return config{}, false, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.token == "" {
		o.token = envToken
	}
	cfg, err := o.check()
	return cfg, o.json, err
}

// check validates the flags and turns them into a config.
func (o options) check() (config, error) {
	target, err := eventsURL(o.url)
	if err != nil {
		return config{}, err
	}
	switch {
	case o.n < 1 || o.n > maxEvents:
		return config{}, fmt.Errorf("-n %d: give the number of events to send, 1 to %d", o.n, maxEvents)
	case o.conns < 1 || o.conns > 1024:
		return config{}, fmt.Errorf("-c %d: must be 1 to 1024", o.conns)
	case o.batch < 1 || o.batch > 1_000_000:
		return config{}, fmt.Errorf("-batch %d: must be 1 to 1000000", o.batch)
	case o.duration <= 0:
		return config{}, fmt.Errorf("-duration %s: must be positive", o.duration)
	case o.rate < 0 || o.rate != o.rate:
		return config{}, fmt.Errorf("-rate %v: must be 0 or more", o.rate)
	case o.size < 0 || o.size > 1<<20:
		return config{}, fmt.Errorf("-size %d: must be 0 to %d", o.size, 1<<20)
	case o.memMiB < 1:
		return config{}, fmt.Errorf("-mem %d: must be at least 1", o.memMiB)
	case o.timeout <= 0:
		return config{}, fmt.Errorf("-timeout %s: must be positive", o.timeout)
	case o.progress < 0:
		return config{}, fmt.Errorf("-progress %s: must be 0 or more", o.progress)
	}
	runID := o.runID
	if runID == "" {
		var b [8]byte
		rand.Read(b[:])
		runID = hex.EncodeToString(b[:])
	}
	if _, err := hex.DecodeString(runID); err != nil || len(runID) != 16 {
		return config{}, fmt.Errorf("-run-id %q: must be 16 hex digits", runID)
	}
	return config{
		Target: target, Token: o.token, Events: o.n, Conns: o.conns, Batch: o.batch,
		Duration: o.duration, Rate: o.rate, Gzip: o.gzip, Size: o.size, Seed: o.seed,
		RunID: runID, MemLimit: o.memMiB << 20, Timeout: o.timeout, Progress: o.progress,
	}, nil
}

// newClient returns an HTTP client with one connection per worker that can
// only ever connect to loopback addresses and never follows redirects.
func newClient(conns int) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second, Control: loopbackOnly}
	return &http.Client{
		Transport: &http.Transport{
			DialContext:         dialer.DialContext,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			DisableCompression:  true,
			IdleConnTimeout:     time.Minute,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func mainErr(ctx context.Context, args []string, envToken string, stdout, stderr io.Writer) int {
	cfg, asJSON, err := parseFlags(args, envToken, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "loadgen:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	d := deps{client: newClient(cfg.Conns), sleep: sleepCtx, now: time.Now, log: stderr, cpu: processCPU}
	rep, err := loadgen(ctx, cfg, d)
	if err != nil {
		fmt.Fprintln(stderr, "loadgen:", err)
		return 1
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
		rep.printText(stdout)
	}
	if rep.Stopped == "aborted" || rep.Stopped == "interrupted" || rep.Errors > 0 || rep.AckMismatches > 0 {
		return 1
	}
	return 0
}

// loadgen prepares the bodies, then sends them.
func loadgen(ctx context.Context, cfg config, d deps) (*report, error) {
	began := d.now()
	g := bodyGen{runID: cfg.RunID, seed: cfg.Seed, size: cfg.Size, base: began.UTC().Truncate(time.Millisecond)}
	b, err := prepare(ctx, g, cfg.Events, cfg.Batch, cfg.Gzip, cfg.MemLimit)
	if err != nil {
		return nil, err
	}
	prepared := d.now().Sub(began)
	if b.patched && d.log != nil {
		note := "copies a template and rewrites its ids before each request"
		if cfg.Gzip {
			note += " and compresses it, which costs CPU inside the timed loop"
		}
		fmt.Fprintf(d.log, "loadgen: %d bodies do not fit in -mem %d MiB; the generator %s\n",
			b.requests(), cfg.MemLimit>>20, note)
	}
	rep := run(ctx, cfg, b, d)
	rep.PrepareSeconds = prepared.Seconds()
	return rep, nil
}
