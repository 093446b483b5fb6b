package zookeeper

import (
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/dubbogo/go-zookeeper/zk"

	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

// BenchmarkStoreWatchTree measures WatchKeys over a Dubbo-like tree (100
// services, 20 consumer nodes each: 2201 nodes): the first reading, the
// goroutines and live heap it adds per node, and the time from a node's
// change to the callback, per op:
//
//	ZK_PORT=22411 bash scripts/with-servers.sh go test -run '^$' -bench StoreWatchTree -benchtime 20x ./registry-adapters/zookeeper/
func BenchmarkStoreWatchTree(b *testing.B) {
	e := newEnv(b)
	r, _ := e.newRegistry(b, nil)
	const services, consumers = 100, 20
	n := 1 + services*2 + services*consumers
	for s := range services {
		for c := range consumers {
			if err := createAll(e.raw, fmt.Sprintf("%s/dubbo/S%d/consumers/c%d", e.root, s, c)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
				b.Fatal(err)
			}
		}
	}
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	g0 := runtime.NumGoroutine()
	start := time.Now()
	w := registrytest.WatchKeys(b, r, e.root+"/dubbo", time.Minute)
	w.Until(b, "the whole tree", func(m map[string][]byte) bool { return len(m) == n })
	first := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&m1)
	goroutines := runtime.NumGoroutine() - g0
	b.ResetTimer()
	for i := range b.N {
		p := fmt.Sprintf("%s/dubbo/S%d/consumers/c%d", e.root, i%services, i%consumers)
		v := fmt.Sprint(i)
		if _, err := e.raw.Set(p, []byte(v), -1); err != nil {
			b.Fatal(err)
		}
		w.Until(b, "the change", func(m map[string][]byte) bool { return string(m[p]) == v })
	}
	b.StopTimer()
	// After the loop: ResetTimer drops metrics reported before it.
	b.ReportMetric(float64(first.Milliseconds()), "first-reading-ms")
	b.ReportMetric(float64(goroutines)/float64(n), "goroutines/node")
	b.ReportMetric(float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc))/float64(n), "heap-B/node")
}
