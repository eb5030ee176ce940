package respond

import (
	"fmt"
	"time"
)

// Config is the "respond" section of Vigil's configuration. Zero numbers
// mean the defaults of DefaultConfig.
type Config struct {
	Allowlist Allowlist `yaml:"allowlist"`
	// MaxActive bounds the decisions in force; an Add beyond it is refused
	// (replayed decisions are always loaded, so that nothing banned before a
	// restart is let in after it).
	MaxActive int `yaml:"max_active"`
	// MaxHistory bounds the removed and expired decisions kept in memory
	// for List with All (the event log keeps every one).
	MaxHistory int `yaml:"max_history"`
	// StreamBuffer bounds the changes queued for one stream subscriber; a
	// subscriber that falls further behind is disconnected, and gets the
	// whole state again when it reconnects.
	StreamBuffer int `yaml:"stream_buffer"`
}

// Defaults.
const (
	DefaultMaxActive    = 100000
	DefaultMaxHistory   = 10000
	DefaultStreamBuffer = 1024
)

// DefaultConfig returns the configuration used when none is given: an
// empty allowlist and the default bounds.
func DefaultConfig() Config {
	return Config{MaxActive: DefaultMaxActive, MaxHistory: DefaultMaxHistory, StreamBuffer: DefaultStreamBuffer}
}

func (c Config) withDefaults() Config {
	if c.MaxActive == 0 {
		c.MaxActive = DefaultMaxActive
	}
	if c.MaxHistory == 0 {
		c.MaxHistory = DefaultMaxHistory
	}
	if c.StreamBuffer == 0 {
		c.StreamBuffer = DefaultStreamBuffer
	}
	return c
}

// Validate checks c and names the first bad field, as
// "field respond.allowlist.ips[2]: ...". It does no I/O.
func (c Config) Validate() error {
	if _, err := c.Allowlist.parse(); err != nil {
		return fmt.Errorf("field respond.%w", err)
	}
	checks := []struct {
		name      string
		v, lo, hi int
	}{
		{"max_active", c.MaxActive, 1, 1000000},
		{"max_history", c.MaxHistory, 1, 1000000},
		{"stream_buffer", c.StreamBuffer, 16, 1000000},
	}
	for _, k := range checks {
		if k.v != 0 && (k.v < k.lo || k.v > k.hi) {
			return fmt.Errorf("field respond.%s: %d is outside %d..%d", k.name, k.v, k.lo, k.hi)
		}
	}
	return nil
}

// Clock tells the time and waits. Tests pass a fake one; nil means the
// system clock.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
