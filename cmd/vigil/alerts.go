package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigilsec/vigil/internal/alert"
	"github.com/vigilsec/vigil/internal/client"
)

func runAlerts(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("alerts", "[list] [flags] [MATCHER…] | show FINGERPRINT\n\n"+
		"Lists the alerts of a running Vigil, or shows one with its evidence.\n"+
		"MATCHERs select by label, in Alertmanager's syntax.\nExamples:\n"+
		"  vigil alerts --state firing\n  vigil alerts 'severity=~\"critical|error\"' source.ip=203.0.113.7\n"+
		"  vigil alerts show 3fa2c1d0", stderr)
	var cf clientFlags
	cf.register(fs)
	state := fs.String("state", "", "only alerts in these states: pending, firing, resolved (comma-separated)")
	receiver := fs.String("receiver", "", "only alerts routed to this receiver")
	silenced := fs.String("silenced", "", "true: only silenced alerts; false: only alerts that are not")
	inhibited := fs.String("inhibited", "", "true: only alerts muted by an inhibit rule; false: only alerts that are not")
	limit := fs.Int("limit", 100, "maximum alerts to print (1..10000)")
	asJSON := fs.Bool("json", false, "print JSON as the API answers it")
	words, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	sub := "list"
	if len(words) > 0 && (words[0] == "list" || words[0] == "show") {
		sub, words = words[0], words[1:]
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	if sub == "show" {
		if len(words) != 1 {
			return usageError{errors.New("show takes one FINGERPRINT (or a unique prefix of one)")}
		}
		a, err := findAlert(ctx, c, words[0])
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(stdout, a)
		}
		return printAlertDetail(stdout, a)
	}
	v := url.Values{}
	if *state != "" {
		v.Set("state", *state)
	}
	if *receiver != "" {
		v.Set("receiver", *receiver)
	}
	if *inhibited != "" {
		v.Set("inhibited", *inhibited)
	}
	if *silenced != "" {
		v.Set("silenced", *silenced)
	}
	for _, w := range words {
		if _, err := alert.ParseMatchers(w); err != nil {
			return usageError{err}
		}
		v.Add("filter", w)
	}
	v.Set("limit", strconv.Itoa(*limit))
	var ans struct {
		Alerts []alert.AlertInfo `json:"alerts"`
	}
	if err := c.Call(ctx, http.MethodGet, "/api/v1/alerts?"+v.Encode(), nil, &ans); err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, ans)
	}
	if len(ans.Alerts) == 0 {
		fmt.Fprintln(stderr, "no alerts")
		return nil
	}
	if err := printAlertTable(stdout, ans.Alerts); err != nil {
		return err
	}
	if len(ans.Alerts) == *limit {
		fmt.Fprintf(stderr, "(showing %d; narrow with --state or matchers, or raise --limit)\n", *limit)
	}
	return nil
}

// findAlert fetches an alert by fingerprint, or by a unique prefix of one.
func findAlert(ctx context.Context, c *client.Client, fp string) (alert.AlertInfo, error) {
	var a alert.AlertInfo
	err := c.Call(ctx, http.MethodGet, "/api/v1/alerts/"+url.PathEscape(fp), nil, &a)
	var ce *client.Error
	if err == nil || !errors.As(err, &ce) || ce.Status != http.StatusNotFound || len(fp) >= 16 {
		return a, err
	}
	var ans struct {
		Alerts []alert.AlertInfo `json:"alerts"`
	}
	if err := c.Call(ctx, http.MethodGet, "/api/v1/alerts?limit=10000", nil, &ans); err != nil {
		return a, err
	}
	var found []string
	for _, x := range ans.Alerts {
		if strings.HasPrefix(x.Fingerprint, fp) {
			found = append(found, x.Fingerprint)
		}
	}
	switch len(found) {
	case 0:
		return a, fmt.Errorf("no alert with fingerprint %s", fp)
	case 1:
		err := c.Call(ctx, http.MethodGet, "/api/v1/alerts/"+found[0], nil, &a)
		return a, err
	}
	return a, fmt.Errorf("%s is the start of %d fingerprints (%s): give more of it", fp, len(found), strings.Join(found, ", "))
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func localTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// otherLabels writes the labels that are not shown in their own column.
func otherLabels(l map[string]string) string {
	var parts []string
	for _, k := range sortedKeys(l) {
		switch k {
		case "alertname", "rule", "severity":
			continue
		}
		parts = append(parts, k+"="+l[k])
	}
	return strings.Join(parts, " ")
}

func printAlertTable(w io.Writer, alerts []alert.AlertInfo) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FINGERPRINT\tSTATE\tSEVERITY\tALERTNAME\tACTIVE SINCE\tEVENTS\tLABELS")
	for _, a := range alerts {
		st := a.State
		if a.Silenced {
			st += " (silenced)"
		}
		if a.Inhibited {
			st += " (inhibited)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", a.Fingerprint, st, dash(a.Labels["severity"]),
			dash(a.Labels["alertname"]), localTime(a.ActiveAt), a.EvidenceCount, trimLine(dash(otherLabels(a.Labels)), 60))
	}
	return tw.Flush()
}

