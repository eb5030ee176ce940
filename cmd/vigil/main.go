// Command vigil is Vigil's single binary: the server and its command-line
// client.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/vigilsec/vigil/internal/client"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the Vigil server (zero config: SQLite in ./vigil-data, 127.0.0.1:8080)", runServe},
		{"send", "send NDJSON events from files or standard input", runSend},
		{"search", "search events by field, IP or CIDR, time range and free text; count and top-N", runSearch},
		{"tail", "print the latest events; -f follows new ones as they arrive", runTail},
		{"demo", "send realistic traffic of a small web shop, including attacks", runDemo},
		{"rules", "test detection rules offline over a log, check them, list the built-in pack", runRules},
		{"alerts", "list alerts or show one with its evidence", runAlerts},
		{"silence", "add, list or expire silences", runSilence},
		{"decisions", "list, add, remove and export bans and throttles", runDecisions},
		{"token", "create, list and revoke API tokens with a role (admin, ingest, read, respond)", runToken},
		{"notify", "send test notifications through the configured receivers", runNotify},
		{"verify", "verify the tamper-evident log: a server, a data directory or an export", runVerify},
		{"witness", "watch a Vigil's signed checkpoints and alert on a rewrite, rollback or fork", runWitness},
		{"pubkey", "print the public key that signs the log's checkpoints", runPubkey},
		{"export", "export events with the checkpoint and proofs to verify them offline", runExport},
		{"purge", "archive, then remove, events older than the retention policies keep", runPurge},
		{"holds", "list, place and lift legal holds (held events are never purged)", runHolds},
		{"keys", "list or rotate the data keys of encryption at rest", runKeys},
		{"version", "print the version", func([]string, io.Writer, io.Writer) error { fmt.Println("vigil", version); return nil }},
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "vigil: security event logging, detection and response in one binary.\n\nUsage: vigil COMMAND [flags]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'vigil COMMAND --help' for a command's flags.\n")
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		usage(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(args[1:], stdout, stderr)
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		var ce interface{ ExitCode() int }
		if errors.As(err, &ce) {
			fmt.Fprintf(stderr, "vigil %s: %v\n", c.name, err)
			return ce.ExitCode()
		}
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "vigil %s: %v\n", c.name, err)
			return 2
		}
		if err != nil {
			fmt.Fprintf(stderr, "vigil %s: %v\n", c.name, err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(stderr, "vigil: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

// subcommand is one word of a command that has several (vigil decisions
// list), with its aliases.
type subcommand struct {
	names []string
	run   func(args []string, stdout, stderr io.Writer) error
}

// runSubcommand runs the subcommand args[0] names. usage is printed for
// help, and to stderr when no subcommand is given; want names the
// subcommands in errors ("list, add or remove").
func runSubcommand(args []string, stdout, stderr io.Writer, usage, want string, subs []subcommand) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{errors.New("missing command: " + want)}
	}
	if slices.Contains([]string{"-h", "--help", "help"}, args[0]) {
		fmt.Fprint(stdout, usage)
		return nil
	}
	for _, s := range subs {
		if slices.Contains(s.names, args[0]) {
			return s.run(args[1:], stdout, stderr)
		}
	}
	return usageError{fmt.Errorf("unknown command %q: want %s", args[0], want)}
}

// usageError is a mistake in the command line (exit code 2).
type usageError struct{ error }

// newFlags returns a flag set whose errors are returned, not fatal.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("vigil "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: vigil %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	_, err := parseArgs(fs, args)
	return err
}

// parseArgs parses flags that may stand before, between or after the
// positional words ("vigil search bad password --limit 3") and returns the
// words. Everything after "--" is a word.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var words []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err}
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(words, rest...), nil
		}
		if len(rest) == 0 {
			return words, nil
		}
		words = append(words, rest[0])
		args = rest[1:]
	}
}

// clientFlags are the flags of every command that talks to a server.
type clientFlags struct {
	server string
	token  string
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	def := os.Getenv("VIGIL_URL")
	if def == "" {
		def = "http://127.0.0.1:8080"
	}
	fs.StringVar(&c.server, "server", def, "Vigil server URL (env VIGIL_URL)")
	fs.StringVar(&c.token, "token", "", "API token (default: env VIGIL_TOKEN)")
}

func (c *clientFlags) resolveToken() (string, error) {
	if c.token != "" {
		return c.token, nil
	}
	if t := os.Getenv("VIGIL_TOKEN"); t != "" {
		return t, nil
	}
	return "", usageError{errors.New("no token: set VIGIL_TOKEN (printed by 'vigil serve' on first start) or pass --token")}
}

// clientWords adds the client flags to fs, parses args, checks that
// exactly n words were given (else a usage error saying what), and returns
// a client of the server and the words.
func clientWords(fs *flag.FlagSet, args []string, n int, what string) (*client.Client, []string, error) {
	var cf clientFlags
	cf.register(fs)
	words, err := parseArgs(fs, args)
	if err != nil {
		return nil, nil, err
	}
	if len(words) != n {
		return nil, nil, usageError{errors.New(what)}
	}
	c, err := cf.client()
	return c, words, err
}

// client returns a client of the server the flags name.
func (c *clientFlags) client() (*client.Client, error) {
	tok, err := c.resolveToken()
	if err != nil {
		return nil, err
	}
	return client.New(c.server, tok), nil
}

func trimLine(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}
