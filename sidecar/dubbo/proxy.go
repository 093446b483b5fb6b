package dubbo

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/detourmesh/detour/sidecar/cluster"
	"github.com/detourmesh/detour/sidecar/limit"
	"github.com/detourmesh/detour/sidecar/listener"
	"github.com/detourmesh/detour/sidecar/observe"
	"github.com/detourmesh/detour/sidecar/stats"
)

// DialFunc dials one upstream.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Proxy is a Dubbo listener's handler. Each two-way call read from a
// client connection is sent to an upstream on its own: on egress
// (Cluster set) to an endpoint the cluster's balancer picks for it, on
// ingress (Target set) to the one local app. Upstream connections are
// pooled per address (Conns each) and multiplexed: every call gets an
// id of its upstream connection's own and its response is matched back
// to the client connection and id it came with. Heartbeats are answered
// on each hop, never forwarded.
//
// A call not answered within RequestTimeout gets a SERVER_TIMEOUT
// response and a late answer is dropped; time-outs, failed connects,
// connections ending with calls in flight and error statuses
// (failureStatus) count against the endpoint for outlier ejection.
//
// A call is retried (Retries times, each on another endpoint) only when
// it is known that no provider ran it: its connect failed, or the
// answer is SERVICE_NOT_FOUND, which a provider sends without invoking
// anything and an ingress sends when it could not reach its app. Other
// failures are passed on: Dubbo calls are not known to be idempotent.
//
// Set the exported fields before the first ServeConn; Proxy is then
// safe for concurrent use.
type Proxy struct {
	Cluster  *cluster.Cluster
	Target   string
	Listener *stats.Counters // failures, retries and requests; connections and bytes: listener.Spec.Counters
	Dial     DialFunc
	Log      *zap.Logger

	ConnectTimeout time.Duration
	// RequestTimeout bounds each call (0: no bound).
	RequestTimeout time.Duration
	// Idle closes upstream connections unused this long (0: never).
	Idle time.Duration
	// ClientIdle closes client connections that sent nothing this long
	// (0: never); Dubbo clients send a heartbeat a minute.
	ClientIdle time.Duration
	Retries    int
	// MaxRequests bounds the calls in flight (0: no bound); one more is
	// answered SERVER_THREADPOOL_EXHAUSTED.
	MaxRequests int64
	// Limit, when set, is the ingress's inbound limit; a call over it is
	// answered SERVER_THREADPOOL_EXHAUSTED (Dubbo's overload status).
	Limit *limit.Limiter
	// MaxBody bounds a frame's body (0: DefaultMaxBody); a larger one
	// closes its connection.
	MaxBody int
	// Conns is the number of connections per upstream address (0: 1, as
	// a Dubbo consumer shares one per provider).
	Conns int
	// Observe, when set, records each answered two-way call (histogram, access log).
	Observe *observe.Listener

	once     sync.Once
	pool     pool
	inflight atomic.Int64
	wg       sync.WaitGroup // upstream readers and dials
	downWG   sync.WaitGroup // client connections

	mu       sync.Mutex // guards downs and draining (no new connections)
	downs    map[*downstream]struct{}
	draining bool
}

var _ listener.Drainer = (*Proxy)(nil)

func (p *Proxy) init() {
	if p.MaxBody <= 0 {
		p.MaxBody = DefaultMaxBody
	}
	if p.Conns <= 0 {
		p.Conns = 1
	}
	if p.Log == nil {
		p.Log = zap.NewNop()
	}
	if p.Listener == nil {
		p.Listener = &stats.Counters{}
	}
	p.pool = pool{p: p, slots: map[string]*slot{}}
	p.downs = map[*downstream]struct{}{}
}

// downstream is one client connection.
type downstream struct {
	p        *Proxy
	c        net.Conn
	w        *writer
	inflight atomic.Int64 // its two-way calls not answered yet
}

