package agent

import (
	"maps"
	"net"
	"slices"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/detourmesh/detour/api/sidecarpb"
	"github.com/detourmesh/detour/registry-adapters/registry"
)

// updateSnapshotLocked marks the desired data plane as changed and wakes
// the sidecar stream, which rebuilds it (currentSnapLocked) when it is
// about to send. Rebuilding here, on every change, cost O(services) per
// endpoint change: subscribing 10,000 services took longer than 10
// minutes. The snapshot does not depend on whether the sidecar is up: a
// sidecar coming back needs the full state to become ready.
func (a *Agent) updateSnapshotLocked() {
	a.snapDirty = true
	a.wakeSnapLocked()
}

// restFactor is how much longer than its last run a whole-state job (the
// sidecar's snapshot, the endpoint cache file) rests before it runs
// again: while changes pour in, at most a quarter of the time goes to it,
// and a burst of changes is handled once.
const restFactor = 3

// currentSnapLocked rebuilds the snapshot if something changed since the
// last rebuild and returns it; a rebuild equal to the current snapshot
// keeps its version. The second result, when not zero, is how long to
// wait before the next rebuild is allowed (the snapshot is then stale).
func (a *Agent) currentSnapLocked() (*sidecarpb.Snapshot, time.Duration) {
	if !a.snapDirty {
		return a.snap, 0
	}
	now := a.opts.now()
	if wait := a.snapNext.Sub(now); wait > 0 {
		return a.snap, wait
	}
	next := a.buildSnapshotLocked()
	a.snapBuilds++
	a.snapDirty = false
	next.Version = a.snap.Version
	if !proto.Equal(next, a.snap) {
		next.Version = a.snap.Version + 1
		a.snap = next
	}
	a.snapNext = now.Add(restFactor * a.opts.now().Sub(now))
	return a.snap, 0
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
	// Filter, then sort: with most services out of the mesh, sorting all
	// of them on every endpoint change was most of a subscription's cost.
	var carried []string
	for svc, s := range a.subs {
		if s.egress != 0 && a.meshEnabledLocked(svc) {
			carried = append(carried, svc)
		}
	}
	slices.Sort(carried)
	for _, svc := range carried {
		s := a.subs[svc]
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
			Routes:         a.routesProtoLocked(svc),
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
		target := a.appTarget(p)
		snap.AppChecks = append(snap.AppChecks, &sidecarpb.AppCheck{
			Service: svc, Target: target, Kind: p.req.Health.Type, Path: p.req.Health.Path, Check: hc,
		})
		if p.ingress == 0 || !a.meshEnabledLocked(svc) {
			continue
		}
		snap.Ingress = append(snap.Ingress, &sidecarpb.IngressListener{
			Service: svc, Listen: a.ingressListen(p), Target: target, Protocol: protocolOf(p.req.Protocol),
			Limit: a.limitProtoLocked(svc),
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

// protocolOf is the sidecar's handling of a declared protocol. Dubbo's
// Triple is gRPC on the wire (HTTP/2, the same framing), so the sidecar's
// gRPC handling serves it; Dubbo's own protocol (dubbo://) has a proxy
// of its own that balances each call.
func protocolOf(p string) sidecarpb.Protocol {
	switch p {
	case "http":
		return sidecarpb.Protocol_PROTOCOL_HTTP
	case "grpc", "tri":
		return sidecarpb.Protocol_PROTOCOL_GRPC
	case "dubbo":
		return sidecarpb.Protocol_PROTOCOL_DUBBO
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
		e := &sidecarpb.Endpoint{Addr: ep.Addr, AppAddr: realAddr(ep), Weight: weight, Metadata: ep.Metadata}
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
