package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigilsec/vigil/internal/respond"
)

const decisionsUsage = `Usage: vigil decisions COMMAND [flags]

Bans and throttles: list them, make one by hand, remove one, or export the
bans for a firewall.

Commands:
  list     list the decisions in force (--all: also removed and expired ones)
  add      ban or throttle an address, a range or a user
  remove   remove a decision, by ID or by --scope and --value
  export   print the bans for nginx, iptables, ip6tables, ipset, nftables or plain

Examples:
  vigil decisions list --ip 203.0.113.7
  vigil decisions add --type ban --scope ip --value 203.0.113.7 --ttl 1h --reason "credential stuffing"
  vigil decisions remove 0195519c-4f2a-7b3e-9c1d-2e8f6a7b5c4d
  vigil decisions export --format nftables -o /etc/nftables.d/vigil.nft

Run 'vigil decisions COMMAND --help' for a command's flags.
`

func runDecisions(args []string, stdout, stderr io.Writer) error {
	return runSubcommand(args, stdout, stderr, decisionsUsage, "list, add, remove or export", []subcommand{
		{[]string{"list", "ls"}, decisionsList},
		{[]string{"add"}, decisionsAdd},
		{[]string{"remove", "rm"}, decisionsRemove},
		{[]string{"export"}, decisionsExport},
	})
}

// decisionsAPI calls the decisions API. out, when not nil, receives the JSON
// answer; raw, when not nil, the body as is.
func decisionsAPI(ctx context.Context, cf clientFlags, method, path string, q url.Values, body any, out any, raw io.Writer) error {
	c, err := cf.client()
	if err != nil {
		return err
	}
	u := "/api/v1/decisions" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	if raw != nil {
		out = raw
	}
	return c.Call(ctx, method, u, body, out)
}

func decisionsList(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("decisions list", "[flags]", stderr)
	var cf clientFlags
	cf.register(fs)
	all := fs.Bool("all", false, "also the recently removed and expired decisions")
	typ := fs.String("type", "", "ban or throttle")
	scope := fs.String("scope", "", "ip, range or user")
	value := fs.String("value", "", "with --scope: the address, range or user")
	ip := fs.String("ip", "", "the decisions that apply to this address (on it, or on a range holding it)")
	user := fs.String("user", "", "the decisions on this user")
	origin := fs.String("origin", "", `who decided: a rule name, "manual:NAME", or "manual:" for every manual decision`)
	limit := fs.Int("limit", 1000, "most decisions printed (the newest)")
	asJSON := fs.Bool("json", false, "print the API's JSON answer")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	q := url.Values{}
	for k, v := range map[string]string{"type": *typ, "scope": *scope, "value": *value, "ip": *ip, "user": *user, "origin": *origin} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if *all {
		q.Set("state", "all")
	}
	q.Set("limit", strconv.Itoa(*limit))
	var ans respond.ListAnswer
	if err := decisionsAPI(context.Background(), cf, http.MethodGet, "", q, nil, &ans, nil); err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(ans)
	}
	now := time.Now()
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprint(tw, "ID\tTYPE\tSCOPE\tVALUE\tUNTIL\tORIGIN\tREASON")
	if *all {
		fmt.Fprint(tw, "\tENDED")
	}
	fmt.Fprintln(tw)
	for _, d := range ans.Decisions {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s", d.ID, d.Type, d.Scope, d.Value, decisionUntil(d, now), d.Origin, dash(trimLine(d.Reason, 60)))
		if *all {
			ended := "-"
			if !d.RemovedAt.IsZero() {
				ended = d.RemovedAt.Local().Format("2006-01-02 15:04:05") + " " + d.RemovedBy
			}
			fmt.Fprintf(tw, "\t%s", ended)
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if ans.Total > len(ans.Decisions) {
		fmt.Fprintf(stderr, "(showing the newest %d of %d; raise --limit or narrow the selection)\n", len(ans.Decisions), ans.Total)
	}
	return nil
}

// decisionUntil describes when d ends.
func decisionUntil(d respond.Decision, now time.Time) string {
	if d.Until.IsZero() {
		return "until removed"
	}
	s := d.Until.Local().Format("2006-01-02 15:04:05")
	if left := d.Until.Sub(now); left > 0 && d.RemovedAt.IsZero() {
		s += " (" + left.Round(time.Second).String() + ")"
	}
	return s
}

func decisionsAdd(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("decisions add", "--scope ip|range|user --value VALUE [--type ban|throttle] [--ttl 1h] [--reason TEXT]", stderr)
	var cf clientFlags
	cf.register(fs)
	var req respond.AddRequest
	fs.StringVar(&req.Type, "type", "ban", "ban (answered 403) or throttle (answered 429)")
	fs.StringVar(&req.Scope, "scope", "", "ip, range or user (required)")
	fs.StringVar(&req.Value, "value", "", "an address (203.0.113.7), a CIDR range (203.0.113.0/24) or a user name (required)")
	fs.StringVar(&req.TTL, "ttl", "", "how long: 90s, 30m, 1h, 7d; empty: until removed")
	fs.StringVar(&req.Reason, "reason", "", "why, for the log and for whoever removes it")
	fs.StringVar(&req.AlertFingerprint, "alert", "", "fingerprint of the alert this answers (optional)")
	asJSON := fs.Bool("json", false, "print the API's JSON answer")
	words, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(words) > 0 {
		return usageError{fmt.Errorf("unexpected argument %q: give the value with --value", words[0])}
	}
	if req.Scope == "" || req.Value == "" {
		return usageError{errors.New("--scope and --value are required")}
	}
	if _, err := respond.ParseTTL(req.TTL); err != nil {
		return usageError{fmt.Errorf("--ttl: %v", err)}
	}
	var ans respond.AddAnswer
	if err := decisionsAPI(context.Background(), cf, http.MethodPost, "", nil, req, &ans, nil); err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(ans)
	}
	d := ans.Decision
	switch ans.Result {
	case respond.Added:
		fmt.Fprintf(stdout, "added: %s of %s %s %s (id %s)\n", d.Type, d.Scope, d.Value, decisionEndText(d), d.ID)
	case respond.Extended:
		fmt.Fprintf(stdout, "extended: %s of %s %s now lasts %s (id %s)\n", d.Type, d.Scope, d.Value, decisionEndText(d), d.ID)
	default:
		fmt.Fprintf(stdout, "unchanged: a %s of %s %s lasting %s was already in force (id %s); remove it first to shorten or weaken it\n", d.Type, d.Scope, d.Value, decisionEndText(d), d.ID)
	}
	return nil
}

