package agent

import (
	"maps"
	"net"
	"slices"
	"strconv"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/detourmesh/detour/naming-agent/api/sidecarpb"
	"github.com/detourmesh/detour/registry-adapters/registry"
)

// updateSnapshotLocked rebuilds the desired data plane from the whole
// state and, when it differs from the current snapshot, makes it the next
// version and wakes the sidecar stream. The snapshot does not depend on
// whether the sidecar is up: a sidecar coming back needs the full state
// to become ready.
func (a *Agent) updateSnapshotLocked() {
	next := a.buildSnapshotLocked()
	next.Version = a.snap.Version
	if proto.Equal(next, a.snap) {
		return
	}
	next.Version = a.snap.Version + 1
	a.snap = next
	a.wakeSnapLocked()
}

func (a *Agent) buildSnapshotLocked() *sidecarpb.Snapshot {
	cfg := a.cfg
	hc := &sidecarpb.HealthCheck{
		Interval:           durationpb.New(cfg.HealthCheck.Interval),
		Timeout:            durationpb.New(cfg.HealthCheck.Timeout),
		UnhealthyThreshold: uint32(cfg.HealthCheck.UnhealthyThreshold),
		HealthyThreshold:   uint32(cfg.HealthCheck.HealthyThreshold),
	}
	snap := &sidecarpb.Snapshot{
		HostIp:       cfg.HostIP,
		HealthListen: net.JoinHostPort(cfg.HostIP, strconv.Itoa(cfg.Ports.Health)),
	}
	for _, svc := range slices.Sorted(maps.Keys(a.subs)) {
		s := a.subs[svc]
		if s.egress == 0 || !a.meshEnabledLocked(svc) {
			continue
		}
		set := cfg.ServiceSettings(svc)
		proto := a.subscribedProtocolLocked(s)
		snap.Egress = append(snap.Egress, &sidecarpb.EgressListener{Service: svc, Listen: a.egressListen(s), Protocol: proto})
		snap.Clusters = append(snap.Clusters, &sidecarpb.Cluster{
			Service:        svc,
			Protocol:       proto,
			Endpoints:      clusterEndpoints(s.eps),
			ConnectTimeout: durationpb.New(cfg.HealthCheck.Timeout),
			RequestTimeout: durationpb.New(set.Timeout),
			Retries:        uint32(*set.Retries),
			HealthCheck:    hc,
			Outlier: &sidecarpb.Outlier{
				ConsecutiveFailures: uint32(cfg.Outlier.ConsecutiveFailures),
				BaseEjectionTime:    durationpb.New(cfg.Outlier.BaseEjectionTime),
				MaxEjectionTime:     durationpb.New(cfg.Outlier.MaxEjectionTime),
				MaxEjectionPercent:  uint32(cfg.Outlier.MaxEjectionPercent),
				PanicThreshold:      uint32(cfg.Outlier.PanicThreshold),
				FirstByteTimeout:    durationpb.New(cfg.Outlier.FirstByteTimeout),
			},
		})
	}
	for _, svc := range slices.Sorted(maps.Keys(a.pubs)) {
		p := a.pubs[svc]
		target := a.appTarget(p.req.Port)
		snap.AppChecks = append(snap.AppChecks, &sidecarpb.AppCheck{
			Service: svc, Target: target, Kind: p.req.Health.Type, Path: p.req.Health.Path, Check: hc,
		})
		if p.ingress == 0 || !a.meshEnabledLocked(svc) {
			continue
		}
		snap.Ingress = append(snap.Ingress, &sidecarpb.IngressListener{
			Service: svc, Listen: a.ingressListen(p), Target: target, Protocol: protocolOf(p.req.Protocol),
		})
	}
	return snap
}

// subscribedProtocolLocked: the config's protocol for the service if it
// names one, else what the service's instances declare (all alike), else
// TCP.
func (a *Agent) subscribedProtocolLocked(s *subscription) sidecarpb.Protocol {
	if o, ok := a.cfg.Services[s.service]; ok && o.Protocol != "" {
		return protocolOf(o.Protocol)
	}
	declared := ""
	for _, ep := range s.eps {
		p := ep.Metadata[MetaProtocol]
		if p == "" || (declared != "" && p != declared) {
			return protocolOf(a.cfg.ServiceSettings(s.service).Protocol)
		}
		declared = p
	}
	if declared == "" {
		declared = a.cfg.ServiceSettings(s.service).Protocol
	}
	return protocolOf(declared)
}

func protocolOf(p string) sidecarpb.Protocol {
	switch p {
	case "http":
		return sidecarpb.Protocol_PROTOCOL_HTTP
	case "grpc":
		return sidecarpb.Protocol_PROTOCOL_GRPC
	}
	return sidecarpb.Protocol_PROTOCOL_TCP
}

// clusterEndpoints turns registry instances into the sidecar's endpoints:
// mesh instances are dialled at their ingress with their app address for
// bypass, others directly.
func clusterEndpoints(eps []registry.Endpoint) []*sidecarpb.Endpoint {
	out := make([]*sidecarpb.Endpoint, 0, len(eps))
	for _, ep := range eps {
		weight := ep.Weight
		if weight == 0 {
			weight = registry.DefaultWeight
		}
		e := &sidecarpb.Endpoint{Addr: ep.Addr, AppAddr: realAddr(ep), Weight: weight}
		if ep.Metadata[MetaMesh] == "true" && e.AppAddr != ep.Addr {
			if hp, err := registry.ParsePort(ep.Metadata[MetaHealthPort]); err == nil {
				e.Mesh, e.HealthPort = true, uint32(hp)
			}
		}
		if !e.Mesh {
			e.AppAddr = ep.Addr
		}
		out = append(out, e)
	}
	return out
}
