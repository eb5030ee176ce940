package vigil_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/sdk/vigil"
	"github.com/vigilsec/vigil/sdk/vigiltest"
)

func TestRunJob(t *testing.T) {
	c, rec := newClient(t, nil)
	ctx := vigil.WithRelated(context.Background(), "shop.order:981")
	err := c.RunJob(ctx, "shop.tasks.send_invoice", func(ctx context.Context, out io.Writer) error {
		fmt.Fprintln(out, "sent invoice 981")
		return nil
	}, vigil.JobID("task-1"), vigil.Queue("mail"), vigil.Args("981"), vigil.Kwargs(map[string]any{"resend": false, "api_token": secretPassword}),
		vigil.Retries(1), vigil.QueuedAt(time.Now().Add(-time.Second)), vigil.MaxWait(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	evs := rec.Events()
	if len(evs) != 2 {
		t.Fatalf("%d events, want start and end", len(evs))
	}
	start, end := evs[0], evs[1]
	common := []vigiltest.Matcher{vigiltest.Action("job_run"), vigiltest.Field("event.category", []string{"process"}),
		vigiltest.Field("vigil.job.id", "task-1"), vigiltest.Field("vigil.job.name", "shop.tasks.send_invoice"),
		vigiltest.Field("vigil.job.queue", "mail"), vigiltest.Field("vigil.job.args", []string{"981"}),
		vigiltest.Field("vigil.job.retries", 1), vigiltest.Field("vigil.job.kwargs.resend", false),
		vigiltest.Field("vigil.job.kwargs.api_token", "[Filtered]"), vigiltest.Field("related.objects", []string{"shop.order:981"})}
	rec.Assert(t, append(common, vigiltest.Field("vigil.job.state", "ACTIVE"), vigiltest.Field("event.outcome", "unknown"))...)
	rec.Assert(t, append(common, vigiltest.Field("vigil.job.state", "SUCCEEDED"), vigiltest.Field("event.outcome", "success"),
		vigiltest.Field("vigil.job.output", "sent invoice 981\n"))...)
	if start.Has("event.duration") || end.Int("event.duration") <= 0 {
		t.Errorf("durations: start %s end %s", start.Raw(), end.Raw())
	}
	if w := end.Int("vigil.job.wait_duration"); w < int64(time.Second) || w > int64(time.Minute) {
		t.Errorf("wait_duration = %d", w)
	}
	if rec.Contains(secretPassword) {
		t.Error("secret kwarg recorded")
	}
}

func TestRunJobFailed(t *testing.T) {
	c, rec := newClient(t, nil)
	boom := errors.New("SMTP server timed out")
	err := c.RunJob(context.Background(), "mail", func(ctx context.Context, out io.Writer) error { return boom })
	if !errors.Is(err, boom) {
		t.Errorf("err = %v", err)
	}
	rec.Assert(t, vigiltest.Field("vigil.job.state", "FAILED"), vigiltest.Field("event.outcome", "failure"),
		vigiltest.Field("error.message", "SMTP server timed out"), vigiltest.Field("log.level", "ERROR"))
}

func TestRunJobPanic(t *testing.T) {
	c, rec := newClient(t, nil)
	err := c.RunJob(context.Background(), "crashy", func(ctx context.Context, out io.Writer) error {
		io.WriteString(out, "starting\n")
		var m map[string]int
		m["x"] = 1
		return nil
	})
	if !errors.Is(err, vigil.ErrPanic) {
		t.Errorf("err = %v, want ErrPanic", err)
	}
	e := rec.Assert(t, vigiltest.Field("vigil.job.state", "FAILED"), vigiltest.Field("error.type", "panic"), vigiltest.Field("vigil.job.output", "starting\n"))
	if !strings.Contains(e.Str("error.message"), "assignment to entry in nil map") || !strings.Contains(e.Str("error.stack_trace"), "TestRunJobPanic") {
		t.Errorf("%s", e.Raw())
	}
}

func TestRunJobExpired(t *testing.T) {
	c, rec := newClient(t, nil)
	ran := false
	err := c.RunJob(context.Background(), "late", func(ctx context.Context, out io.Writer) error { ran = true; return nil },
		vigil.QueuedAt(time.Now().Add(-time.Hour)), vigil.MaxWait(time.Minute))
	if !errors.Is(err, vigil.ErrExpired) || ran {
		t.Errorf("err = %v, ran = %v", err, ran)
	}
	e := only(t, rec)
	if e.Str("vigil.job.state") != "EXPIRED" || e.Str("event.outcome") != "failure" || !strings.Contains(e.Str("error.message"), "more than 1m0s") {
		t.Errorf("%s", e.Raw())
	}
}

func TestJobOutputTruncation(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		max    int
		want   string
	}{
		{"short", []string{"a", "b"}, 100, "ab"},
		{"exactly max", []string{strings.Repeat("x", 100)}, 100, strings.Repeat("x", 100)},
		{"head and tail kept", []string{strings.Repeat("h", 25), strings.Repeat("m", 1000), strings.Repeat("t", 75)}, 100,
			strings.Repeat("h", 25) + "\n[... 1000 bytes cut ...]\n" + strings.Repeat("t", 75)},
		{"many small writes", strings.Split(strings.Repeat("line\n", 1000), ""), 40,
			"line\nline\n\n[... 4960 bytes cut ...]\n" + strings.Repeat("line\n", 6)},
		{"one big write", []string{"0123456789" + strings.Repeat("-", 500) + "abcdefghijklmnopqrstuvwxyz0123"}, 40,
			"0123456789\n[... 500 bytes cut ...]\nabcdefghijklmnopqrstuvwxyz0123"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rec := newClient(t, nil)
			c.RunJob(context.Background(), "out", func(ctx context.Context, out io.Writer) error {
				for _, w := range tt.writes {
					if n, err := io.WriteString(out, w); n != len(w) || err != nil {
						t.Errorf("Write = %d, %v", n, err)
					}
				}
				return nil
			}, vigil.MaxOutput(tt.max))
			e := rec.Assert(t, vigiltest.Field("vigil.job.state", "SUCCEEDED"))
			if got := e.Str("vigil.job.output"); got != tt.want {
				t.Errorf("output\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestRunCommand(t *testing.T) {
	c, rec := newClient(t, nil)
	err := c.RunCommand(context.Background(), "clearsessions", []string{"--verbosity", "1", "--password=" + secretPassword},
		func(ctx context.Context, out io.Writer) error {
			io.WriteString(out, "Removed 1203 expired sessions.\n")
			return nil
		}, vigil.FromCLI())
	if err != nil {
		t.Fatal(err)
	}
	rec.Assert(t, vigiltest.Action("command_run"), vigiltest.Field("vigil.command.state", "ACTIVE"))
	e := rec.Assert(t, vigiltest.Action("command_run"), vigiltest.Field("vigil.command.state", "SUCCEEDED"),
		vigiltest.Field("process.name", "clearsessions"), vigiltest.Field("vigil.command.from_cli", true),
		vigiltest.Field("vigil.command.output", "Removed 1203 expired sessions.\n"), vigiltest.Field("event.outcome", "success"))
	if args := e.Strings("process.args"); len(args) != 3 || args[0] != "--verbosity" {
		t.Errorf("process.args = %q", args)
	}
	if rec.Contains(secretPassword) {
		t.Errorf("secret argument recorded: %s", e.Raw())
	}
}
