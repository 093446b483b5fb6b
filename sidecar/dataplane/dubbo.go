package dataplane

import (
	"go.uber.org/zap"

	"github.com/detourmesh/detour/sidecar/cluster"
	"github.com/detourmesh/detour/sidecar/dubbo"
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
	}
}

// dubboIngress sends each call to the one target. The caller's sidecar
// enforces the service's timeout; the default request timeout here only
// ends calls the app never answers.
func (d *Dataplane) dubboIngress(service, target string, ls *stats.Counters) listener.Handler {
	return &dubbo.Proxy{
		Target: target, Listener: ls, Dial: dubbo.DialFunc(d.dial),
		Log:            d.log.Named("sidecar.dubbo").With(zap.String("service", service)),
		ConnectTimeout: d.cfg.DefaultConnectTimeout, RequestTimeout: d.cfg.DefaultRequestTimeout,
		Idle: d.cfg.IdleTimeout, ClientIdle: d.cfg.IdleTimeout,
		MaxRequests: int64(d.cfg.MaxConnections),
	}
}
