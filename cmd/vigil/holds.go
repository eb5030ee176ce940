package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/vigilsec/vigil/internal/retention"
)

const holdsUsage = `Usage: vigil holds COMMAND [flags]

Legal holds: events a hold matches are never purged by retention, until the
hold is lifted or its --until passes. Holds placed here survive restarts;
those of the configuration (retention.holds) can only be changed there.
Needs an admin token (VIGIL_TOKEN).

Commands:
  list                                   list the holds in force
  add ID (--query Q | --incident INC)    place or replace a hold
        [--reason TEXT] [--until TIME]
  remove ID                              lift a hold

Examples:
  vigil holds add case-43 --query 'source.ip in 203.0.113.0/24' --reason "police request"
  vigil holds add inc-7 --incident INC-7 --until 2027-06-30
  vigil holds remove case-43
`

func runHolds(args []string, stdout, stderr io.Writer) error {
	return runSubcommand(args, stdout, stderr, holdsUsage, "list, add or remove", []subcommand{
		{[]string{"list", "ls"}, holdsList},
		{[]string{"add"}, holdsAdd},
		{[]string{"remove", "rm"}, holdsRemove},
	})
}

func holdsList(args []string, stdout, stderr io.Writer) error {
	c, _, err := clientWords(newFlags("holds list", "", stderr), args, 0, "list takes no arguments")
	if err != nil {
		return err
	}
	var got struct{ Holds []retention.Hold }
	if err := c.Call(context.Background(), http.MethodGet, "/api/v1/holds", nil, &got); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tMATCHES\tUNTIL\tREASON")
	for _, h := range got.Holds {
		match := h.Query
		if h.Incident != "" {
			match = "incident " + h.Incident
		}
		until := "-"
		if !h.Until.IsZero() {
			until = h.Until.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", h.ID, trimLine(match, 60), until, dash(h.Reason))
	}
	return tw.Flush()
}

func holdsAdd(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("holds add", "ID (--query Q | --incident INC) [--reason TEXT] [--until TIME]", stderr)
	query := fs.String("query", "", "the events to keep, as a search query (docs/rules.md)")
	incident := fs.String("incident", "", "keep the events labelled with this incident (labels.incident)")
	reason := fs.String("reason", "", "why the events are held")
	until := fs.String("until", "", "when the hold ends (RFC 3339 or YYYY-MM-DD); none: until removed")
	c, words, err := clientWords(fs, args, 1, "give the hold's ID")
	if err != nil {
		return err
	}
	if (*query == "") == (*incident == "") {
		return usageError{errors.New("give --query or --incident (one of them)")}
	}
	h := retention.Hold{ID: words[0], Query: *query, Incident: *incident, Reason: *reason}
	if *until != "" {
		if h.Until, err = retention.ParseDate(*until); err != nil {
			return usageError{fmt.Errorf("--until: %w", err)}
		}
	}
	if err := c.Call(context.Background(), http.MethodPost, "/api/v1/holds", h, nil); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "hold %s placed: matching events are not purged until it is removed\n", h.ID)
	return nil
}

func holdsRemove(args []string, stdout, stderr io.Writer) error {
	c, words, err := clientWords(newFlags("holds remove", "ID", stderr), args, 1, "give the ID of one hold (see 'vigil holds list')")
	if err != nil {
		return err
	}
	if err := c.Call(context.Background(), http.MethodDelete, "/api/v1/holds/"+url.PathEscape(words[0]), nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "hold %s lifted\n", words[0])
	return nil
}
