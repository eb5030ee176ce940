package retention

import (
	"context"
	"time"
)

// Job runs the purge with the configured policies every Interval until its
// context ends.
type Job struct {
	Purger   *Purger
	Interval time.Duration // default Config.Interval
	// Tick, when set, replaces the ticker (tests drive the job with it).
	Tick <-chan time.Time
}

// Run purges once per tick until ctx ends; errors are logged and the next
// tick tries again. It returns nil when ctx ends.
func (j *Job) Run(ctx context.Context) error {
	tick := j.Tick
	if tick == nil {
		iv := j.Interval
		if iv <= 0 {
			iv = time.Duration(j.Purger.Config.Interval)
		}
		if iv <= 0 {
			iv = DefaultInterval
		}
		t := time.NewTicker(iv)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
		}
		if _, err := j.Purger.Run(ctx, Request{}); err != nil && ctx.Err() == nil {
			j.Purger.log().Error("retention: purge failed", "err", err)
		}
	}
}
