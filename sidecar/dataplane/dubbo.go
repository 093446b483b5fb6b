package dataplane

import (
	"time"

	"go.uber.org/zap"

	"github.com/detourmesh/detour/sidecar/cluster"
	"github.com/detourmesh/detour/sidecar/dubbo"
	"github.com/detourmesh/detour/sidecar/limit"
	"github.com/detourmesh/detour/sidecar/listener"
	"github.com/detourmesh/detour/sidecar/stats"
)

// dubboEgress balances each Dubbo call over the cluster.
func (d *Dataplane) dubboEgress(s egressSettings, cl *cluster.Cluster, ls *stats.Counters) listener.Handler {
	return &dubbo.Proxy{
		Cluster: cl, Listener: ls, Dial: dubbo.DialFunc(d.dial),
		Log:            d.log.Named("sidecar.dubbo").With(zap.String("service", s.service)),
		ConnectTimeout: s.connectTimeout, RequestTimeout: s.requestTimeout,
		Idle: d.cfg.IdleTimeout, ClientIdle: d.cfg.IdleTimeout,
		Retries: s.retries, MaxRequests: int64(d.cfg.MaxConnections),
		Observe: d.obs.Listener(s.service, "egress"),
	}
}

// ingressCallBound ends, on an ingress, calls the app never answers: the
// caller's sidecar enforces the service's timeout (which the ingress
// does not know, and may be longer than any default of ours); this only
// keeps a hung app from holding calls in memory for ever.
const ingressCallBound = 10 * time.Minute

// dubboIngress sends each call to the one target.
func (d *Dataplane) dubboIngress(service, target string, ls *stats.Counters, lim *limit.Limiter) listener.Handler {
	return &dubbo.Proxy{
		Target: target, Listener: ls, Dial: dubbo.DialFunc(d.dial),
		Log:            d.log.Named("sidecar.dubbo").With(zap.String("service", service)),
		ConnectTimeout: d.cfg.DefaultConnectTimeout, RequestTimeout: ingressCallBound,
		Idle: d.cfg.IdleTimeout, ClientIdle: d.cfg.IdleTimeout,
		MaxRequests: int64(d.cfg.MaxConnections), Limit: lim,
		Observe: d.obs.Listener(service, "ingress"),
	}
}
