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

	"github.com/vigilsec/vigil/internal/alert"
	"github.com/vigilsec/vigil/internal/retention"
)

const tokenUsage = `Usage: vigil token COMMAND [flags]

API tokens: create one for an application or a dashboard with only the role
it needs, list them, revoke one. Needs an admin token (VIGIL_TOKEN).

Roles (join several with commas, e.g. ingest,read):
  admin    everything, including managing tokens
  ingest   send events (POST /api/v1/events) and nothing else: for shippers
  read     GET requests: search, alerts, decisions and their stream, metrics

Commands:
  create NAME --role ROLE   create a token; it is printed once, only its hash is kept
         [--expires 90d|TIME] (a token that stops working then)
  list                      list the tokens (names, roles, creation times)
  revoke NAME               revoke a token (the last admin token cannot be revoked)

Examples:
  vigil token create shop-shipper --role ingest
  vigil token create grafana --role read
  vigil token create pentest --role read --expires 14d
  vigil token revoke shop-shipper
`

func runToken(args []string, stdout, stderr io.Writer) error {
	return runSubcommand(args, stdout, stderr, tokenUsage, "create, list or revoke", []subcommand{
		{[]string{"create"}, tokenCreate},
		{[]string{"list", "ls"}, tokenList},
		{[]string{"revoke", "rm"}, tokenRevoke},
	})
}

type tokenInfo struct {
	Name    string `json:"name"`
	Role    string `json:"role"`
	Created string `json:"created"`
	Expires string `json:"expires,omitempty"`
	Token   string `json:"token,omitempty"`
}

func tokenCreate(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("token create", "NAME --role admin|ingest|read[,…] [--expires 90d|TIME]", stderr)
	role := fs.String("role", "", "the token's role: admin, ingest, read or respond, or several joined by commas (required)")
	expires := fs.String("expires", "", "when the token stops working: a duration from now (90d, 12h) or a time (RFC 3339, YYYY-MM-DD); none: never")
	c, words, err := clientWords(fs, args, 1, "give one NAME and --role")
	if err != nil {
		return err
	}
	if *role == "" {
		return usageError{errors.New("give one NAME and --role")}
	}
	body := map[string]any{"name": words[0], "role": *role}
	if *expires != "" {
		at, err := parseExpiry(*expires, time.Now())
		if err != nil {
			return usageError{fmt.Errorf("--expires: %w", err)}
		}
		body["expires"] = at
	}
	var got tokenInfo
	if err := c.Call(context.Background(), http.MethodPost, "/api/v1/tokens", body, &got); err != nil {
		return err
	}
	until := ""
	if got.Expires != "" {
		until = ", expiring " + got.Expires
	}
	fmt.Fprintf(stderr, "token %s created with role %s%s; it is shown once, store it now:\n", got.Name, got.Role, until)
	fmt.Fprintln(stdout, got.Token)
	return nil
}

func tokenList(args []string, stdout, stderr io.Writer) error {
	c, _, err := clientWords(newFlags("token list", "", stderr), args, 0, "list takes no arguments")
	if err != nil {
		return err
	}
	var got struct{ Tokens []tokenInfo }
	if err := c.Call(context.Background(), http.MethodGet, "/api/v1/tokens", nil, &got); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tCREATED\tEXPIRES")
	for _, t := range got.Tokens {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, t.Role, t.Created, dash(t.Expires))
	}
	return tw.Flush()
}

// parseExpiry reads a duration from now ("90d", "12h") or a time.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	if d, err := alert.ParseDuration(s); err == nil {
		return now.Add(d), nil
	}
	return retention.ParseDate(s)
}

func tokenRevoke(args []string, stdout, stderr io.Writer) error {
	c, words, err := clientWords(newFlags("token revoke", "NAME", stderr), args, 1, "give the NAME of one token (see 'vigil token list')")
	if err != nil {
		return err
	}
	var got tokenInfo
	if err := c.Call(context.Background(), http.MethodDelete, "/api/v1/tokens/"+url.PathEscape(words[0]), nil, &got); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "revoked: token %s (role %s)\n", got.Name, got.Role)
	return nil
}
