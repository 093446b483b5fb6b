package h2

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// clientConn is a pooled h2c connection to one upstream address.
type clientConn struct {
	*conn
	pool *pool
	addr string
	// under conn.mu:
	nextID     uint32
	maxStreams uint32
	away       bool // GOAWAY read or closing: no new streams
}

// pool keeps upstream connections per address; streams share them up to
// each one's SETTINGS_MAX_CONCURRENT_STREAMS, and another is dialled
// when all are full.
type pool struct {
	p       *Proxy
	mu      sync.Mutex
	conns   map[string][]*clientConn
	dialing map[string][]waiter
	closed  bool
}

type waiter struct {
	st  *stream
	gen int
}

func newPool(p *Proxy) *pool {
	return &pool{p: p, conns: map[string][]*clientConn{}, dialing: map[string][]waiter{}}
}

// get opens a stream for st to addr with the request's HEADERS, or, when
// no connection can take it, queues st for the one being dialled (st
// then hears of it through dialed). st.mu is held.
func (pl *pool) get(addr string, st *stream, fields []hpack.HeaderField, end bool) *half {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for _, cc := range pl.conns[addr] {
		if h := cc.open(st, fields, end); h != nil {
			return h
		}
	}
	if pl.closed {
		go st.dialed(st.gen, errors.New("h2: proxy closed"))
		return nil
	}
	ws, busy := pl.dialing[addr]
	pl.dialing[addr] = append(ws, waiter{st, st.gen})
	if !busy {
		go pl.dial(addr)
	}
	return nil
}

func (pl *pool) dial(addr string) {
	ctx, cancel := context.WithTimeout(context.Background(), pl.p.ConnectTimeout)
	nc, err := pl.p.Dial(ctx, "tcp", addr)
	cancel()
	if err != nil {
		err = &net.OpError{Op: "dial", Net: "tcp", Err: err}
	}
	var cc *clientConn
	pl.mu.Lock()
	if err == nil && pl.closed {
		nc.Close()
		err = errors.New("h2: proxy closed")
	}
	if err == nil {
		cc = &clientConn{pool: pl, addr: addr, nextID: 1, maxStreams: 100}
		cc.conn = newConn(nc, nc)
		cc.w.Write([]byte(preface))
		cc.hello(http2.Setting{ID: http2.SettingEnablePush, Val: 0})
		pl.conns[addr] = append(pl.conns[addr], cc)
		go cc.readLoop()
	}
	ws := pl.dialing[addr]
	delete(pl.dialing, addr)
	pl.mu.Unlock()
	for _, w := range ws {
		w.st.dialed(w.gen, err)
	}
}

// remove takes cc out of the pool.
func (pl *pool) remove(cc *clientConn) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	cs := pl.conns[cc.addr]
	for i, c := range cs {
		if c == cc {
			cs = append(cs[:i:i], cs[i+1:]...)
			break
		}
	}
	if len(cs) == 0 {
		delete(pl.conns, cc.addr)
	} else {
		pl.conns[cc.addr] = cs
	}
}

// close closes every pooled connection (streams on them fail).
func (pl *pool) close() {
	pl.mu.Lock()
	pl.closed = true
	var all []*clientConn
	for _, cs := range pl.conns {
		all = append(all, cs...)
	}
	pl.mu.Unlock()
	for _, cc := range all {
		cc.nc.Close()
	}
}

// open starts a stream with HEADERS if cc can take one.
func (cc *clientConn) open(st *stream, fields []hpack.HeaderField, end bool) *half {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.dead || cc.away || uint32(len(cc.halves)) >= cc.maxStreams || cc.nextID > 1<<31-1 {
		return nil
	}
	id := cc.nextID
	cc.nextID += 2
	h := cc.newHalf(id, st)
	h.cc = cc
	if len(cc.halves) == 1 {
		cc.nc.SetReadDeadline(time.Time{})
	}
	if cc.writeHeaders(id, fields, end) != nil {
		cc.forgetLocked(h)
		return nil
	}
	if end {
		h.sent = true
	}
	return h
}

