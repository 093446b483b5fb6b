package h2

import (
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	"golang.org/x/net/http2/hpack"

	"github.com/detourmesh/detour/sidecar/cluster"
	"github.com/detourmesh/detour/sidecar/route"
	"github.com/detourmesh/detour/sidecar/stats"
)

// maxResends bounds how often a request the upstream never processed
// (GOAWAY, REFUSED_STREAM) is sent again.
const maxResends = 3

// stream relays one request: the client's half (down) and the current
// attempt's upstream half (up). Its events come from the client's
// reader, upstream readers, dials and timers; mu orders them. Locks go
// stream, then pool, then connection; never the other way.
type stream struct {
	mu   sync.Mutex
	p    *Proxy
	sc   *serverConn
	req  *request
	down *half
	up   *half

	out     []hpack.HeaderField // the request's HEADERS for upstreams
	subset  string
	ep      *cluster.Endpoint
	epOpen  bool // ep.Begin not yet ended
	exclude *cluster.Endpoint
	attempt int
	gen     int // bumped for each try at a connection: stale events drop
	opened  int // upstream halves opened (more than 0: resend kept)
	resends int
	retries int
	timer   *time.Timer

	kept     []byte // the body so far, for a resend, while under BodyLimit
	over     bool
	early    []byte // body read before the first upstream half opened
	recvd    int64
	reqEnd   bool
	reqTrail []hpack.HeaderField
	credited int64 // body bytes credited back to the client

	started    bool // response HEADERS sent to the client
	status     int
	grpcStatus string
	done       bool
	limited    bool
	counted    bool // in p.inflight
	start      time.Time
	span       trace.Span
}

func newStream(sc *serverConn, req *request) *stream {
	return &stream{p: sc.p, sc: sc, req: req}
}

// begin admits, routes and sends the request; on the client's reader.
func (st *stream) begin() {
	p, req := st.p, st.req
	p.Listener.Requests.Add(1)
	st.mu.Lock()
	defer st.mu.Unlock()
	if p.Observe != nil {
		st.start = time.Now()
	}
	if req.tooLarge {
		st.answer(http.StatusRequestHeaderFieldsTooLarge, "sidecar: request header too large")
		return
	}
	if p.Cluster == nil {
		if ok, ra := p.Limit.Acquire(); !ok {
			st.refuse(ra)
			return
		}
		st.limited = true
	} else {
		p.Cluster.Stats.Requests.Add(1)
		st.counted = true
		if n := p.inflight.Add(1); p.MaxRequests > 0 && n > p.MaxRequests {
			st.fail(stats.Overflow)
			st.answer(http.StatusServiceUnavailable, "sidecar: too many requests in flight")
			return
		}
	}
	var hdr, traced http.Header
	var routes *route.Table
	if p.Cluster != nil {
		routes = p.Cluster.Routes()
	}
	if routes != nil || p.Observe != nil {
		hdr = req.header()
	}
	if p.Observe != nil {
		if st.span = p.Observe.StartSpan(hdr, req.method, req.urlPath()); st.span != nil {
			traced = hdr
		}
	}
	st.out = req.outFields(st.sc.remote, traced)
	if p.Cluster == nil {
		st.next()
		return
	}
	dec := routes.Decide(hdr, req.urlPath())
	st.subset = dec.Subset
	if dec.Delay > 0 {
		gen := st.gen
		st.timer = time.AfterFunc(dec.Delay, func() {
			st.mu.Lock()
			defer st.mu.Unlock()
			if !st.done && st.gen == gen {
				st.timer = nil
				st.faulted(dec.Abort, dec.AbortGRPC)
			}
		})
		return
	}
	st.faulted(dec.Abort, dec.AbortGRPC)
}

// faulted answers an injected abort, or goes on.
func (st *stream) faulted(abort, abortGRPC int) {
	switch {
	case abort == 0:
		st.next()
	case st.req.grpc:
		st.answerGRPC(abortGRPC, "sidecar: fault injected")
	default:
		st.answer(abort, "sidecar: fault injected")
	}
}

// next sends the request to an endpoint: the first try or a retry.
func (st *stream) next() {
	p := st.p
	addr := p.Target
	if cl := p.Cluster; cl != nil {
		ep, err := cl.PickSubset(st.subset, st.exclude)
		if err != nil {
			st.fail(stats.NoHealthy)
			st.answer(http.StatusServiceUnavailable, "sidecar: "+err.Error())
			return
		}
		if st.attempt > 0 {
			cl.Stats.Retries.Add(1)
			p.Listener.Retries.Add(1)
		}
		ep.Begin()
		ep.Stats.Requests.Add(1)
		st.ep, st.epOpen = ep, true
		addr = ep.DialAddr()
		if p.RequestTimeout > 0 {
			try := st.attempt
			st.timer = time.AfterFunc(p.RequestTimeout, func() { st.timeout(try) })
		}
	}
	st.open(addr)
}

