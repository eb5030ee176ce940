package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/vigilsec/vigil/internal/ledger"
	"github.com/vigilsec/vigil/internal/retention"
	"github.com/vigilsec/vigil/internal/store/sqlite"
)

// runPurge is "vigil purge": remove old events (archived first) offline
// from a stopped server's data directory, or through a running server.
func runPurge(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("purge", "[--dry-run] [--type T,...] [--before DATE | --older-than 90d] (--data-dir DIR | --server URL)\n\n"+
		"Removes events due under the retention policies (or, with --before or\n"+
		"--older-than, the events older than that), writing each batch to a gzip\n"+
		"archive in DIR/archive first and appending a vigil_purge audit event.\n"+
		"Types: input_request, output_request, command, job, audit.\n"+
		"--data-dir works on a stopped server; --server asks a running one.", stderr)
	dataDir := fs.String("data-dir", "", "data directory of a stopped server")
	cfgPath := fs.String("config", "", "configuration file whose retention section applies (default: built-in defaults)")
	dryRun := fs.Bool("dry-run", false, "report what would be purged, change nothing")
	types := fs.String("type", "", "comma-separated types to purge (default: all)")
	before := fs.String("before", "", "purge events before this time (RFC 3339 or YYYY-MM-DD)")
	olderThan := fs.String("older-than", "", "purge events older than this (90d, 2w, 36h)")
	force := fs.Bool("force", false, "allow --before/--older-than inside the retention floor")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	var cf clientFlags
	cf.register(fs)
	words, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(words) > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", words[0])}
	}
	body := retention.PurgeRequest{DryRun: *dryRun, Before: *before, OlderThan: *olderThan, Force: *force}
	if *types != "" {
		for _, t := range strings.Split(*types, ",") {
			body.Types = append(body.Types, retention.Type(strings.TrimSpace(t)))
		}
	}
	if _, err := body.Request(time.Now()); err != nil {
		return usageError{err}
	}
	serverGiven := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "server" {
			serverGiven = true
		}
	})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var res *retention.Result
	switch {
	case *dataDir != "" && serverGiven:
		return usageError{errors.New("give --data-dir or --server, not both")}
	case *dataDir != "":
		res, err = purgeDataDir(ctx, *dataDir, *cfgPath, body, stderr)
	case serverGiven:
		if *cfgPath != "" {
			return usageError{errors.New("--config applies to --data-dir; a server uses its own configuration")}
		}
		res, err = purgeServer(ctx, cf, body)
	default:
		return usageError{errors.New("give --data-dir DIR (server stopped) or --server URL")}
	}
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	verb := "purged"
	if res.DryRun {
		verb = "would purge"
	}
	fmt.Fprintf(stdout, "%s %d events in %d batches (run %s)\n", verb, res.Events, res.Batches, res.Run)
	for _, t := range retention.Types {
		if n := res.ByType[t]; n > 0 {
			fmt.Fprintf(stdout, "  %-15s %d\n", t, n)
		}
	}
	for _, a := range res.Archives {
		fmt.Fprintf(stdout, "archive %s: events %d..%d, %d bytes, sha256 %s\n", a.File, a.FromSeq, a.ToSeq, a.Bytes, a.SHA256)
	}
	return nil
}

func purgeDataDir(ctx context.Context, dir, cfgPath string, body retention.PurgeRequest, stderr io.Writer) (*retention.Result, error) {
	cfg := retention.Config{}
	if cfgPath != "" {
		c, err := retention.Load(cfgPath)
		if err != nil {
			return nil, usageError{err}
		}
		cfg = c
	} else {
		cfg.SetDefaults()
	}
	if _, err := os.Stat(filepath.Join(dir, ledger.EventsFile)); err != nil {
		return nil, fmt.Errorf("data directory %s: %w", dir, err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := sqlite.Open(filepath.Join(dir, ledger.EventsFile), sqlite.Options{})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	l, err := ledger.Open(dir, st, ledger.Options{Log: log})
	if err != nil {
		return nil, err
	}
	defer l.Close()
	holds, err := retention.NewHolds(cfg.Holds)
	if err != nil {
		return nil, usageError{err}
	}
	p := &retention.Purger{Store: st, Ledger: l, DataDir: dir, Config: cfg, Holds: holds, Log: log}
	req, err := body.Request(time.Now())
	if err != nil {
		return nil, usageError{err}
	}
	res, err := p.Run(ctx, req)
	if err != nil {
		return nil, err
	}
	// Seal the audit events in a checkpoint before the server starts again.
	if _, err := l.Sync(ctx); err != nil {
		return nil, fmt.Errorf("sign a checkpoint after the purge: %w", err)
	}
	return res, nil
}

func purgeServer(ctx context.Context, cf clientFlags, body retention.PurgeRequest) (*retention.Result, error) {
	c, err := cf.client()
	if err != nil {
		return nil, err
	}
	c.HTTP.Timeout = time.Hour // a purge archives and removes in batches
	var res retention.Result
	if err := c.Call(ctx, http.MethodPost, "/api/v1/purge", body, &res); err != nil {
		return nil, fmt.Errorf("purge through %s: %w", cf.server, err)
	}
	return &res, nil
}
