package detect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/store"
)

// Cursor runs an Engine over the store as a named consumer: it reads the
// committed events after its saved position in sequence order, hands the
// signals they cause to Handle, and saves its position. After a restart it
// first replays the events of the engine's longest window before the saved
// position with their signals discarded (they were handled before), so the
// windows are as they were and no alert is lost or repeated.
type Cursor struct {
	Store  store.Store
	Engine *Engine
	// Name is the cursor's name in the store ("detect" when empty).
	Name string
	// Wait returns once events after seq may be committed, or when ctx
	// ends (false). Nil: poll every 100 ms.
	Wait func(ctx context.Context, after uint64) bool
	// Handle receives the live signals of each page of events and of each
	// tick, in order. An error stops Run (the page is read again after a
	// restart).
	Handle func(ctx context.Context, sigs []Signal) error
	// Commit, when set, is called with the last sequence number of a page
	// after its signals were handled and before the position is saved:
	// state derived from the signals (the alert manager's) is saved there.
	Commit func(ctx context.Context, seq uint64) error
	// Now is the clock of Tick (time.Now when nil).
	Now func() time.Time
	// TickEvery is how often the engine's clock advances without events
	// (1 s when zero).
	TickEvery time.Duration
	// SaveEvery is how often the position (and, through Commit, the state
	// derived from the signals) is saved while events flow (1 s when zero);
	// it is saved again when Run stops. Saving after every page cost each
	// ingest commit a second commit and an fsync. After a crash, the events
	// since the last save are processed again: their signals come again,
	// which the alert manager merges into the alerts they raised (a
	// notification may then be sent twice: at least once, not exactly once).
	SaveEvery time.Duration
	// MaxReplay bounds the events replayed at start, the latest ones before
	// the cursor (1,000,000 when zero).
	MaxReplay int
	Log       *slog.Logger
	// Decrypt, when set, turns stored canonical bytes into the plaintext
	// the rules evaluate (encryption at rest).
	Decrypt func(store.Record) ([]byte, error)

	position atomic.Uint64 // see Position
}

// Position returns the sequence number of the last event the engine has
// evaluated (0 until Run has read its saved position). The log's last
// sequence number less this is how far detection is behind.
func (c *Cursor) Position() uint64 { return c.position.Load() }

// cursorPage is the number of events read at a time.
const cursorPage = 1000

// Run processes events until ctx ends. It returns nil when ctx ends.
func (c *Cursor) Run(ctx context.Context) error {
	name := c.Name
	if name == "" {
		name = "detect"
	}
	now := c.Now
	if now == nil {
		now = time.Now
	}
	tickEvery := c.TickEvery
	if tickEvery <= 0 {
		tickEvery = time.Second
	}
	log := c.Log
	if log == nil {
		log = slog.Default()
	}
	pos, err := c.Store.Cursor(ctx, name)
	if err != nil {
		return fmt.Errorf("detect: read cursor %q: %w", name, err)
	}
	if err := c.replay(ctx, pos, log); err != nil {
		return err
	}
	c.position.Store(pos)
	saveEvery := c.SaveEvery
	if saveEvery <= 0 {
		saveEvery = time.Second
	}
	saved, lastSave := pos, now()
	lastTick := now()
	for {
		n, last, sigs, err := c.page(ctx, pos, log)
		if err != nil {
			if ctx.Err() != nil {
				return c.finalSave(name, pos, saved)
			}
			return fmt.Errorf("detect: read after %d: %w", pos, err)
		}
		// The clock advances only once the backlog is read: while there is
		// one, the events' own times drive the windows (a tick at the wall
		// clock would age the backlog's windows before their events
		// arrive).
		if t := now(); n < cursorPage && t.Sub(lastTick) >= tickEvery {
			sigs = append(sigs, c.Engine.Tick(t)...)
			lastTick = t
		}
		if len(sigs) > 0 {
			if err := c.Handle(ctx, sigs); err != nil {
				if ctx.Err() != nil {
					return c.finalSave(name, pos, saved)
				}
				return fmt.Errorf("detect: handle signals: %w", err)
			}
		}
		if n > 0 {
			pos = last
			c.position.Store(pos)
		}
		if pos != saved && now().Sub(lastSave) >= saveEvery {
			if err := c.save(ctx, name, pos); err != nil {
				if ctx.Err() != nil || errors.Is(err, store.ErrClosed) {
					return c.finalSave(name, pos, saved)
				}
				return err
			}
			saved, lastSave = pos, now()
		}
		if n == cursorPage {
			continue
		}
		if !c.wait(ctx, pos, tickEvery) && ctx.Err() != nil {
			return c.finalSave(name, pos, saved)
		}
	}
}