func printAlertDetail(w io.Writer, a alert.AlertInfo) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	st := a.State
	if a.Silenced {
		st += " (silenced by " + strings.Join(a.SilencedBy, ", ") + ")"
	}
	if a.Inhibited {
		st += " (inhibited by alert " + strings.Join(a.InhibitedBy, ", ") + ")"
	}
	fmt.Fprintf(tw, "Fingerprint:\t%s\n", a.Fingerprint)
	fmt.Fprintf(tw, "State:\t%s\n", st)
	fmt.Fprintf(tw, "Rule:\t%s\n", a.Rule)
	fmt.Fprintf(tw, "Active since:\t%s\n", localTime(a.ActiveAt))
	if a.For != "" {
		fmt.Fprintf(tw, "For:\t%s\n", a.For)
	}
	fmt.Fprintf(tw, "Firing since:\t%s\n", localTime(a.StartsAt))
	if !a.EndsAt.IsZero() {
		fmt.Fprintf(tw, "Resolved at:\t%s\n", localTime(a.EndsAt))
	}
	fmt.Fprintf(tw, "Last signal:\t%s (%d signals)\n", localTime(a.UpdatedAt), a.Signals)
	fmt.Fprintf(tw, "Receivers:\t%s\n", dash(strings.Join(a.Receivers, ", ")))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "Labels:")
	for _, k := range sortedKeys(a.Labels) {
		fmt.Fprintf(w, "  %s=%s\n", k, a.Labels[k])
	}
	if len(a.Annotations) > 0 {
		fmt.Fprintln(w, "Annotations:")
		for _, k := range sortedKeys(a.Annotations) {
			fmt.Fprintf(w, "  %s: %s\n", k, a.Annotations[k])
		}
	}
	seqs := make([]string, len(a.Evidence))
	for i, s := range a.Evidence {
		seqs[i] = strconv.FormatUint(s, 10)
	}
	fmt.Fprintf(w, "Evidence: %d events", a.EvidenceCount)
	if len(seqs) > 0 {
		fmt.Fprintf(w, "; kept sequence numbers: %s", strings.Join(seqs, " "))
		if a.EvidenceCount > len(seqs) {
			fmt.Fprintf(w, " (the first %d and the latest %d)", alert.EvidenceFirst, len(seqs)-alert.EvidenceFirst)
		}
	}
	fmt.Fprintln(w)
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func runSilence(args []string, stdout, stderr io.Writer) error {
	const subs = "add MATCHER… --for 2h --comment TEXT | list | expire ID…"
	if len(args) == 0 {
		newFlags("silence", subs, stderr).Usage()
		return usageError{errors.New("missing subcommand: add, list or expire")}
	}
	switch args[0] {
	case "add":
		return runSilenceAdd(args[1:], stdout, stderr)
	case "list":
		return runSilenceList(args[1:], stdout, stderr)
	case "expire":
		return runSilenceExpire(args[1:], stdout, stderr)
	case "-h", "--help", "-help", "help":
		newFlags("silence", subs, stderr).Usage()
		return flag.ErrHelp
	}
	return usageError{fmt.Errorf("unknown subcommand %q: use add, list or expire", args[0])}
}

func currentUser() string {
	for _, k := range []string{"VIGIL_USER", "USER", "USERNAME"} {
		if u := os.Getenv(k); u != "" {
			return u
		}
	}
	return "vigil-cli"
}

