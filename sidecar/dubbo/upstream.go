package dubbo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/detourmesh/detour/sidecar/cluster"
	"github.com/detourmesh/detour/sidecar/stats"
)

// heartbeatEvery is how often an idle upstream connection is sent a
// heartbeat, as a Dubbo consumer does (60 s): a provider closes a
// connection it has read nothing on for three of them.
const heartbeatEvery = 60 * time.Second

// errUpstreamClosed: the connection a call was sent on ended first.
var errUpstreamClosed = errors.New("upstream connection closed")

// upConn is one multiplexed connection to an upstream. Every call sent
// on it gets a new id of the connection's own (so the ids of calls
// from different clients never clash) and is kept in pending until its
// response, its time-out or the connection's end.
type upConn struct {
	p    *Proxy
	addr string
	ep   *cluster.Endpoint // nil on ingress
	c    net.Conn
	w    *writer

	mu       sync.Mutex // guards the fields below
	next     uint64
	pending  map[uint64]*call
	closed   bool
	readOnly bool // the provider is shutting down: no new calls
	lastUsed time.Time

	warned atomic.Bool // an unknown response id was logged
}

// call is one request in flight. A two-way one stays in its upstream
// connection's pending until it ends; a one-way one ends when sent.
type call struct {
	d      *downstream
	id     uint64 // the client's id
	oneWay bool
	ep     *cluster.Endpoint
	uc     *upConn
	upID   uint64
	timer  *time.Timer
	// req is the request frame, kept for a retry (egress with retries).
	req     []byte
	attempt int
	// subset is the routes' choice for the call (egress); limited: the
	// call holds a place in the inbound limit (ingress).
	subset  string
	limited bool
	start   time.Time // set when the proxy observes calls
}

// usable says new calls may go on uc.
func (uc *upConn) usable() bool {
	uc.mu.Lock()
	defer uc.mu.Unlock()
	return !uc.closed && !uc.readOnly
}

// send writes cl's request frame f on uc with an id of uc's. It fails
// only when uc had closed before (cl is not sent); a write that fails
// closes uc, which answers cl.
func (uc *upConn) send(cl *call, f []byte, b *batch) error {
	uc.mu.Lock()
	if uc.closed {
		uc.mu.Unlock()
		return errUpstreamClosed
	}
	uc.next++
	id := uc.next
	uc.lastUsed = time.Now()
	cl.uc, cl.upID = uc, id
	if !cl.oneWay {
		uc.pending[id] = cl
		if uc.p.RequestTimeout > 0 {
			cl.timer = time.AfterFunc(uc.p.RequestTimeout, cl.expire)
		}
	}
	uc.mu.Unlock()
	var hdr [HeaderLen]byte
	copy(hdr[:], f)
	SetID(hdr[:], id)
	var err error
	if b != nil {
		err = uc.w.buffer(hdr[:], f[HeaderLen:])
		b.add(uc.w)
	} else {
		err = uc.w.write(hdr[:], f[HeaderLen:])
	}
	if uc.ep != nil && err == nil {
		uc.ep.Stats.BytesIn.Add(uint64(len(f)))
		uc.p.Cluster.Stats.BytesIn.Add(uint64(len(f)))
	}
	if cl.oneWay && uc.ep != nil {
		uc.ep.End()
	}
	if err != nil {
		uc.close(err)
	}
	return nil
}

// take removes the call with uc's id from pending.
func (uc *upConn) take(id uint64) *call {
	uc.mu.Lock()
	defer uc.mu.Unlock()
	cl := uc.pending[id]
	if cl != nil {
		delete(uc.pending, id)
	}
	return cl
}

// expire ends a call that got no response in time: the client gets a
// timeout response, the endpoint a failure, a late response is dropped.
func (cl *call) expire() {
	uc := cl.uc
	if uc.take(cl.upID) != cl {
		return // answered meanwhile
	}
	p := uc.p
	msg := fmt.Sprintf("detour sidecar: no response from %s within %v", uc.addr, p.RequestTimeout)
	p.finish(cl, stats.RequestTimeout, StatusServerTimeout, msg)
}

// read is uc's reader: responses go back to their callers, heartbeats
// are answered, idle connections are sent heartbeats and, when idle
// past the proxy's idle time with nothing pending, closed.
func (uc *upConn) read() {
	defer uc.p.wg.Done()
	p := uc.p
	rd := NewReader(uc.c, 32<<10, p.MaxBody)
	var b batch
	defer b.flush()
	for {
		if !rd.Ready() {
			b.flush()
		}
		uc.c.SetReadDeadline(time.Now().Add(heartbeatEvery))
		h, f, err := rd.Next()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			uc.mu.Lock()
			idle := len(uc.pending) == 0 && p.Idle > 0 && time.Since(uc.lastUsed) >= p.Idle
			uc.mu.Unlock()
			if idle {
				uc.close(errors.New("idle"))
				return
			}
			uc.w.write(Heartbeat(0), nil)
			continue
		}
		if err != nil {
			if IsBadFrame(err) {
				p.badFrame("upstream", uc.addr, err)
			}
			uc.close(err)
			return
		}
		switch {
		case h.IsRequest() && h.Event():
			if h.TwoWay() {
				uc.w.write(HeartbeatResponse(h), nil)
			} else { // read-only: the provider is shutting down
				uc.mu.Lock()
				uc.readOnly = true
				uc.mu.Unlock()
			}
		case h.IsRequest():
			p.badFrame("upstream", uc.addr, fmt.Errorf("dubbo: a request (id %d) from a provider", h.ID))
		case h.Event():
			// the answer to our heartbeat
		default:
			p.response(uc, h, f, &b)
		}
	}
}

