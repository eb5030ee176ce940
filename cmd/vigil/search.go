package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigilsec/vigil/internal/client"
)

// filterFlags are the event filters shared by search and tail.
type filterFlags struct {
	fields map[string]*string
	order  []string
	where  multiFlag
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func (f *filterFlags) register(fs *flag.FlagSet) {
	f.fields = map[string]*string{}
	add := func(flagName, param, help string) {
		f.fields[param] = fs.String(flagName, "", help)
		f.order = append(f.order, param)
	}
	add("ip", "source.ip", "source IP address or CIDR prefix (10.0.0.0/8)")
	add("user", "user.name", "user name")
	add("user-id", "user.id", "user id")
	add("action", "event.action", "event action (authn_login_fail, http_request, …)")
	add("category", "event.category", "event category")
	add("outcome", "event.outcome", "success, failure or unknown")
	add("method", "http.request.method", "HTTP method")
	add("path", "url.path", "URL path")
	add("status", "http.response.status_code", "HTTP status code")
	add("request-id", "http.request.id", "request ID")
	add("service", "service.name", "service name")
	add("related", "related", "related object (type:id)")
	add("since", "from", "start time: RFC 3339, YYYY-MM-DD, or a duration back from now (15m, 24h, 7d)")
	add("until", "to", "end time, same forms as --since")
	add("filter", "filter", `filter expression, as in detection rules (docs/rules.md): 'url.query contains~ "union select"'`)
	fs.Var(&f.where, "where", "FIELD=VALUE filter using the API's parameter names (repeatable)")
}

func (f *filterFlags) values(words []string) (url.Values, error) {
	v := url.Values{}
	for _, p := range f.order {
		if s := *f.fields[p]; s != "" {
			v.Set(p, s)
		}
	}
	for _, w := range f.where {
		k, val, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return nil, usageError{fmt.Errorf("--where %q: use FIELD=VALUE", w)}
		}
		v.Set(k, val)
	}
	if len(words) > 0 {
		v.Set("q", strings.Join(words, " "))
	}
	return v, nil
}

func runSearch(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("search", "[flags] [WORDS…]\n\nFinds events matching all filters; WORDS search the message text.\nExamples:\n  vigil search --ip 203.0.113.7\n  vigil search --action authn_login_fail --top user.name\n  vigil search --since 1h --count scanner", stderr)
	var cf clientFlags
	cf.register(fs)
	var ff filterFlags
	ff.register(fs)
	limit := fs.Int("limit", 50, "maximum events to print (1..10000)")
	after := fs.Uint64("after", 0, "only events with a sequence number above this (pagination)")
	asc := fs.Bool("oldest-first", false, "print oldest first (default newest first)")
	asJSON := fs.Bool("json", false, "print NDJSON: one {seq, event} object per line")
	count := fs.Bool("count", false, "print only the number of matching events")
	top := fs.String("top", "", "print the most frequent values of FIELD (source.ip, user.name, event.action, url.path, …)")
	n := fs.Int("n", 10, "number of values for --top")
	words, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	tok, err := cf.resolveToken()
	if err != nil {
		return err
	}
	v, err := ff.values(words)
	if err != nil {
		return err
	}
	c := client.New(cf.server, tok)
	ctx := context.Background()
	switch {
	case *count:
		n, err := c.Count(ctx, v)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, n)
		return nil
	case *top != "":
		v.Set("field", *top)
		v.Set("n", strconv.Itoa(*n))
		ans, err := c.Top(ctx, v)
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(ans)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "%s\tCOUNT\n", strings.ToUpper(ans.Field))
		for _, b := range ans.Buckets {
			fmt.Fprintf(tw, "%s\t%d\n", b.Value, b.Count)
		}
		return tw.Flush()
	}
	v.Set("limit", strconv.Itoa(*limit))
	if *after > 0 {
		v.Set("after", strconv.FormatUint(*after, 10))
	}
	if !*asc {
		v.Set("order", "desc")
	}
	res, err := c.Search(ctx, v)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, res.Events)
	}
	if err := printTable(stdout, res.Events, true); err != nil {
		return err
	}
	if len(res.Events) == *limit {
		fmt.Fprintf(stderr, "(showing %d; narrow the search or page with --after / --oldest-first)\n", *limit)
	}
	return nil
}

