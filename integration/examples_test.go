package integration

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/detourmesh/detour/internal/testbed"
)

// app starts an example binary and fails the test if it cannot.
func app(t *testing.T, name string, args ...string) *testbed.Proc {
	t.Helper()
	return appIn(t, bin, name, args...)
}

// appIn starts binary name of dir (the dubbo-go apps are built apart);
// t.Cleanup kills it and, if the test failed, prints its log's tail.
func appIn(t *testing.T, dir, name string, args ...string) *testbed.Proc {
	t.Helper()
	p, err := testbed.Start(name, filepath.Join(dir, name), filepath.Join(t.TempDir(), name+".log"), args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Kill()
		if t.Failed() {
			out, _ := os.ReadFile(p.Log)
			if len(out) > 4000 {
				out = out[len(out)-4000:]
			}
			t.Logf("--- %s log (tail) ---\n%s", name, out)
		}
	})
	return p
}

func freePort(t *testing.T, ip string) int {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func lastReport(t *testing.T, p *testbed.Proc) testbed.Report {
	t.Helper()
	r, err := testbed.LastReport(p.Log)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// example is one of the example services: its name (the service it
// publishes) and its binaries.
type example struct{ name, server, client string }

var (
	greeter   = example{"greeter", "greeter-server", "greeter-client"}
	helloHTTP = example{"hello-http", "hello-http-server", "hello-http-client"}
	lines     = example{"lines", "lines-server", "lines-client"}
)

// exampleMesh is a running example across two hosts: the server on B,
// the client on A at rate calls/s for duration, calls already flowing
// through both sidecars.
type exampleMesh struct {
	a, b       *host
	client     *testbed.Proc
	serverAddr string
	rate       int
}

func startMesh(t *testing.T, be *backend, ex example, rate int, duration time.Duration) *exampleMesh {
	t.Helper()
	a, b := be.hosts(t)
	a.startSidecar()
	b.startSidecar()
	a.waitSidecar("up")
	b.waitSidecar("up")
	g := &exampleMesh{a: a, b: b, rate: rate, serverAddr: fmt.Sprintf("%s:%d", b.IP, freePort(t, b.IP))}
	app(t, ex.server, "--listen", g.serverAddr, "--agent", b.AgentGRPC())
	a.waitAnswer(ex.name, "mesh answer", func(x testbed.Answer) bool { return x.Mesh && len(x.Endpoints) == 1 })
	g.client = app(t, ex.client, "--agent", a.AgentGRPC(), "--rate", strconv.Itoa(rate), "--duration", duration.String())
	g.waitCalls(t, rate, "calls through the mesh", func(r testbed.Report) bool { return r.Mesh && r.From == g.serverAddr })
	return g
}

// waitCalls waits until the client has made at least ok calls and cond
// holds, and returns its report.
func (g *exampleMesh) waitCalls(t *testing.T, ok int, what string, cond func(testbed.Report) bool) testbed.Report {
	t.Helper()
	var r testbed.Report
	eventually(t, 30*time.Second, what, func() bool {
		r = lastReport(t, g.client)
		return r.OK >= ok && (cond == nil || cond(r))
	})
	return r
}

// total waits for the client to finish and returns its total.
func (g *exampleMesh) total(t *testing.T) testbed.Report {
	t.Helper()
	select {
	case <-g.client.Done():
	case <-time.After(60 * time.Second):
		t.Fatal("greeter-client did not finish")
	}
	r := lastReport(t, g.client)
	if !r.Final {
		t.Fatal("no total line in the client's output")
	}
	return r
}

// failures are the client's "call failed" lines: which calls failed and
// why.
func failures(t *testing.T, p *testbed.Proc) []string {
	t.Helper()
	out, err := os.ReadFile(p.Log)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "call failed") {
			lines = append(lines, line)
		}
	}
	return lines
}

// TestGreeterClientSidecarKilled: A's sidecar (client side) SIGKILLed
// under a steady load, then back. The shim's promise: zero failed calls.
func TestGreeterClientSidecarKilled(t *testing.T) {
	every(t, false, func(t *testing.T, be *backend) { clientSidecarKilled(t, be, greeter) })
}

// TestExamplesClientSidecarKilled: the same for the HTTP example (the
// shim's Transport) and the TCP line example (Client.Dial), on etcd.
func TestExamplesClientSidecarKilled(t *testing.T) {
	for _, ex := range []example{helloHTTP, lines} {
		t.Run(ex.name, func(t *testing.T) { clientSidecarKilled(t, etcdBackend(t), ex) })
	}
}

