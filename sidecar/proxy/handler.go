package proxy

import (
	"context"
	"net"
	"time"

	"go.uber.org/zap"

	"github.com/detourmesh/detour/sidecar/cluster"
	"github.com/detourmesh/detour/sidecar/limit"
	"github.com/detourmesh/detour/sidecar/stats"
)

// DialFunc dials one upstream; tests pass their own.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Egress forwards local apps' connections to one cluster.
type Egress struct {
	Cluster *cluster.Cluster
	// Listener counts this listener's failures and retries; its
	// connections and bytes are counted where they are accepted
	// (listener.Spec.Counters).
	Listener *stats.Counters
	Dial     DialFunc
	Pool     *BufferPool
	Log      *zap.Logger

	ConnectTimeout time.Duration
	// Retries: further connect attempts, each on another endpoint.
	Retries int
	// MaxConnections bounds the cluster's connections; 0: no limit.
	MaxConnections int64
	Pipe           PipeConfig
}

// ServeConn forwards c and closes it.
func (h *Egress) ServeConn(c net.Conn) {
	cl := h.Cluster
	cl.Stats.ConnsTotal.Add(1)
	n := cl.Stats.ConnsActive.Add(1)
	defer cl.Stats.ConnsActive.Add(-1)
	if h.MaxConnections > 0 && n > h.MaxConnections {
		h.fail(cl, stats.Overflow)
		c.Close()
		return
	}
	// L4: the split and the faults, per connection (no matches): an
	// abort closes the connection, a delay holds it before the dial.
	dec := cl.Routes().Decide(nil, "")
	if dec.Abort > 0 {
		c.Close()
		return
	}
	if dec.Delay > 0 {
		t := time.NewTimer(dec.Delay)
		<-t.C
	}
	subset := dec.Subset
	var exclude *cluster.Endpoint
	for attempt := 0; attempt <= h.Retries; attempt++ {
		ep, err := cl.PickSubset(subset, exclude)
		if err != nil {
			if attempt == 0 {
				h.fail(cl, stats.NoHealthy)
			}
			break
		}
		if attempt > 0 {
			cl.Stats.Retries.Add(1)
			h.Listener.Retries.Add(1)
		}
		ep.Begin()
		up, err := h.dial(ep.DialAddr())
		if err != nil {
			h.failure(cl, ep, stats.DialKind(err))
			ep.End()
			exclude = ep
			continue
		}
		ep.Stats.ConnsTotal.Add(1)
		ep.Stats.ConnsActive.Add(1)
		res := Pipe(c, up, h.Pipe, h.Pool, &cl.Stats, &ep.Stats)
		ep.Stats.ConnsActive.Add(-1)
		switch {
		case res.FirstByteTimeout:
			h.failure(cl, ep, stats.FirstByteTimeout)
		case res.GotFirstByte:
			cl.Success(ep)
		}
		ep.End()
		return
	}
	c.Close()
}

// failure counts a failure of ep on the listener and reports it to the
// cluster's outlier detection, logging an ejection it causes.
func (h *Egress) failure(cl *cluster.Cluster, ep *cluster.Endpoint, kind int) {
	h.Listener.Fail(kind)
	if cl.Failure(ep, kind) {
		h.Log.Warn("endpoint ejected", zap.String("service", cl.Name), zap.String("endpoint", ep.Addr), zap.String("reason", stats.KindNames[kind]))
	}
}

func (h *Egress) fail(cl *cluster.Cluster, kind int) {
	h.Listener.Fail(kind)
	cl.Stats.Fail(kind)
}

func (h *Egress) dial(addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), h.ConnectTimeout)
	defer cancel()
	return h.Dial(ctx, "tcp", addr)
}

// Ingress forwards remote connections to the one local target the agent
// registered for this listener. It never dials anything else.
type Ingress struct {
	Target   string
	Listener *stats.Counters // failures; connections and bytes: listener.Spec.Counters
	Dial     DialFunc
	Pool     *BufferPool
	Log      *zap.Logger

	ConnectTimeout time.Duration
	Pipe           PipeConfig
	// Limit, when set, caps the connections admitted: one over it is
	// closed at accept.
	Limit *limit.Limiter
}

// ServeConn forwards c to Target and closes it.
func (h *Ingress) ServeConn(c net.Conn) {
	if ok, _ := h.Limit.Acquire(); !ok {
		c.Close()
		return
	}
	defer h.Limit.Release()
	ctx, cancel := context.WithTimeout(context.Background(), h.ConnectTimeout)
	up, err := h.Dial(ctx, "tcp", h.Target)
	cancel()
	if err != nil {
		h.Listener.Fail(stats.DialKind(err))
		h.Log.Debug("ingress connect failed", zap.String("addr", h.Target), zap.Error(err))
		c.Close()
		return
	}
	Pipe(c, up, h.Pipe, h.Pool)
}
