package integration

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/detourmesh/detour/internal/testbed"
	"github.com/detourmesh/detour/registry-adapters/nacos"
	"github.com/detourmesh/detour/registry-adapters/registry"
)

// nacosPort is where a host's agent serves its Nacos front end (HTTP;
// gRPC on + 1000), not Nacos's 8848, which a real Nacos may hold on
// every address.
const nacosPort = 7748

func nacosArgs(ip string) []string {
	return []string{"--nacos-listen", net.JoinHostPort(ip, strconv.Itoa(nacosPort))}
}

// TestNacosFrontEnds is issue 16 end to end with the official
// nacos-sdk-go v2 naming client (in processes of their own, nacosapp:
// the SDK races with itself on reconnects, not to be run under -race):
// the lines example server on B,
// registered by a naming client through B's front end; a naming client
// on A subscribed through A's front end, whose callback's instance the
// calls go to at 100 calls/s (a connection per call). The registry holds
// B's ingress with the app's weight and metadata; A's front end answers
// A's egress; calls cross both sidecars. A's sidecar SIGKILLed: the
// callback brings the real instance (time to it, failed calls); started
// again: the egress again. B's agent SIGKILLed and started: the SDK
// registers again and the registry never lacks the instance. Then the
// provider's client closes and the instance leaves the registry.
//
// With NACOS_ADDR (a real Nacos's host:port) it runs against that Nacos
// too, in a group of its own.
func TestNacosFrontEnds(t *testing.T) {
	every(t, true, nacosFrontEnds)
	if addr := os.Getenv("NACOS_ADDR"); addr != "" {
		t.Run("nacos", func(t *testing.T) { nacosFrontEnds(t, realNacosBackend(t, addr)) })
	}
}

// realNacosBackend: both hosts on a real Nacos, in a group of the test's
// own.
func realNacosBackend(t *testing.T, addr string) *backend {
	group := unique("it-")
	return &backend{
		host: func(t *testing.T, ip, extra string, args ...string) *host {
			return newHost(t, testbed.Spec{IP: ip, Registry: "nacos://" + addr + "?namespace=public&group=" + group, ExtraConfig: extra, AgentArgs: args})
		},
		reader: func(t *testing.T) registry.Registry {
			cfg := nacos.Default()
			cfg.Servers = []string{addr}
			cfg.Group = group
			r, err := nacos.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close() })
			return r
		},
	}
}

