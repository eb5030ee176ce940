package throttle

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// StreamPath is the path of Vigil's decision stream, under the server's
// base URL.
const StreamPath = "/api/v1/decisions/stream"

// FollowConfig configures FollowVigil. The zero value works.
type FollowConfig struct {
	// Client makes the stream requests. nil: a client with connect, TLS and
	// response-header timeouts and no overall timeout. A Client whose
	// Timeout is set cuts the stream every Timeout (it then reconnects).
	Client *http.Client
	// MinBackoff and MaxBackoff bound the pause before a reconnection; it
	// doubles after each failure, with jitter, and starts again from
	// MinBackoff after a connection that received the whole state.
	// Defaults 1s and 1m.
	MinBackoff, MaxBackoff time.Duration
	// IdleTimeout: a connection on which nothing arrived for this long is
	// dropped and made again. Default: three times the heartbeat interval
	// the server announces, or 1m before it has.
	IdleTimeout time.Duration
	// MaxDecisions bounds the whole state accepted from the server
	// (default 1,000,000).
	MaxDecisions int
	// MaxLineBytes bounds one line of the stream (default 64 KiB).
	MaxLineBytes int
	// Log receives connection problems (nil: slog.Default()). The token is
	// never logged.
	Log *slog.Logger
	// Now is the clock used to drop expired decisions (default time.Now).
	Now func() time.Time
}

// FollowStats describes a VigilBans.
type FollowStats struct {
	Ready      bool      // a whole state was received at least once
	Connected  bool      // following the stream now
	Decisions  int       // decisions held (expired ones until pruned)
	Syncs      uint64    // whole states received (one per successful connection)
	Failures   uint64    // connections refused, failed or dropped
	Added      uint64    // decisions added or changed after a whole state
	Removed    uint64    // decisions removed or expired after a whole state
	LastSync   time.Time // when the last whole state was received
	LastError  string    // the last connection problem ("" when none yet)
	LastChange time.Time // when the last line (change or heartbeat) arrived
}

// VigilBans is an Enforcer that follows a Vigil server's decision stream
// (GET /api/v1/decisions/stream): it loads every decision in force, then
// applies changes as the server makes them.
//
// When the connection fails, VigilBans keeps the last state it had and
// reconnects with backoff; on reconnection the server sends the whole state
// again, which replaces the old one at once (decisions removed meanwhile
// disappear). Decisions with an end stop applying at that end even while
// disconnected. Before the first state arrives nothing is banned: call
// Wait at start-up to block until it has.
type VigilBans struct {
	url   string
	token string
	cfg   FollowConfig
	bans  StaticBans

	ids map[string]string // scope+"\x00"+value → decision ID, so that a late removal never removes a newer decision; owned by the run goroutine

	cancel context.CancelFunc
	done   chan struct{}
	ready  chan struct{}
	once   sync.Once

	mu    sync.Mutex
	stats FollowStats
	idle  atomic.Int64 // current idle timeout, in nanoseconds
}

// FollowVigil starts following the decision stream of the Vigil server at
// baseURL ("https://vigil.example.com:8080") with an API token, until ctx
// ends or Close is called. It returns at once; connection errors are
// retried in the background (see Stats). The error is for a bad baseURL.
func FollowVigil(ctx context.Context, baseURL, token string, c FollowConfig) (*VigilBans, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("throttle: Vigil URL %q: want http://host:port or https://host:port", baseURL)
	}
	if c.Client == nil {
		c.Client = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			ForceAttemptHTTP2:     true,
		}}
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = time.Second
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = max(time.Minute, c.MinBackoff)
	}
	if c.MaxDecisions <= 0 {
		c.MaxDecisions = 1000000
	}
	if c.MaxLineBytes <= 0 {
		c.MaxLineBytes = 64 << 10
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	ctx, cancel := context.WithCancel(ctx)
	v := &VigilBans{
		url: u.String() + StreamPath, token: token, cfg: c, ids: make(map[string]string),
		cancel: cancel, done: make(chan struct{}), ready: make(chan struct{}),
	}
	idle := c.IdleTimeout
	if idle <= 0 {
		idle = time.Minute
	}
	v.idle.Store(int64(idle))
	go v.run(ctx)
	return v, nil
}

// Check returns the decision that applies to ip or user at now, if any.
func (v *VigilBans) Check(ip netip.Addr, user string, now time.Time) (Decision, bool) {
	return v.bans.Check(ip, user, now)
}

// Ready reports whether a whole state has been received.
func (v *VigilBans) Ready() bool {
	select {
	case <-v.ready:
		return true
	default:
		return false
	}
}

// ErrClosed is returned by Wait when the VigilBans stopped before it was
// ready.
var ErrClosed = errors.New("throttle: VigilBans stopped")

// Wait blocks until a whole state has been received, ctx ends (its error)
// or the VigilBans stops (ErrClosed).
func (v *VigilBans) Wait(ctx context.Context) error {
	select {
	case <-v.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-v.done:
		if v.Ready() {
			return nil
		}
		return ErrClosed
	}
}

// Stats returns counters and the state of the connection.
func (v *VigilBans) Stats() FollowStats {
	v.mu.Lock()
	s := v.stats
	v.mu.Unlock()
	s.Ready = v.Ready()
	s.Decisions = v.bans.Len()
	return s
}

// Close stops following and waits for the background goroutine to end.
// The decisions held stay and Check keeps answering from them.
func (v *VigilBans) Close() {
	v.cancel()
	<-v.done
}

