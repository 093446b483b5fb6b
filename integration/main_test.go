package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/detourmesh/detour/internal/testbed"
)

// bin holds the binaries built once for the whole package.
var bin string

// The suite's hosts, on the loopback block this run holds (testbed.Net):
// A, B and C, and proxyIP for the network between them and the registry.
var ipA, ipB, ipC, proxyIP string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	hosts, err := testbed.ReserveNet()
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	defer hosts.Release()
	ipA, ipB, ipC, proxyIP = hosts.Host(2), hosts.Host(3), hosts.Host(4), hosts.Host(9)
	fmt.Fprintf(os.Stderr, "integration: hosts on %s (%s pins it)\n", hosts, testbed.NetEnv)
	dir, err := os.MkdirTemp("", "detour-integration-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := testbed.Build(ctx, dir,
		"github.com/detourmesh/detour/naming-agent/cmd/naming-agent",
		"github.com/detourmesh/detour/sidecar/cmd/sidecar",
		"github.com/detourmesh/detour/examples/greeter/greeter-server",
		"github.com/detourmesh/detour/examples/greeter/greeter-client",
		"github.com/detourmesh/detour/examples/hello-http/hello-http-server",
		"github.com/detourmesh/detour/examples/hello-http/hello-http-client",
		"github.com/detourmesh/detour/examples/lines/lines-server",
		"github.com/detourmesh/detour/examples/lines/lines-client",
		// nacos-sdk-go's naming client, apart from the -race test process.
		"github.com/detourmesh/detour/integration/internal/nacosapp"); err != nil {
		fmt.Fprintln(os.Stderr, "integration: building the binaries:", err)
		return 1
	}
	bin = dir
	return m.Run()
}

// host is a testbed.Host whose failures fail the test.
type host struct {
	*testbed.Host
	t   *testing.T
	ctx context.Context
}

// newHost starts the agent of a host; t.Cleanup kills everything on it
// and, if the test failed, prints its logs.
func newHost(t *testing.T, spec testbed.Spec) *host {
	t.Helper()
	ip := spec.IP
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	h, err := testbed.NewHost(bin, filepath.Join(t.TempDir(), ip), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.Close()
		if t.Failed() {
			for _, name := range []string{"agent.log", "sidecar.log"} {
				if out, err := os.ReadFile(filepath.Join(h.Dir, name)); err == nil {
					if len(out) > 6000 {
						out = out[len(out)-6000:]
					}
					t.Logf("--- %s %s (tail) ---\n%s", ip, name, out)
				}
			}
		}
	})
	if err := h.StartAgent(ctx); err != nil {
		t.Fatal(err)
	}
	return &host{Host: h, t: t, ctx: ctx}
}

func (h *host) startSidecar() {
	h.t.Helper()
	if err := h.StartSidecar(); err != nil {
		h.t.Fatal(err)
	}
}

func (h *host) killSidecar() {
	h.t.Helper()
	if err := h.Sidecar.Kill(); err != nil {
		h.t.Fatal(err)
	}
}

func (h *host) waitSidecar(state string) {
	h.t.Helper()
	if err := h.WaitSidecar(h.ctx, state); err != nil {
		h.t.Fatal(err)
	}
}

func (h *host) publish(service string, port int, protocol string) {
	h.t.Helper()
	if err := h.API().Publish(h.ctx, service, port, protocol); err != nil {
		h.t.Fatalf("publish on %s: %v", h.IP, err)
	}
}

func (h *host) waitAnswer(service, what string, cond func(testbed.Answer) bool) testbed.Answer {
	h.t.Helper()
	a, err := h.WaitAnswer(h.ctx, service, what, cond)
	if err != nil {
		h.t.Fatalf("%v (last answer %+v)", err, a)
	}
	return a
}

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if err := testbed.Poll(context.Background(), d, what, cond); err != nil {
		t.Fatal(err)
	}
}