func printJSON(w io.Writer, hits []client.Hit) error {
	enc := json.NewEncoder(w)
	for _, h := range hits {
		if err := enc.Encode(h); err != nil {
			return err
		}
	}
	return nil
}

// row is what the table shows of an event.
type row struct {
	Timestamp string `json:"@timestamp"`
	Event     struct {
		Action  string `json:"action"`
		Outcome string `json:"outcome"`
	} `json:"event"`
	Source struct {
		IP string `json:"ip"`
	} `json:"source"`
	User struct {
		Name string `json:"name"`
	} `json:"user"`
	HTTP struct {
		Request struct {
			Method string `json:"method"`
		} `json:"request"`
		Response struct {
			Status json.Number `json:"status_code"`
		} `json:"response"`
	} `json:"http"`
	URL struct {
		Path string `json:"path"`
	} `json:"url"`
	Message string `json:"message"`
}

func printTable(w io.Writer, hits []client.Hit, header bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if header {
		fmt.Fprintln(tw, "SEQ\tTIME\tSOURCE.IP\tUSER\tACTION\tSTATUS\tPATH\tMESSAGE")
	}
	for _, h := range hits {
		var r row
		if err := json.Unmarshal(h.Event, &r); err != nil {
			return fmt.Errorf("event %d: %w", h.Seq, err)
		}
		ts := r.Timestamp
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			ts = t.Local().Format("2006-01-02 15:04:05")
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Seq, ts, dash(r.Source.IP), dash(r.User.Name),
			dash(r.Event.Action), dash(string(r.HTTP.Response.Status)), dash(trimLine(r.URL.Path, 40)), trimLine(r.Message, 80))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func runTail(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("tail", "[-f] [-n N] [filters] [WORDS…]", stderr)
	var cf clientFlags
	cf.register(fs)
	var ff filterFlags
	ff.register(fs)
	follow := fs.Bool("f", false, "follow: keep printing new events as they are stored")
	n := fs.Int("n", 10, "number of latest events to print first")
	asJSON := fs.Bool("json", false, "print NDJSON")
	words, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	tok, err := cf.resolveToken()
	if err != nil {
		return err
	}
	v, err := ff.values(words)
	if err != nil {
		return err
	}
	c := client.New(cf.server, tok)
	ctx, stop := signalContext()
	defer stop()
	print := func(hits []client.Hit, header bool) error {
		if *asJSON {
			return printJSON(stdout, hits)
		}
		return printTable(stdout, hits, header)
	}
	var last uint64
	if *n > 0 {
		q := cloneValues(v)
		q.Set("order", "desc")
		q.Set("limit", strconv.Itoa(min(*n, 10000)))
		res, err := c.Search(ctx, q)
		if err != nil {
			return err
		}
		slices.Reverse(res.Events)
		if err := print(res.Events, true); err != nil {
			return err
		}
		for _, h := range res.Events {
			last = max(last, h.Seq)
		}
	}
	if !*follow {
		return nil
	}
	if last == 0 {
		// Start from the current end of the log, not from its beginning.
		res, err := c.Search(ctx, url.Values{"order": {"desc"}, "limit": {"1"}})
		if err != nil {
			return err
		}
		if len(res.Events) > 0 {
			last = res.Events[0].Seq
		}
	}
	for {
		q := cloneValues(v)
		q.Set("after", strconv.FormatUint(last, 10))
		q.Set("wait", "25s")
		q.Set("limit", "1000")
		res, err := c.Search(ctx, q)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			var ae *client.Error
			if errors.As(err, &ae) && ae.Status < 500 {
				return err
			}
			fmt.Fprintf(stderr, "vigil tail: %v (retrying)\n", err)
			select {
			case <-time.After(2 * time.Second):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		if err := print(res.Events, false); err != nil {
			return err
		}
		last = max(last, res.NextAfter)
	}
}

func cloneValues(v url.Values) url.Values {
	c := url.Values{}
	for k, s := range v {
		c[k] = slices.Clone(s)
	}
	return c
}