// open tries a connection to addr (the endpoint's, kept on a resend).
func (st *stream) open(addr string) {
	st.gen++
	end := st.reqEnd && st.reqTrail == nil && len(st.body()) == 0
	if h := st.p.pool.get(addr, st, st.out, end); h != nil {
		st.attach(h, end)
	}
}

// body is what a new upstream half is sent first.
func (st *stream) body() []byte {
	if st.opened > 0 {
		return st.kept
	}
	return st.early
}

// dialed hears of the connection a stream waited for.
func (st *stream) dialed(gen int, err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.done || gen != st.gen {
		return
	}
	if err != nil {
		st.dialFailed(err)
		return
	}
	st.open(st.addr())
}

func (st *stream) addr() string {
	if st.ep != nil {
		return st.ep.DialAddr()
	}
	return st.p.Target
}

// attach sends the body so far on a new upstream half.
func (st *stream) attach(h *half, ended bool) {
	st.up = h
	data := st.body()
	st.opened++
	st.early = nil
	if ended {
		return
	}
	if len(data) > 0 || st.reqEnd {
		n := h.c.send(h, data, st.reqEnd && st.reqTrail == nil, st.reqTrail)
		st.upWrote(h, n)
	}
}

// upWrote credits the client for body bytes that left upstream (a resend
// is credited once).
func (st *stream) upWrote(h *half, n int) {
	h.off += int64(n)
	if d := h.off - st.credited; d > 0 {
		st.credited = h.off
		st.sc.credit(st.down, int(d))
	}
}

// wrote is told of bytes written when a window opened.
func (st *stream) wrote(h *half, n int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	switch h {
	case st.up:
		st.upWrote(h, n)
	case st.down:
		if st.up != nil {
			st.up.c.credit(st.up, n)
		}
	}
	if h == st.down && st.done {
		if !st.reqEnd {
			st.sc.closeEarly(h)
		}
		st.sc.streamDone()
	}
}

func (st *stream) canRetry() bool {
	return st.p.Cluster != nil && st.attempt < st.p.Retries && !st.over && st.p.retryAllowed()
}

// retry gives up on the current endpoint for another.
func (st *stream) retry() {
	st.exclude = st.ep
	st.attempt++
	st.retries++
	st.p.retrying.Add(1)
	st.next()
}

// releaseUp lets the current upstream half go.
func (st *stream) releaseUp() {
	if h := st.up; h != nil {
		st.up = nil
		h.cc.release(h)
	}
	st.stopTimer()
}

func (st *stream) stopTimer() {
	if st.timer != nil {
		st.timer.Stop()
		st.timer = nil
	}
}

func (st *stream) endEp() {
	if st.epOpen {
		st.epOpen = false
		st.ep.End()
	}
}

func (st *stream) fail(k int) {
	st.p.Listener.Fail(k)
	if st.p.Cluster != nil {
		st.p.Cluster.Stats.Fail(k)
	}
}

// failEp counts a failed try against the endpoint (outlier detection).
func (st *stream) failEp(k int) {
	st.p.Listener.Fail(k)
	if st.ep != nil {
		st.p.Cluster.Failure(st.ep, k)
	}
	st.endEp()
}

// verdict reports a response to outlier detection, as l7.Egress does.
func (st *stream) verdict(code int, grpcUnavailable bool) {
	if st.ep == nil {
		return
	}
	switch {
	case grpcUnavailable:
		st.p.Listener.Fail(stats.GRPCUnavailable)
		st.p.Cluster.Failure(st.ep, stats.GRPCUnavailable)
	case code >= 500:
		st.p.Listener.Fail(stats.Status5xx)
		st.p.Cluster.Failure(st.ep, stats.Status5xx)
	default:
		st.p.Cluster.Success(st.ep)
	}
}

func (st *stream) dialFailed(err error) {
	kind := stats.DialKind(err)
	st.stopTimer()
	st.failEp(kind)
	if st.canRetry() {
		st.retry()
		return
	}
	if st.p.Cluster == nil {
		st.answer(http.StatusBadGateway, "sidecar: app: "+err.Error())
		return
	}
	st.answer(upstreamStatus(kind), "sidecar: upstream: "+err.Error())
}

// timeout ends attempt try if it is still waiting for its answer (a
// resend on another connection is the same attempt).
func (st *stream) timeout(try int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.done || st.started || try != st.attempt || st.timer == nil {
		return
	}
	st.timer = nil
	st.releaseUp()
	st.failEp(stats.RequestTimeout)
	st.answer(http.StatusGatewayTimeout, "sidecar: upstream: request timeout")
}

// upstreamStatus is l7's: 504 for a timeout, 503 when no endpoint could
// be reached, 502 otherwise.
func upstreamStatus(kind int) int {
	switch kind {
	case stats.RequestTimeout:
		return http.StatusGatewayTimeout
	case stats.ConnectRefused, stats.ConnectTimeout:
		return http.StatusServiceUnavailable
	}
	return http.StatusBadGateway
}
