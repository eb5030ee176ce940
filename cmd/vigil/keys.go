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
)

// runKeys lists, rotates or shreds the data keys of encryption at rest, or
// changes the master key, through the running server (only it writes the
// keyring).
func runKeys(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("keys", `[list|rotate|shred ID --yes|change-master --new-key-file PATH] [flags]

Lists the data keys that encrypt sensitive fields at rest (id, creation time,
fingerprint; never the keys); rotate: new events use a new key, old ones stay
readable; shred ID: delete an old key, so that the fields it encrypted can
never be read again (crypto-shredding; cannot be undone); change-master: wrap
the data keys under the master key in PATH, a file on the server's machine
(then point encryption.master_key_file at it before the next start).
Needs a server with encryption enabled (docs/encryption.md).`, stderr)
	var cf clientFlags
	cf.register(fs)
	yes := fs.Bool("yes", false, "shred: confirm that the key's fields become unreadable for good")
	newKeyFile := fs.String("new-key-file", "", "change-master: absolute path of the new master key file on the server")
	words, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	sub := "list"
	if len(words) > 0 {
		sub = words[0]
	}
	var path string
	var body any
	switch {
	case sub == "list" && len(words) <= 1:
		path = "/api/v1/keys"
	case sub == "rotate" && len(words) == 1:
		path = "/api/v1/keys/rotate"
	case sub == "shred" && len(words) == 2:
		if !*yes {
			return usageError{fmt.Errorf("shredding key %s makes the fields it encrypted unreadable for good: add --yes", words[1])}
		}
		path, body = "/api/v1/keys/"+url.PathEscape(words[1])+"/shred", map[string]string{"confirm": words[1]}
	case sub == "change-master" && len(words) == 1:
		if *newKeyFile == "" {
			return usageError{errors.New("change-master needs --new-key-file PATH")}
		}
		return keysChangeMaster(cf, *newKeyFile, stdout)
	default:
		return usageError{fmt.Errorf("want list, rotate, shred ID or change-master, got %q", words)}
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
	method := http.MethodPost
	if sub == "list" {
		method = http.MethodGet
	}
	if err := c.Call(context.Background(), method, path, body, &answer); err != nil {
		return err
	}
	switch sub {
	case "rotate":
		fmt.Fprintf(stdout, "new events are encrypted with key %s\n", answer.Current)
	case "shred":
		fmt.Fprintf(stdout, "key %s shredded: the fields it encrypted can no longer be read (copies of keys.json in backups still hold it)\n", words[1])
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tCREATED\tCURRENT\tFINGERPRINT")
	for _, k := range answer.Keys {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\n", k.ID, k.Created.UTC().Format(time.RFC3339), k.Current, k.Fingerprint)
	}
	return tw.Flush()
}

// keysChangeMaster asks the server to wrap the data keys under the master
// key in file.
func keysChangeMaster(cf clientFlags, file string, stdout io.Writer) error {
	c, err := cf.client()
	if err != nil {
		return err
	}
	var answer struct {
		Next string `json:"next"`
	}
	if err := c.Call(context.Background(), http.MethodPost, "/api/v1/keys/master", map[string]string{"master_key_file": file}, &answer); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "master key changed. Now %s\n", answer.Next)
	return nil
}
