package integration

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/naming/endpoints"
	"go.etcd.io/etcd/client/v3/naming/resolver"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

	"github.com/detourmesh/detour/internal/testbed"
)

// etcdFrontPort is where a host's agent serves its etcd front end (not
// 2379: the first host's embedded registry is there).
const etcdFrontPort = 7379

func etcdFrontAddr(ip string) string { return net.JoinHostPort(ip, strconv.Itoa(etcdFrontPort)) }

// TestEtcdFrontEnds is issue 21 end to end with etcd's own naming
// packages and grpc-go, on the embedded registry (the front end needs an
// etcd behind it): a gRPC provider on B registers with
// naming/endpoints through B's front end on its lease; a consumer on A
// dials etcd:///SERVICE with naming/resolver through A's front end, at
// 100 calls/s. Calls cross both sidecars. A's and B's sidecars SIGKILLed
// and started again, the mesh off and on, with the time to the watch
// event A's front end sends and the failed calls as figures; the
// provider's end (its lease not kept alive) takes its key away.
func TestEtcdFrontEnds(t *testing.T) {
	be := etcdBackend(t)
	const service = "greeter-etcd"
	a := be.host(t, ipA, "", "--etcd-listen", etcdFrontAddr(ipA))
	b := be.host(t, ipB, "", "--etcd-listen", etcdFrontAddr(ipB))
	a.startSidecar()
	b.startSidecar()
	a.waitSidecar("up")
	b.waitSidecar("up")

	// The provider: a gRPC server on B, registered through B's front end.
	ln, err := net.Listen("tcp", net.JoinHostPort(b.IP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	appAddr := ln.Addr().String()
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	pc := etcdClient(t, etcdFrontAddr(b.IP))
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const ttl = 5
	lease, err := pc.Grant(ctx, ttl)
	if err != nil {
		t.Fatal(err)
	}
	kctx, stopKeepAlive := context.WithCancel(ctx)
	if _, err := pc.KeepAlive(kctx, lease.ID); err != nil {
		t.Fatal(err)
	}
	em, _ := endpoints.NewManager(pc, service)
	if err := em.AddEndpoint(ctx, service+"/"+appAddr, endpoints.Endpoint{Addr: appAddr, Metadata: map[string]string{"version": "v1"}}, clientv3.WithLease(lease.ID)); err != nil {
		t.Fatalf("AddEndpoint through B's front end: %v", err)
	}
	reader := be.reader(t)
	eventually(t, 20*time.Second, "B's ingress in the registry", func() bool {
		eps := registered(t, reader, service)
		return len(eps) == 1 && strings.HasPrefix(eps[0].Addr, b.IP+":") && eps[0].Addr != appAddr && eps[0].Metadata["version"] == "v1"
	})
	ans := a.waitAnswer(service, "A's mesh answer", func(x testbed.Answer) bool { return x.Mesh && len(x.Endpoints) == 1 })
	egress := ans.Endpoints[0].Addr

	// The consumer on A, and a watch like its resolver's beside it.
	cc := etcdClient(t, etcdFrontAddr(a.IP))
	seen := watchEndpoints(t, ctx, cc, service)
	rb, err := resolver.NewBuilder(cc)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("etcd:///"+service, grpc.WithResolvers(rb), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	load := newGRPCLoad(healthpb.NewHealthClient(conn), 100)
	t.Cleanup(load.stop)
	eventually(t, 20*time.Second, "calls through A's egress", func() bool { return load.lastPeer() == egress })
	r0 := load.counts()
	eventually(t, 10*time.Second, "a second of calls", func() bool { return load.counts().ok >= r0.ok+100 })
	if r1 := load.counts(); r1.failed != r0.failed {
		t.Errorf("%d calls failed through the mesh with nothing changing", r1.failed-r0.failed)
	}
	if e, in := sidecarStats(t, a).Listener("egress", service), sidecarStats(t, b).Listener("ingress", service); e.Requests < 100 || in.Requests < 100 {
		t.Errorf("calls did not cross both sidecars: A's egress %d requests, B's ingress %d", e.Requests, in.Requests)
	}

	phase := func(what string, act func(), want string) {
		t.Helper()
		r0 := load.counts()
		at := time.Now()
		act()
		ev := seen.waitFor(t, at, want, what)
		eventually(t, 20*time.Second, what+": calls to "+want, func() bool { return load.lastPeer() == want })
		clean := load.cleanSecond(t, at, what)
		r1 := load.counts()
		t.Logf("figure: %s at 100 calls/s: A's front end's watch event with %s %v after; %d calls failed; a second without failure began %v after",
			what, want, ev.Sub(at).Round(time.Millisecond), r1.failed-r0.failed, clean.Sub(at).Round(time.Millisecond))
	}
	phase("A's sidecar SIGKILL", a.killSidecar, appAddr)
	phase("A's sidecar started again", a.startSidecar, egress)
	{
		r0 := load.counts()
		at := time.Now()
		b.killSidecar()
		clean := load.cleanSecond(t, at, "B's sidecar down")
		r1 := load.counts()
		t.Logf("figure: B's sidecar SIGKILL at 100 calls/s (A's answer stays the egress): %d calls failed; a second without failure began %v after",
			r1.failed-r0.failed, clean.Sub(at).Round(time.Millisecond))
		r0, at = r1, time.Now()
		b.startSidecar()
		b.waitSidecar("up")
		clean = load.cleanSecond(t, at, "B's sidecar back")
		r1 = load.counts()
		t.Logf("figure: B's sidecar started again: %d calls failed; a second without failure began %v after",
			r1.failed-r0.failed, clean.Sub(at).Round(time.Millisecond))
	}
	phase("mesh off on A", func() {
		if err := a.API().SetMesh(a.ctx, service, false); err != nil {
			t.Fatal(err)
		}
	}, appAddr)
	phase("mesh on again on A", func() {
		if err := a.API().SetMesh(a.ctx, service, true); err != nil {
			t.Fatal(err)
		}
	}, egress)
	// Each agent SIGKILLed and started again: B's from the keys its front
	// end keeps on the provider's lease (the registry never lacks the
	// instance), A's under its consumer's resolver (whose etcd client
	// resumes its watch from the last revision it saw).
	for _, h := range []*host{b, a} {
		r0 := load.counts()
		var gaps int
		stop := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			for {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				if eps, err := reader.List(ctx, service); err == nil && len(eps) == 0 {
					gaps++
				}
			}
		}()
		at := time.Now()
		if err := h.Agent.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := h.StartAgent(h.ctx); err != nil {
			t.Fatal(err)
		}
		h.waitSidecar("up")
		clean := load.cleanSecond(t, at, h.IP+"'s agent restarted")
		close(stop)
		<-sampled
		r1 := load.counts()
		if gaps != 0 {
			t.Errorf("the registry lacked the instance in %d samples (every 20 ms) across %s's agent restart", gaps, h.IP)
		}
		t.Logf("figure: %s's agent SIGKILLed and started again at 100 calls/s: %d calls failed; a second without failure began %v after; registry samples without the instance: %d",
			h.IP, r1.failed-r0.failed, clean.Sub(at).Round(time.Millisecond), gaps)
	}
	phase("mesh off on A after A's agent restart", func() {
		if err := a.API().SetMesh(a.ctx, service, false); err != nil {
			t.Fatal(err)
		}
	}, appAddr)

	final := load.counts()
	load.stop()
	t.Logf("figure: total %d calls ok, %d failed", final.ok, final.failed)

	// The provider gone without a word: its lease runs out, its key goes.
	gone := time.Now()
	stopKeepAlive()
	gs.Stop()
	pc.Close()
	eventually(t, 3*ttl*time.Second, "the provider's key gone with its lease", func() bool { return len(registered(t, reader, service)) == 0 })
	ev := seen.waitFor(t, gone, "", "A's watch with no instance")
	t.Logf("figure: provider gone (lease TTL %ds, not kept alive): A's watch without it %v after", ttl, ev.Sub(gone).Round(time.Millisecond))
}

func etcdClient(t *testing.T, addr string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// endpointsSeen records each state of a naming/endpoints watch (what
// etcd's resolver runs on): its addresses, joined, and when.
type endpointsSeen struct {
	mu     sync.Mutex
	states []addrAt
}

func watchEndpoints(t *testing.T, ctx context.Context, c *clientv3.Client, service string) *endpointsSeen {
	em, _ := endpoints.NewManager(c, service)
	wc, err := em.NewWatchChannel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := &endpointsSeen{}
	go func() {
		cur := map[string]string{}
		for ups := range wc {
			for _, u := range ups {
				if u.Op == endpoints.Add {
					cur[u.Key] = u.Endpoint.Addr
				} else {
					delete(cur, u.Key)
				}
			}
			var addrs []string
			for _, a := range cur {
				addrs = append(addrs, a)
			}
			sort.Strings(addrs)
			s.mu.Lock()
			s.states = append(s.states, addrAt{strings.Join(addrs, ","), time.Now()})
			s.mu.Unlock()
		}
	}()
	return s
}

// waitFor returns when the watch first showed want after since.
func (s *endpointsSeen) waitFor(t *testing.T, since time.Time, want, what string) time.Time {
	t.Helper()
	var at time.Time
	eventually(t, 20*time.Second, what, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, st := range s.states {
			if st.at.After(since) && st.addr == want {
				at = st.at
				return true
			}
		}
		return false
	})
	return at
}

// grpcLoad calls Health.Check at a fixed rate, each with a 1 s deadline,
// and records which address answered.
type grpcLoad struct {
	cancel  chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
	mu      sync.Mutex
	ok      int
	failed  int
	peer    string
	lastBad time.Time
}

func newGRPCLoad(c healthpb.HealthClient, rate int) *grpcLoad {
	l := &grpcLoad{cancel: make(chan struct{})}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for {
			select {
			case <-l.cancel:
				return
			case <-tick.C:
			}
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				var p peer.Peer
				_, err := c.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p))
				l.mu.Lock()
				defer l.mu.Unlock()
				if err != nil {
					l.failed++
					l.lastBad = time.Now()
					return
				}
				l.ok++
				if p.Addr != nil {
					l.peer = p.Addr.String()
				}
			}()
		}
	}()
	return l
}

func (l *grpcLoad) counts() loadCounts {
	l.mu.Lock()
	defer l.mu.Unlock()
	return loadCounts{l.ok, l.failed}
}

func (l *grpcLoad) lastPeer() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.peer
}

// cleanSecond waits for a second without a failed call and returns when
// it began (since, if nothing failed after it).
func (l *grpcLoad) cleanSecond(t *testing.T, since time.Time, what string) time.Time {
	t.Helper()
	var began time.Time
	eventually(t, 30*time.Second, fmt.Sprintf("a second without failed calls (%s)", what), func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		began = l.lastBad
		if began.Before(since) {
			began = since // no failure since
		}
		return time.Since(l.lastBad) > time.Second
	})
	return began
}

func (l *grpcLoad) stop() {
	l.once.Do(func() { close(l.cancel) })
	l.wg.Wait()
}