// release forgets h (its stream no longer wants it), resetting it if it
// is still open, and arms the idle timeout.
func (cc *clientConn) release(h *half) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if !cc.dead && (!h.sent || !h.recvEnd) {
		cc.fr.WriteRSTStream(h.id, http2.ErrCodeCancel)
	}
	h.sent, h.recvEnd = true, true
	h.pend, h.trail = nil, nil
	cc.forgetLocked(h)
	cc.idleLocked()
}

// idleLocked arms the idle timeout (or closes a drained connection) when
// no stream is open.
func (cc *clientConn) idleLocked() {
	if len(cc.halves) > 0 {
		return
	}
	if cc.away {
		cc.nc.SetReadDeadline(time.Now())
	} else if d := cc.pool.p.Idle; d > 0 {
		cc.nc.SetReadDeadline(time.Now().Add(d))
	}
}

func (cc *clientConn) lookup(id uint32, end bool) *half {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	h := cc.halves[id]
	if h != nil && end {
		h.recvEnd = true
	}
	return h
}

func (cc *clientConn) readLoop() {
	defer cc.shutdown()
	for {
		f, err := cc.fr.ReadFrame()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			cc.mu.Lock()
			busy := len(cc.halves) > 0 && !cc.away
			if busy {
				cc.nc.SetReadDeadline(time.Time{})
			}
			cc.mu.Unlock()
			if busy {
				continue
			}
		}
		if err == nil {
			err = cc.frame(f)
		}
		var se http2.StreamError
		if errors.As(err, &se) {
			if h := cc.lookup(se.StreamID, true); h != nil {
				cc.release(h)
				h.st.upReset(h, se.Code)
			}
			continue
		}
		if err != nil {
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				cc.goAway(0, http2.ErrCode(ce))
			}
			return
		}
	}
}

func (cc *clientConn) frame(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		if h := cc.lookup(f.StreamID, f.StreamEnded()); h != nil {
			h.st.respHeaders(h, f)
		}
	case *http2.DataFrame:
		h := cc.lookup(f.StreamID, false)
		if h != nil && h.recvEnd {
			h = nil
		}
		n := int(f.Header().Length)
		if err := cc.received(h, n, n-len(f.Data())); err != nil {
			return err
		}
		if h != nil {
			if f.StreamEnded() {
				cc.lookup(f.StreamID, true)
			}
			h.st.respData(h, f.Data(), f.StreamEnded())
		}
	case *http2.RSTStreamFrame:
		if h := cc.lookup(f.StreamID, true); h != nil {
			cc.release(h)
			h.st.upReset(h, f.ErrCode)
		}
	case *http2.SettingsFrame:
		return cc.settings(f, func(v uint32) { cc.maxStreams = v })
	case *http2.WindowUpdateFrame:
		return cc.windowUpdate(f)
	case *http2.PingFrame:
		cc.ping(f)
	case *http2.GoAwayFrame:
		cc.goAwayRead(f.LastStreamID)
	case *http2.PushPromiseFrame:
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	return nil
}

// goAwayRead stops new streams on cc; those above last were never
// processed and are sent again elsewhere.
func (cc *clientConn) goAwayRead(last uint32) {
	cc.pool.remove(cc)
	cc.mu.Lock()
	cc.away = true
	var lost []*half
	for id, h := range cc.halves {
		if id > last {
			lost = append(lost, h)
			h.sent, h.recvEnd = true, true
			delete(cc.halves, id)
		}
	}
	cc.idleLocked()
	cc.mu.Unlock()
	for _, h := range lost {
		h.st.upGone(h, true)
	}
}

// shutdown fails the streams still open and closes cc.
func (cc *clientConn) shutdown() {
	cc.pool.remove(cc)
	cc.mu.Lock()
	cc.away = true
	cc.mu.Unlock()
	for _, h := range cc.closeStreams() {
		h.st.upGone(h, false)
	}
}
