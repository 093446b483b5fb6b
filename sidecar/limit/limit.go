// Package limit is a service's inbound cap at its server-side sidecar:
// requests per second (a token bucket with a burst, golang.org/x/time/rate)
// and requests (L7) or connections (L4) in flight. It is changed live
// (Set) without rebinding the listener.
package limit

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/detourmesh/detour/api/sidecarpb"
)

// Limiter admits or refuses. The zero value is not usable; nil admits all.
type Limiter struct {
	now func() time.Time

	mu      sync.Mutex
	cfg     *sidecarpb.InboundLimit
	bucket  *rate.Limiter // nil: no rps cap
	maxConc int64

	inflight atomic.Int64
	// Admitted, RateLimited and ConcurrencyLimited count the verdicts.
	Admitted, RateLimited, ConcurrencyLimited atomic.Uint64
}

// New returns a limiter with no cap; now is the clock (nil: time.Now).
func New(now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{now: now}
}

// Set changes the cap (nil: none), keeping the counts and what is in
// flight.
func (l *Limiter) Set(c *sidecarpb.InboundLimit) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cfg = c
	l.maxConc = int64(c.GetMaxConcurrent())
	if c.GetRps() <= 0 {
		l.bucket = nil
		return
	}
	burst := int(c.GetBurst())
	if burst <= 0 {
		burst = max(1, int(math.Ceil(c.GetRps()/10))) // 100 ms of traffic
	}
	if l.bucket == nil {
		l.bucket = rate.NewLimiter(rate.Limit(c.GetRps()), burst)
		return
	}
	l.bucket.SetLimitAt(l.now(), rate.Limit(c.GetRps()))
	l.bucket.SetBurstAt(l.now(), burst)
}

// Config is the cap in force; nil: none.
func (l *Limiter) Config() *sidecarpb.InboundLimit {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cfg
}

// Acquire admits one request or connection (ok; then call Release when it
// ends) or refuses it, saying when to try again (retryAfter, at least a
// second: Retry-After counts in seconds).
func (l *Limiter) Acquire() (ok bool, retryAfter time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	b, maxConc := l.bucket, l.maxConc
	l.mu.Unlock()
	if maxConc > 0 && l.inflight.Add(1) > maxConc {
		l.inflight.Add(-1)
		l.ConcurrencyLimited.Add(1)
		return false, time.Second
	} else if maxConc <= 0 {
		l.inflight.Add(1)
	}
	if b != nil && !b.AllowN(l.now(), 1) {
		l.inflight.Add(-1)
		l.RateLimited.Add(1)
		return false, time.Second
	}
	l.Admitted.Add(1)
	return true, 0
}

// Release ends what Acquire admitted.
func (l *Limiter) Release() {
	if l != nil {
		l.inflight.Add(-1)
	}
}

// Stats is what /stats shows.
type Stats struct {
	Limit              *sidecarpb.InboundLimit `json:"limit"`
	InFlight           int64                   `json:"in_flight"`
	Admitted           uint64                  `json:"admitted"`
	RateLimited        uint64                  `json:"rate_limited"`
	ConcurrencyLimited uint64                  `json:"concurrency_limited"`
}

// Stats reads the counters; nil for a nil Limiter or one with no cap
// that never refused.
func (l *Limiter) Stats() *Stats {
	if l == nil {
		return nil
	}
	s := &Stats{Limit: l.Config(), InFlight: l.inflight.Load(), Admitted: l.Admitted.Load(),
		RateLimited: l.RateLimited.Load(), ConcurrencyLimited: l.ConcurrencyLimited.Load()}
	if s.Limit == nil && s.RateLimited == 0 && s.ConcurrencyLimited == 0 {
		return nil
	}
	return s
}
