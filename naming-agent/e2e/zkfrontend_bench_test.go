package e2e

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dubbogo/go-zookeeper/zk"

	"github.com/detourmesh/detour/internal/procstat"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

// BenchmarkZooKeeperFrontend sets the agent's ZooKeeper front end beside
// the real ZooKeeper (DETOUR_ZK_ADDR; required under CI=true), in the same
// run, for what Dubbo consumers do with their registry. The front end is
// the naming-agent binary as its own process (registry: an etcd server in
// this process), so that its CPU and memory are its own, as the JVM's
// are. Clients are dubbo-go's go-zookeeper, in this process. Servers:
//
//   - server=zookeeper: the real ZooKeeper, a plain providers directory;
//   - server=frontend: the front end, the same plain directory (at a
//     depth the Dubbo rewriter does not serve: the in-memory tree);
//   - server=frontend-dubbo: the front end's /dubbo/S/providers, answered
//     from the agent's view of S (10 providers registered in etcd), as a
//     Dubbo consumer on the host reads it. No sidecar runs, so the view
//     shows the providers' own addresses.
//
// Each directory holds 10 providers named as dubbo-go registers them.
// Every server first gets the same untimed warm-up (2,000 reads, 20
// changes), for the JVM's JIT. Sub-benchmarks:
//
//   - getChildrenW: 8 sessions each send b.N getChildren2 with a watch
//     (go-zookeeper's ChildrenW, what dubbo-go sends), one at a time per
//     session: ops/s, and req/cpu-s, requests per CPU-second of the
//     serving process (/proc/PID/stat; left out below 0.2 s of CPU).
//   - watchEvent: b.N times, one session sets a child watch and then a
//     provider is added or removed, alternately; the clock runs from the
//     change's request to the watch event (p50-us, p99-us). On the plain
//     tree another session creates or deletes a child; on frontend-dubbo
//     another etcd client registers or deregisters an endpoint, so it
//     is the whole path a new provider takes to a consumer: etcd, the
//     agent's watch, the view, the rewriter. The ratios are of these.
//     ack-p50-us and ack-p99-us run from the change's ack instead: on
//     frontend-dubbo that is what the agent adds once etcd has the
//     change; on the plain tree it is about 0, sometimes negative, as
//     ZooKeeper (and the front end) queue the watch event before the
//     changer's reply.
//   - sessions: DETOUR_BENCH_ZK_SESSIONS (default 1000) sessions opened,
//     each a bare connection after its handshake, measured once per run
//     after a round of as many opened and closed.
//     heap-B/session is live memory after a full GC: for ZooKeeper the
//     JVM's heap (jcmd GC.run, GC.heap_info; left out without jcmd), for
//     the front end Go's heap and goroutine stacks with a
//     zookeeper.Server in this process, less what the same sessions cost
//     this process as clients. rss-B/session is the growth of the
//     serving process's VmRSS (the JVM's, the agent's): what the OS sees,
//     not comparable between the two. The JVM's heap is reserved at start
//     and reused, so its RSS grows by less than its objects; Go does not
//     fault in the parts of a large buffer it never writes.
//
// Rows of the front end carry ratios to the real ZooKeeper's row of the
// same run: ops/s-vs-zk, req/cpu-s-vs-zk (higher is better), p50-vs-zk,
// p99-vs-zk, heap-vs-zk (lower is better).
func BenchmarkZooKeeperFrontend(b *testing.B) {
	fx := newZKFEFixture(b)
	servers := []string{zkfeZooKeeper, zkfeFrontend, zkfeDubbo}
	b.Run("getChildrenW", func(b *testing.B) {
		for _, name := range servers {
			b.Run("server="+name, func(b *testing.B) { fx.benchChildren(b, fx.side(b, name)) })
		}
	})
	b.Run("watchEvent", func(b *testing.B) {
		for _, name := range servers {
			b.Run("server="+name, func(b *testing.B) { fx.benchWatch(b, fx.side(b, name)) })
		}
	})
	b.Run("sessions", func(b *testing.B) {
		for _, name := range servers[:2] { // frontend-dubbo's sessions are the same
			b.Run("server="+name, func(b *testing.B) { fx.benchSessions(b, name) })
		}
	})
}

