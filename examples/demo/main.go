// Command demo is `make demo`: a two-host detour mesh on one machine,
// showing takeover and fallback with real processes and real traffic.
//
// Host A (127.0.0.2) runs a naming agent with the embedded registry and a
// sidecar; host B (127.0.0.3) runs a naming agent pointed at A's registry
// and a sidecar. The greeter server runs on B, the greeter client on A.
// The demo prints what happens, with figures read from the registry, the
// agents and the client, and leaves nothing running, also on Ctrl-C.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/detourmesh/detour/internal/testbed"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		if ctx.Err() != nil {
			fmt.Println("\ninterrupted: everything stopped")
			os.Exit(130)
		}
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

// demo holds what the demo started, so cleanup can stop all of it.
type demo struct {
	ctx    context.Context
	dir    string
	bin    string
	a, b   *testbed.Host
	server *testbed.Proc
	client *testbed.Proc
	start  time.Time
}

func run(ctx context.Context) (err error) {
	dir, err := os.MkdirTemp("", "detour-demo-")
	if err != nil {
		return err
	}
	d := &demo{ctx: ctx, dir: dir, bin: filepath.Join(dir, "bin"), start: time.Now()}
	defer d.cleanup(&err)

	say("detour demo: two hosts on one machine, each its own loopback address")
	say("  host A = 127.0.0.2 (client side; runs the embedded registry)")
	say("  host B = 127.0.0.3 (server side)")
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
	if *err != nil && d.ctx.Err() == nil {
		fmt.Fprintf(os.Stderr, "logs kept in %s\n", d.dir)
		return
	}
	os.RemoveAll(d.dir)
}

func say(format string, args ...any) { fmt.Printf(format+"\n", args...) }

var stepN int

func step(format string, args ...any) {
	stepN++
	fmt.Printf("\n[%d] "+format+"\n", append([]any{stepN}, args...)...)
}
