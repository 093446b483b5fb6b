package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"go.uber.org/zap"

	"github.com/detourmesh/detour/api/sidecarpb"
	"github.com/detourmesh/detour/sidecar/cluster"
	"github.com/detourmesh/detour/sidecar/health"
)

func healthConfig(h *sidecarpb.HealthCheck) health.Config {
	def := health.Default()
	c := health.Config{
		Interval:           orDefault(h.GetInterval(), def.Interval),
		Timeout:            orDefault(h.GetTimeout(), def.Timeout),
		UnhealthyThreshold: int(h.GetUnhealthyThreshold()),
		HealthyThreshold:   int(h.GetHealthyThreshold()),
	}
	if c.UnhealthyThreshold < 1 {
		c.UnhealthyThreshold = def.UnhealthyThreshold
	}
	if c.HealthyThreshold < 1 {
		c.HealthyThreshold = def.HealthyThreshold
	}
	return c
}

// targets are the stage-1 checks of the snapshot's apps and the stage-2
// checks of every cluster endpoint.
func (d *Dataplane) targets(snap *sidecarpb.Snapshot, clusters map[string]*cluster.Cluster) []health.Target {
	var ts []health.Target
	for _, a := range snap.GetAppChecks() {
		ts = append(ts, d.appTarget(a))
	}
	for _, c := range snap.GetClusters() {
		cl := clusters[c.GetService()]
		cfg := healthConfig(c.GetHealthCheck())
		for _, e := range cl.Endpoints() {
			ts = append(ts, d.endpointTarget(cl, e, cfg))
		}
	}
	return ts
}

func (d *Dataplane) appTarget(a *sidecarpb.AppCheck) health.Target {
	var chk health.Checker
	switch a.GetKind() {
	case "http":
		chk = health.HTTP{Client: d.check, Path: a.GetPath()}
	case "grpc":
		chk = health.GRPC{}
	default:
		chk = health.TCP{Dialer: &net.Dialer{}}
	}
	svc, target := a.GetService(), a.GetTarget()
	log := d.log.Named("sidecar.health")
	return health.Target{
		Key:    fmt.Sprintf("app %s %s %s %s", svc, target, a.GetKind(), a.GetPath()),
		Config: healthConfig(a.GetCheck()),
		Probe: func(ctx context.Context) health.Result {
			if err := chk.Check(ctx, target); err != nil {
				return health.Result{State: 0, Reason: err.Error()}
			}
			return health.Result{State: 1, Good: true}
		},
		OnChange: func(r health.Result) {
			log.Info("app health", zap.String("service", svc), zap.String("addr", target), zap.Bool("healthy", r.Good), zap.String("reason", r.Reason))
			d.port.SetApp(svc, r.Good, r.Reason)
			d.mu.Lock()
			d.apps[svc] = &sidecarpb.AppHealth{Service: svc, Target: target, Healthy: r.Good, Reason: r.Reason}
			d.mu.Unlock()
			d.notify()
		},
	}
}

// endpointTarget is stage 2: the remote sidecar's /healthz/S for mesh
// endpoints (and, when it does not answer, the app's own port for
// bypass); a TCP connect for the others.
func (d *Dataplane) endpointTarget(cl *cluster.Cluster, e *cluster.Endpoint, cfg health.Config) health.Target {
	tcp := health.TCP{Dialer: &net.Dialer{}}
	side := health.Sidecar{Client: d.check, Service: cl.Name}
	var hp string
	if e.Mesh {
		host, _, _ := net.SplitHostPort(e.Addr)
		hp = net.JoinHostPort(host, strconv.Itoa(int(e.HealthPort)))
	}
	bypass := d.cfg.Bypass
	log := d.log.Named("sidecar.health")
	return health.Target{
		Key:    fmt.Sprintf("endpoint %s %+v bypass=%v", cl.Name, e.Spec, bypass),
		Config: cfg,
		Probe: func(ctx context.Context) health.Result {
			if !e.Mesh {
				if err := tcp.Check(ctx, e.Addr); err != nil {
					return health.Result{State: int(cluster.SidecarDown), Reason: err.Error()}
				}
				return health.Result{State: int(cluster.Healthy), Good: true}
			}
			err := side.Check(ctx, hp)
			switch {
			case err == nil:
				return health.Result{State: int(cluster.Healthy), Good: true}
			case errors.Is(err, health.ErrAppDown):
				return health.Result{State: int(cluster.AppDown), Reason: err.Error()}
			}
			if bypass && e.AppAddr != "" && e.AppAddr != e.Addr {
				if tcp.Check(ctx, e.AppAddr) == nil {
					return health.Result{State: int(cluster.Bypass), Good: true, Reason: err.Error()}
				}
			}
			return health.Result{State: int(cluster.SidecarDown), Reason: err.Error()}
		},
		OnChange: func(r health.Result) {
			if cl.SetHealth(e, cluster.Health(r.State)) {
				log.Info("endpoint health", zap.String("service", cl.Name), zap.String("endpoint", e.Addr),
					zap.Stringer("state", cluster.Health(r.State)), zap.String("reason", r.Reason))
				d.notify()
			}
		},
	}
}