// ServeConn serves c until it closes; it returns at once.
func (p *Proxy) ServeConn(c net.Conn) {
	p.once.Do(p.init)
	d := &downstream{p: p, c: c}
	d.w = newWriter(c, 32<<10, func(error) { c.Close() })
	p.mu.Lock()
	if p.draining {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.downs[d] = struct{}{}
	p.downWG.Add(1)
	p.mu.Unlock()
	go d.serve()
}

// serve reads d's frames until d ends, bad input comes, or a drain.
func (d *downstream) serve() {
	p := d.p
	defer p.downWG.Done()
	rd := NewReader(d.c, 32<<10, p.MaxBody)
	var deadline time.Time
	var b batch
	for {
		if !rd.Ready() {
			b.flush()
		}
		if p.ClientIdle > 0 {
			// Moved only when half used: a deadline set per frame would
			// reset a runtime timer per call.
			if now := time.Now(); now.Add(p.ClientIdle / 2).After(deadline) {
				deadline = now.Add(p.ClientIdle)
				d.c.SetReadDeadline(deadline)
			}
		}
		h, f, err := rd.Next()
		if err != nil {
			if IsBadFrame(err) {
				p.badFrame("client", d.c.RemoteAddr().String(), err)
			}
			break
		}
		switch {
		case h.IsRequest() && h.Event():
			if h.TwoWay() {
				d.w.write(HeartbeatResponse(h), nil)
			}
		case h.IsRequest():
			p.forward(d, h, f, &b)
		case h.Event():
			// a heartbeat's answer
		default:
			p.badFrame("client", d.c.RemoteAddr().String(), fmt.Errorf("dubbo: a response (id %d) from a client", h.ID))
		}
	}
	b.flush()
	d.c.Close()
	p.mu.Lock()
	delete(p.downs, d)
	p.mu.Unlock()
}

// forward sends one request frame f upstream.
func (p *Proxy) forward(d *downstream, h Header, f []byte, b *batch) {
	p.Listener.Requests.Add(1)
	if p.Cluster != nil {
		p.Cluster.Stats.Requests.Add(1)
	}
	cl := &call{d: d, id: h.ID, oneWay: !h.TwoWay()}
	if p.Observe != nil {
		cl.start = time.Now()
	}
	if p.Cluster != nil && p.Retries > 0 && !cl.oneWay {
		// Kept for a retry after SERVICE_NOT_FOUND; f lives in the
		// client's read buffer.
		cl.req = append([]byte(nil), f...)
	}
	if !cl.oneWay {
		if n := p.inflight.Add(1); p.MaxRequests > 0 && n > p.MaxRequests {
			p.inflight.Add(-1)
			p.fail(stats.Overflow)
			d.w.write(ErrorResponse(h, StatusThreadpoolExhausted, "detour sidecar: too many calls in flight"), nil)
			return
		}
		d.inflight.Add(1)
	}
	if p.Limit != nil {
		ok, _ := p.Limit.Acquire()
		if !ok {
			if !cl.oneWay {
				p.answer(cl, StatusThreadpoolExhausted, "detour sidecar: inbound limit")
			}
			return
		}
		if cl.oneWay {
			p.Limit.Release() // counted against the rate only
		} else {
			cl.limited = true
		}
	}
	if p.Cluster != nil {
		// Routes at L4 granularity for now: the split, per call (no
		// attachment matches).
		cl.subset = p.Cluster.Routes().Choose(nil, "")
	}
	p.dispatch(cl, f, nil, b)
}

// dispatch picks an upstream for cl and sends f there: at once when a
// connection to it is ready (buffered in b if not nil), else from a
// goroutine that dials (f is copied: it lives in the client's read
// buffer).
func (p *Proxy) dispatch(cl *call, f []byte, exclude *cluster.Endpoint, b *batch) {
	addr, ep := p.Target, (*cluster.Endpoint)(nil)
	if p.Cluster != nil {
		var err error
		if ep, err = p.Cluster.PickSubset(cl.subset, exclude); err != nil {
			p.fail(stats.NoHealthy)
			p.answer(cl, StatusServiceNotFound, "detour sidecar: "+err.Error())
			return
		}
		addr = ep.DialAddr()
		ep.Begin()
		ep.Stats.Requests.Add(1)
	}
	cl.ep = ep
	if uc := p.pool.ready(addr); uc != nil && uc.send(cl, f, b) == nil {
		return
	}
	if cl.req != nil {
		f = cl.req
	} else {
		f = append([]byte(nil), f...)
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		uc, err := p.pool.get(addr, ep)
		if err == nil {
			err = uc.send(cl, f, nil)
		}
		if err == nil {
			return
		}
		kind := stats.DialKind(err)
		if ep == nil {
			p.Listener.Fail(kind)
			p.Log.Debug("connect failed", zap.String("addr", addr), zap.Error(err))
			// SERVICE_NOT_FOUND: the caller's sidecar may retry elsewhere.
			p.answer(cl, StatusServiceNotFound, fmt.Sprintf("detour sidecar: connect %s: %v (the call was not sent)", addr, err))
			return
		}
		p.failure(ep, kind)
		ep.End()
		if p.retry(cl, f, ep) { // nothing was sent
			return
		}
		cl.ep = nil
		p.answer(cl, StatusServerError, fmt.Sprintf("detour sidecar: connect %s: %v", addr, err))
	}()
}

// retry sends cl again, to an endpoint other than ep, when it may: f
// was not run by any provider. It reports whether it did.
func (p *Proxy) retry(cl *call, f []byte, ep *cluster.Endpoint) bool {
	if cl.attempt >= p.Retries {
		return false
	}
	cl.attempt++
	p.Listener.Retries.Add(1)
	p.Cluster.Stats.Retries.Add(1)
	p.dispatch(cl, f, ep, nil)
	return true
}

// response sends an upstream's response back to its caller.
func (p *Proxy) response(uc *upConn, h Header, f []byte, b *batch) {
	cl := uc.take(h.ID)
	if cl == nil {
		p.Listener.Fail(stats.UnknownResponse)
		if !uc.warned.Swap(true) { // once per connection: late answers come in runs
			p.Log.Info("dubbo: response with an id not in flight dropped (late after a time-out, or never asked)",
				zap.String("addr", uc.addr), zap.Uint64("id", h.ID))
		}
		return
	}
	if cl.timer != nil {
		cl.timer.Stop()
	}
	counted := false
	if ep := cl.ep; ep != nil && h.Status == StatusServiceNotFound && cl.req != nil {
		p.failure(ep, stats.DubboStatus)
		ep.End()
		if p.retry(cl, cl.req, ep) {
			return
		}
		cl.ep, counted = nil, true
	}
	var hdr [HeaderLen]byte
	copy(hdr[:], f)
	SetID(hdr[:], cl.id)
	cl.d.w.buffer(hdr[:], f[HeaderLen:])
	b.add(cl.d.w)
	failed := failureStatus(h.Status)
	if ep := cl.ep; ep != nil {
		ep.Stats.BytesOut.Add(uint64(len(f)))
		p.Cluster.Stats.BytesOut.Add(uint64(len(f)))
		switch {
		case failed:
			p.failure(ep, stats.DubboStatus)
		case h.Status == StatusOK:
			p.Cluster.Success(ep)
		}
		ep.End()
	} else if failed && !counted {
		p.Listener.Fail(stats.DubboStatus)
	}
	p.inflight.Add(-1)
	cl.d.inflight.Add(-1)
	p.release(cl)
	p.observe(cl, h.Status)
}

// release gives back cl's place in the inbound limit.
func (p *Proxy) release(cl *call) {
	if cl.limited {
		cl.limited = false
		p.Limit.Release()
	}
}

// finish ends a call that got no response: counted as a failure of kind
// against its endpoint and answered with status and msg.
func (p *Proxy) finish(cl *call, kind int, status byte, msg string) {
	if cl.timer != nil {
		cl.timer.Stop()
	}
	if cl.ep != nil {
		p.failure(cl.ep, kind)
		cl.ep.End()
	} else {
		p.Listener.Fail(kind)
	}
	p.answer(cl, status, msg)
}

// answer writes an error response to cl's caller and ends cl.
func (p *Proxy) answer(cl *call, status byte, msg string) {
	if cl.oneWay {
		return
	}
	p.observe(cl, status) // before the answer: a caller that has it finds it recorded
	cl.d.w.write(ErrorResponse(Header{ID: cl.id}, status, msg), nil)
	p.inflight.Add(-1)
	cl.d.inflight.Add(-1)
	p.release(cl)
}

// failureStatus says a response status counts against the endpoint:
// the provider (or the sidecar before it) timed out, failed or is
// overloaded. A client's own error (BAD_REQUEST, CLIENT_ERROR) does not.
func failureStatus(s byte) bool {
	switch s {
	case StatusClientTimeout, StatusServerTimeout, StatusChannelInactive, StatusBadResponse,
		StatusServiceNotFound, StatusServiceError, StatusServerError, StatusThreadpoolExhausted:
		return true
	}
	return false
}

// failure counts kind on the listener and against ep, logging an
// ejection it causes.
func (p *Proxy) failure(ep *cluster.Endpoint, kind int) {
	p.Listener.Fail(kind)
	if p.Cluster.Failure(ep, kind) {
		p.Log.Warn("endpoint ejected", zap.String("endpoint", ep.Addr), zap.String("reason", stats.KindNames[kind]))
	}
}

// fail counts a failure that is no endpoint's.
func (p *Proxy) fail(kind int) {
	p.Listener.Fail(kind)
	if p.Cluster != nil {
		p.Cluster.Stats.Fail(kind)
	}
}

func (p *Proxy) badFrame(side, addr string, err error) {
	p.Listener.Fail(stats.BadFrame)
	p.Log.Warn("dubbo: bad input, connection closed", zap.String("side", side), zap.String("addr", addr), zap.Error(err))
}

// readOnlyGrace is how long a draining ingress gives its clients to see
// the read-only event before it closes their idle connections.
const readOnlyGrace = time.Second

// Drain stops taking connections and serves the ones it has until they
// end; when ctx ends first, Close. The upstream connections close last.
//
// An ingress (Target) sends each client Dubbo's read-only event, the
// provider's graceful shutdown: a Dubbo client, the egress of a remote
// sidecar included, sends no new calls on that connection and uses its
// other providers. Each connection is closed once the event had
// readOnlyGrace to arrive and no call is in flight on it.
//
// An egress (Cluster) sends nothing and closes nothing: the egress is
// its clients' only provider (a Java consumer would take a read-only
// one as unavailable), and cutting a multiplexed connection loses the
// calls its client is writing. Its clients leave when the agent's
// fallback hands them other providers, or reconnect to the listener's
// new handler, as L4 connections do.
func (p *Proxy) Drain(ctx context.Context) error {
	p.once.Do(p.init)
	p.mu.Lock()
	p.draining = true
	var downs []*downstream
	for d := range p.downs {
		downs = append(downs, d)
	}
	p.mu.Unlock()
	if p.Cluster == nil && len(downs) > 0 {
		for _, d := range downs {
			d.w.write(ReadOnlyEvent(0), nil)
		}
		p.wg.Add(1)
		go p.closeIdle(ctx, downs)
	}
	done := make(chan struct{})
	go func() { p.downWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		p.Close()
		return ctx.Err()
	}
	p.pool.close()
	p.wg.Wait()
	return nil
}

// closeIdle closes each of downs, after readOnlyGrace, once it has no
// call in flight; it gives up when ctx ends (Drain then closes them).
func (p *Proxy) closeIdle(ctx context.Context, downs []*downstream) {
	defer p.wg.Done()
	grace := time.NewTimer(readOnlyGrace)
	defer grace.Stop()
	select {
	case <-ctx.Done():
		return
	case <-grace.C:
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		rest := downs[:0]
		for _, d := range downs {
			if d.inflight.Load() == 0 {
				d.c.Close()
			} else {
				rest = append(rest, d)
			}
		}
		if downs = rest; len(downs) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Close closes every connection; calls in flight are answered
// CHANNEL_INACTIVE where their client is still there.
func (p *Proxy) Close() error {
	p.once.Do(p.init)
	p.mu.Lock()
	p.draining = true
	for d := range p.downs {
		d.c.Close()
	}
	p.mu.Unlock()
	p.pool.close()
	p.downWG.Wait()
	p.wg.Wait()
	return nil
}
