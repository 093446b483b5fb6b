package integration

import (
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/detourmesh/detour/internal/testbed"
	"github.com/detourmesh/detour/registry-adapters/registry"
)

// TestDubboGoL7 is issue 15 end to end: Dubbo's own protocol balanced
// per call by the sidecar. One unmodified dubbo-go consumer on A (every
// provider collapses into A's egress, one provider URL, over which
// dubbo-go opens a few connections of its pool) and three dubbo-go providers
// on B, C and D (one host each: an agent fronts one publication of a
// service per host), every app registered through its host's ZooKeeper
// front end, 200 calls/s, the service's timeout 500 ms on A. Phases, the
// calls going on throughout, failed calls counted in each:
//
//   - 1,000 calls: each provider's share within ±20 % of a third (A's
//     endpoint counts), over one connection from A to each, none failed;
//   - B's sidecar SIGKILLed and back (at L4: 47-105 failed calls);
//   - C's sidecar SIGTERMed (drained: none may fail) and back;
//   - D's provider SIGSTOPped (accepts, never answers): ejected after
//     five time-outs in a row, then 1,000 calls with none failed;
//   - C's provider SIGKILLed;
//   - A's sidecar SIGKILLed (fallback: the consumer on the providers
//     directly) and back.
//
// It runs on embedded etcd only: the registry is not what it tests.
func TestDubboGoL7(t *testing.T) { dubboGoL7(t, etcdBackend(t)) }

// l7Config is A's agent config: the service's timeout, and outlier
// settings that let two of three endpoints be out (a hung one and a
// dead one) without panic routing.
const l7Config = `services:
  ` + dubboService + `:
    timeout: 500ms
outlier:
  consecutive_failures: 5
  base_ejection_time: 30s
  max_ejection_time: 300s
  max_ejection_percent: 50
  panic_threshold: 30
`

// l7Mesh is the dubbo-go consumer on A and its three providers.
type l7Mesh struct {
	a         *host
	hosts     []*host // B, C, D
	names     []string
	providers []*testbed.Proc
	apps      []string // each provider's own address
	ingress   []string // each provider's registered ingress
	regs      *timeline[[]registry.Endpoint]
	view      *timeline[[]string] // A's front end's providers directory
	egress    string              // A's egress for the service
	consumer  *dubboConsumer
	failed    int  // in the phases
	l4        bool // A's sidecar carries the service at L4
}

// hostD is a fourth host on the suite's network, beside A, B and C.
func hostD() string { return ipC[:strings.LastIndex(ipC, ".")] + ".5" }

func dubboGoL7(t *testing.T, be *backend) {
	m := startL7Mesh(t, be, l7Config)
	m.balanced(t)
	m.serverSidecarKilled(t)
	m.serverSidecarStopped(t)
	m.hungProvider(t)
	m.providerKilled(t)
	m.clientSidecarKilled(t)

	// The last phase runs on until the consumer stops: dubbo-go may still
	// be moving its connections from the providers to A's egress (see
	// clientSidecarKilled) after the phase's clean second.
	total := m.consumer.stop(t)
	t.Logf("figure: dubbo-go on L7, whole run: ok=%d failed=%d (%d in the phases before the last second, %d after it)",
		total.OK, total.Failed, m.failed, total.Failed-m.failed)
	for _, line := range failures(t, m.consumer.Proc) {
		t.Logf("  %s", line)
	}
}

// TestDubboGoSpreadAtL4 is TestDubboGoL7's first phase with A's sidecar
// carrying the service at L4 (A's config says tcp; the ingresses stay
// Dubbo's and count the calls): the figure to set beside L7's. dubbo-go
// spreads its calls over the few connections of its pool, and A pins
// each connection to one provider.
func TestDubboGoSpreadAtL4(t *testing.T) {
	m := startL7Mesh(t, etcdBackend(t), strings.Replace(l7Config, "timeout: 500ms", "timeout: 500ms\n    protocol: tcp", 1))
	m.balanced(t)
	m.consumer.stop(t)
}