func nacosFrontEnds(t *testing.T, be *backend) {
	const service = "lines-nacos"
	// A short grace, so the restart below shows its end within the test.
	const grace = "frontends:\n  nacos:\n    restore_grace: 3s\n"
	a := be.host(t, ipA, grace, nacosArgs(ipA)...)
	b := be.host(t, ipB, grace, nacosArgs(ipB)...)
	a.startSidecar()
	b.startSidecar()
	a.waitSidecar("up")
	b.waitSidecar("up")
	appAddr := fmt.Sprintf("%s:%d", b.IP, freePort(t, b.IP))
	app(t, "lines-server", "--listen", appAddr, "--agent", "")

	host, port, _ := net.SplitHostPort(appAddr)
	provider := startNacosApp(t, b.IP, nil, "--register", service, "--ip", host, "--port", port,
		"--weight", "1", "--ephemeral=true", "--cluster", "east", "--metadata", "version=v1")
	if e := provider.next(t, "registered"); !e.OK || e.Error != "" {
		t.Fatalf("RegisterInstance through B's front end = %v, %v", e.OK, e.Error)
	}
	reader := be.reader(t)
	eventually(t, 20*time.Second, "B's ingress in the registry", func() bool {
		eps := registered(t, reader, service)
		return len(eps) == 1 && strings.HasPrefix(eps[0].Addr, b.IP+":") && eps[0].Addr != appAddr &&
			eps[0].Weight == 100 && eps[0].Metadata["version"] == "v1" && eps[0].Metadata["nacos.cluster"] == "east"
	})
	ans := a.waitAnswer(service, "A's mesh answer", func(x testbed.Answer) bool { return x.Mesh && len(x.Endpoints) == 1 })
	egress := ans.Endpoints[0].Addr

	load := newNacosLoad(t, a.IP, service, 100)
	load.waitAddr(t, time.Time{}, egress, "A's front end answers A's egress")
	// The egress as the app's own instance: its cluster, metadata, 1.0.
	insts, err := load.consumer.selectInstances(t, service, "east")
	if err != "" || len(insts) != 1 || insts[0].addr() != egress ||
		insts[0].ClusterName != "east" || insts[0].Metadata["version"] != "v1" || insts[0].Weight != 1 {
		t.Fatalf("A's SelectInstances(east) = %+v, %v; want A's egress %s in cluster east", insts, err, egress)
	}
	load.waitOK(t, 100, "a second of calls through the mesh")
	r0 := load.snapshot()
	load.waitOK(t, r0.ok+100, "another second")
	if r1 := load.snapshot(); r1.failed != r0.failed {
		t.Errorf("%d calls failed through the mesh with nothing changing", r1.failed-r0.failed)
	}
	if e, in := sidecarStats(t, a).Listener("egress", service), sidecarStats(t, b).Listener("ingress", service); e.Conns < 100 || in.Conns < 100 {
		t.Errorf("calls did not cross both sidecars: A's egress %d connections, B's ingress %d", e.Conns, in.Conns)
	}

	// A's sidecar SIGKILLed: the subscription's callback brings the real
	// instance, and the calls go there.
	r0 = load.snapshot()
	killed := time.Now()
	a.killSidecar()
	fired := load.waitAddr(t, killed, appAddr, "the callback with the provider's own address")
	clean := load.cleanSecond(t, "A's sidecar down")
	r1 := load.snapshot()
	t.Logf("figure: nacos-sdk-go Subscribe on A's front end, A's sidecar SIGKILL at 100 calls/s: callback with the real instance %v after the kill; %d calls failed; a second without failure began %v after the kill",
		fired.Sub(killed).Round(time.Millisecond), r1.failed-r0.failed, clean.Sub(killed).Round(time.Millisecond))

	r0 = r1
	started := time.Now()
	a.startSidecar()
	fired = load.waitAddr(t, started, egress, "the callback with A's egress again")
	clean = load.cleanSecond(t, "A's sidecar back")
	r1 = load.snapshot()
	t.Logf("figure: A's sidecar started again: callback with the egress %v after the start; %d calls failed; a second without failure began %v after the start",
		fired.Sub(started).Round(time.Millisecond), r1.failed-r0.failed, clean.Sub(started).Round(time.Millisecond))

	// B's sidecar SIGKILLed: B's agent registers the app's own port; A's
	// egress carries the calls on to it (A's callback does not change:
	// the egress stays). Then back.
	r0 = r1
	killed = time.Now()
	b.killSidecar()
	clean = load.cleanSecond(t, "B's sidecar down")
	r1 = load.snapshot()
	t.Logf("figure: B's sidecar SIGKILL at 100 calls/s: %d calls failed; a second without failure began %v after the kill",
		r1.failed-r0.failed, clean.Sub(killed).Round(time.Millisecond))
	r0 = r1
	started = time.Now()
	b.startSidecar()
	b.waitSidecar("up")
	clean = load.cleanSecond(t, "B's sidecar back")
	r1 = load.snapshot()
	t.Logf("figure: B's sidecar started again: %d calls failed; a second without failure began %v after the start",
		r1.failed-r0.failed, clean.Sub(started).Round(time.Millisecond))

	// The mesh switched off for the service on A: the callback brings the
	// real instance; on again: the egress.
	r0 = r1
	off := time.Now()
	if err := a.API().SetMesh(a.ctx, service, false); err != nil {
		t.Fatal(err)
	}
	fired = load.waitAddr(t, off, appAddr, "the callback with the real instance, mesh off")
	on := time.Now()
	if err := a.API().SetMesh(a.ctx, service, true); err != nil {
		t.Fatal(err)
	}
	firedOn := load.waitAddr(t, on, egress, "the callback with the egress, mesh on")
	load.cleanSecond(t, "mesh on again")
	r1 = load.snapshot()
	t.Logf("figure: mesh off on A: callback with the real instance %v after; on again: callback with the egress %v after; %d calls failed",
		fired.Sub(off).Round(time.Millisecond), firedOn.Sub(on).Round(time.Millisecond), r1.failed-r0.failed)

	// B's agent SIGKILLed and started again: the provider's client
	// reconnects and registers again, taking its publication over; the
	// registry holds the instance throughout, and still after the
	// restore grace has ended what nobody took over.
	r0 = r1
	var gaps atomic.Int64
	stopWatch := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if eps, err := reader.List(a.ctx, service); err == nil && len(eps) == 0 {
				gaps.Add(1)
			}
		}
	}()
	if err := b.Agent.Kill(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	if err := b.StartAgent(b.ctx); err != nil {
		t.Fatal(err)
	}
	<-time.After(4 * time.Second) // past the restart's restore grace (3 s)
	close(stopWatch)
	<-watched
	// Nacos ties ephemeral instances to the registering connection, the
	// agent's own: a SIGKILLed agent's instances go until it reconnects
	// (the adapter's limit, not the front end's).
	nacosUpstream := strings.HasSuffix(t.Name(), "/nacos-test-server") || strings.HasSuffix(t.Name(), "/nacos")
	if n := gaps.Load(); n != 0 && !nacosUpstream {
		t.Errorf("the registry lacked the instance in %d samples (every 20 ms) across B's agent restart", n)
	}
	eventually(t, 20*time.Second, "B's ingress in the registry after the restart's grace", func() bool {
		eps := registered(t, reader, service)
		return len(eps) == 1 && strings.HasPrefix(eps[0].Addr, b.IP+":")
	})
	load.cleanSecond(t, "B's agent restarted")
	r1 = load.snapshot()
	last := "none"
	if r1.failed > r0.failed {
		load.mu.Lock()
		last = load.lastBad.Sub(restarted).Round(time.Millisecond).String() + " after the start"
		load.mu.Unlock()
	}
	t.Logf("figure: B's agent SIGKILLed and started again: %d samples (every 20 ms) of the registry without the instance; %d calls failed, the last %s",
		gaps.Load(), r1.failed-r0.failed, last)
	load.stop()
	t.Logf("figure: total %d calls ok, %d failed; failures: %v", r1.ok, r1.failed, load.reasonList())

	// The provider's client gone: its connection's instance goes.
	provider.close(t)
	eventually(t, 20*time.Second, "the instance gone from the registry with the provider's connection", func() bool {
		return len(registered(t, reader, service)) == 0
	})
}