func (fx *zkfeFixture) benchChildren(b *testing.B, s *zkfeSide) {
	cpu0, cpuErr := procstat.CPU([]int{s.pid})
	t0 := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, len(s.ops))
	for _, c := range s.ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range b.N {
				kids, _, _, err := c.ChildrenW(s.opsDir)
				if err == nil && len(kids) != zkfeChildren {
					err = fmt.Errorf("%d children, want %d", len(kids), zkfeChildren)
				}
				if err != nil {
					errs <- fmt.Errorf("%s: getChildren2 %s: %w", s.name, s.opsDir, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(t0)
	b.StopTimer()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	cpu1, err := procstat.CPU([]int{s.pid})
	n := float64(b.N * len(s.ops))
	fx.report(b, s, "ops", n/elapsed.Seconds(), "ops/s")
	if cpu := cpu1 - cpu0; s.pid != 0 && cpuErr == nil && err == nil && cpu >= 200*time.Millisecond {
		fx.report(b, s, "cpu", n/cpu.Seconds(), "req/cpu-s")
	}
	b.ReportMetric(0, "ns/op")
}

func (fx *zkfeFixture) benchWatch(b *testing.B, s *zkfeSide) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	lat := make(latencies, 0, b.N)     // from the change's request
	fromAck := make(latencies, 0, b.N) // from its ack: can be < 0
	for range b.N {
		want := zkfeChildren
		if s.added {
			want++
		}
		kids, _, w, err := s.watcher.ChildrenW(s.watchDir)
		if err == nil && len(kids) != want {
			err = fmt.Errorf("%d children, want %d", len(kids), want)
		}
		if err != nil {
			b.Fatalf("%s: getChildren2 %s: %v", s.name, s.watchDir, err)
		}
		t0 := time.Now()
		if err := s.change(ctx, !s.added); err != nil {
			b.Fatalf("%s: change: %v", s.name, err)
		}
		ack := time.Now()
		s.added = !s.added
		select {
		case ev := <-w.EvtCh:
			now := time.Now()
			lat = append(lat, now.Sub(t0))
			fromAck = append(fromAck, now.Sub(ack))
			if ev.Type != zk.EventNodeChildrenChanged || ev.Path != s.watchDir {
				b.Fatalf("%s: watch event %+v, want NodeChildrenChanged of %s", s.name, ev, s.watchDir)
			}
		case <-time.After(wait):
			b.Fatalf("%s: no watch event within %v of the change", s.name, wait)
		}
	}
	lat.report(b, "", "us")
	fromAck.report(b, "ack-", "us")
	p50, p99 := lat.percentile(50), lat.percentile(99)
	fx.ratio(b, s, "p50", p50, "p50-vs-zk")
	fx.ratio(b, s, "p99", p99, "p99-vs-zk")
	b.ReportMetric(0, "ns/op")
}

// report reports v in unit and, on the front end's rows, its ratio to
// the real ZooKeeper's figure of the same key.
func (fx *zkfeFixture) report(b *testing.B, s *zkfeSide, key string, v float64, unit string) {
	b.ReportMetric(v, unit)
	fx.ratio(b, s, key, v, unit+"-vs-zk")
}

func (fx *zkfeFixture) ratio(b *testing.B, s *zkfeSide, key string, v float64, unit string) {
	if s.name == zkfeZooKeeper {
		fx.base[key] = v
		return
	}
	if base := fx.base[key]; base > 0 {
		b.ReportMetric(v/base, unit)
	}
}

// percentile is l's p-th percentile in microseconds.
func (l latencies) percentile(p float64) float64 {
	s := slices.Clone(l)
	slices.Sort(s)
	return float64(registrytest.Percentile(s, p).Nanoseconds()) / 1000
}

func (fx *zkfeFixture) benchSessions(b *testing.B, name string) {
	m, ok := fx.mem[name]
	if !ok {
		var err error
		if m, err = fx.measureSessions(b, name); err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		fx.mem[name] = m
	}
	if m.rss > 0 {
		b.ReportMetric(m.rss, "rss-B/session")
	}
	if m.heap > 0 {
		b.ReportMetric(m.heap, "heap-B/session")
		fx.ratio(b, &zkfeSide{name: name}, "heap", m.heap, "heap-vs-zk")
	}
	b.ReportMetric(0, "ns/op")
}
