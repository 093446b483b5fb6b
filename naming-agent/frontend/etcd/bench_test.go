package etcd

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/detourmesh/detour/naming-agent/frontend"
)

// BenchmarkEtcdFrontend sets the front end beside a real etcd in the same
// run: both in this process (etcd's embed server; the front end over an
// etcd of its own, on a fake core), the same clientv3 clients.
//
//   - range / put: 8 goroutines each send b.N Gets (Puts) of a
//     pass-through key, one at a time: ops/s and p99-us.
//   - watchEvent: b.N times a Put, clocked to the event on an open prefix
//     watch: p50-us, p99-us. view (front end only): a view change of a
//     watched service to its event, through the rendering's upstream
//     write.
//   - clients / watches: 200 clients connected (each after a Get), and
//     1,000 prefix watches on one client: the growth of Go's heap and
//     stacks per client and per watch, after a GC. Both servers live in
//     this process, so each figure includes the clients' own cost (the
//     same in both rows) and, for the front end, its upstream's.
//
// Front-end rows carry ratios to etcd's (-vs-etcd).
func BenchmarkEtcdFrontend(b *testing.B) {
	f := newFixture(b)
	direct := client(b, startEtcd(b))
	type target struct {
		name string
		c    *clientv3.Client
		ep   string
	}
	targets := []target{{"etcd", direct, direct.Endpoints()[0]}, {"frontend", f.app, f.addr}}
	base := map[string]float64{}
	report := func(b *testing.B, name, metric string, v float64) {
		b.ReportMetric(v, metric)
		if name == "etcd" {
			base[b.Name()+metric] = v
		} else if e := base[etcdName(b.Name())+metric]; e > 0 {
			b.ReportMetric(v/e, metric+"-vs-etcd")
		}
	}
	for _, op := range []string{"range", "put"} {
		for _, tg := range targets {
			b.Run(op+"/"+tg.name, func(b *testing.B) {
				ctx := context.Background()
				tg.c.Put(ctx, "/bench/k", "v")
				var mu sync.Mutex
				var lat []time.Duration
				start := time.Now()
				var wg sync.WaitGroup
				for g := 0; g < 8; g++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						mine := make([]time.Duration, 0, b.N)
						for i := 0; i < b.N; i++ {
							t0 := time.Now()
							var err error
							if op == "range" {
								_, err = tg.c.Get(ctx, "/bench/k")
							} else {
								_, err = tg.c.Put(ctx, "/bench/k", strconv.Itoa(i))
							}
							if err != nil {
								b.Error(err)
								return
							}
							mine = append(mine, time.Since(t0))
						}
						mu.Lock()
						lat = append(lat, mine...)
						mu.Unlock()
					}()
				}
				wg.Wait()
				report(b, tg.name, "ops/s", float64(len(lat))/time.Since(start).Seconds())
				report(b, tg.name, "p99-us", pct(lat, 0.99))
			})
		}
	}
	for _, tg := range targets {
		b.Run("watchEvent/"+tg.name, func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			wc := tg.c.Watch(ctx, "/bench/w/", clientv3.WithPrefix())
			lat := make([]time.Duration, 0, b.N)
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				if _, err := tg.c.Put(ctx, "/bench/w/x", strconv.Itoa(i)); err != nil {
					b.Fatal(err)
				}
				<-wc
				lat = append(lat, time.Since(t0))
			}
			report(b, tg.name, "p50-us", pct(lat, 0.5))
			report(b, tg.name, "p99-us", pct(lat, 0.99))
		})
	}
	b.Run("watchEvent/frontend-view", func(b *testing.B) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		f.core.SetView(frontend.View{Service: "bench", Known: true, Instances: []frontend.Instance{{Addr: "10.0.0.1:1"}}})
		f.app.Get(ctx, "bench/", clientv3.WithPrefix()) // subscribed and rendered
		wc := f.app.Watch(ctx, "bench/", clientv3.WithPrefix())
		lat := make([]time.Duration, 0, b.N)
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			f.core.SetView(frontend.View{Service: "bench", Known: true, Instances: []frontend.Instance{{Addr: "10.0.0.1:" + strconv.Itoa(2+i%60000)}}})
			<-wc
			lat = append(lat, time.Since(t0))
		}
		b.ReportMetric(pct(lat, 0.5), "p50-us")
		b.ReportMetric(pct(lat, 0.99), "p99-us")
	})
	for _, tg := range targets {
		b.Run("clients/"+tg.name, func(b *testing.B) {
			const n = 200
			before := heap()
			cs := make([]*clientv3.Client, 0, n)
			for i := 0; i < n; i++ {
				c, err := clientv3.New(clientv3.Config{Endpoints: []string{tg.ep}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.Get(context.Background(), "/bench/k"); err != nil {
					b.Fatal(err)
				}
				cs = append(cs, c)
			}
			report(b, tg.name, "heap-B/client", float64(heap()-before)/n)
			for _, c := range cs {
				c.Close()
			}
		})
		b.Run("watches/"+tg.name, func(b *testing.B) {
			const n = 1000
			c, err := clientv3.New(clientv3.Config{Endpoints: []string{tg.ep}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c.Get(ctx, "/bench/k")
			before := heap()
			for i := 0; i < n; i++ {
				c.Watch(ctx, fmt.Sprintf("/bench/watch/%d/", i), clientv3.WithPrefix())
			}
			// Every watch created: a put under the last one is seen.
			wc := c.Watch(ctx, "/bench/watch/last")
			c.Put(ctx, "/bench/watch/last", "x")
			<-wc
			report(b, tg.name, "heap-B/watch", float64(heap()-before)/n)
		})
	}
}

// etcdName is the name of the etcd row beside a front-end row.
func etcdName(name string) string {
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == '/' {
			return name[:i] + "/etcd"
		}
	}
	return name
}

func pct(lat []time.Duration, p float64) float64 {
	if len(lat) == 0 {
		return 0
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return float64(lat[int(float64(len(lat)-1)*p)].Microseconds())
}

// heap is Go's live heap and stacks after a GC.
func heap() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc + m.StackInuse)
}