// nacosLoad is a consumer app that knows the service only through its
// Nacos subscription: each call goes, on a connection of its own, to the
// first instance of the last callback.
type nacosLoad struct {
	consumer *nacosApp
	addr     atomic.Pointer[string]
	cancel   chan struct{}
	wg       sync.WaitGroup

	mu      sync.Mutex
	seen    []addrAt // every callback's first instance
	ok      int
	failed  int
	lastBad time.Time
	reasons map[string]int
}

type addrAt struct {
	addr string
	at   time.Time
}

type loadCounts struct{ ok, failed int }

// newNacosLoad starts the consumer, a nacosApp on the front end of the
// host at ip subscribed to service, and its calls at rate a second.
func newNacosLoad(t *testing.T, ip, service string, rate int) *nacosLoad {
	t.Helper()
	l := &nacosLoad{cancel: make(chan struct{}), reasons: map[string]int{}}
	// The callback's time is the app's, when the SDK called it.
	cb := func(e nacosEvent) {
		if len(e.Instances) == 0 {
			return
		}
		a := e.Instances[0].addr()
		l.addr.Store(&a)
		l.mu.Lock()
		l.seen = append(l.seen, addrAt{a, e.At})
		l.mu.Unlock()
	}
	l.consumer = startNacosApp(t, ip, cb, "--subscribe", service)
	if e := l.consumer.next(t, "subscribed"); !e.OK {
		t.Fatalf("Subscribe: %v", e.Error)
	}
	t.Cleanup(l.stop)
	eventually(t, 20*time.Second, "the subscription's first instance", func() bool { return l.addr.Load() != nil })
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-l.cancel:
				return
			case <-tick.C:
			}
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				l.record(l.call(i))
			}()
		}
	}()
	return l
}

func (l *nacosLoad) call(i int) error {
	addr := *l.addr.Load()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	line := fmt.Sprintf("call %d", i)
	if _, err := fmt.Fprintln(c, line); err != nil {
		return err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	if !strings.HasSuffix(strings.TrimSuffix(got, "\n"), ": "+strings.ToUpper(line)) {
		return fmt.Errorf("unexpected answer %q", got)
	}
	return nil
}

func (l *nacosLoad) record(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		l.ok++
		return
	}
	l.failed++
	l.lastBad = time.Now()
	l.reasons[ephemeral.ReplaceAllString(err.Error(), "")]++
}

func (l *nacosLoad) snapshot() loadCounts {
	l.mu.Lock()
	defer l.mu.Unlock()
	return loadCounts{l.ok, l.failed}
}

func (l *nacosLoad) waitOK(t *testing.T, ok int, what string) {
	t.Helper()
	eventually(t, 30*time.Second, what, func() bool { return l.snapshot().ok >= ok })
}

// waitAddr waits for a callback after since whose first instance is addr
// and returns when it came.
func (l *nacosLoad) waitAddr(t *testing.T, since time.Time, addr, what string) time.Time {
	t.Helper()
	var at time.Time
	eventually(t, 30*time.Second, what, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		i := slices.IndexFunc(l.seen, func(s addrAt) bool { return s.addr == addr && !s.at.Before(since) })
		if i >= 0 {
			at = l.seen[i].at
		}
		return i >= 0
	})
	return at
}

// cleanSecond waits for a second of calls with none failed and returns
// when it began.
func (l *nacosLoad) cleanSecond(t *testing.T, what string) time.Time {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		began := time.Now()
		r0 := l.snapshot()
		l.waitOK(t, r0.ok+100, what+": a second of calls")
		if l.snapshot().failed == r0.failed {
			return began
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: calls still failing 30 s on", what)
		}
	}
}

func (l *nacosLoad) reasonList() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for r, n := range l.reasons {
		out = append(out, fmt.Sprintf("%d× %s", n, r))
	}
	slices.Sort(out)
	return out
}

func (l *nacosLoad) stop() {
	select {
	case <-l.cancel:
	default:
		close(l.cancel)
	}
	l.wg.Wait()
}
