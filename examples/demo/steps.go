package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/detourmesh/detour/internal/testbed"
	"github.com/detourmesh/detour/registry-adapters/etcd"
	"github.com/detourmesh/detour/registry-adapters/registry"
)

const (
	service    = "greeter"
	serverPort = "50051"
	rate       = 50 // calls per second from the client
)

func (d *demo) startHosts() error {
	d.start = time.Now()
	var err error
	if d.a, err = testbed.NewHost(d.bin, filepath.Join(d.dir, "A"), testbed.Spec{IP: d.hosts.Host(2), Registry: "embedded"}); err != nil {
		return err
	}
	if d.b, err = testbed.NewHost(d.bin, filepath.Join(d.dir, "B"), testbed.Spec{IP: d.hosts.Host(3), Registry: d.a.RegistryURL()}); err != nil {
		return err
	}
	step("starting host A: naming agent (embedded registry at %s) and sidecar", d.a.RegistryURL())
	if err := d.a.StartAgent(d.ctx); err != nil {
		return err
	}
	step("starting host B: naming agent (registry %s) and sidecar", d.a.RegistryURL())
	if err := d.b.StartAgent(d.ctx); err != nil {
		return err
	}
	for _, h := range []*testbed.Host{d.a, d.b} {
		if err := h.StartSidecar(); err != nil {
			return err
		}
	}
	for _, h := range []*testbed.Host{d.a, d.b} {
		if err := h.WaitSidecar(d.ctx, "up"); err != nil {
			return err
		}
	}
	say("  both sidecars connected to their agents and ready")
	return nil
}

func (d *demo) takeover() error {
	step("greeter server on B (%s) publishes %q through B's agent", d.serverAddr, service)
	var err error
	d.server, err = testbed.Start("greeter-server", filepath.Join(d.bin, "greeter-server"), filepath.Join(d.dir, "greeter-server.log"),
		"--listen", d.serverAddr, "--agent", d.b.AgentGRPC())
	if err != nil {
		return err
	}
	eps, err := d.waitRegistry("B's ingress registered", func(eps []registry.Endpoint) bool {
		return len(eps) == 1 && eps[0].Addr != d.serverAddr && eps[0].Metadata["detour.mesh"] == "true"
	})
	if err != nil {
		return err
	}
	say("  the registry holds %s = %s: B's sidecar ingress, not the app (app port %s kept in metadata detour.port)",
		service, eps[0].Addr, eps[0].Metadata["detour.port"])

	step("greeter client on A, %d calls/s through the SDK shim", rate)
	d.client, err = testbed.Start("greeter-client", filepath.Join(d.bin, "greeter-client"), filepath.Join(d.dir, "greeter-client.log"),
		"--agent", d.a.AgentGRPC(), "--rate", fmt.Sprint(rate), "--duration", "5m")
	if err != nil {
		return err
	}
	ans, err := d.a.WaitAnswer(d.ctx, service, "mesh answer", func(a testbed.Answer) bool { return a.Mesh && len(a.Endpoints) == 1 })
	if err != nil {
		return err
	}
	say("  A's agent answers %s = %s (A's sidecar egress), fallback %s, governance: retries %d, timeout %d ms",
		service, strings.Join(ans.Addrs(), ","), addrs(ans.Fallback), deref(ans.Governance.Retries), deref(ans.Governance.TimeoutMS))
	say("  (the app's own retries are off while the mesh carries the call: the sidecar retries, once)")
	// The first calls may have gone straight to the app, made before A's
	// sidecar held the egress port: watch from a moment when calls go
	// through it, to another about three seconds of calls later (see
	// figures.go for why the two moments are looked for).
	if err := testbed.Poll(d.ctx, 20*time.Second, "calls through A's sidecar", func() bool {
		c, err := d.meshCounts(eps[0].Addr)
		return err == nil && c.egress > 0
	}); err != nil {
		return err
	}
	from, err := d.settled(eps[0].Addr)
	if err != nil {
		return err
	}
	watched := time.Now()
	if _, err := d.waitCalls(from.client.ok+3*rate, nil); err != nil {
		return err
	}
	to, err := d.settled(eps[0].Addr)
	if err != nil {
		return err
	}
	c, ok, failed := to.client, to.client.ok-from.client.ok, to.client.failed-from.client.failed
	say("  in %v the client made %d calls: %d ok, %d failed, answered by %s, dialled via %s",
		time.Since(watched).Round(100*time.Millisecond), ok+failed, ok, failed, c.from, c.via)
	say("  A's sidecar counted %d requests on its egress %s, %d sent to B's ingress %s",
		to.mesh.egress-from.mesh.egress, c.via, to.mesh.toB-from.mesh.toB, eps[0].Addr)
	say("  B's sidecar counted %d requests on its ingress, forwarded to the app %s", to.mesh.ingress-from.mesh.ingress, d.serverAddr)
	say("  path: app -> A's sidecar %s -> B's sidecar %s -> app %s", c.via, eps[0].Addr, d.serverAddr)
	return nil
}

