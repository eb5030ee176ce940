package api

import (
	"context"
	"sync"
)

// Hub tells waiting readers that new events were committed.
type Hub struct {
	mu   sync.Mutex
	last uint64
	ch   chan struct{}
}

// NewHub returns a hub whose last known sequence is last.
func NewHub(last uint64) *Hub { return &Hub{last: last, ch: make(chan struct{})} }

// Publish records that events up to seq are committed and wakes waiters.
func (h *Hub) Publish(seq uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if seq <= h.last {
		return
	}
	h.last = seq
	close(h.ch)
	h.ch = make(chan struct{})
}

// Wait returns once an event after seq is committed, or ctx ends.
func (h *Hub) Wait(ctx context.Context, after uint64) bool {
	for {
		h.mu.Lock()
		last, ch := h.last, h.ch
		h.mu.Unlock()
		if last > after {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}
