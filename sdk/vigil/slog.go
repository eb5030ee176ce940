package vigil

import (
	"context"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

// SlogOptions configures the handler returned by SlogHandler.
type SlogOptions struct {
	// Next, when set, receives every record too (when it is enabled for
	// it): the application keeps its usual log output.
	Next slog.Handler
	// Level is the least level shipped as events; default slog.LevelInfo.
	Level slog.Leveler
	// AddSource records the file, line and function of the log call
	// (log.origin.*).
	AddSource bool
	// Logger names the logger (log.logger).
	Logger string
}

// maxLabels bounds the attributes of one record shipped as labels.
const maxLabels = 64

// SlogHandler returns a log/slog handler that ships records of opts.Level
// and above as events: message (redacted), log.level (DEBUG, INFO,
// WARNING, ERROR), event.severity, the attributes as labels, and the
// request ID, actor, client address and related objects of the record's
// context.
//
// Attributes become labels: Vigil's labels hold strings, numbers and
// booleans only, without nesting, so a group's name is joined to its
// attributes' names with "_" (slog.Group("db", "rows", 3) is labels.db_rows),
// dots in names become "_", durations are written in nanoseconds, times as
// RFC 3339 and other values as text. String values are redacted and the
// values of attributes named like secrets (password, token...) hidden. When
// the same name is given twice, the last value is kept.
func (c *Client) SlogHandler(opts SlogOptions) slog.Handler {
	if opts.Level == nil {
		opts.Level = slog.LevelInfo
	}
	return &slogHandler{c: c, opts: opts, next: opts.Next}
}

type labelAttr struct {
	key string
	val slog.Value
}

type slogHandler struct {
	c      *Client
	opts   SlogOptions
	next   slog.Handler
	attrs  []labelAttr // from WithAttrs, flattened
	prefix string      // the open groups, each followed by "_"
}

func (h *slogHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.opts.Level.Level() || h.next != nil && h.next.Enabled(ctx, l)
}

func (h *slogHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= h.opts.Level.Level() {
		h.ship(ctx, r)
	}
	if h.next != nil && h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *slogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	h2 := *h
	h2.attrs = slices.Clip(h.attrs)
	for _, a := range as {
		h2.attrs = flatten(h2.attrs, h.prefix, a)
	}
	if h.next != nil {
		h2.next = h.next.WithAttrs(as)
	}
	return &h2
}

func (h *slogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.prefix = h.prefix + name + "_"
	if h.next != nil {
		h2.next = h.next.WithGroup(name)
	}
	return &h2
}

// flatten appends a, its groups flattened, under prefix.
func flatten(dst []labelAttr, prefix string, a slog.Attr) []labelAttr {
	a.Value = a.Value.Resolve()
	if a.Value.Kind() == slog.KindGroup {
		g := a.Value.Group()
		if a.Key != "" {
			prefix += a.Key + "_"
		}
		for _, ga := range g {
			dst = flatten(dst, prefix, ga)
		}
		return dst
	}
	if a.Key == "" {
		return dst
	}
	return append(dst, labelAttr{prefix + a.Key, a.Value})
}

// slogLevel maps a slog level to log.level and event.severity.
func slogLevel(l slog.Level) (string, int64) {
	switch {
	case l < slog.LevelInfo:
		return "DEBUG", 0
	case l < slog.LevelWarn:
		return "INFO", sevInfo
	case l < slog.LevelError:
		return "WARNING", sevWarning
	}
	return "ERROR", sevError
}

func (h *slogHandler) ship(ctx context.Context, r slog.Record) {
	c := h.c
	var snap snapshot
	if st := stateOf(ctx); st != nil {
		snap = st.snapshot()
	}
	attrs := slices.Clip(h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		attrs = flatten(attrs, h.prefix, a)
		return true
	})

	t := r.Time
	if t.IsZero() {
		t = c.now()
	}
	e := getEnc()
	defer putEnc(e)
	c.begin(e, t, "", "")
	level, sev := slogLevel(r.Level)
	e.str("log.level", level)
	e.int("event.severity", sev)
	e.str("message", c.red.Text(r.Message))
	e.strNZ("log.logger", h.opts.Logger)
	if h.opts.AddSource && r.PC != 0 {
		f, _ := runtime.CallersFrames([]uintptr{r.PC}).Next()
		e.str("log.origin.file.name", f.File)
		e.int("log.origin.file.line", int64(f.Line))
		e.str("log.origin.function", f.Function)
	}
	e.strNZ("user.id", snap.actorID)
	e.strNZ("user.name", snap.actor)
	e.strNZ("http.request.id", snap.id)
	if snap.inRequest {
		e.str("http.request.method", snap.method)
		e.str("url.path", snap.path)
	}
	e.addr(snap.ip, snap.port)
	if len(snap.related) > 0 {
		e.strs("related.objects", snap.related)
	}
	e.strNZ("vigil.slug", snap.slug)
	h.labels(e, attrs)
	c.send(context.WithoutCancel(ctx), e, false)
}

// labels appends the labels object: the release and the attributes, the
// last of the same name kept.
func (h *slogHandler) labels(e *enc, attrs []labelAttr) {
	c := h.c
	keys := make([]string, len(attrs))
	for i, a := range attrs {
		k := validUTF8(strings.ReplaceAll(a.key, ".", "_"))
		if len(k) > 128 {
			k = validUTF8(k[:128])
		}
		keys[i] = k
	}
	n := 0
	if c.cfg.Release != "" {
		e.key("labels")
		e.b = append(e.b, '{')
		e.b = appendJSONString(e.b, "release")
		e.b = append(e.b, ':')
		e.b = appendStr(e, e.b, c.cfg.Release)
		n++
	}
	for i, a := range attrs {
		if slices.Contains(keys[i+1:], keys[i]) || keys[i] == "release" && c.cfg.Release != "" {
			continue // a later value wins
		}
		if n == maxLabels {
			break
		}
		if n == 0 {
			e.key("labels")
			e.b = append(e.b, '{')
		} else {
			e.b = append(e.b, ',')
		}
		n++
		e.b = appendJSONString(e.b, keys[i])
		e.b = append(e.b, ':')
		if c.sensitiveKey(a.key) || c.sensitiveKey(lastPart(a.key)) {
			e.b = appendJSONString(e.b, filtered)
			continue
		}
		v := a.val
		switch v.Kind() {
		case slog.KindString:
			e.b = appendStr(e, e.b, c.red.Text(v.String()))
		case slog.KindInt64:
			e.b = strconv.AppendInt(e.b, v.Int64(), 10)
		case slog.KindUint64:
			e.b = strconv.AppendUint(e.b, v.Uint64(), 10)
		case slog.KindFloat64:
			e.b = appendFloat(e.b, v.Float64())
		case slog.KindBool:
			e.b = strconv.AppendBool(e.b, v.Bool())
		case slog.KindDuration:
			e.b = strconv.AppendInt(e.b, int64(v.Duration()), 10)
		case slog.KindTime:
			e.b = appendTime(e.b, v.Time())
		default:
			e.b = appendStr(e, e.b, c.textOf(Any("", v.Any())))
		}
	}
	if n > 0 {
		e.b = append(e.b, '}')
	}
}