// startL7Mesh starts A (agent config cfg), B, C and D, a provider on
// each of B, C, D and the consumer on A, and waits for its first call.
func startL7Mesh(t *testing.T, be *backend, cfg string) *l7Mesh {
	t.Helper()
	dir := dubbogoBin(t)
	m := &l7Mesh{names: []string{"B", "C", "D"}, l4: strings.Contains(cfg, "protocol: tcp")}
	m.a = be.host(t, ipA, cfg, frontEndArgs(ipA)...)
	for _, ip := range []string{ipB, ipC, hostD()} {
		m.hosts = append(m.hosts, be.host(t, ip, "", frontEndArgs(ip)...))
	}
	for _, h := range append([]*host{m.a}, m.hosts...) {
		h.startSidecar()
	}
	for _, h := range append([]*host{m.a}, m.hosts...) {
		h.waitSidecar("up")
	}
	m.regs = watchRegistry(t, be.reader(t), dubboService)
	started := time.Now()
	for i, h := range m.hosts {
		port := freePort(t, h.IP)
		m.apps = append(m.apps, net.JoinHostPort(h.IP, strconv.Itoa(port)))
		m.providers = append(m.providers, appIn(t, dir, "dubbo-provider", "--host", h.IP, "--port", strconv.Itoa(port),
			"--registry", "zookeeper://"+h.ZooKeeperAddr(), "--registry-type", "interface", "--protocol", "dubbo",
			"--name", "provider-"+m.names[i], "--session-timeout", "30s"))
	}
	eps, _ := m.regs.wait(t, started, 60*time.Second, "three providers registered at their ingress", func(eps []registry.Endpoint) bool {
		return len(eps) == 3 && m.allMesh(eps)
	})
	for _, h := range m.hosts {
		for _, ep := range eps {
			if host, _, _ := net.SplitHostPort(ep.Addr); host == h.IP {
				m.ingress = append(m.ingress, ep.Addr)
			}
		}
	}
	ans := m.a.waitAnswer(dubboService, "A's egress", func(x testbed.Answer) bool { return x.Mesh && len(x.Endpoints) == 1 && len(x.Fallback) == 3 })
	m.egress = ans.Endpoints[0].Addr
	m.view = watchChildren(t, m.a.ZooKeeperAddr(), dubboProviders)
	m.waitRoutable(t, "all three providers healthy on A", 0, 1, 2)
	m.checkProtocols(t)

	m.startConsumer(t, dir)
	return m
}

// startConsumer starts the consumer and waits for its first call. Once
// in a few runs dubbo-go v3.3.1 panics in its first call (a nil URL in
// the failover invoker, while its directory fills): then it is started
// once more.
func (m *l7Mesh) startConsumer(t *testing.T, dir string) {
	t.Helper()
	for try := 1; ; try++ {
		p := appIn(t, dir, "dubbo-consumer", "--registry", "zookeeper://"+m.a.ZooKeeperAddr(), "--registry-type", "interface",
			"--protocol", "dubbo", "--rate", "200", "--timeout", "2s", "--wait", "30s")
		m.consumer = &dubboConsumer{Proc: p, rate: 200}
		eventually(t, 30*time.Second, "the consumer's first call, or its end", func() bool { return !running(p) || m.consumer.lines(t) > 0 })
		if running(p) || try == 2 {
			break
		}
		out, _ := os.ReadFile(p.Log)
		t.Logf("dubbo-consumer ended before its first call; starting it again. Its output:\n%s", out[max(0, len(out)-3000):])
	}
	m.consumer.waitOK(t, 1, "the consumer's first call")
}

func (m *l7Mesh) allMesh(eps []registry.Endpoint) bool {
	for _, ep := range eps {
		if ep.Metadata["detour.mesh"] != "true" {
			return false
		}
	}
	return true
}

// endpoint is A's view of provider i's endpoint (by host: its address
// changes while its host's sidecar is down).
func (m *l7Mesh) endpoint(t *testing.T, i int) (health string, ejected bool, requests uint64) {
	t.Helper()
	for _, c := range sidecarStats(t, m.a).Clusters {
		if c.Service != dubboService {
			continue
		}
		for _, e := range c.Endpoints {
			if host, _, _ := net.SplitHostPort(e.Addr); host == m.hosts[i].IP {
				return e.Health, e.Ejected, e.Requests
			}
		}
	}
	return "absent", false, 0
}