func (d *demo) serverSidecarKilled() error {
	step("kill -9 B's sidecar (server side)")
	before, err := d.reportNow()
	if err != nil {
		return err
	}
	killed := time.Now()
	if err := d.b.Sidecar.Kill(); err != nil {
		return err
	}
	if _, err := d.waitRegistry("the app's own port registered", func(eps []registry.Endpoint) bool {
		return len(eps) == 1 && eps[0].Addr == d.serverAddr
	}); err != nil {
		return err
	}
	say("  B's agent re-registered %s = %s (the app's own port) %v after the kill", service, d.serverAddr, ms(time.Since(killed)))
	after, err := d.waitCalls(before.ok+2*rate, nil)
	if err != nil {
		return err
	}
	say("  calls go on: +%d ok, +%d failed (a call already on the dead hop may fail: it may have reached the app, so nobody resends it)", after.OK-before.ok, after.Failed-before.failed)

	step("B's sidecar back")
	back := time.Now()
	if err := d.b.StartSidecar(); err != nil {
		return err
	}
	eps, err := d.waitRegistry("B's ingress registered again", func(eps []registry.Endpoint) bool {
		return len(eps) == 1 && eps[0].Addr != d.serverAddr
	})
	if err != nil {
		return err
	}
	say("  B's agent registered %s = %s (ingress) again %v after the restart, once the sidecar was ready for a few probes", service, eps[0].Addr, ms(time.Since(back)))
	return nil
}

func (d *demo) clientSidecarKilled() error {
	step("kill -9 A's sidecar (client side)")
	before, err := d.reportNow()
	if err != nil {
		return err
	}
	killed := time.Now()
	if err := d.a.Sidecar.Kill(); err != nil {
		return err
	}
	if _, err := d.waitAnswerFine(d.a, "real endpoints", func(a testbed.Answer) bool {
		return !a.Mesh && slices.Equal(a.Addrs(), []string{d.serverAddr})
	}); err != nil {
		return err
	}
	say("  A's agent answers the real endpoint %s %v after the kill; the shim switched on its first refused dial", d.serverAddr, ms(time.Since(killed)))
	after, err := d.waitCalls(before.ok+2*rate, func(r testbed.Report) bool { return !r.Mesh })
	if err != nil {
		return err
	}
	say("  calls go on, straight to %s: +%d ok, +%d failed", after.Via, after.OK-before.ok, after.Failed-before.failed)

	step("A's sidecar back")
	back := time.Now()
	if err := d.a.StartSidecar(); err != nil {
		return err
	}
	ans, err := d.waitAnswerFine(d.a, "mesh again", func(a testbed.Answer) bool { return a.Mesh })
	if err != nil {
		return err
	}
	say("  A's agent answers %s again %v after the restart", strings.Join(ans.Addrs(), ","), ms(time.Since(back)))
	_, err = d.waitCalls(0, func(r testbed.Report) bool { return r.Mesh })
	return err
}