// save saves the state derived from the signals up to pos, then pos.
func (c *Cursor) save(ctx context.Context, name string, pos uint64) error {
	if c.Commit != nil {
		if err := c.Commit(ctx, pos); err != nil {
			return fmt.Errorf("detect: save state at %d: %w", pos, err)
		}
	}
	if err := c.Store.SetCursor(ctx, name, pos); err != nil {
		return fmt.Errorf("detect: save cursor at %d: %w", pos, err)
	}
	return nil
}

// finalSave saves pos when Run stops (the store is still open: its owner
// stops detection first).
func (c *Cursor) finalSave(name string, pos, saved uint64) error {
	if pos == saved {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.save(ctx, name, pos); err != nil && !errors.Is(err, store.ErrClosed) {
		return err
	}
	return nil
}

// page processes the next page of events after pos: n events, the last
// one's sequence number, and the signals they caused. The store's parsed
// copies of recent events are used when it has them (and no decryption is
// needed): detection then does not parse each event a second time.
func (c *Cursor) page(ctx context.Context, pos uint64, log *slog.Logger) (n int, last uint64, sigs []Signal, err error) {
	if pr, ok := c.Store.(store.ParsedReader); ok && c.Decrypt == nil {
		seqs, evs, ok, err := pr.ReadParsed(ctx, pos, cursorPage)
		if err != nil {
			return 0, 0, nil, err
		}
		if ok {
			for i, e := range evs {
				sigs = append(sigs, c.Engine.Process(seqs[i], e)...)
			}
			if len(seqs) > 0 {
				last = seqs[len(seqs)-1]
			}
			return len(seqs), last, sigs, nil
		}
	}
	recs, err := c.Store.Read(ctx, pos, cursorPage)
	if err != nil {
		return 0, 0, nil, err
	}
	for _, r := range recs {
		e, err := c.parse(r)
		if err != nil {
			log.Error("detect: skipping an event that does not parse", "seq", r.Seq, "err", err)
			continue
		}
		sigs = append(sigs, c.Engine.Process(r.Seq, &e)...)
	}
	if len(recs) > 0 {
		last = recs[len(recs)-1].Seq
	}
	return len(recs), last, sigs, nil
}

// wait returns when events after pos may be committed, after at most
// tickEvery, or when ctx ends.
func (c *Cursor) wait(ctx context.Context, pos uint64, max time.Duration) bool {
	wctx, cancel := context.WithTimeout(ctx, max)
	defer cancel()
	if c.Wait != nil {
		return c.Wait(wctx, pos)
	}
	t := time.NewTimer(100 * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-wctx.Done():
		return false
	}
}

// replay feeds the engine the events of its longest window before pos,
// discarding their signals.
func (c *Cursor) replay(ctx context.Context, pos uint64, log *slog.Logger) error {
	if pos == 0 {
		return nil
	}
	recs, err := c.Store.Read(ctx, pos-1, 1)
	if err != nil {
		return fmt.Errorf("detect: read event %d: %w", pos, err)
	}
	if len(recs) == 0 {
		return nil
	}
	last, err := c.parse(recs[0])
	if err != nil {
		return nil // nothing to measure the window from
	}
	limit := c.MaxReplay
	if limit <= 0 {
		limit = 1_000_000
	}
	q := store.Query{From: last.Time.Add(-c.Engine.MaxWindow()), BeforeSeq: pos + 1, Limit: store.MaxLimit}
	if pos > uint64(limit) {
		q.AfterSeq = pos - uint64(limit) // the latest events matter most
	}
	n := 0
	start := time.Now()
	for {
		page, err := c.Store.Search(ctx, q)
		if err != nil {
			return fmt.Errorf("detect: replay window before %d: %w", pos, err)
		}
		for _, r := range page {
			if e, err := c.parse(r); err == nil {
				c.Engine.Process(r.Seq, &e)
			}
		}
		n += len(page)
		if len(page) < q.Limit {
			break
		}
		q.AfterSeq = page[len(page)-1].Seq
	}
	log.Info("detect: replayed the window before the cursor", "events", n, "cursor", pos,
		"window", c.Engine.MaxWindow(), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// parse parses a stored event, decrypted when the cursor has Decrypt.
func (c *Cursor) parse(r store.Record) (event.Event, error) {
	if c.Decrypt != nil {
		plain, err := c.Decrypt(r)
		if err != nil {
			return event.Event{}, err
		}
		r.Canonical = plain
	}
	return event.ParseStored(r.Canonical)
}
