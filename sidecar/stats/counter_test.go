package stats

import (
	"sync"
	"sync/atomic"
	"testing"
)

func TestCounterSums(t *testing.T) {
	var c Counter
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				c.Add(3)
			}
		}()
	}
	wg.Wait()
	if got := c.Load(); got != 8*1000*3 {
		t.Fatalf("Load %d, want %d", got, 8*1000*3)
	}
}

// BenchmarkCounterParallel: adds from every core to one Counter, and to
// one atomic word as it was (run with -cpu 1,2,4,...).
func BenchmarkCounterParallel(b *testing.B) {
	b.Run("sharded", func(b *testing.B) {
		var c Counter
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.Add(1)
			}
		})
	})
	b.Run("atomic", func(b *testing.B) {
		var c atomic.Uint64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.Add(1)
			}
		})
	})
}
