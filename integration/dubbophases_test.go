package integration

import (
	"context"
	"testing"
	"time"

	"github.com/detourmesh/detour/internal/testbed"
	"github.com/detourmesh/detour/registry-adapters/registry"
)

// callPath is the way a steady stretch of the consumer's calls takes.
type callPath int

const (
	viaMesh   callPath = iota // A's egress, then B's ingress
	viaEgress                 // A's egress, then the app itself
	viaDirect                 // the app itself, A's egress unused
)

// steady waits for a second of calls with none failed (strict: the
// next second must be one; else up to 30 s of seconds until one is, as
// dubbo-go drops its dead connections one by one) and checks that the
// sidecars' open connections show the path. It returns when that clean
// second began.
func (m *dubboMesh) steady(t *testing.T, what string, via callPath, strict bool) time.Time {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		began := time.Now()
		r0 := m.consumer.snapshot(t)
		r1 := m.consumer.waitOK(t, r0.OK+m.consumer.rate, what+": a second of calls")
		if r1.Failed == r0.Failed {
			m.checkPath(t, what, via)
			return began
		}
		if strict {
			t.Errorf("%s: %d calls failed with nothing changing", what, r1.Failed-r0.Failed)
			m.checkPath(t, what, via)
			return began
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: calls still failing 30 s on (%d in the last second)", what, r1.Failed-r0.Failed)
		}
	}
}

// checkPath checks that the sidecars' open connections show the path.
func (m *dubboMesh) checkPath(t *testing.T, what string, via callPath) {
	t.Helper()
	if !running(m.a.Sidecar) {
		return
	}
	a := sidecarStats(t, m.a)
	egress := a.Listener("egress", m.service)
	switch via {
	case viaDirect:
		if egress.Active != 0 {
			t.Errorf("%s: %d connections open on A's egress; want the consumer on the provider directly", what, egress.Active)
		}
	case viaEgress:
		if egress.Active == 0 {
			t.Errorf("%s: no connection open on A's egress", what)
		}
	case viaMesh:
		ep := a.Endpoint(m.service, m.ingress)
		hop, unit := ep.Active, "connections open"
		if m.l7() {
			// A's egress sends the requests on over HTTP/2 connections of
			// its own pool, which the endpoint does not count: its
			// requests since the stretch began show the hop.
			hop, unit = int64(ep.Requests-m.mark.a.Endpoint(m.service, m.ingress).Requests), "requests since the stretch began"
		}
		ingress := sidecarStats(t, m.b).Listener("ingress", m.service)
		if egress.Active == 0 || hop == 0 || ingress.Active == 0 {
			t.Errorf("%s: connections open on A's egress %d, from A to B's ingress %d (%s), on B's ingress %d; want each > 0",
				what, egress.Active, hop, unit, ingress.Active)
		}
	}
}

func running(p *testbed.Proc) bool {
	if p == nil {
		return false
	}
	select {
	case <-p.Done():
		return false
	default:
		return true
	}
}

// meshMark is the start of a stretch of calls through both sidecars.
type meshMark struct {
	ok       int // the consumer's count then
	inflight int // its calls in flight then, which may not take the mesh
	a, b     testbed.SidecarStats
}

// markMesh starts a stretch through the mesh: both sidecars' stats, then
// the consumer's count, so that every call counted after the mark either
// began after the stats were read or was in flight when it was counted.
func (m *dubboMesh) markMesh(t *testing.T) {
	t.Helper()
	a, b := sidecarStats(t, m.a), sidecarStats(t, m.b)
	r := m.consumer.snapshot(t)
	m.mark = meshMark{ok: r.OK, inflight: r.Inflight, a: a, b: b}
}

// l7 reports whether the sidecars carry the apps' protocol per call on
// pooled connections of their own: Triple as gRPC, and dubbo since the
// sidecar speaks it (sidecar/dubbo, PROTOCOL_DUBBO).
func (m *dubboMesh) l7() bool { return m.protocol == "tri" || m.protocol == "dubbo" }