// close ends uc: it leaves the pool, and every call pending on it is
// answered CHANNEL_INACTIVE and counted against its endpoint.
func (uc *upConn) close(why error) {
	uc.mu.Lock()
	if uc.closed {
		uc.mu.Unlock()
		return
	}
	uc.closed = true
	pending := uc.pending
	uc.pending = nil
	uc.mu.Unlock()
	uc.c.Close()
	uc.p.pool.remove(uc)
	if uc.ep != nil {
		uc.ep.Stats.ConnsActive.Add(-1)
		uc.p.Cluster.Stats.ConnsActive.Add(-1)
	}
	for _, cl := range pending {
		msg := fmt.Sprintf("detour sidecar: connection to %s ended with the call in flight: %v", uc.addr, why)
		uc.p.finish(cl, stats.Other, StatusChannelInactive, msg)
	}
}

// pool holds the upstream connections of one proxy, by address.
type pool struct {
	p *Proxy

	mu     sync.Mutex // guards the fields below
	slots  map[string]*slot
	closed bool
}

type slot struct {
	conns   []*upConn
	rr      int
	dialing *dialing
}

type dialing struct {
	done chan struct{}
	uc   *upConn
	err  error
}

// ready returns a connection to addr that takes calls, or nil when one
// must be dialled first (none yet, or fewer than Conns).
func (pl *pool) ready(addr string) *upConn {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return pl.readyLocked(addr)
}

func (pl *pool) readyLocked(addr string) *upConn {
	s := pl.slots[addr]
	if s == nil || len(s.conns) < pl.p.Conns {
		return nil
	}
	for range s.conns {
		s.rr++
		uc := s.conns[s.rr%len(s.conns)]
		if uc.usable() {
			return uc
		}
	}
	return nil
}

// get returns a connection to addr, dialling one (one dial per address
// at a time; others wait for it) when ready has none.
func (pl *pool) get(addr string, ep *cluster.Endpoint) (*upConn, error) {
	if uc := pl.ready(addr); uc != nil {
		return uc, nil
	}
	pl.mu.Lock()
	if pl.closed {
		pl.mu.Unlock()
		return nil, net.ErrClosed
	}
	s := pl.slots[addr]
	if s == nil {
		s = &slot{}
		pl.slots[addr] = s
	}
	// Another call's dial may have finished since ready looked.
	if uc := pl.readyLocked(addr); uc != nil {
		pl.mu.Unlock()
		return uc, nil
	}
	if d := s.dialing; d != nil {
		pl.mu.Unlock()
		<-d.done
		return d.uc, d.err
	}
	d := &dialing{done: make(chan struct{})}
	s.dialing = d
	pl.mu.Unlock()

	d.uc, d.err = pl.dial(addr, ep)
	pl.mu.Lock()
	s.dialing = nil
	if d.err == nil {
		if pl.closed {
			d.uc.c.Close()
			d.uc, d.err = nil, net.ErrClosed
		} else {
			s.conns = append(s.conns, d.uc)
			pl.p.wg.Add(1)
			go d.uc.read()
		}
	}
	pl.mu.Unlock()
	close(d.done)
	return d.uc, d.err
}

func (pl *pool) dial(addr string, ep *cluster.Endpoint) (*upConn, error) {
	p := pl.p
	ctx, cancel := context.WithTimeout(context.Background(), p.ConnectTimeout)
	defer cancel()
	c, err := p.Dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if ep != nil {
		ep.Stats.ConnsTotal.Add(1)
		ep.Stats.ConnsActive.Add(1)
		p.Cluster.Stats.ConnsTotal.Add(1)
		p.Cluster.Stats.ConnsActive.Add(1)
	}
	uc := &upConn{p: p, addr: addr, ep: ep, c: c, pending: map[uint64]*call{}, lastUsed: time.Now()}
	uc.w = newWriter(c, 32<<10, uc.close)
	return uc, nil
}

func (pl *pool) remove(uc *upConn) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	s := pl.slots[uc.addr]
	if s == nil {
		return
	}
	for i, x := range s.conns {
		if x == uc {
			s.conns = append(s.conns[:i], s.conns[i+1:]...)
			break
		}
	}
	if len(s.conns) == 0 && s.dialing == nil {
		delete(pl.slots, uc.addr)
	}
}

// close closes every connection; calls pending on them are answered.
func (pl *pool) close() {
	pl.mu.Lock()
	pl.closed = true
	var all []*upConn
	for _, s := range pl.slots {
		all = append(all, s.conns...)
	}
	pl.mu.Unlock()
	for _, uc := range all {
		uc.close(net.ErrClosed)
	}
}
