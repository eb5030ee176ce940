package vigil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strconv"
	"sync"
	"time"
)

// Job and command states, django-security-logger's.
const (
	StateActive    = "ACTIVE"
	StateSucceeded = "SUCCEEDED"
	StateFailed    = "FAILED"
	StateExpired   = "EXPIRED"
)

// DefaultMaxOutput bounds the output recorded of a job or command, in bytes.
const DefaultMaxOutput = 4000

var (
	// ErrExpired is returned by RunJob for a job that waited in its queue
	// longer than MaxWait: it was not run.
	ErrExpired = errors.New("vigil: job expired before it ran")
	// ErrPanic wraps the panic of a job or command.
	ErrPanic = errors.New("panic")
)

// JobOption describes a job or a command run by RunJob or RunCommand.
type JobOption func(*jobSpec)

type jobSpec struct {
	id, queue, input string
	args             []string
	kwargs           map[string]any
	retries          int
	queuedAt         time.Time
	maxWait          time.Duration
	maxOutput        int
	fromCLI          bool
}

// JobID sets the job's ID (vigil.job.id), for instance the task ID of the
// queue. Default: a new UUID.
func JobID(id string) JobOption { return func(j *jobSpec) { j.id = id } }

// Queue names the queue the job came from (vigil.job.queue).
func Queue(name string) JobOption { return func(j *jobSpec) { j.queue = name } }

// QueuedAt is when the job was queued: the event records the time it
// waited (vigil.job.wait_duration, ns), and MaxWait applies.
func QueuedAt(t time.Time) JobOption { return func(j *jobSpec) { j.queuedAt = t } }

// MaxWait is how long a job may wait in its queue (since QueuedAt): a job
// that waited longer is not run but recorded as EXPIRED, and RunJob returns
// ErrExpired.
func MaxWait(d time.Duration) JobOption { return func(j *jobSpec) { j.maxWait = d } }

// Args records the job's positional arguments (vigil.job.args).
func Args(args ...string) JobOption { return func(j *jobSpec) { j.args = args } }

// Kwargs records the job's named arguments (vigil.job.kwargs); values of
// secrets are hidden.
func Kwargs(kw map[string]any) JobOption { return func(j *jobSpec) { j.kwargs = kw } }

// Input records the job's or command's input (vigil.job.input).
func Input(s string) JobOption { return func(j *jobSpec) { j.input = s } }

// Retries records how many times the job was retried before
// (vigil.job.retries).
func Retries(n int) JobOption { return func(j *jobSpec) { j.retries = n } }

// MaxOutput bounds the output recorded, in bytes (default
// DefaultMaxOutput). Beyond it, the first quarter and the last three
// quarters are kept, with a note of how many bytes were cut between them.
func MaxOutput(n int) JobOption { return func(j *jobSpec) { j.maxOutput = n } }

// FromCLI records that a command was run from the command line rather than
// from code (vigil.command.from_cli).
func FromCLI() JobOption { return func(j *jobSpec) { j.fromCLI = true } }

// RunJob runs fn as background job name and records it: a job_run event
// when it starts (vigil.job.state ACTIVE) and one when it ends (SUCCEEDED
// or FAILED), with its duration, its output (what fn writes to out, bounded
// by MaxOutput), its error and, when it panics, the panic, recovered and
// returned as an error wrapping ErrPanic. A job that waited longer than
// MaxWait is not run: it is recorded as EXPIRED and RunJob returns
// ErrExpired.
func (c *Client) RunJob(ctx context.Context, name string, fn func(ctx context.Context, out io.Writer) error, opts ...JobOption) error {
	return c.run1(ctx, false, name, nil, fn, opts)
}

// RunCommand runs fn as command name with args (a management command, a CLI
// subcommand) and records it as command_run events: process.name,
// process.args, vigil.command.state (ACTIVE, then SUCCEEDED or FAILED),
// vigil.command.output, as RunJob does for jobs.
func (c *Client) RunCommand(ctx context.Context, name string, args []string, fn func(ctx context.Context, out io.Writer) error, opts ...JobOption) error {
	return c.run1(ctx, true, name, args, fn, opts)
}

func (c *Client) run1(ctx context.Context, command bool, name string, args []string, fn func(context.Context, io.Writer) error, opts []JobOption) (err error) {
	if ctx == nil {
		ctx = context.Background()
	}
	js := jobSpec{maxOutput: DefaultMaxOutput}
	for _, o := range opts {
		o(&js)
	}
	if command {
		js.args = args
	}
	if js.id == "" && !command {
		js.id = NewID()
	}
	start := c.now()
	wait := time.Duration(-1)
	if !js.queuedAt.IsZero() {
		wait = max(start.Sub(js.queuedAt), 0)
	}
	if js.maxWait > 0 && wait > js.maxWait {
		msg := "waited " + wait.String() + " in the queue, more than " + js.maxWait.String()
		c.jobEvent(ctx, command, name, &js, jobEnd{state: StateExpired, start: start, wait: wait, errMsg: msg})
		return fmt.Errorf("%w: %s %s", ErrExpired, name, msg)
	}
	c.jobEvent(ctx, command, name, &js, jobEnd{state: StateActive, start: start, wait: wait})

	out := &outputBuffer{max: max(js.maxOutput, 16)}
	var stack []byte
	func() {
		defer func() {
			if v := recover(); v != nil {
				stack = debug.Stack()
				if len(stack) > maxStackBytes {
					stack = stack[:maxStackBytes]
				}
				err = fmt.Errorf("%s %s: %w: %s", kindName(command), name, ErrPanic, panicText(v))
			}
		}()
		err = fn(ctx, out)
	}()
	end := jobEnd{state: StateSucceeded, start: start, wait: wait, dur: c.since(start), output: out, stack: stack}
	if err != nil {
		end.state, end.errMsg = StateFailed, err.Error()
	}
	c.jobEvent(ctx, command, name, &js, end)
	return err
}

