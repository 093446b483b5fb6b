package integration

import (
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/detourmesh/detour/internal/testbed"
)

// TestOneOfTwoInstancesKilled: the greeter runs on B and on C; C's app is
// SIGKILLed under a steady load. The health checks route around it: its
// instance leaves the registry, and no call fails after that. The time to
// detection and the calls that failed before it are reported.
func TestOneOfTwoInstancesKilled(t *testing.T) { every(t, false, oneOfTwoInstancesKilled) }

func oneOfTwoInstancesKilled(t *testing.T, be *backend) {
	g := startMesh(t, be, greeter, 100, 25*time.Second)
	reg := be.reader(t)
	c := be.host(t, ipC, "")
	c.startSidecar()
	c.waitSidecar("up")
	addrC := fmt.Sprintf("%s:%d", ipC, freePort(t, ipC))
	serverC := app(t, "greeter-server", "--listen", addrC, "--agent", c.AgentGRPC())
	eventually(t, 20*time.Second, "two instances registered", func() bool {
		return len(registered(t, reg, "greeter")) == 2
	})
	g.waitCalls(t, 0, "C answers calls too", func(r testbed.Report) bool { return r.From == addrC })

	before := lastReport(t, g.client)
	killed := time.Now()
	if err := serverC.Kill(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "C's instance leaves the registry", func() bool {
		eps := registered(t, reg, "greeter")
		return len(eps) == 1 && eps[0].Metadata["detour.port"] != fmt.Sprint(portOf(addrC))
	})
	detected := time.Since(killed)
	atDetection := lastReport(t, g.client)
	t.Logf("figure: instance killed -> out of the registry in %v; %d calls failed before that", detected.Round(100*time.Millisecond), atDetection.Failed-before.Failed)

	// The client reports once a second: let a report pass, then count.
	settled := g.waitCalls(t, atDetection.OK+2*g.rate, "calls go on to B", nil)
	after := g.waitCalls(t, settled.OK+3*g.rate, "more calls to B", func(r testbed.Report) bool { return r.From == g.serverAddr })
	if after.Failed != settled.Failed {
		t.Errorf("calls still failing after detection: %d -> %d", settled.Failed, after.Failed)
	}
	for _, line := range failures(t, g.client) {
		t.Logf("  %s", line)
	}
}

func portOf(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

// hungServer accepts connections and never answers a byte: an app that
// hangs while its port stays open, which a TCP health check calls healthy.
func hungServer(t *testing.T, ip string) int {
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				<-done
				c.Close()
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestHungInstanceEjected: the greeter runs on B; C publishes an instance
// that accepts and never answers, with a TCP health check it passes. A's
// sidecar ejects it on request timeouts, and the calls go on to B.
func TestHungInstanceEjected(t *testing.T) { every(t, false, hungInstanceEjected) }

func hungInstanceEjected(t *testing.T, be *backend) {
	const timeouts = "services:\n  greeter: {protocol: grpc, timeout: 300ms}\n"
	a := be.host(t, ipA, timeouts)
	b := be.host(t, ipB, "")
	c := be.host(t, ipC, "")
	for _, h := range []*host{a, b, c} {
		h.startSidecar()
	}
	for _, h := range []*host{a, b, c} {
		h.waitSidecar("up")
	}
	serverB := fmt.Sprintf("%s:%d", ipB, freePort(t, ipB))
	app(t, "greeter-server", "--listen", serverB, "--agent", b.AgentGRPC())
	reg := be.reader(t)
	if err := c.API().Do(c.ctx, "POST", "/v1/publish", map[string]any{
		"service": "greeter", "port": hungServer(t, ipC), "protocol": "grpc", "health": map[string]string{"type": "tcp"},
	}, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "two instances registered", func() bool {
		return len(registered(t, reg, "greeter")) == 2
	})
	a.waitAnswer("greeter", "mesh answer", func(x testbed.Answer) bool { return x.Mesh })

	const rate = 50
	client := app(t, "greeter-client", "--agent", a.AgentGRPC(), "--rate", strconv.Itoa(rate), "--duration", "12s")
	g := &exampleMesh{a: a, b: b, client: client, rate: rate, serverAddr: serverB}
	first := g.waitCalls(t, 2*rate, "calls flow", nil)
	// Ejected after a few timeouts: from then on every call succeeds.
	settled := g.waitCalls(t, first.OK+2*rate, "more calls", nil)
	after := g.waitCalls(t, settled.OK+3*rate, "calls go on to B only", func(r testbed.Report) bool { return r.From == serverB })
	t.Logf("figure: hung instance: %d calls failed before it was ejected; none of the next %d", settled.Failed, after.OK-settled.OK)
	if after.Failed != settled.Failed {
		t.Errorf("calls still failing after the hung instance should be ejected: %d -> %d", settled.Failed, after.Failed)
	}
	for _, line := range failures(t, client) {
		t.Logf("  %s", line)
	}
}
