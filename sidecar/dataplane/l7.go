package dataplane

import (
	"context"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/detourmesh/detour/api/sidecarpb"
	"github.com/detourmesh/detour/sidecar/cluster"
	h2proxy "github.com/detourmesh/detour/sidecar/h2"
	"github.com/detourmesh/detour/sidecar/l7"
	"github.com/detourmesh/detour/sidecar/limit"
	"github.com/detourmesh/detour/sidecar/listener"
	"github.com/detourmesh/detour/sidecar/stats"
)

// bodyLimit is how much of a request body is kept for a retry.
const bodyLimit = 64 << 10

func copyPool() *sync.Pool {
	return &sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
}

// l7Handler is an L7 listener whose h2c upstream pool closes with it.
type l7Handler struct {
	*l7.Server
	tr *l7.Transports
}

func (h l7Handler) Drain(ctx context.Context) error {
	err := h.Server.Drain(ctx)
	h.tr.Close()
	return err
}

func (h l7Handler) Close() error {
	err := h.Server.Close()
	h.tr.Close()
	return err
}

var _ listener.Drainer = l7Handler{}

// l7Egress builds the egress handler: HTTP/1.1 on the fast path, h2c and
// gRPC through net/http.
func (d *Dataplane) l7Egress(addr net.Addr, s egressSettings, cl *cluster.Cluster, ls *stats.Counters) listener.Handler {
	retriable := map[int]bool{}
	for _, c := range d.cfg.RetriableStatuses {
		retriable[c] = true
	}
	tr := l7.NewTransports(l7.DialFunc(d.dial), s.connectTimeout, d.upstreamIdle())
	h2 := &l7.Egress{
		Cluster: cl, Listener: ls, Transports: tr,
		Log:            d.log.Named("sidecar.l7").With(zap.String("service", s.service)),
		GRPC:           s.protocol == sidecarpb.Protocol_PROTOCOL_GRPC,
		RequestTimeout: s.requestTimeout, Retries: s.retries, Retriable: retriable,
		BudgetPercent: d.cfg.RetryBudgetPercent, MinRetries: d.cfg.MinRetryConcurrency,
		MaxRequests: int64(d.cfg.MaxConnections), BodyLimit: bodyLimit, Pool: copyPool(),
	}
	h1 := &l7.H1{
		Cluster: cl, Listener: ls,
		RequestTimeout: s.requestTimeout, Retries: s.retries, Retriable: retriable,
		BudgetPercent: d.cfg.RetryBudgetPercent, MinRetries: d.cfg.MinRetryConcurrency,
		MaxRequests: int64(d.cfg.MaxConnections), BodyLimit: bodyLimit,
		HeadTimeout: d.cfg.HeadTimeout, UpstreamIdle: d.upstreamIdle(),
		Observe: d.obs.Listener(s.service, "egress"),
	}
	srv := l7.NewServer(addr, h1, h1.Observe.Wrap(h2), l7.DialFunc(d.dial), s.connectTimeout, d.cfg.IdleTimeout)
	if h2.GRPC && frameH2 {
		srv.UseFrames(&h2proxy.Proxy{
			Cluster: cl, Listener: ls, Dial: h2proxy.DialFunc(d.dial),
			ConnectTimeout: s.connectTimeout, Idle: d.cfg.IdleTimeout,
			RequestTimeout: s.requestTimeout, Retries: s.retries, Retriable: retriable,
			BudgetPercent: d.cfg.RetryBudgetPercent, MinRetries: d.cfg.MinRetryConcurrency,
			MaxRequests: int64(d.cfg.MaxConnections), BodyLimit: bodyLimit, Observe: h1.Observe,
		})
	}
	return l7Handler{Server: srv, tr: tr}
}

// frameH2 serves gRPC listeners' h2c with the frame proxy (sidecar/h2)
// rather than net/http; every feature of the net/http path is there.
var frameH2 = true

// l7Ingress builds the ingress handler, to the one target.
func (d *Dataplane) l7Ingress(addr net.Addr, service, target string, p sidecarpb.Protocol, ls *stats.Counters, lim *limit.Limiter) listener.Handler {
	tr := l7.NewTransports(l7.DialFunc(d.dial), d.cfg.DefaultConnectTimeout, d.upstreamIdle())
	h2 := &l7.Ingress{Target: target, Listener: ls, Transports: tr, GRPC: p == sidecarpb.Protocol_PROTOCOL_GRPC, Pool: copyPool(), Limit: lim}
	h1 := &l7.H1{Target: target, Listener: ls, BodyLimit: bodyLimit, HeadTimeout: d.cfg.HeadTimeout, UpstreamIdle: d.upstreamIdle(), Limit: lim,
		Observe: d.obs.Listener(service, "ingress")}
	srv := l7.NewServer(addr, h1, h1.Observe.Wrap(h2), l7.DialFunc(d.dial), d.cfg.DefaultConnectTimeout, d.cfg.IdleTimeout)
	if h2.GRPC && frameH2 {
		srv.UseFrames(&h2proxy.Proxy{
			Target: target, Listener: ls, Dial: h2proxy.DialFunc(d.dial),
			ConnectTimeout: d.cfg.DefaultConnectTimeout, Idle: d.cfg.IdleTimeout,
			BodyLimit: bodyLimit, Limit: lim, Observe: h1.Observe,
		})
	}
	return l7Handler{Server: srv, tr: tr}
}

// upstreamIdle is how long a pooled L7 upstream connection may stay idle.
func (d *Dataplane) upstreamIdle() time.Duration {
	if d.cfg.UpstreamIdleTimeout > 0 {
		return d.cfg.UpstreamIdleTimeout
	}
	return d.cfg.IdleTimeout
}
