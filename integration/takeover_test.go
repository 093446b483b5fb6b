package integration

import (
	"bufio"
	"fmt"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/detourmesh/detour/internal/testbed"
)

// echoServer is a line-protocol app: it answers every line with the same
// line. L4 takeover needs no knowledge of it.
func echoServer(t *testing.T, ip string) (port int) {
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// roundTrip dials addr, sends one line and checks it comes back.
func roundTrip(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte("hello\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "hello\n" {
		return fmt.Errorf("echo answered %q", line)
	}
	return nil
}

// TestTakeoverAndFallback: B publishes an app, A subscribes; with both
// sidecars up the traffic crosses both; each sidecar killed with SIGKILL
// in turn, the traffic goes around it, and comes back when it returns.
func TestTakeoverAndFallback(t *testing.T) { every(t, true, takeoverAndFallback) }

func takeoverAndFallback(t *testing.T, be *backend) {
	a, b := be.hosts(t)
	reg := be.reader(t)
	appPort := echoServer(t, b.IP)
	appAddr := net.JoinHostPort(b.IP, strconv.Itoa(appPort))
	b.publish("echo", appPort, "tcp")
	a.startSidecar()
	b.startSidecar()
	a.waitSidecar("up")
	b.waitSidecar("up")

	// Takeover: the registry holds B's ingress with the real port in the
	// metadata; A answers its own egress, the real endpoint as fallback,
	// retries 0.
	eventually(t, 20*time.Second, "registry holds B's ingress for echo", func() bool {
		eps := registered(t, reg, "echo")
		return len(eps) == 1 && eps[0].Addr != appAddr && eps[0].Metadata["detour.port"] == strconv.Itoa(appPort) && eps[0].Metadata["detour.mesh"] == "true"
	})
	ans := a.waitAnswer("echo", "mesh answer", func(x testbed.Answer) bool { return x.Mesh && len(x.Endpoints) == 1 })
	egress := ans.Endpoints[0].Addr
	if host, _, _ := net.SplitHostPort(egress); host != a.IP {
		t.Errorf("egress %s is not on A's own address", egress)
	}
	if len(ans.Fallback) != 1 || ans.Fallback[0].Addr != appAddr {
		t.Errorf("fallback = %v, want %s", ans.Fallback, appAddr)
	}
	if ans.Governance.Retries == nil || *ans.Governance.Retries != 0 {
		t.Errorf("governance = %+v, want retries 0", ans.Governance)
	}
	eventually(t, 20*time.Second, "traffic through A's egress reaches the app", func() bool { return roundTrip(egress) == nil })

	// The traffic crossed both sidecars: their own counters say so.
	ingress := registered(t, reg, "echo")[0].Addr
	const n = 20
	statsA, statsB := sidecarStats(t, a), sidecarStats(t, b)
	for range n {
		if err := roundTrip(egress); err != nil {
			t.Fatalf("through the mesh: %v", err)
		}
	}
	eventually(t, 10*time.Second, "both sidecars counted the connections", func() bool {
		a2, b2 := sidecarStats(t, a), sidecarStats(t, b)
		return a2.Listener("egress", "echo").Conns-statsA.Listener("egress", "echo").Conns >= n &&
			a2.Endpoint("echo", ingress).Conns-statsA.Endpoint("echo", ingress).Conns >= n &&
			b2.Listener("ingress", "echo").Conns-statsB.Listener("ingress", "echo").Conns >= n
	})

	// A's sidecar killed: A answers the real endpoint, at once.
	killed := time.Now()
	a.killSidecar()
	a.waitAnswer("echo", "real endpoint after A's sidecar died", func(x testbed.Answer) bool {
		return !x.Mesh && slices.Equal(x.Addrs(), []string{appAddr})
	})
	t.Logf("figure: client-side sidecar SIGKILL -> real endpoint answered in %v (polled over HTTP)", time.Since(killed).Round(time.Millisecond))
	if err := roundTrip(appAddr); err != nil {
		t.Errorf("real endpoint: %v", err)
	}
	a.startSidecar()
	a.waitAnswer("echo", "mesh again", func(x testbed.Answer) bool { return x.Mesh })
	eventually(t, 20*time.Second, "traffic through the new sidecar", func() bool { return roundTrip(egress) == nil })

	// B's sidecar killed: B registers the app's own port; A's sidecar
	// carries on to it.
	killed = time.Now()
	b.killSidecar()
	eventually(t, 20*time.Second, "registry holds the app's own port", func() bool {
		eps := registered(t, reg, "echo")
		return len(eps) == 1 && eps[0].Addr == appAddr && eps[0].Metadata["detour.mesh"] == "false"
	})
	t.Logf("figure: server-side sidecar SIGKILL -> real port registered in %v", time.Since(killed).Round(time.Millisecond))
	eventually(t, 20*time.Second, "A's traffic reaches the app around B's dead sidecar", func() bool { return roundTrip(egress) == nil })
}

func sidecarStats(t *testing.T, h *host) testbed.SidecarStats {
	t.Helper()
	st, err := h.SidecarStats(h.ctx)
	if err != nil {
		t.Fatalf("sidecar stats on %s: %v", h.IP, err)
	}
	return st
}
