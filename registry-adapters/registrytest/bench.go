package registrytest

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

// BenchmarkPropagation measures how long a registration made by one client
// takes to reach another client's watcher: b.N times, client A registers
// an endpoint again with a new metadata value and the clock stops when
// client B's Next returns it. It reports p50 and p99 in milliseconds
// (run with -benchtime=200x or more for a meaningful p99).
func BenchmarkPropagation(b *testing.B, h Harness) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	a, c := h.New(b, nil), h.New(b, nil)
	svc := Service(b)
	w, err := c.Watch(ctx, svc)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Next(ctx); err != nil {
		b.Fatal(err)
	}
	ep := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000", Metadata: map[string]string{"seq": "-1"}}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		ep.Metadata = map[string]string{"seq": strconv.Itoa(i)}
		start := time.Now()
		if err := a.Register(ctx, ep); err != nil {
			b.Fatalf("Register: %v", err)
		}
		for {
			got, err := w.Next(ctx)
			if err != nil {
				b.Fatalf("Next: %v", err)
			}
			if len(got) == 1 && got[0].Metadata["seq"] == ep.Metadata["seq"] {
				break
			}
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(ms(Percentile(lat, 50)), "p50-ms")
	b.ReportMetric(ms(Percentile(lat, 99)), "p99-ms")
	b.ReportMetric(0, "ns/op") // the per-op mean hides the tail; p50/p99 say it
}

// Percentile returns the p-th percentile (nearest rank) of sorted d.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
