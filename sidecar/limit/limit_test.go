package limit

import (
	"testing"
	"time"

	"github.com/detourmesh/detour/api/sidecarpb"
)

// TestRate: 200 requests a second offered for 10 s against 100/s (burst
// 10) admits 100 ± 10 each second; on a simulated clock, so exact.
func TestRate(t *testing.T) {
	now := time.Unix(0, 0)
	l := New(func() time.Time { return now })
	l.Set(&sidecarpb.InboundLimit{Rps: 100, Burst: 10})
	for sec := range 10 {
		admitted := 0
		for range 200 {
			now = now.Add(5 * time.Millisecond)
			if ok, ra := l.Acquire(); ok {
				admitted++
				l.Release()
			} else if ra < time.Second {
				t.Fatalf("retry after %v", ra)
			}
		}
		if admitted < 90 || admitted > 110 {
			t.Fatalf("second %d: %d admitted, want 100 ± 10", sec, admitted)
		}
	}
	if l.RateLimited.Load() == 0 || l.Admitted.Load()+l.RateLimited.Load() != 2000 {
		t.Fatalf("counts: %+v", l.Stats())
	}
	// Live: no cap.
	l.Set(nil)
	for range 1000 {
		if ok, _ := l.Acquire(); !ok {
			t.Fatal("refused with no cap")
		}
		l.Release()
	}
}

func TestConcurrency(t *testing.T) {
	l := New(nil)
	l.Set(&sidecarpb.InboundLimit{MaxConcurrent: 3})
	for range 3 {
		if ok, _ := l.Acquire(); !ok {
			t.Fatal("refused under the cap")
		}
	}
	if ok, _ := l.Acquire(); ok {
		t.Fatal("a 4th admitted")
	}
	l.Release()
	if ok, _ := l.Acquire(); !ok {
		t.Fatal("refused after a release")
	}
	if s := l.Stats(); s.InFlight != 3 || s.ConcurrencyLimited != 1 {
		t.Fatalf("stats %+v", s)
	}
	var nilL *Limiter
	if ok, _ := nilL.Acquire(); !ok {
		t.Fatal("nil refuses")
	}
}

// BenchmarkAcquire: what an admitted request pays for a rate and a
// concurrency cap.
func BenchmarkAcquire(b *testing.B) {
	l := New(nil)
	l.Set(&sidecarpb.InboundLimit{Rps: 1e7, Burst: 1e6, MaxConcurrent: 1 << 30})
	b.ReportAllocs()
	for b.Loop() {
		l.Acquire()
		l.Release()
	}
}
