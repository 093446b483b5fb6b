package integration

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/detourmesh/detour/internal/testbed"
)

// linesServer is the lines example's protocol ("ADDR: LINE" uppercased,
// ADDR its listen address) without its publishing: the test publishes it
// through the agent's HTTP API, as a non-Go app would. The shim would
// publish again by itself after an agent restart and hide what the agent
// itself keeps.
func linesServer(t *testing.T, ip string) (addr string) {
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	addr = ln.Addr().String()
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
					if _, err := c.Write([]byte(addr + ": " + strings.ToUpper(line))); err != nil {
						return
					}
				}
			}()
		}
	}()
	return addr
}

// publication finds service in B's status.
func publication(st testbed.Status, service string, port int) (registered string, ok bool) {
	for _, p := range st.Publications {
		if p.Service == service && p.Port == port {
			return p.RegisteredAddr, true
		}
	}
	return "", false
}

// TestServerAgentKilled is issue 13: B's naming agent SIGKILLed while a
// client on A sends 100 calls/s through the mesh to B's app, and
// restarted 1 s later. B's app publishes through the agent's HTTP API;
// B's sidecar keeps running, with its last config, and redials the agent.
// The client makes a connection per call (callLoad), so every call needs
// the mesh as it is then. A second registry client watches B's entry
// for the whole run. Wanted: no failed call, and the entry never missing
// and never at another address.
func TestServerAgentKilled(t *testing.T) { every(t, false, serverAgentKilled) }

const restartAfter = time.Second

func serverAgentKilled(t *testing.T, be *backend) {
	const (
		service = "lines"
		rate    = 100
		after   = 10 // seconds of calls after the kill: past the 5 s session TTL
	)
	a, b := be.hosts(t) // for etcd, A runs the registry: B's agent is not it
	reg := be.reader(t)
	a.startSidecar()
	b.startSidecar()
	a.waitSidecar("up")
	b.waitSidecar("up")
	appAddr := linesServer(t, b.IP)
	b.publish(service, portOf(appAddr), "tcp")
	eventually(t, 20*time.Second, "registry holds B's ingress", func() bool {
		eps := registered(t, reg, service)
		return len(eps) == 1 && eps[0].Addr != appAddr && eps[0].Metadata["detour.mesh"] == "true"
	})
	entry := watchEntry(t, reg, service)
	a.waitAnswer(service, "mesh answer", func(x testbed.Answer) bool { return x.Mesh && len(x.Endpoints) == 1 })
	load := startCallLoad(t, a, service, rate)
	eventually(t, 20*time.Second, "calls through the mesh reach B's app", func() bool {
		ok, _, from := load.counts()
		return ok >= rate && from == appAddr
	})
	before, err := b.API().Status(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	wasRegistered, _ := publication(before, service, portOf(appAddr))

	okAtKill, failedAtKill, _ := load.counts()
	killed := time.Now()
	if err := b.Agent.Kill(); err != nil {
		t.Fatal(err)
	}
	<-time.After(restartAfter) // the agent stays dead this long: the scenario, not a wait for an event
	if err := b.StartAgent(b.ctx); err != nil {
		t.Fatal(err)
	}
	answering := time.Since(killed)
	eventually(t, time.Duration(after+20)*time.Second, "calls made after the kill", func() bool {
		ok, failed, _ := load.counts()
		return ok+failed >= okAtKill+failedAtKill+after*rate
	})
	load.stop()
	ok, failed, _ := load.counts()
	seen := entry.summary()
	sidecarRan := true
	select {
	case <-b.Sidecar.Done():
		sidecarRan = false
	default:
	}

	t.Logf("figure: B's agent SIGKILLed at %d calls/s (a connection each), restarted %v later (API answering %v after the kill): ok=%d failed=%d (%d failed before the kill)",
		rate, restartAfter, answering.Round(10*time.Millisecond), ok, failed, failedAtKill)
	t.Logf("figure: B's registry entry missing %d time(s), longest %v (session TTL 5s)%s",
		len(seen.gaps), seen.longest().Round(10*time.Millisecond), seen.describe(killed))
	t.Logf("figure: B's registered address changed: %t (%d change(s); %s before the kill, %q at the end)",
		len(seen.changes) > 0, len(seen.changes), wasRegistered, seen.last)
	t.Logf("figure: B's sidecar kept running through the agent's death: %t", sidecarRan)
	for _, e := range seen.errs {
		t.Logf("  registry watch: %s", e)
	}
	for _, line := range load.failures(killed) {
		t.Logf("  %s", line)
	}

	if failed != 0 {
		t.Errorf("%d calls failed across B's agent restart; want 0", failed)
	}
	if len(seen.gaps) > 0 {
		t.Errorf("B's registry entry disappeared:%s", seen.describe(killed))
	}
	if len(seen.changes) > 0 {
		t.Errorf("B's registered address changed:%s", seen.describe(killed))
	}
	if !sidecarRan {
		t.Errorf("B's sidecar exited when its agent died")
	}
	st, err := b.API().Status(b.ctx)
	if _, ok := publication(st, service, portOf(appAddr)); err != nil || !ok {
		t.Errorf("B's restarted agent does not list the publication: %+v, %v", st.Publications, err)
	}
	if err := b.WaitSidecar(b.ctx, "up"); err != nil {
		t.Errorf("B's sidecar back on the restarted agent: %v", err)
	}
}

// TestAgentRestartRestoresPublication: B publishes through the HTTP API;
// B's agent SIGKILLed and started again lists the publication in its
// status, registered at the same address, without the app doing anything.
func TestAgentRestartRestoresPublication(t *testing.T) {
	every(t, false, agentRestartRestoresPublication)
}

func agentRestartRestoresPublication(t *testing.T, be *backend) {
	be.host(t, ipA, "") // for etcd, the host that runs the registry
	b := be.host(t, ipB, "")
	reg := be.reader(t)
	port := echoServer(t, ipB)
	b.publish("echo", port, "tcp")
	var wasRegistered string
	eventually(t, 20*time.Second, "B lists and registers its publication", func() bool {
		st, err := b.API().Status(b.ctx)
		if err != nil {
			return false
		}
		addr, ok := publication(st, "echo", port)
		eps := registered(t, reg, "echo")
		wasRegistered = addr
		return ok && addr != "" && len(eps) == 1 && eps[0].Addr == addr
	})

	if err := b.Agent.Kill(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	if err := b.StartAgent(b.ctx); err != nil {
		t.Fatal(err)
	}
	var last testbed.Status
	err := testbed.Poll(b.ctx, 10*time.Second, "the restarted agent lists the publication", func() bool {
		st, err := b.API().Status(b.ctx)
		last = st
		addr, ok := publication(st, "echo", port)
		return err == nil && ok && addr == wasRegistered
	})
	if err != nil {
		t.Fatalf("%v; its publications: %+v", err, last.Publications)
	}
	t.Logf("figure: agent SIGKILLed and started again: publication listed %v after the start, registered at %s as before",
		time.Since(restarted).Round(10*time.Millisecond), wasRegistered)
	eventually(t, 20*time.Second, "the registry holds the publication", func() bool {
		eps := registered(t, reg, "echo")
		return len(eps) == 1 && eps[0].Addr == wasRegistered
	})
}