// waitRoutable waits until A routes to providers is (healthy or
// bypass, not ejected).
func (m *l7Mesh) waitRoutable(t *testing.T, what string, is ...int) {
	t.Helper()
	eventually(t, 30*time.Second, what, func() bool {
		for _, i := range is {
			if h, ej, _ := m.endpoint(t, i); ej || (h != "healthy" && h != "bypass") {
				return false
			}
		}
		return true
	})
}

// checkProtocols: A's egress and cluster (TCP when A carries it at L4) and
// every provider host's ingress are Dubbo's.
func (m *l7Mesh) checkProtocols(t *testing.T) {
	t.Helper()
	type item struct {
		Service  string `json:"service"`
		Protocol string `json:"protocol"`
	}
	var cfg struct {
		Snapshot struct {
			Egress   []item `json:"egress"`
			Ingress  []item `json:"ingress"`
			Clusters []item `json:"clusters"`
		} `json:"snapshot"`
	}
	for _, h := range append([]*host{m.a}, m.hosts...) {
		c := &testbed.Client{Base: "http://" + h.AdminAddr()}
		if err := c.Do(h.ctx, http.MethodGet, "/config", nil, &cfg); err != nil {
			t.Fatal(err)
		}
		// A's egress and cluster; the providers' hosts' ingresses (their
		// own egresses, for the providers' watch of their directory, take
		// the protocol the instances declare, which a record registered
		// during a fallback does not).
		want, items := "PROTOCOL_DUBBO", cfg.Snapshot.Ingress
		if h == m.a {
			items = append(cfg.Snapshot.Egress, cfg.Snapshot.Clusters...)
			if m.l4 {
				want = "PROTOCOL_TCP"
			}
		}
		for _, it := range items {
			if it.Service == dubboService && it.Protocol != want {
				t.Errorf("%s's sidecar handles %s as %s; want %s", h.IP, dubboService, it.Protocol, want)
			}
		}
	}
}

// clean waits for a second of calls with none failed (up to 30 s) and
// returns when it began.
func (m *l7Mesh) clean(t *testing.T, what string) time.Time {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		began := time.Now()
		r0 := m.consumer.snapshot(t)
		r1 := m.consumer.waitOK(t, r0.OK+m.consumer.rate, what+": a second of calls")
		if r1.Failed == r0.Failed {
			return began
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: calls still failing 30 s on", what)
		}
	}
}

func (m *l7Mesh) phase(t *testing.T, what string, r0 testbed.Report, detail string) {
	t.Helper()
	r1 := m.consumer.snapshot(t)
	m.failed += r1.Failed - r0.Failed
	t.Logf("figure: dubbo-go on L7, %s at %d calls/s: ok=%d failed=%d; %s", what, m.consumer.rate, r1.OK-r0.OK, r1.Failed-r0.Failed, detail)
}

// balanced: 1,000 calls, counted by each provider's ingress (Dubbo's
// on every host, so it counts calls whatever A does). On L7 each share
// is within ±20 % of a third, over one connection from A to each
// provider; none fails.
func (m *l7Mesh) balanced(t *testing.T) {
	t.Helper()
	served := func() (n [3]uint64) {
		for i, h := range m.hosts {
			n[i] = sidecarStats(t, h).Listener("ingress", dubboService).Requests
		}
		return n
	}
	before := served()
	r0 := m.consumer.snapshot(t)
	r1 := m.consumer.waitOK(t, r0.OK+1000, "1,000 calls")
	after := served()
	var got [3]uint64
	var sum uint64
	for i := range got {
		got[i] = after[i] - before[i]
		sum += got[i]
	}
	how := "L7"
	if m.l4 {
		how = "L4 (A's sidecar)"
	}
	egress := sidecarStats(t, m.a).Listener("egress", dubboService)
	t.Logf("figure: dubbo-go on %s, %d calls over %d connection(s) open on A's egress: provider-B %d, provider-C %d, provider-D %d (failed %d)",
		how, r1.OK-r0.OK, egress.Active, got[0], got[1], got[2], r1.Failed-r0.Failed)
	if r1.Failed != r0.Failed {
		t.Errorf("%d calls failed with nothing changing", r1.Failed-r0.Failed)
	}
	if m.l4 {
		return
	}
	for i, n := range got {
		if mean := float64(sum) / 3; float64(n) < 0.8*mean || float64(n) > 1.2*mean {
			t.Errorf("provider-%s got %d of %d calls; want within ±20 %% of a third", m.names[i], n, sum)
		}
	}
	// dubbo-go keeps up to 16 connections per provider URL (getty's
	// connection-number) and spreads its calls over them; A's sidecar
	// keeps one to each provider whatever their number.
	for i := range m.hosts {
		if c := sidecarStats(t, m.a).Endpoint(dubboService, m.ingress[i]).Conns; c != 1 {
			t.Errorf("A opened %d connections to provider-%s's ingress; want one, shared by every call", c, m.names[i])
		}
	}
}

