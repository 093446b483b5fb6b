package dataplane

import (
	"fmt"
	"net"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/detourmesh/detour/api/sidecarpb"
	"github.com/detourmesh/detour/sidecar/cluster"
	"github.com/detourmesh/detour/sidecar/limit"
	"github.com/detourmesh/detour/sidecar/listener"
	"github.com/detourmesh/detour/sidecar/outlier"
	"github.com/detourmesh/detour/sidecar/proxy"
	"github.com/detourmesh/detour/sidecar/stats"
)

func orDefault(d *durationpb.Duration, def time.Duration) time.Duration {
	if d == nil || d.AsDuration() <= 0 {
		return def
	}
	return d.AsDuration()
}

func outlierConfig(o *sidecarpb.Outlier, interval time.Duration) outlier.Config {
	def := outlier.Default()
	c := outlier.Config{
		ConsecutiveFailures: int(o.GetConsecutiveFailures()),
		BaseEjectionTime:    orDefault(o.GetBaseEjectionTime(), def.BaseEjectionTime),
		MaxEjectionTime:     orDefault(o.GetMaxEjectionTime(), def.MaxEjectionTime),
		MaxEjectionPercent:  int(o.GetMaxEjectionPercent()),
		Interval:            interval,
	}
	if o == nil {
		c.ConsecutiveFailures, c.MaxEjectionPercent = def.ConsecutiveFailures, def.MaxEjectionPercent
	}
	c.MaxEjectionTime = max(c.MaxEjectionTime, c.BaseEjectionTime)
	return c
}

func isL7(p sidecarpb.Protocol) bool {
	return p == sidecarpb.Protocol_PROTOCOL_HTTP || p == sidecarpb.Protocol_PROTOCOL_GRPC
}

// egressSettings is what an egress handler is built from; its string
// form is the listener Key.
type egressSettings struct {
	service        string
	protocol       sidecarpb.Protocol
	connectTimeout time.Duration
	requestTimeout time.Duration
	firstByte      time.Duration
	retries        int
}

func (d *Dataplane) egressSettings(l *sidecarpb.EgressListener, c *sidecarpb.Cluster) egressSettings {
	req := orDefault(c.GetRequestTimeout(), d.cfg.DefaultRequestTimeout)
	return egressSettings{
		service:        l.GetService(),
		protocol:       l.GetProtocol(),
		connectTimeout: orDefault(c.GetConnectTimeout(), d.cfg.DefaultConnectTimeout),
		requestTimeout: req,
		firstByte:      orDefault(c.GetOutlier().GetFirstByteTimeout(), req),
		retries:        int(c.GetRetries()),
	}
}

func (d *Dataplane) egressSpec(l *sidecarpb.EgressListener, c *sidecarpb.Cluster, cl *cluster.Cluster, ls *stats.Counters) listener.Spec {
	s := d.egressSettings(l, c)
	return listener.Spec{
		Listen: l.GetListen(), Counters: ls, MaxConns: int64(d.cfg.ListenerMaxConnections),
		Key: fmt.Sprintf("egress %+v %p", s, cl),
		New: func(addr net.Addr) listener.Handler {
			if isL7(s.protocol) {
				return d.l7Egress(addr, s, cl, ls)
			}
			if s.protocol == sidecarpb.Protocol_PROTOCOL_DUBBO {
				return d.dubboEgress(s, cl, ls)
			}
			return d.observeL4(&proxy.Egress{
				Cluster: cl, Listener: ls, Dial: d.dial, Pool: d.pool,
				Log:            d.log.Named("sidecar.proxy").With(zap.String("service", s.service)),
				ConnectTimeout: s.connectTimeout, Retries: s.retries,
				MaxConnections: int64(d.cfg.MaxConnections),
				Pipe:           proxy.PipeConfig{Idle: d.cfg.IdleTimeout, FirstByte: s.firstByte},
			}, s.service, "egress")
		},
	}
}

func (d *Dataplane) ingressSpec(l *sidecarpb.IngressListener, ls *stats.Counters, lim *limit.Limiter) listener.Spec {
	target, proto := l.GetTarget(), l.GetProtocol()
	return listener.Spec{
		Listen: l.GetListen(), Counters: ls, MaxConns: int64(d.cfg.ListenerMaxConnections),
		Key: fmt.Sprintf("ingress %s %s %s", l.GetService(), target, proto),
		New: func(addr net.Addr) listener.Handler {
			if isL7(proto) {
				return d.l7Ingress(addr, l.GetService(), target, proto, ls, lim)
			}
			if proto == sidecarpb.Protocol_PROTOCOL_DUBBO {
				return d.dubboIngress(l.GetService(), target, ls, lim)
			}
			return d.observeL4(&proxy.Ingress{
				Target: target, Listener: ls, Dial: d.dial, Pool: d.pool,
				Log:            d.log.Named("sidecar.proxy").With(zap.String("service", l.GetService())),
				ConnectTimeout: d.cfg.DefaultConnectTimeout,
				Pipe:           proxy.PipeConfig{Idle: d.cfg.IdleTimeout},
				Limit:          lim,
			}, l.GetService(), "ingress")
		},
	}
}