func kindName(command bool) string {
	if command {
		return "command"
	}
	return "job"
}

type jobEnd struct {
	state  string
	start  time.Time
	wait   time.Duration // -1: unknown
	dur    time.Duration
	output *outputBuffer
	errMsg string
	stack  []byte
}

// jobEvent records one state of a job or a command.
func (c *Client) jobEvent(ctx context.Context, command bool, name string, js *jobSpec, j jobEnd) {
	var snap snapshot
	if st := stateOf(ctx); st != nil {
		snap = st.snapshot()
	}
	action, prefix := "job_run", "vigil.job."
	if command {
		action, prefix = "command_run", "vigil.command."
	}
	outcome, sev, typ := "unknown", int64(sevInfo), `["start"]`
	switch j.state {
	case StateSucceeded:
		outcome, typ = "success", `["end"]`
	case StateFailed, StateExpired:
		outcome, sev, typ = "failure", sevError, `["end"]`
	}
	e := getEnc()
	defer putEnc(e)
	t := j.start
	if j.state != StateActive {
		t = c.now()
	}
	c.begin(e, t, action, `["process"]`)
	e.raw("event.type", typ)
	e.b = append(e.b, c.release...)
	e.str("event.outcome", outcome)
	e.int("event.severity", sev)
	e.str("log.level", levelOf(int(sev)))
	if j.state != StateActive && j.state != StateExpired {
		e.int("event.duration", int64(j.dur))
	}
	e.str("message", kindName(command)+" "+name+" "+j.state)
	if command {
		e.str("process.name", name)
		args := make([]string, len(js.args))
		for i, a := range js.args {
			args[i] = c.red.Text(a)
		}
		e.strs("process.args", args)
		e.bool("vigil.command.from_cli", js.fromCLI)
		e.str("vigil.command.state", j.state)
	} else {
		e.str("vigil.job.id", js.id)
		e.str("vigil.job.name", name)
		e.str("vigil.job.state", j.state)
		e.strNZ("vigil.job.queue", js.queue)
		if js.retries > 0 {
			e.int("vigil.job.retries", int64(js.retries))
		}
		if js.args != nil {
			args := make([]string, len(js.args))
			for i, a := range js.args {
				args[i] = c.red.Text(a)
			}
			e.strs("vigil.job.args", args)
		}
		if js.kwargs != nil {
			e.key("vigil.job.kwargs")
			e.b = appendAny(e, e.b, js.kwargs, 0, c)
		}
	}
	if js.input != "" {
		e.str(prefix+"input", c.red.Text(js.input))
	}
	if j.wait >= 0 {
		e.int(prefix+"wait_duration", int64(j.wait))
	}
	if j.output != nil {
		if s := j.output.text(c); s != "" {
			e.str(prefix+"output", s)
		}
	}
	if j.errMsg != "" {
		e.str("error.message", c.red.Text(j.errMsg))
	}
	if j.stack != nil {
		e.str("error.type", "panic")
		e.bytes("error.stack_trace", j.stack)
	}
	e.strNZ("user.id", snap.actorID)
	e.strNZ("user.name", snap.actor)
	e.strNZ("http.request.id", snap.id)
	if len(snap.related) > 0 {
		e.strs("related.objects", snap.related)
	}
	e.strNZ("vigil.slug", snap.slug)
	c.send(context.WithoutCancel(ctx), e, false)
}

// outputBuffer keeps the head and the tail of what a job writes.
type outputBuffer struct {
	mu    sync.Mutex
	max   int
	head  []byte
	tail  []byte
	total int64
}

func (o *outputBuffer) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n0 := len(p)
	o.total += int64(n0)
	headMax, tailMax := o.max/4, o.max-o.max/4
	if room := headMax - len(o.head); room > 0 {
		n := min(room, len(p))
		o.head = append(o.head, p[:n]...)
		p = p[n:]
	}
	if len(p) >= tailMax {
		o.tail = append(o.tail[:0], p[len(p)-tailMax:]...)
		return n0, nil
	}
	o.tail = append(o.tail, p...)
	if len(o.tail) > 2*tailMax {
		o.tail = append(o.tail[:0], o.tail[len(o.tail)-tailMax:]...)
	}
	return n0, nil
}

// text returns the output kept, redacted, with a note of what was cut.
func (o *outputBuffer) text(c *Client) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	tailMax := o.max - o.max/4
	tail := o.tail
	if len(tail) > tailMax {
		tail = tail[len(tail)-tailMax:]
	}
	cut := o.total - int64(len(o.head)) - int64(len(tail))
	if cut <= 0 {
		return c.red.Text(string(o.head) + string(tail))
	}
	return c.red.Text(string(o.head)) + "\n[... " + strconv.FormatInt(cut, 10) + " bytes cut ...]\n" + c.red.Text(string(tail))
}
