package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigilsec/vigil/internal/detect"
	"github.com/vigilsec/vigil/internal/event"
)

// rulesStdin is where `rules test --events -` reads (a variable for tests).
var rulesStdin io.Reader = os.Stdin

// rulesTickEvery is how often, in event time, `rules test` advances the
// engine's clock between events, as the server does in wall-clock time.
const rulesTickEvery = 10 * time.Second

const rulesSynopsis = `COMMAND [flags]

Commands:
  test RULES --events FILE   run rules over events offline and print what would fire
  check RULES                validate rule files (YAML rules and Sigma files)
  list [RULES]               list the built-in rules (and those of RULES)

RULES is a rule file or a directory of *.yml / *.yaml files.
Run 'vigil rules COMMAND --help' for a command's flags.`

func runRules(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintf(stderr, "Usage: vigil rules %s\n", rulesSynopsis)
		return usageError{errors.New("missing command: test, check or list")}
	}
	switch args[0] {
	case "-h", "--help", "-help", "help":
		fmt.Fprintf(stdout, "Usage: vigil rules %s\n", rulesSynopsis)
		return flag.ErrHelp
	case "test":
		return runRulesTest(args[1:], stdout, stderr)
	case "check":
		return runRulesCheck(args[1:], stdout, stderr)
	case "list":
		return runRulesList(args[1:], stdout, stderr)
	}
	return usageError{fmt.Errorf("unknown command %q (test, check or list)", args[0])}
}

// loadRules loads the rules of path (may be empty) with or without the
// built-in pack.
func loadRules(path string, builtin bool) (*detect.RuleSet, error) {
	if path == "" && !builtin {
		return nil, usageError{errors.New("no rules: give RULES, or --builtin")}
	}
	return detect.Load(path, detect.LoadOptions{NoBuiltin: !builtin})
}

func oneRulesArg(words []string) (string, error) {
	switch len(words) {
	case 0:
		return "", nil
	case 1:
		return words[0], nil
	}
	return "", usageError{fmt.Errorf("one RULES path expected, got %d: %s", len(words), strings.Join(words, " "))}
}

func runRulesCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("rules check", "RULES [flags]\n\nValidates the rule files of RULES (a file or a directory) with the\nbuilt-in pack they may override, and lists the rules found.", stderr)
	builtin := fs.Bool("builtin", true, "check RULES together with the built-in pack (overrides must name a built-in rule)")
	words, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	path, err := oneRulesArg(words)
	if err != nil {
		return err
	}
	if path == "" {
		return usageError{errors.New("missing RULES")}
	}
	rs, err := loadRules(path, *builtin)
	if err != nil {
		return err
	}
	n, enabled := 0, 0
	for _, r := range rs.Rules() {
		if r.Builtin && r.Enabled {
			continue // shown only when RULES changed them
		}
		n++
		state := "enabled"
		if r.Enabled {
			enabled++
		} else {
			state = "disabled"
		}
		fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\n", r.Name, r.Kind, state, r.Source)
	}
	fmt.Fprintf(stdout, "%s: ok, %d rules (%d enabled); longest window %s\n", path, n, enabled, rs.MaxWindow())
	return nil
}

func runRulesList(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("rules list", "[RULES] [flags]\n\nLists the built-in rules, merged with those of RULES when given.", stderr)
	verbose := fs.Bool("v", false, "also print each rule's condition")
	words, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	path, err := oneRulesArg(words)
	if err != nil {
		return err
	}
	rs, err := detect.Load(path, detect.LoadOptions{})
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tSEVERITY\tENABLED\tDESCRIPTION")
	for _, r := range rs.Rules() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\n", r.Name, r.Kind, r.Severity, r.Enabled, firstSentence(r.Description))
		if *verbose {
			fmt.Fprintf(tw, "\t\t\t\t  %s\n", r.Summary())
		}
	}
	return tw.Flush()
}

func firstSentence(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if i := strings.Index(s, ". "); i >= 0 {
		s = s[:i+1]
	}
	return trimLine(s, 100)
}

type rulesTestFlags struct {
	events  string
	builtin bool
	all     bool
	json    bool
	now     string
}

