package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigilsec/vigil/internal/alert"
	"github.com/vigilsec/vigil/internal/notify"
)

// runNotify implements "vigil notify SUBCOMMAND"; today the one subcommand
// is "test".
func runNotify(args []string, stdout, stderr io.Writer) error {
	usage := "Usage: vigil notify test --config FILE [--receiver NAME]\n\nSends a test alert through every configured notifier and prints ok or the error for each.\n"
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{errors.New("missing subcommand (want: test)")}
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	case "test":
		return runNotifyTest(args[1:], stdout, stderr)
	}
	return usageError{fmt.Errorf("unknown subcommand %q (want: test)", args[0])}
}

// testAlertName is the alertname of the test alert, so that routes and
// receivers can recognise (or drop) it.
const testAlertName = "VigilNotificationTest"

func runNotifyTest(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("notify test", "--config FILE [--receiver NAME]\n\n"+
		"Sends a test alert, firing and then resolved, through every notifier of the\n"+
		"receivers in FILE and prints ok or the error for each. FILE holds the notify\n"+
		"section (receivers: …) or a whole Vigil configuration with a notify: key.\n"+
		"The alert is labelled alertname="+testAlertName+", severity=info, test=true.", stderr)
	cfgPath := fs.String("config", "", "YAML file with the receivers (required)")
	only := fs.String("receiver", "", "test only the receiver of this name (default: all)")
	timeout := fs.Duration("timeout", 30*time.Second, "time allowed for each notification")
	externalURL := fs.String("external-url", "", "Vigil's base URL, for links in the messages")
	words, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(words) > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", words[0])}
	}
	if *cfgPath == "" {
		return usageError{errors.New("--config FILE is required")}
	}
	if *timeout <= 0 {
		return usageError{errors.New("--timeout must be positive")}
	}
	cfg, err := notify.Load(*cfgPath)
	if err != nil {
		return err
	}
	receivers := cfg.Receivers
	if *only != "" {
		i := slices.IndexFunc(receivers, func(r notify.Receiver) bool { return r.Name == *only })
		if i < 0 {
			names := make([]string, len(receivers))
			for j, r := range receivers {
				names[j] = r.Name
			}
			return usageError{fmt.Errorf("no receiver %q in %s (receivers: %s)", *only, *cfgPath, strings.Join(names, ", "))}
		}
		receivers = receivers[i : i+1]
	}
	built, err := notify.Build(receivers, notify.Options{ExternalURL: *externalURL})
	if err != nil {
		return fmt.Errorf("%s: %w", *cfgPath, err)
	}
	var integrations []*notify.Integration
	for _, r := range receivers {
		for _, n := range built[r.Name] {
			integrations = append(integrations, n.(*notify.Integration))
		}
	}
	if len(integrations) == 0 {
		return fmt.Errorf("%s: no notifier configured", *cfgPath)
	}

	ctx, stop := signalContext()
	defer stop()
	firing := testAlert()
	resolved := firing
	fmt.Fprintf(stdout, "Sending test alert %s (firing, then resolved) through %d notifier(s).\n", firing.Fingerprint, len(integrations))
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	sent, failed := 0, 0
	for _, in := range integrations {
		resolved.Status, resolved.EndsAt = alert.StateResolved, time.Now().UTC()
		for _, a := range []alert.Alert{firing, resolved} {
			if a.Status == alert.StateResolved && !in.SendResolved {
				fmt.Fprintf(tw, "skipped\t%s\t%s\t(send_resolved: false)\n", in, a.Status)
				continue
			}
			if ctx.Err() != nil {
				tw.Flush()
				return fmt.Errorf("interrupted after %d notification(s)", sent+failed)
			}
			sctx, cancel := context.WithTimeout(ctx, *timeout)
			retry, err := in.Notify(sctx, []alert.Alert{a})
			cancel()
			if err == nil {
				sent++
				fmt.Fprintf(tw, "ok\t%s\t%s\n", in, a.Status)
				continue
			}
			failed++
			if inner := errors.Unwrap(err); inner != nil {
				err = inner // the integration's name is already in the line
			}
			kind := "permanent: Vigil would not retry"
			if retry {
				kind = "temporary: Vigil would retry"
			}
			fmt.Fprintf(tw, "FAILED\t%s\t%s\t%v (%s)\n", in, a.Status, err, kind)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d test notification(s) failed", failed, failed+sent)
	}
	fmt.Fprintf(stdout, "All %d test notification(s) sent.\n", sent)
	return nil
}

// testAlert returns a firing alert that says plainly it is a test, with a
// fingerprint of its own so that PagerDuty opens (and then resolves) a new
// incident rather than touching a real one.
func testAlert() alert.Alert {
	var r [6]byte
	_, _ = rand.Read(r[:])
	return alert.Alert{
		Fingerprint: "vigil-notify-test-" + hex.EncodeToString(r[:]),
		Status:      alert.StateFiring,
		Labels:      map[string]string{"alertname": testAlertName, "severity": alert.SeverityInfo, "test": "true"},
		Annotations: map[string]string{
			"summary":     "Test notification from 'vigil notify test': not a real alert",
			"description": "Sent by 'vigil notify test' to check that this notification channel works. A resolved notification follows; nothing needs to be done.",
		},
		StartsAt: time.Now().UTC(),
	}
}
