package dubbo

import (
	"sync"
	"testing"
)

// BenchmarkCall: one call of 200 bytes each way from a client connection
// with 32 in flight, straight to a fake provider (direct) and through
// an egress Proxy (proxy). Allocations include the test's client and
// provider: compare with direct.
func BenchmarkCall(b *testing.B) {
	s := newFakeServer(b, "p")
	body := string(make([]byte, 200))
	s.answer = func(h Header, req []byte) (byte, []byte, bool) { return StatusOK, req, false }
	p := &Proxy{Cluster: testCluster(5, s.addr())}
	for _, tc := range []struct{ name, addr string }{{"direct", s.addr()}, {"proxy", serve(b, p)}} {
		b.Run(tc.name, func(b *testing.B) {
			c := dialClient(b, tc.addr)
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			for g := range 32 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := g; i < b.N; i += 32 {
						if r := wait(b, c.send(request(uint64(i), body))); r.h.Status != StatusOK {
							b.Errorf("status %d", r.h.Status)
							return
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}