func clientSidecarKilled(t *testing.T, be *backend, ex example) {
	g := startMesh(t, be, ex, 100, 15*time.Second)
	before := lastReport(t, g.client).OK
	killed := time.Now()
	g.a.killSidecar()
	r := g.waitCalls(t, before+g.rate, "calls go on after A's sidecar died", func(r testbed.Report) bool { return !r.Mesh })
	t.Logf("figure: %s, A's sidecar SIGKILLed at %d calls/s: %d failed so far; client on the real endpoints %v after the kill", ex.client, g.rate, r.Failed, time.Since(killed).Round(100*time.Millisecond))
	g.a.startSidecar()
	g.waitCalls(t, before+2*g.rate, "calls through the mesh again", func(r testbed.Report) bool { return r.Mesh })

	total := g.total(t)
	t.Logf("figure: %s, client-side sidecar SIGKILL and return: ok=%d failed=%d", ex.client, total.OK, total.Failed)
	for _, line := range failures(t, g.client) {
		t.Logf("  %s", line)
	}
	if total.Failed != 0 {
		t.Errorf("%d calls failed across the client-side sidecar's SIGKILL; the shim's promise is zero", total.Failed)
	}
}

// TestGreeterServerSidecarKilled: B's sidecar (server side) SIGKILLed
// under a steady load: B registers the app's own port, A's traffic goes
// on (bypass or the new registration), and returns to the mesh when the
// sidecar does. Calls caught in flight on the dead hop may fail; they are
// counted and reported.
func TestGreeterServerSidecarKilled(t *testing.T) { every(t, false, greeterServerSidecarKilled) }

func greeterServerSidecarKilled(t *testing.T, be *backend) {
	g := startMesh(t, be, greeter, 100, 15*time.Second)
	reg := be.reader(t)
	before := lastReport(t, g.client)
	killed := time.Now()
	g.b.killSidecar()
	eventually(t, 20*time.Second, "B registers the app's own port", func() bool {
		eps := registered(t, reg, "greeter")
		return len(eps) == 1 && eps[0].Addr == g.serverAddr
	})
	t.Logf("figure: B's sidecar SIGKILL -> app's own port registered in %v", time.Since(killed).Round(time.Millisecond))
	r := g.waitCalls(t, before.OK+g.rate, "calls go on around B's dead sidecar", nil)
	t.Logf("figure: B's sidecar SIGKILLed at %d calls/s: %d calls failed", g.rate, r.Failed-before.Failed)

	g.b.startSidecar()
	eventually(t, 20*time.Second, "B registers its ingress again", func() bool {
		eps := registered(t, reg, "greeter")
		return len(eps) == 1 && eps[0].Addr != g.serverAddr && eps[0].Metadata["detour.mesh"] == "true"
	})
	after := g.waitCalls(t, r.OK+g.rate, "calls through both sidecars again", nil)
	total := g.total(t)
	t.Logf("figure: server-side sidecar SIGKILL and return: ok=%d failed=%d", total.OK, total.Failed)
	for _, line := range failures(t, g.client) {
		t.Logf("  %s", line)
	}
	if total.Failed != after.Failed {
		t.Errorf("calls failed after the sidecar was back: %d -> %d", after.Failed, total.Failed)
	}
}

// TestMeshSwitchedOffAndOn: the mesh flag of the service, off then on on
// A, live: the client's path changes both times, no restart, no failure.
func TestMeshSwitchedOffAndOn(t *testing.T) { every(t, false, meshSwitchedOffAndOn) }

func meshSwitchedOffAndOn(t *testing.T, be *backend) {
	g := startMesh(t, be, greeter, 50, 12*time.Second)
	meshVia := lastReport(t, g.client).Via
	if err := g.a.API().SetMesh(g.a.ctx, "greeter", false); err != nil {
		t.Fatal(err)
	}
	r := g.waitCalls(t, 0, "client dials the app directly", func(r testbed.Report) bool { return !r.Mesh && r.Via == g.serverAddr })
	if err := g.a.API().SetMesh(g.a.ctx, "greeter", true); err != nil {
		t.Fatal(err)
	}
	g.waitCalls(t, r.OK+g.rate, "client back through the mesh", func(r testbed.Report) bool { return r.Mesh && r.Via == meshVia })
	total := g.total(t)
	t.Logf("figure: mesh off and on live: ok=%d failed=%d", total.OK, total.Failed)
	if total.Failed != 0 {
		t.Errorf("%d calls failed switching the mesh off and on", total.Failed)
	}
}
