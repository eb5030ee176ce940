package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/vigilsec/vigil/internal/client"
	"github.com/vigilsec/vigil/internal/demo"
)

func runDemo(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", "[flags]\n\nSends bounded, realistic traffic of a small web shop to a running Vigil: browsing,\nlogins, one brute-force run, a scanner probing /.env /wp-admin /.git/config, an admin\nconfig change, jobs and outgoing calls. Events are dated over the last --duration.", stderr)
	var cf clientFlags
	cf.register(fs)
	seed := fs.Uint64("seed", uint64(time.Now().UnixNano()), "random seed (same seed and start, same events)")
	dur := fs.Duration("duration", demo.DefaultDuration, "simulated time span, ending now")
	scale := fs.Float64("scale", 1, fmt.Sprintf("traffic multiplier (max %d)", demo.MaxScale))
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dur < demo.MinDuration || *dur > demo.MaxDuration {
		return usageError{fmt.Errorf("--duration must be between %v and %v", demo.MinDuration, demo.MaxDuration)}
	}
	if *scale <= 0 || *scale > demo.MaxScale {
		return usageError{errors.New("--scale must be above 0 and at most " + fmt.Sprint(demo.MaxScale))}
	}
	tok, err := cf.resolveToken()
	if err != nil {
		return err
	}
	events := demo.Generate(demo.Options{Seed: *seed, Start: time.Now().Add(-*dur), Duration: *dur, Scale: *scale})
	c := client.New(cf.server, tok)
	ctx, stop := signalContext()
	defer stop()
	var stored, dups int
	actions := map[string]int{}
	for i := 0; i < len(events); i += 2000 {
		chunk := events[i:min(i+2000, len(events))]
		var buf bytes.Buffer
		for _, e := range chunk {
			buf.Write(e.Line)
			buf.WriteByte('\n')
			actions[e.Action]++
		}
		ans, err := c.Send(ctx, buf.Bytes())
		if err != nil {
			return fmt.Errorf("after %d events: %w", stored+dups, err)
		}
		stored += ans.Accepted
		dups += ans.Duplicates
	}
	fmt.Fprintf(stdout, "demo: sent %d events of the web shop %q (%d stored, %d duplicates)\n", len(events), demo.Service, stored, dups)
	fmt.Fprintf(stdout, "  brute force from %s against %q, scanner at %s, config change by %q from %s\n\n",
		demo.BruteForceIP, demo.BruteForceUser, demo.ScannerIP, demo.AdminUser, demo.AdminIP)
	fmt.Fprintf(stdout, "Try:\n  vigil search --action authn_login_fail --top source.ip\n  vigil search --ip %s --top url.path\n  vigil search --action sys_config_change\n  vigil search --user %s password\n", demo.ScannerIP, demo.BruteForceUser)
	return nil
}
