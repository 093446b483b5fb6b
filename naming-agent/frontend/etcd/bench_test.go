package etcd

import (
	"context"
	"strconv"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// benchTargets are the front end and, in the same run, a real etcd of
// its own: the figures are read as ratios.
func benchTargets(b *testing.B) map[string]*clientv3.Client {
	f := newFixture(b)
	return map[string]*clientv3.Client{"frontend": f.app, "etcd": client(b, startEtcd(b))}
}

// BenchmarkRange: a pass-through Get of one key from 8 goroutines.
func BenchmarkRange(b *testing.B) {
	for _, name := range []string{"frontend", "etcd"} {
		b.Run(name, func(b *testing.B) {
			c := benchTargets(b)[name]
			c.Put(context.Background(), "/bench/k", "v")
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.Get(context.Background(), "/bench/k"); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkPut: a pass-through Put from 8 goroutines.
func BenchmarkPut(b *testing.B) {
	for _, name := range []string{"frontend", "etcd"} {
		b.Run(name, func(b *testing.B) {
			c := benchTargets(b)[name]
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					if _, err := c.Put(context.Background(), "/bench/p", strconv.Itoa(i)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkWatchEvent: a Put to its event on an open prefix watch.
func BenchmarkWatchEvent(b *testing.B) {
	for _, name := range []string{"frontend", "etcd"} {
		b.Run(name, func(b *testing.B) {
			c := benchTargets(b)[name]
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			wc := c.Watch(ctx, "/bench/w/", clientv3.WithPrefix())
			var total time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if _, err := c.Put(ctx, "/bench/w/x", strconv.Itoa(i)); err != nil {
					b.Fatal(err)
				}
				<-wc
				total += time.Since(start)
			}
			b.ReportMetric(float64(total.Microseconds())/float64(b.N), "us/event")
		})
	}
}
