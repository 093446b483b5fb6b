package rig

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/detourmesh/detour/internal/testbed"
)

// startDetour starts host B (embedded registry, the apps published through
// its agent) and host A (its client side), each with a sidecar limited to
// the proxies' workers and CPUs, and returns the single-hop path (B's ingress) and the two-hop
// mesh path (A's egress → B's ingress).
func (r *Rig) startDetour(ctx context.Context, bin string) (one, two Path, err error) {
	b, err := testbed.NewHost(bin, filepath.Join(r.opt.Dir, "B"), testbed.Spec{IP: r.ip.server, Registry: "embedded", ExtraConfig: agentServices})
	if err != nil {
		return one, two, err
	}
	a, err := testbed.NewHost(bin, filepath.Join(r.opt.Dir, "A"), testbed.Spec{IP: r.ip.client, Registry: b.RegistryURL(), ExtraConfig: agentServices})
	if err != nil {
		return one, two, err
	}
	for _, h := range []*testbed.Host{b, a} {
		// The same resources as nginx's workers: GOMAXPROCS, pinned to
		// the proxies' CPUs.
		h.SidecarEnv = []string{"GOMAXPROCS=" + strconv.Itoa(r.opt.Workers)}
		// Profiles on the admin address (loopback), for `-hold` sessions.
		h.SidecarArgs = []string{"--pprof"}
		r.hosts = append(r.hosts, h)
		if err := h.StartAgent(ctx); err != nil {
			return one, two, err
		}
		if err := h.StartSidecar(); err != nil {
			return one, two, err
		}
		if err := Pin(h.Sidecar.Pid(), r.opt.ProxyCPU); err != nil {
			return one, two, err
		}
	}
	for _, h := range []*testbed.Host{b, a} {
		if err := h.WaitSidecar(ctx, "up"); err != nil {
			return one, two, err
		}
	}
	apps := map[string]struct {
		port     int
		protocol string
	}{
		"web": {HTTPOriginPort, "http"}, "webtcp": {HTTPOriginPort, "tcp"},
		"blob": {BulkOriginPort, "tcp"}, "greeter": {GRPCOriginPort, "grpc"},
	}
	for svc, app := range apps {
		if err := b.API().Publish(ctx, svc, app.port, app.protocol); err != nil {
			return one, two, fmt.Errorf("publish %s on B: %w", svc, err)
		}
	}
	ingress, err := ingressAddrs(ctx, b, len(apps))
	if err != nil {
		return one, two, err
	}
	egress := map[string]string{}
	for svc := range apps {
		ans, err := a.WaitAnswer(ctx, svc, "A's egress for "+svc, func(ans testbed.Answer) bool {
			return ans.Mesh && len(ans.Endpoints) == 1
		})
		if err != nil {
			return one, two, err
		}
		egress[svc] = ans.Endpoints[0].Addr
	}
	one = Path{Name: "detour single hop", HTTP: ingress["web"], L4: ingress["webtcp"], Bulk: ingress["blob"],
		GRPC: ingress["greeter"], ProxyPIDs: func() []int { return []int{b.Sidecar.Pid()} }}
	r.admin = map[string]string{"A": a.AdminAddr(), "B": b.AdminAddr()}
	two = Path{Name: "detour two-hop", HTTP: egress["web"], L4: egress["webtcp"], Bulk: egress["blob"],
		GRPC: egress["greeter"], ProxyPIDs: func() []int { return []int{a.Sidecar.Pid(), b.Sidecar.Pid()} }}
	return one, two, nil
}

// ingressAddrs waits until B's agent reports n publications carried by
// its sidecar, and returns each one's ingress address.
func ingressAddrs(ctx context.Context, b *testbed.Host, n int) (map[string]string, error) {
	out := map[string]string{}
	err := testbed.Poll(ctx, 20*time.Second, "B's publications on its ingress", func() bool {
		st, err := b.API().Status(ctx)
		if err != nil {
			return false
		}
		for _, p := range st.Publications {
			if p.Mesh && p.IngressPort > 0 {
				out[p.Service] = addr(b.IP, p.IngressPort)
			}
		}
		return len(out) == n
	})
	if err != nil {
		return nil, fmt.Errorf("%w (have %v)", err, out)
	}
	return out, nil
}