// serverSidecarKilled: B's sidecar SIGKILLed, then back. The calls in
// flight on A's connection to B's ingress fail; the next ones to B are
// refused and retried on C and D, then go to B's app (B's agent
// registers it, or A bypasses).
func (m *l7Mesh) serverSidecarKilled(t *testing.T) {
	t.Helper()
	r0 := m.consumer.snapshot(t)
	killed := time.Now()
	m.hosts[0].killSidecar()
	_, reg := m.regs.wait(t, killed, 30*time.Second, "B registers its app's own port", func(eps []registry.Endpoint) bool {
		for _, ep := range eps {
			if ep.Addr == m.apps[0] {
				return true
			}
		}
		return false
	})
	clean := m.clean(t, "B's sidecar down")
	m.phase(t, "B's sidecar SIGKILLed", r0, "the app's own port registered "+since(killed, reg)+" after the kill; a second without failure began "+since(killed, clean)+" after it (at L4: 47-105 failed)")

	r0 = m.consumer.snapshot(t)
	back := time.Now()
	m.hosts[0].startSidecar()
	_, reg = m.regs.wait(t, back, 30*time.Second, "B registers its ingress again", func(eps []registry.Endpoint) bool { return len(eps) == 3 && m.allMesh(eps) })
	m.waitRoutable(t, "B's ingress healthy on A", 0)
	clean = m.clean(t, "B's sidecar back")
	m.phase(t, "B's sidecar started again", r0, "B's ingress registered "+since(back, reg)+" after the start; a second without failure began "+since(back, clean)+" after it")
}

// serverSidecarStopped: C's sidecar SIGTERMed (drain), then back. C's
// ingress sends the read-only event on A's connection, which A stops
// using; A's next calls to C are refused and retried on B and D (or go
// to C's app once its agent registers it). None may fail: no call is
// lost on a drain.
func (m *l7Mesh) serverSidecarStopped(t *testing.T) {
	t.Helper()
	r0 := m.consumer.snapshot(t)
	stopped := time.Now()
	err := m.hosts[1].Sidecar.Stop(20 * time.Second)
	exited := time.Now()
	if err != nil {
		t.Errorf("C's sidecar on SIGTERM: %v", err)
	}
	clean := m.clean(t, "C's sidecar stopped")
	r1 := m.consumer.snapshot(t)
	m.failed += r1.Failed - r0.Failed
	t.Logf("figure: dubbo-go on L7, C's sidecar SIGTERMed at %d calls/s: ok=%d failed=%d; it exited %s after the signal; a second without failure began %s after it",
		m.consumer.rate, r1.OK-r0.OK, r1.Failed-r0.Failed, since(stopped, exited), since(stopped, clean))
	if r1.Failed != r0.Failed {
		t.Errorf("%d calls failed on C's sidecar's drain", r1.Failed-r0.Failed)
	}

	r0 = m.consumer.snapshot(t)
	back := time.Now()
	m.hosts[1].startSidecar()
	_, reg := m.regs.wait(t, back, 30*time.Second, "C registers its ingress again", func(eps []registry.Endpoint) bool { return len(eps) == 3 && m.allMesh(eps) })
	m.waitRoutable(t, "C's ingress healthy on A", 1)
	clean = m.clean(t, "C's sidecar back")
	m.phase(t, "C's sidecar started again", r0, "C's ingress registered "+since(back, reg)+" after the start; a second without failure began "+since(back, clean)+" after it")
}