func runSilenceAdd(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("silence add", "MATCHER… --comment TEXT [--for 2h | --until TIME] [flags]\n\n"+
		"Silences the alerts all MATCHERs select (Alertmanager syntax); prints the silence ID.\nExample:\n"+
		"  vigil silence add rule=scanner 'source.ip=~\"10\\\\..*\"' --for 8h --comment 'internal pentest'", stderr)
	var cf clientFlags
	cf.register(fs)
	forDur := fs.String("for", "1h", "how long the silence lasts (30m, 2h, 7d)")
	until := fs.String("until", "", "end time in RFC 3339, instead of --for")
	start := fs.String("start", "", "start time in RFC 3339 (default now)")
	comment := fs.String("comment", "", "why the alerts are silenced (required)")
	author := fs.String("author", currentUser(), "who creates the silence (env VIGIL_USER, USER)")
	asJSON := fs.Bool("json", false, "print the created silence as JSON")
	words, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(words) == 0 {
		return usageError{errors.New("give at least one MATCHER, such as rule=brute_force")}
	}
	if *comment == "" {
		return usageError{errors.New("--comment is required: say why")}
	}
	for _, w := range words {
		if _, err := alert.ParseMatchers(w); err != nil {
			return usageError{err}
		}
	}
	req := alert.SilenceRequest{Matchers: words, CreatedBy: *author, Comment: *comment}
	if *start != "" {
		t, err := time.Parse(time.RFC3339, *start)
		if err != nil {
			return usageError{fmt.Errorf("--start %q: not RFC 3339 (2025-03-01T12:00:00Z)", *start)}
		}
		req.StartsAt = &t
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case *until != "" && set["for"]:
		return usageError{errors.New("give --for or --until, not both")}
	case *until != "":
		t, err := time.Parse(time.RFC3339, *until)
		if err != nil {
			return usageError{fmt.Errorf("--until %q: not RFC 3339 (2025-03-01T12:00:00Z)", *until)}
		}
		req.EndsAt = &t
	default:
		if d, err := alert.ParseDuration(*forDur); err != nil || d <= 0 {
			return usageError{fmt.Errorf("--for %q: not a positive duration (30m, 2h, 7d)", *forDur)}
		}
		req.Duration = *forDur
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	var s alert.Silence
	if err := c.Call(ctx, http.MethodPost, "/api/v1/silences", req, &s); err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, s)
	}
	fmt.Fprintln(stdout, s.ID)
	fmt.Fprintf(stderr, "silence %s (%s) until %s\n", s.Matchers, s.Status, localTime(s.EndsAt))
	return nil
}

func runSilenceList(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("silence list", "[--all | --state STATES] [--json]", stderr)
	var cf clientFlags
	cf.register(fs)
	all := fs.Bool("all", false, "include expired silences")
	state := fs.String("state", "", "only silences in these states: active, pending, expired (comma-separated; default active,pending)")
	asJSON := fs.Bool("json", false, "print JSON as the API answers it")
	words, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(words) > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", words[0])}
	}
	v := url.Values{}
	switch {
	case *state != "":
		v.Set("state", *state)
	case !*all:
		v.Set("state", "active,pending")
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	var ans struct {
		Silences []alert.Silence `json:"silences"`
	}
	if err := c.Call(ctx, http.MethodGet, "/api/v1/silences?"+v.Encode(), nil, &ans); err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, ans)
	}
	if len(ans.Silences) == 0 {
		fmt.Fprintln(stderr, "no silences")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tSTARTS\tENDS\tCREATED BY\tMATCHERS\tCOMMENT")
	for _, s := range ans.Silences {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Status, localTime(s.StartsAt), localTime(s.EndsAt),
			trimLine(s.CreatedBy, 20), trimLine(s.Matchers.String(), 60), trimLine(s.Comment, 60))
	}
	return tw.Flush()
}

func runSilenceExpire(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("silence expire", "ID…", stderr)
	var cf clientFlags
	cf.register(fs)
	words, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(words) == 0 {
		return usageError{errors.New("give the ID of the silence to expire (see vigil silence list)")}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	for _, id := range words {
		var s alert.Silence
		if err := c.Call(ctx, http.MethodDelete, "/api/v1/silences/"+url.PathEscape(id), nil, &s); err != nil {
			return fmt.Errorf("expire %s: %w", id, err)
		}
		fmt.Fprintf(stdout, "expired %s %s\n", s.ID, s.Matchers)
	}
	return nil
}