func runRulesTest(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("rules test", `[RULES] --events FILE [flags]

Runs the rules of RULES (a file or a directory) over the events of FILE, as
the server would, and prints what would fire: time, rule, group, and the line
numbers of the events behind it. FILE holds NDJSON events, or plain-text log
lines (each line becomes an event whose message is the line); "-" reads
standard input. Events without @timestamp, and plain lines, take the time of
--now. Windows run on event time.
Examples:
  vigil rules test rules/ --events app.ndjson
  vigil rules test --builtin --events access.log --all`, stderr)
	var f rulesTestFlags
	fs.StringVar(&f.events, "events", "", "file of events (NDJSON or plain text lines), - for standard input")
	fs.BoolVar(&f.builtin, "builtin", false, "also run the built-in rules")
	fs.BoolVar(&f.all, "all", false, "also print resolutions and keep-alives, and resolve what still fires after the last event")
	fs.BoolVar(&f.json, "json", false, "print one JSON object per signal")
	fs.StringVar(&f.now, "now", "", "time given to events that have none (RFC 3339; default: now)")
	words, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	path, err := oneRulesArg(words)
	if err != nil {
		return err
	}
	if f.events == "" {
		return usageError{errors.New("missing --events FILE")}
	}
	now := time.Now().UTC()
	if f.now != "" {
		if now, err = time.Parse(time.RFC3339Nano, f.now); err != nil {
			return usageError{fmt.Errorf("--now %q: not an RFC 3339 time", f.now)}
		}
	}
	rs, err := loadRules(path, f.builtin)
	if err != nil {
		return err
	}
	if len(rs.Enabled()) == 0 {
		return errors.New("no enabled rules")
	}
	in := rulesStdin
	name := "stdin"
	if f.events != "-" {
		file, err := os.Open(f.events)
		if err != nil {
			return err
		}
		defer file.Close()
		in, name = file, f.events
	}
	out := newSignalPrinter(stdout, f.json, f.all)
	eng := detect.NewEngine(rs)
	var last, nextTick time.Time
	events, bad := 0, 0
	err = readEventLines(in, func(lineNo int, line []byte, tooLong bool) error {
		if tooLong {
			bad++
			fmt.Fprintf(stderr, "%s:%d: line longer than %d bytes, skipped\n", name, lineNo, event.DefaultLimits.MaxBytes)
			return nil
		}
		e, err := lineEvent(line, now)
		if err != nil {
			bad++
			fmt.Fprintf(stderr, "%s:%d: %v\n", name, lineNo, err)
			return nil
		}
		events++
		if e.Time.After(last) {
			last = e.Time
		}
		if nextTick.IsZero() {
			nextTick = e.Time.Truncate(rulesTickEvery).Add(rulesTickEvery)
		}
		for !e.Time.Before(nextTick) {
			if err := out.print(eng.Tick(nextTick)); err != nil {
				return err
			}
			nextTick = nextTick.Add(rulesTickEvery)
		}
		return out.print(eng.Process(uint64(lineNo), &e))
	})
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if f.all && events > 0 {
		// Let time pass after the last event until every alert resolved.
		end := last.Add(eng.MaxWindow() + rulesTickEvery)
		for eng.Stats().FiringGroups > 0 && !nextTick.After(end) {
			if err := out.print(eng.Tick(nextTick)); err != nil {
				return err
			}
			nextTick = nextTick.Add(rulesTickEvery)
		}
	}
	if err := out.flush(); err != nil {
		return err
	}
	st := eng.Stats()
	fmt.Fprintf(stderr, "%d events, %d rules, %d firing signals, %d resolved\n", events, len(rs.Enabled()), st.Firing, st.Resolved)
	if bad > 0 {
		return fmt.Errorf("%s: %d lines could not be read (see above)", name, bad)
	}
	return nil
}

// lineEvent turns one input line into an event: a JSON object is parsed as
// an event; any other line becomes {"message": line}.
func lineEvent(line []byte, now time.Time) (event.Event, error) {
	if t := bytes.TrimLeft(line, " \t"); len(t) > 0 && t[0] == '{' {
		return event.Parse(line, event.Limits{}, now)
	}
	msg, err := json.Marshal(map[string]string{"message": strings.ToValidUTF8(string(line), "\uFFFD")})
	if err != nil {
		return event.Event{}, err
	}
	return event.Parse(msg, event.Limits{}, now)
}

