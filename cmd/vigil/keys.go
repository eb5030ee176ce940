package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// runKeys lists or rotates the data keys of encryption at rest, through the
// running server (only it writes the keyring).
func runKeys(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("keys", "[list|rotate] [flags]\n\nLists the data keys that encrypt sensitive fields at rest (id, creation time,\nfingerprint; never the keys), or rotates: new events use a new key, old ones\nstay readable. Needs a server with encryption enabled (docs/encryption.md).", stderr)
	var cf clientFlags
	cf.register(fs)
	words, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	sub := "list"
	if len(words) > 0 {
		sub = words[0]
	}
	if len(words) > 1 || sub != "list" && sub != "rotate" {
		return usageError{fmt.Errorf("want list or rotate, got %q", words)}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	var answer struct {
		Current string `json:"current"`
		Keys    []struct {
			ID          string    `json:"id"`
			Created     time.Time `json:"created"`
			Current     bool      `json:"current"`
			Fingerprint string    `json:"fingerprint"`
		} `json:"keys"`
	}
	ctx := context.Background()
	if sub == "rotate" {
		err = c.Call(ctx, "POST", "/api/v1/keys/rotate", nil, &answer)
	} else {
		err = c.Call(ctx, "GET", "/api/v1/keys", nil, &answer)
	}
	if err != nil {
		return err
	}
	if sub == "rotate" {
		fmt.Fprintf(stdout, "new events are encrypted with key %s\n", answer.Current)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tCREATED\tCURRENT\tFINGERPRINT")
	for _, k := range answer.Keys {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\n", k.ID, k.Created.UTC().Format(time.RFC3339), k.Current, k.Fingerprint)
	}
	return tw.Flush()
}
