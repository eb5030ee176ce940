package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/vigilsec/vigil/internal/client"
)

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// maxLine bounds one NDJSON line read by send (the server's own limit is
// usually lower and is reported per line).
const maxLine = 16 << 20

func runSend(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("send", "[flags] [FILE…]\n\nSends NDJSON events (one JSON object per line) from each FILE, or from\nstandard input when there is none or FILE is -. Batches are retried while\nthe server is busy; resending is harmless because events keep their event.id.", stderr)
	var cf clientFlags
	cf.register(fs)
	batch := fs.Int("batch", 5000, "events per request")
	files, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if *batch < 1 || *batch > 100000 {
		return usageError{errors.New("--batch must be between 1 and 100000")}
	}
	tok, err := cf.resolveToken()
	if err != nil {
		return err
	}
	c := client.New(cf.server, tok)
	ctx, stop := signalContext()
	defer stop()
	if len(files) == 0 {
		files = []string{"-"}
	}
	var total, dups int
	for _, name := range files {
		var r io.Reader = os.Stdin
		if name != "-" {
			f, err := os.Open(name)
			if err != nil {
				return err
			}
			defer f.Close()
			r = f
		} else {
			name = "stdin"
		}
		a, d, err := sendStream(ctx, c, name, r, *batch)
		total += a
		dups += d
		if err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "sent: %d stored, %d duplicates\n", total, dups)
	return nil
}

// sendStream sends r in batches; an error names the file and line.
func sendStream(ctx context.Context, c *client.Client, name string, r io.Reader, batchSize int) (accepted, dups int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	var buf bytes.Buffer
	lines, firstLine, lineNo := 0, 1, 0
	flush := func() error {
		if lines == 0 {
			return nil
		}
		ans, err := c.Send(ctx, buf.Bytes())
		if err != nil {
			var ae *client.Error
			if errors.As(err, &ae) && len(ae.Body.Lines) > 0 {
				l := ae.Body.Lines[0]
				return fmt.Errorf("%s:%d: %s (batch of lines %d-%d refused, nothing of it stored)", name, firstLine+l.Line-1, l.Error, firstLine, lineNo)
			}
			return fmt.Errorf("%s: lines %d-%d: %w", name, firstLine, lineNo, err)
		}
		accepted += ans.Accepted
		dups += ans.Duplicates
		buf.Reset()
		lines = 0
		firstLine = lineNo + 1
		return nil
	}
	for sc.Scan() {
		lineNo++
		buf.Write(sc.Bytes())
		buf.WriteByte('\n')
		lines++
		if lines >= batchSize || buf.Len() >= 4<<20 {
			if err := flush(); err != nil {
				return accepted, dups, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return accepted, dups, fmt.Errorf("%s:%d: %w", name, lineNo+1, err)
	}
	return accepted, dups, flush()
}
