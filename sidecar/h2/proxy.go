// Package h2 is the sidecar's frame-level HTTP/2 (h2c, prior knowledge)
// proxy for gRPC listeners. A client connection has one reader goroutine
// and a coalesced writer; each request's HEADERS are decoded only as far
// as routing needs, its endpoint picked on its own, and its frames
// relayed to a stream on a pooled upstream connection (each with its own
// reader), with flow control on both sides: credit goes back to one side
// as bytes leave on the other, so a stream buffers at most its window.
// Retries, timeouts, outlier verdicts and stats follow l7.Egress.
package h2

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/detourmesh/detour/sidecar/cluster"
	"github.com/detourmesh/detour/sidecar/limit"
	"github.com/detourmesh/detour/sidecar/observe"
	"github.com/detourmesh/detour/sidecar/stats"
)

// DialFunc dials an upstream.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// maxStreams is the SETTINGS_MAX_CONCURRENT_STREAMS granted to clients.
const maxStreams = 1000

// Proxy forwards the h2c connections it is handed: to Cluster (egress)
// or, with no Cluster, to Target (ingress).
type Proxy struct {
	Cluster  *cluster.Cluster
	Target   string
	Listener *stats.Counters
	Dial     DialFunc
	// ConnectTimeout bounds a dial; Idle closes connections (client and
	// upstream) idle that long (0: never).
	ConnectTimeout, Idle time.Duration

	RequestTimeout time.Duration
	Retries        int
	Retriable      map[int]bool
	BudgetPercent  int
	MinRetries     int
	MaxRequests    int64
	BodyLimit      int
	// Limit, when set, caps what is admitted (ingress).
	Limit   *limit.Limiter
	Observe *observe.Listener

	inflight, retrying atomic.Int64
	pool               *pool
	once               sync.Once

	mu       sync.Mutex
	conns    map[*serverConn]struct{}
	draining bool
	wg       sync.WaitGroup
}

func (p *Proxy) init() {
	p.once.Do(func() {
		p.pool = newPool(p)
		p.conns = map[*serverConn]struct{}{}
	})
}

func (p *Proxy) retryAllowed() bool {
	budget := max(int64(p.MinRetries), p.inflight.Load()*int64(p.BudgetPercent)/100)
	return p.retrying.Load() < budget
}

// ServeConn serves an h2c connection whose first bytes (the preface
// included) are read from r; it returns when the connection is done.
func (p *Proxy) ServeConn(nc net.Conn, r interface{ Read([]byte) (int, error) }) {
	p.init()
	sc := newServerConn(p, nc, r)
	p.mu.Lock()
	if p.draining {
		p.mu.Unlock()
		nc.Close()
		return
	}
	p.conns[sc] = struct{}{}
	p.wg.Add(1)
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, sc)
		p.mu.Unlock()
		p.wg.Done()
	}()
	sc.serve()
}

// Drain sends GOAWAY on every connection and waits until their streams
// are done, or ctx ends (then closes them).
func (p *Proxy) Drain(ctx context.Context) error {
	p.init()
	p.mu.Lock()
	p.draining = true
	for sc := range p.conns {
		sc.drain()
	}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		p.Close()
		<-done
	}
	p.pool.close()
	return err
}

// Close closes every connection.
func (p *Proxy) Close() error {
	p.init()
	p.mu.Lock()
	p.draining = true
	for sc := range p.conns {
		sc.nc.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	p.pool.close()
	return nil
}