// hungProvider: D's provider SIGSTOPped: it still accepts (the kernel
// does) and never answers. Each call sent there times out at 500 ms;
// five in a row eject it; the calls sent after that all succeed.
func (m *l7Mesh) hungProvider(t *testing.T) {
	t.Helper()
	r0 := m.consumer.snapshot(t)
	stopped := time.Now()
	m.providers[2].Signal(syscall.SIGSTOP)
	var ejected time.Time
	eventually(t, 30*time.Second, "D ejected on A", func() bool {
		_, ej, _ := m.endpoint(t, 2)
		ejected = time.Now()
		return ej
	})
	// The calls sent to D before its ejection end at their time-out.
	r1 := m.consumer.waitOK(t, m.consumer.snapshot(t).OK+m.consumer.rate, "a second after the ejection")
	r2 := m.consumer.waitOK(t, r1.OK+1000, "1,000 calls after the ejection")
	m.failed += r1.Failed - r0.Failed
	t.Logf("figure: dubbo-go on L7, D's provider SIGSTOPped at %d calls/s: ejected %s after the stop, %d calls failed until a second after it (time-outs of 500 ms); then %d calls with %d failed",
		m.consumer.rate, since(stopped, ejected), r1.Failed-r0.Failed, r2.OK-r1.OK, r2.Failed-r1.Failed)
	if r2.Failed != r1.Failed {
		t.Errorf("%d calls failed after D's ejection", r2.Failed-r1.Failed)
		m.failed += r2.Failed - r1.Failed
	}
	m.providers[2].Signal(syscall.SIGCONT)
}

// providerKilled: C's provider SIGKILLed: C's ingress finds nothing to
// connect to and answers errors, which eject C on A, and C's sidecar
// reports it down.
func (m *l7Mesh) providerKilled(t *testing.T) {
	t.Helper()
	r0 := m.consumer.snapshot(t)
	killed := time.Now()
	if err := m.providers[1].Kill(); err != nil {
		t.Fatal(err)
	}
	var out time.Time
	eventually(t, 30*time.Second, "C out of A's routing", func() bool {
		h, ej, _ := m.endpoint(t, 1)
		out = time.Now()
		return ej || (h != "healthy" && h != "bypass")
	})
	clean := m.clean(t, "C's provider dead")
	m.phase(t, "C's provider SIGKILLed", r0, "C out of A's routing "+since(killed, out)+" after the kill; a second without failure began "+since(killed, clean)+" after it")
}

// clientSidecarKilled: A's sidecar SIGKILLed: the consumer gets the
// providers' own URLs and calls them directly; back, A's egress again.
// A's front end answers one node per provider, all at A's egress, and
// dubbo-go takes 15-18 s to move its calls there (none fail meanwhile;
// once in a few runs one fails as it moves).
func (m *l7Mesh) clientSidecarKilled(t *testing.T) {
	t.Helper()
	r0 := m.consumer.snapshot(t)
	killed := time.Now()
	m.a.killSidecar()
	m.a.waitAnswer(dubboService, "fallback on A", func(x testbed.Answer) bool { return !x.Mesh })
	clean := m.clean(t, "A's sidecar down")
	m.phase(t, "A's sidecar SIGKILLed", r0, "a second without failure began "+since(killed, clean)+" after the kill")

	r0 = m.consumer.snapshot(t)
	back := time.Now()
	m.a.startSidecar()
	m.a.waitSidecar("up")
	m.a.waitAnswer(dubboService, "A's egress again", func(x testbed.Answer) bool { return x.Mesh })
	meshed := time.Now()
	// One node per provider, each at A's egress (the front end keeps
	// each provider's own parameters).
	_, fired := m.view.wait(t, back, 30*time.Second, "A's front end answers A's egress", func(kids []string) bool {
		for _, k := range kids {
			if providerAddr(k) != m.egress {
				return false
			}
		}
		return len(kids) > 0
	})
	eventually(t, 30*time.Second, "the consumer on A's egress again", func() bool {
		return sidecarStats(t, m.a).Listener("egress", dubboService).Active > 0
	})
	moved := time.Now()
	clean = m.clean(t, "A's sidecar back")
	m.phase(t, "A's sidecar started again", r0, "A's agent answered its egress "+since(back, meshed)+" after the start (polled), A's front end's providers watch fired with it "+
		since(back, fired)+" after it, the consumer on it "+since(back, moved)+" after it (polled), a second without failure began "+since(back, clean)+" after it")
}