// carried checks, once the stretch's connections have ended (a hop
// killed), that every sidecar still up counted at least a dubbo header
// for each call the consumer made in the stretch (ok, its count at the
// stretch's end) towards the consumer, and, when both ways ended
// (inToo), towards the provider too, and on L7 (Triple) a request for
// each call but those in flight at the mark (they may have begun on the
// path the stretch left); it logs what they counted. B's
// sidecar killed ends only the way back on A's egress: A half-closes
// the consumer's connection and forwards what the consumer still sends
// until the consumer closes it, which dubbo-go does not do at once, and
// until then those bytes are not counted.
func (m *dubboMesh) carried(t *testing.T, what string, ok int, inToo bool) {
	t.Helper()
	n := uint64(ok - m.mark.ok)
	type hop struct {
		name   string
		h      *host
		before func() testbed.Counters
		read   func(testbed.SidecarStats) testbed.Counters
	}
	var hops []hop
	if running(m.a.Sidecar) {
		hops = append(hops, hop{"A's egress", m.a, func() testbed.Counters { return m.mark.a.Listener("egress", m.service) },
			func(s testbed.SidecarStats) testbed.Counters { return s.Listener("egress", m.service) }})
	}
	if running(m.b.Sidecar) {
		hops = append(hops, hop{"B's ingress", m.b, func() testbed.Counters { return m.mark.b.Listener("ingress", m.service) },
			func(s testbed.SidecarStats) testbed.Counters { return s.Listener("ingress", m.service) }})
	}
	for _, h := range hops {
		var got testbed.Counters
		err := testbed.Poll(context.Background(), 20*time.Second, what+": "+h.name+" counts the stretch's bytes once its connections end", func() bool {
			c, b := h.read(sidecarStats(t, h.h)), h.before()
			got = testbed.Counters{Conns: c.Conns - b.Conns, Requests: c.Requests - b.Requests, In: c.In - b.In, Out: c.Out - b.Out, Active: c.Active}
			return (!inToo || got.In >= dubboFrame*n) && got.Out >= dubboFrame*n && (!m.l7() || got.Requests+uint64(m.mark.inflight) >= n)
		})
		if err != nil {
			t.Fatalf("%v: %d calls, counted %+v", err, n, got)
		}
		t.Logf("%s: %d calls through the mesh; %s counted %d connections, %d requests, %d bytes in, %d out (%.0f/%.0f a call)",
			what, n, h.name, got.Conns, got.Requests, got.In, got.Out, float64(got.In)/float64(max(n, 1)), float64(got.Out)/float64(max(n, 1)))
	}
}

// phase logs the consumer's counts since r0 and adds its failures up.
func (m *dubboMesh) phase(t *testing.T, what string, r0 testbed.Report, detail string) {
	t.Helper()
	r1 := m.consumer.snapshot(t)
	m.failedInPhases += r1.Failed - r0.Failed
	t.Logf("figure: dubbo-go (%s), %s at %d calls/s: ok=%d failed=%d (in flight at its end: %d); %s",
		m.upstream, what, m.consumer.rate, r1.OK-r0.OK, r1.Failed-r0.Failed, r1.Inflight, detail)
}

func since(from, at time.Time) string { return at.Sub(from).Round(time.Millisecond).String() }

// clientSidecarKilled: A's sidecar SIGKILLed; the consumer's watch fires
// with the provider's own URL and the calls go on directly; B's ingress
// counted the calls so far. The sidecar back, the egress again.
func (m *dubboMesh) clientSidecarKilled(t *testing.T) {
	t.Helper()
	r0 := m.consumer.snapshot(t)
	killed := time.Now()
	m.a.killSidecar()
	_, fired := m.view.wait(t, killed, 20*time.Second, "A's front end answers the provider's own URL", m.only(m.appAddr))
	m.carried(t, "from the start to A's sidecar's SIGKILL", r0.OK, true)
	clean := m.steady(t, "A's sidecar down", viaDirect, false)
	m.phase(t, "A's sidecar SIGKILLed", r0, "the providers watch on A's front end fired with the real URL "+since(killed, fired)+
		" after the kill; a second without failure began "+since(killed, clean)+" after it")

	r0 = m.consumer.snapshot(t)
	back := time.Now()
	m.a.startSidecar()
	_, fired = m.view.wait(t, back, 30*time.Second, "A's front end answers A's egress again", m.only(m.egress))
	eventually(t, 20*time.Second, "the consumer on A's egress again", func() bool {
		return sidecarStats(t, m.a).Listener("egress", m.service).Active > 0
	})
	moved := time.Now()
	m.markMesh(t)
	clean = m.steady(t, "A's sidecar back", viaMesh, false)
	m.phase(t, "A's sidecar started again", r0, "the providers watch fired with the egress "+since(back, fired)+
		" after the start, the consumer connected to it "+since(back, moved)+" after it, a second without failure began "+since(back, clean)+" after it")
}