func (v *VigilBans) run(ctx context.Context) {
	defer close(v.done)
	backoff := v.cfg.MinBackoff
	timer := time.NewTimer(0)
	<-timer.C
	for {
		synced, err := v.follow(ctx)
		if ctx.Err() != nil {
			return
		}
		if synced {
			backoff = v.cfg.MinBackoff
		}
		// Full jitter within [backoff/2, backoff].
		wait := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, v.cfg.MaxBackoff)
		v.mu.Lock()
		v.stats.Connected = false
		v.stats.Failures++
		v.stats.LastError = err.Error()
		v.mu.Unlock()
		v.cfg.Log.Warn("vigil decision stream: reconnecting", "url", v.url, "err", err, "in", wait)
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
	}
}

// streamLine is one line of the stream; see Vigil's docs/response.md.
type streamLine struct {
	Op       string `json:"op"`
	Decision *struct {
		ID     string    `json:"id"`
		Type   string    `json:"type"`
		Scope  string    `json:"scope"`
		Value  string    `json:"value"`
		Reason string    `json:"reason"`
		Until  time.Time `json:"until"`
	} `json:"decision"`
	Count       int    `json:"count"`
	HeartbeatMS int64  `json:"heartbeat_ms"`
	Error       string `json:"error"`
}

func (l *streamLine) decision() (Decision, string, error) {
	if l.Decision == nil {
		return Decision{}, "", fmt.Errorf("%q line without a decision", l.Op)
	}
	d := l.Decision
	return Decision{Type: d.Type, Scope: d.Scope, Value: d.Value, Reason: d.Reason, Until: d.Until}, d.ID, nil
}

func keyOf(d Decision) string { return d.Scope + "\x00" + d.Value }

// follow makes one connection and applies what it receives until it
// fails. synced tells whether a whole state was received.
func (v *VigilBans) follow(ctx context.Context) (synced bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.url, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", "application/x-ndjson")
	if v.token != "" {
		req.Header.Set("Authorization", "Bearer "+v.token)
	}
	resp, err := v.cfg.Client.Do(req)
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return false, fmt.Errorf("vigil answered %s: %s", resp.Status, msg)
	}

	var idled atomic.Bool
	idle := time.Duration(v.idle.Load())
	watchdog := time.AfterFunc(idle, func() { idled.Store(true); cancel() })
	defer watchdog.Stop()

	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, min(4096, v.cfg.MaxLineBytes)), v.cfg.MaxLineBytes)
	var pending []Decision
	var pendingIDs map[string]string
	for sc.Scan() {
		watchdog.Reset(idle)
		now := v.cfg.Now()
		var l streamLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return synced, fmt.Errorf("stream line %.80q: %w", sc.Bytes(), err)
		}
		switch l.Op {
		case "added", "removed":
			d, id, err := l.decision()
			if err != nil {
				return synced, err
			}
			if !synced {
				if l.Op != "added" {
					return false, errors.New("a removal before the whole state was complete")
				}
				if len(pending) >= v.cfg.MaxDecisions {
					return false, fmt.Errorf("the server sent more than %d decisions (FollowConfig.MaxDecisions)", v.cfg.MaxDecisions)
				}
				if pendingIDs == nil {
					pendingIDs = make(map[string]string)
				}
				pending = append(pending, d)
				pendingIDs[keyOf(d)] = id
				continue
			}
			if l.Op == "added" {
				if err := v.bans.Add(d); err != nil {
					return synced, fmt.Errorf("decision %s: %w", id, err)
				}
				v.ids[keyOf(d)] = id
			} else if v.ids[keyOf(d)] == id {
				v.bans.Remove(d.Scope, d.Value)
				delete(v.ids, keyOf(d))
			}
			v.mu.Lock()
			if l.Op == "added" {
				v.stats.Added++
			} else {
				v.stats.Removed++
			}
			v.stats.LastChange = now
			v.mu.Unlock()
		case "synced":
			if synced {
				return true, errors.New("a second \"synced\" line")
			}
			if l.Count != len(pending) {
				return false, fmt.Errorf("the server announced %d decisions and sent %d", l.Count, len(pending))
			}
			if err := v.bans.Set(pending); err != nil {
				return false, fmt.Errorf("whole state: %w", err)
			}
			v.ids = pendingIDs
			if v.ids == nil {
				v.ids = make(map[string]string)
			}
			pending, pendingIDs, synced = nil, nil, true
			if v.cfg.IdleTimeout <= 0 && l.HeartbeatMS > 0 {
				idle = 3 * time.Duration(l.HeartbeatMS) * time.Millisecond
				v.idle.Store(int64(idle))
				watchdog.Reset(idle)
			}
			v.mu.Lock()
			v.stats.Connected = true
			v.stats.Syncs++
			v.stats.LastSync, v.stats.LastChange = now, now
			v.mu.Unlock()
			v.once.Do(func() { close(v.ready) })
			v.cfg.Log.Debug("vigil decision stream: whole state received", "decisions", l.Count)
		case "heartbeat":
			v.bans.Prune(now)
			v.mu.Lock()
			v.stats.LastChange = now
			v.mu.Unlock()
		case "error":
			return synced, fmt.Errorf("vigil ended the stream: %s", l.Error)
		default:
			// An operation of a later version: ignored.
		}
	}
	err = sc.Err()
	switch {
	case idled.Load():
		return synced, fmt.Errorf("nothing received for %s", idle)
	case errors.Is(err, bufio.ErrTooLong):
		return synced, fmt.Errorf("a stream line longer than %d bytes (FollowConfig.MaxLineBytes)", v.cfg.MaxLineBytes)
	case err != nil:
		return synced, fmt.Errorf("read stream: %w", err)
	}
	return synced, errors.New("the server ended the stream")
}
