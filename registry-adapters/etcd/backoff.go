package etcd

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff yields exponentially growing waits with jitter, between min and
// max.
type backoff struct {
	min, max, cur time.Duration
}

func newBackoff(lo, hi time.Duration) *backoff { return &backoff{min: lo, max: hi} }

// next returns the wait before the next attempt: the current step, give or
// take a quarter.
func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	}
	d := b.cur
	b.cur = min(2*b.cur, b.max)
	return d - d/4 + rand.N(d/2+1)
}

func (b *backoff) reset() { b.cur = 0 }

// sleepCtx waits d, or less if ctx ends first; it reports whether the full
// wait passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