// serverSidecarKilled: B's sidecar SIGKILLed; B's agent registers the
// app's own port; A's egress carries the calls on to it, and counted
// those before. The sidecar back, B's ingress registered again.
func (m *dubboMesh) serverSidecarKilled(t *testing.T) {
	t.Helper()
	r0 := m.consumer.snapshot(t)
	killed := time.Now()
	m.b.killSidecar()
	_, reg := m.regs.wait(t, killed, 30*time.Second, "B registers the provider's own port", func(eps []registry.Endpoint) bool {
		return len(eps) == 1 && eps[0].Addr == m.appAddr && eps[0].Metadata["detour.mesh"] == "false"
	})
	m.carried(t, "from A's sidecar's start to B's sidecar's SIGKILL", r0.OK, false)
	clean := m.steady(t, "B's sidecar down", viaEgress, false)
	if kids := m.viewNow(); !m.only(m.egress)(kids) {
		t.Errorf("A's consumers read %v after B's sidecar died; want A's egress unchanged", kids)
	}
	m.phase(t, "B's sidecar SIGKILLed", r0, "the provider's own port registered "+since(killed, reg)+
		" after the kill; a second without failure began "+since(killed, clean)+" after it")

	r0 = m.consumer.snapshot(t)
	back := time.Now()
	m.b.startSidecar()
	eps, reg := m.regs.wait(t, back, 30*time.Second, "B registers its ingress again", func(eps []registry.Endpoint) bool {
		return len(eps) == 1 && eps[0].Addr != m.appAddr && eps[0].Metadata["detour.mesh"] == "true"
	})
	if eps[0].Addr != m.ingress {
		t.Logf("B's ingress moved: %s -> %s", m.ingress, eps[0].Addr)
		m.ingress = eps[0].Addr
	}
	// The consumer's connection, made while B's sidecar was down, stays
	// piped by A's egress to the app itself; its next one goes through
	// B's ingress (the mesh flag below makes one).
	clean = m.steady(t, "B's sidecar back", viaEgress, false)
	m.phase(t, "B's sidecar started again", r0, "B's ingress registered "+since(back, reg)+
		" after the start; a second without failure began "+since(back, clean)+" after it")
}

func (m *dubboMesh) viewNow() []string {
	m.view.mu.Lock()
	defer m.view.mu.Unlock()
	return m.view.states[len(m.view.states)-1].v
}

// meshOffAndOn: the mesh flag of the service off then on on A: A's
// consumers read the provider's own URL, then A's egress again.
func (m *dubboMesh) meshOffAndOn(t *testing.T) {
	t.Helper()
	for _, on := range []bool{false, true} {
		r0 := m.consumer.snapshot(t)
		set := time.Now()
		if err := m.a.API().SetMesh(m.a.ctx, m.service, on); err != nil {
			t.Fatal(err)
		}
		want, via, what := m.appAddr, viaDirect, "mesh off"
		if on {
			want, via, what = m.egress, viaMesh, "mesh on"
		}
		_, fired := m.view.wait(t, set, 20*time.Second, "A's front end answers "+want+" ("+what+")", m.only(want))
		eventually(t, 20*time.Second, "the consumer follows ("+what+")", func() bool {
			return (sidecarStats(t, m.a).Listener("egress", m.service).Active > 0) == on
		})
		moved := time.Now()
		if on {
			m.markMesh(t)
		}
		clean := m.steady(t, what, via, false)
		m.phase(t, what+" on A", r0, "the providers watch fired "+since(set, fired)+" after PUT /v1/services/S/mesh, the consumer's connections moved "+
			since(set, moved)+" after it, a second without failure began "+since(set, clean)+" after it")
	}
}

// providerKilled: the provider SIGKILLed; its node goes when its
// session expires (dubbo-go's 5 s), B's publication with it; the
// registry entry and A's consumers' view follow, or go before when B's
// health check fails first. Every call fails from the kill on.
func (m *dubboMesh) providerKilled(t *testing.T) {
	t.Helper()
	r0 := m.consumer.snapshot(t)
	killed := time.Now()
	if err := m.provider.Kill(); err != nil {
		t.Fatal(err)
	}
	m.carried(t, "from mesh on to the provider's SIGKILL", r0.OK, true)
	var gone time.Time
	eventually(t, 30*time.Second, "B's publication ends with the provider's node", func() bool {
		st, err := m.b.API().Status(m.b.ctx)
		if err != nil {
			return false
		}
		for _, p := range st.Publications {
			if p.Service == m.service {
				return false
			}
		}
		gone = time.Now()
		return true
	})
	_, unreg := m.regs.wait(t, killed, 30*time.Second, "the registry entry gone", func(eps []registry.Endpoint) bool { return len(eps) == 0 })
	_, empty := m.view.wait(t, killed, 30*time.Second, "A's front end answers no provider", func(kids []string) bool { return len(kids) == 0 })
	m.phase(t, "provider SIGKILLed", r0, "node gone (B's publication ended; polled) "+since(killed, gone)+
		" after the kill, registry entry gone "+since(killed, unreg)+", A's providers watch fired empty "+since(killed, empty))

	total := m.consumer.stop(t)
	t.Logf("figure: dubbo-go (%s), whole run: ok=%d failed=%d (%d in the phases above, the others with no provider left before the consumer stopped)", m.upstream, total.OK, total.Failed, m.failedInPhases)
	for _, line := range failures(t, m.consumer.Proc) {
		t.Logf("  %s", line)
	}
}