func decisionEndText(d respond.Decision) string {
	if d.Until.IsZero() {
		return "until removed"
	}
	return "until " + d.Until.Local().Format(time.RFC3339)
}

func decisionsRemove(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("decisions remove", "ID… | --scope ip|range|user --value VALUE", stderr)
	var cf clientFlags
	cf.register(fs)
	scope := fs.String("scope", "", "with --value: remove the decision on this scope and value")
	value := fs.String("value", "", "the address, range or user")
	ids, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	ctx := context.Background()
	switch {
	case len(ids) > 0 && (*scope != "" || *value != ""):
		return usageError{errors.New("give IDs or --scope and --value, not both")}
	case len(ids) == 0 && (*scope == "" || *value == ""):
		return usageError{errors.New("give the ID of a decision (see 'vigil decisions list'), or --scope and --value")}
	case len(ids) == 0:
		var d respond.Decision
		q := url.Values{"scope": {*scope}, "value": {*value}}
		if err := decisionsAPI(ctx, cf, http.MethodDelete, "", q, nil, &d, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "removed: %s of %s %s (id %s)\n", d.Type, d.Scope, d.Value, d.ID)
		return nil
	}
	var errs []error
	for _, id := range ids {
		var d respond.Decision
		if err := decisionsAPI(ctx, cf, http.MethodDelete, "/"+url.PathEscape(id), nil, nil, &d, nil); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", id, err))
			continue
		}
		fmt.Fprintf(stdout, "removed: %s of %s %s (id %s)\n", d.Type, d.Scope, d.Value, d.ID)
	}
	return errors.Join(errs...)
}

func decisionsExport(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("decisions export", "--format nginx|iptables|ip6tables|ipset|nftables|plain [-o FILE]", stderr)
	var cf clientFlags
	cf.register(fs)
	format := fs.String("format", "", "nginx, iptables (IPv4), ip6tables (IPv6), ipset, nftables or plain (required)")
	typ := fs.String("type", "ban", "which decisions: ban, throttle or any")
	output := fs.String("o", "", "write to FILE (replaced at once, never half-written) instead of standard output")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *format == "" {
		return usageError{fmt.Errorf("--format is required: one of %s", strings.Join(respond.Formats, ", "))}
	}
	q := url.Values{"format": {*format}, "type": {*typ}}
	if *output == "" {
		return decisionsAPI(context.Background(), cf, http.MethodGet, "/export", q, nil, nil, stdout)
	}
	var buf bytes.Buffer
	if err := decisionsAPI(context.Background(), cf, http.MethodGet, "/export", q, nil, nil, &buf); err != nil {
		return err
	}
	return writeExportFile(*output, buf.Bytes())
}

// writeExportFile replaces path with data, so that a firewall reloading it
// never reads half a file.
func writeExportFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
