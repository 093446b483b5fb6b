// Command demo is `make demo`: a two-host detour mesh on one machine,
// showing takeover and fallback with real processes and real traffic.
//
// Host A (127.0.0.2) runs a naming agent with the embedded registry and a
// sidecar; host B (127.0.0.3) runs a naming agent pointed at A's registry
// and a sidecar. The greeter server runs on B, the greeter client on A.
// DETOUR_DEMO_NET=127.A.B moves the hosts to 127.A.B.2 and .3; the demo
// refuses to start, saying why, when another demo holds its addresses or
// one of its ports there is taken.
// The demo prints what happens, with figures read from the registry, the
// agents and the client, and leaves nothing running, also on Ctrl-C.
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/detourmesh/detour/internal/testbed"
	"github.com/detourmesh/detour/registry-adapters/etcd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	interrupted := ctx.Err() != nil // before stop, which ends ctx too
	stop()
	if err != nil {
		if interrupted {
			fmt.Println("\ninterrupted: everything stopped")
			os.Exit(130)
		}
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

// demo holds what the demo started, so cleanup can stop all of it.
type demo struct {
	ctx        context.Context
	dir        string
	bin        string
	hosts      *testbed.Net // A is .2, B is .3
	serverAddr string       // the greeter server on B
	a, b       *testbed.Host
	server     *testbed.Proc
	client     *testbed.Proc
	start      time.Time      // when the mesh started: the closing line does not count the build
	reg        *etcd.Registry // the demo's own registry client, opened once
}

func run(ctx context.Context) (err error) {
	hosts, err := claimHosts()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "detour-demo-")
	if err != nil {
		hosts.Release()
		return err
	}
	d := &demo{ctx: ctx, dir: dir, bin: filepath.Join(dir, "bin"),
		hosts: hosts, serverAddr: net.JoinHostPort(hosts.Host(3), serverPort)}
	defer d.cleanup(&err)

	say("detour demo: two hosts on one machine, each its own loopback address")
	say("  host A = %s (client side; runs the embedded registry)", d.hosts.Host(2))
	say("  host B = %s (server side)", d.hosts.Host(3))
	step("building naming-agent, sidecar, greeter-server, greeter-client")
	if err := testbed.Build(ctx, d.bin,
		"github.com/detourmesh/detour/naming-agent/cmd/naming-agent",
		"github.com/detourmesh/detour/sidecar/cmd/sidecar",
		"github.com/detourmesh/detour/examples/greeter/greeter-server",
		"github.com/detourmesh/detour/examples/greeter/greeter-client"); err != nil {
		return err
	}
	if err := d.startHosts(); err != nil {
		return err
	}
	if err := d.takeover(); err != nil {
		return err
	}
	if err := d.serverSidecarKilled(); err != nil {
		return err
	}
	if err := d.clientSidecarKilled(); err != nil {
		return err
	}
	if err := d.meshFlag(); err != nil {
		return err
	}
	return d.finish()
}

// cleanup stops everything the demo started and removes its files; the
// logs stay when the demo failed, and it says where.
func (d *demo) cleanup(err *error) {
	for _, p := range []*testbed.Proc{d.client, d.server} {
		if p != nil {
			_ = p.Kill()
		}
	}
	for _, h := range []*testbed.Host{d.b, d.a} {
		if h != nil {
			h.Close()
		}
	}
	if d.reg != nil {
		d.reg.Close()
	}
	d.hosts.Release()
	if *err != nil && d.ctx.Err() == nil {
		fmt.Fprintf(os.Stderr, "logs kept in %s\n", d.dir)
		return
	}
	os.RemoveAll(d.dir)
}

// demoNetEnv moves the demo's hosts off 127.0.0.2 and .3.
const demoNetEnv = "DETOUR_DEMO_NET"

// claimHosts takes the demo's loopback block (127.0.0, or
// $DETOUR_DEMO_NET) for this run, or says why it cannot.
func claimHosts() (*testbed.Net, error) {
	prefix := "127.0.0"
	if p := os.Getenv(demoNetEnv); p != "" {
		prefix = p
	}
	n, err := testbed.ClaimNet(prefix)
	if err != nil {
		return nil, fmt.Errorf("the demo's hosts %s.2 and %s.3 are not free: %w\n(another make demo? set %s=127.A.B to run on 127.A.B.2 and .3)", prefix, prefix, err, demoNetEnv)
	}
	return n, nil
}

func say(format string, args ...any) { fmt.Printf(format+"\n", args...) }

var stepN int

func step(format string, args ...any) {
	stepN++
	fmt.Printf("\n[%d] "+format+"\n", append([]any{stepN}, args...)...)
}