// readEventLines calls fn for every non-blank line of r, numbered from 1,
// without its line ending. Lines longer than the event size limit are not
// read into memory: fn gets tooLong instead.
func readEventLines(r io.Reader, fn func(lineNo int, line []byte, tooLong bool) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	max := event.DefaultLimits.MaxBytes
	var buf []byte
	lineNo := 0
	for {
		chunk, err := br.ReadSlice('\n')
		long := false
		buf = append(buf[:0], chunk...)
		for errors.Is(err, bufio.ErrBufferFull) {
			chunk, err = br.ReadSlice('\n')
			if !long {
				buf = append(buf, chunk...)
				if len(buf) > max+2 {
					long, buf = true, buf[:0]
				}
			}
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if len(buf) > 0 || long || err == nil {
			lineNo++
			line := bytes.TrimRight(buf, "\r\n")
			if long || len(bytes.TrimSpace(line)) > 0 {
				if ferr := fn(lineNo, line, long); ferr != nil {
					return ferr
				}
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
	}
}

// signalPrinter prints signals as a table or as JSON lines.
type signalPrinter struct {
	w      io.Writer
	tw     *tabwriter.Writer
	json   bool
	all    bool
	header bool
}

func newSignalPrinter(w io.Writer, asJSON, all bool) *signalPrinter {
	p := &signalPrinter{w: w, json: asJSON, all: all}
	if !asJSON {
		p.tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	}
	return p
}

type signalJSON struct {
	Time        time.Time         `json:"time"`
	Firing      bool              `json:"firing"`
	Rule        string            `json:"rule"`
	Severity    string            `json:"severity"`
	Group       map[string]string `json:"group"`
	Line        uint64            `json:"line,omitempty"`
	Lines       []uint64          `json:"lines,omitempty"`
	Value       float64           `json:"value"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Action      *actionJSON       `json:"action,omitempty"`
}

type actionJSON struct {
	Type  string `json:"type"`
	Scope string `json:"scope"`
	Field string `json:"field"`
	Value string `json:"value"`
	TTL   string `json:"ttl"`
}

// print prints signals; keep-alives and resolutions only with all.
func (p *signalPrinter) print(sigs []detect.Signal) error {
	for _, s := range sigs {
		if !p.all && !s.Firing {
			continue
		}
		if p.json {
			sj := signalJSON{
				Time: s.At, Firing: s.Firing, Rule: s.Rule, Severity: s.Severity, Group: s.Group,
				Line: s.Seq, Lines: s.Evidence, Value: s.Value, Annotations: s.Annotations, Labels: s.Labels,
			}
			if a := s.Action; a != nil {
				sj.Action = &actionJSON{Type: a.Type, Scope: a.Scope, Field: a.Field, Value: a.Value, TTL: a.TTL.String()}
			}
			b, err := json.Marshal(sj)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(p.w, "%s\n", b); err != nil {
				return err
			}
			continue
		}
		if !p.header {
			p.header = true
			fmt.Fprintln(p.tw, "TIME\tSTATE\tRULE\tSEVERITY\tGROUP\tLINES\tSUMMARY")
		}
		state := "firing"
		if !s.Firing {
			state = "resolved"
		}
		fmt.Fprintf(p.tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.At.UTC().Format(time.RFC3339Nano), state, s.Rule, s.Severity,
			groupText(s.Group), lineList(s.Evidence), trimLine(s.Annotations["summary"], 160))
	}
	return nil
}

func (p *signalPrinter) flush() error {
	if p.tw == nil {
		return nil
	}
	if !p.header {
		_, err := fmt.Fprintln(p.w, "nothing would fire")
		return err
	}
	return p.tw.Flush()
}

func groupText(g map[string]string) string {
	if len(g) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(g))
	for k := range g {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + g[k]
	}
	return strings.Join(parts, ",")
}

func lineList(seqs []uint64) string {
	if len(seqs) == 0 {
		return "-"
	}
	parts := make([]string, len(seqs))
	for i, s := range seqs {
		parts[i] = strconv.FormatUint(s, 10)
	}
	return strings.Join(parts, ",")
}