func (d *demo) meshFlag() error {
	step("mesh off for %s on A, live: PUT /v1/services/%s/mesh {\"enabled\": false}", service, service)
	if err := d.a.API().SetMesh(d.ctx, service, false); err != nil {
		return err
	}
	ans, err := d.a.WaitAnswer(d.ctx, service, "mesh off", func(a testbed.Answer) bool { return !a.Mesh })
	if err != nil {
		return err
	}
	r, err := d.waitCalls(0, func(r testbed.Report) bool { return !r.Mesh })
	if err != nil {
		return err
	}
	say("  A answers %s; the client dials it directly (via %s), with its own retry policy again", strings.Join(ans.Addrs(), ","), r.Via)

	step("mesh on again")
	if err := d.a.API().SetMesh(d.ctx, service, true); err != nil {
		return err
	}
	ans, err = d.a.WaitAnswer(d.ctx, service, "mesh on", func(a testbed.Answer) bool { return a.Mesh })
	if err != nil {
		return err
	}
	r, err = d.waitCalls(0, func(r testbed.Report) bool { return r.Mesh })
	if err != nil {
		return err
	}
	say("  A answers %s; calls through the sidecars again (via %s)", strings.Join(ans.Addrs(), ","), r.Via)
	return nil
}

func (d *demo) finish() error {
	step("stopping everything")
	d.client.Signal(15) // SIGTERM: the client prints its total and exits
	select {
	case <-d.client.Done():
	case <-time.After(10 * time.Second):
		return fmt.Errorf("the greeter client still runs 10s after SIGTERM")
	}
	r, err := testbed.LastReport(d.client.Log)
	if err != nil {
		return err
	}
	if !r.Final {
		return fmt.Errorf("the greeter client exited without its total (%s)", d.client.Log)
	}
	say("  greeter client in all: %d calls, %d ok, %d failed; the mesh ran %v (the build not counted)",
		r.OK+r.Failed, r.OK, r.Failed, time.Since(d.start).Round(time.Second))
	say("\ndone: takeover, both sidecars killed and back, the mesh off and on, without restarting an app.")
	return nil
}

// report is the client's last report.
func (d *demo) report() (testbed.Report, error) {
	return testbed.LastReport(d.client.Log)
}

// waitCalls waits until the client has made ok calls and cond holds.
func (d *demo) waitCalls(ok int, cond func(testbed.Report) bool) (testbed.Report, error) {
	var r testbed.Report
	err := testbed.Poll(d.ctx, 20*time.Second, "greeter client progress", func() bool {
		var err error
		r, err = d.report()
		return err == nil && r.OK >= ok && (cond == nil || cond(r))
	})
	return r, err
}

// waitRegistry polls the registry itself, with a client of its own, until
// cond holds for the greeter's endpoints. The client is made once, so the
// times measured after a kill do not include connecting it.
func (d *demo) waitRegistry(what string, cond func([]registry.Endpoint) bool) ([]registry.Endpoint, error) {
	if d.reg == nil {
		cfg := etcd.Default()
		cfg.Endpoints = []string{strings.TrimPrefix(d.a.RegistryURL(), "etcd://")}
		r, err := etcd.New(cfg)
		if err != nil {
			return nil, err
		}
		d.reg = r
	}
	var eps []registry.Endpoint
	var err error
	perr := d.pollFine(what, func() bool {
		ctx, cancel := context.WithTimeout(d.ctx, 2*time.Second)
		defer cancel()
		eps, err = d.reg.List(ctx, service)
		return err == nil && cond(eps)
	})
	if perr != nil {
		return eps, perr
	}
	return eps, nil
}

func addrs(as []testbed.Addr) string {
	var out []string
	for _, a := range as {
		out = append(out, a.Addr)
	}
	return strings.Join(out, ",")
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }
