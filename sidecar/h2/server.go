package h2

import (
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

const preface = http2.ClientPreface

// serverConn is a client's connection: its reader runs serve.
type serverConn struct {
	*conn
	p      *Proxy
	remote string
	r      io.Reader
	lastID atomic.Uint32 // the highest stream id the client opened
	away   atomic.Bool   // GOAWAY sent: no new streams
}

func newServerConn(p *Proxy, nc net.Conn, r io.Reader) *serverConn {
	sc := &serverConn{p: p, r: r, remote: nc.RemoteAddr().String()}
	sc.conn = newConn(nc, r)
	return sc
}

// drain sends GOAWAY with the last stream taken; the connection closes
// once its streams are done.
func (sc *serverConn) drain() {
	// Under the lock a stream is either taken (and counted in halves)
	// or refused by the away flag: none is closed with the connection.
	sc.mu.Lock()
	if sc.away.Swap(true) {
		sc.mu.Unlock()
		return
	}
	last, idle := sc.lastID.Load(), len(sc.halves) == 0
	sc.mu.Unlock()
	sc.goAway(last, http2.ErrCodeNo)
	if idle {
		sc.nc.SetReadDeadline(time.Now())
	}
}

// streamDone is called when a stream is forgotten; an idle draining
// connection closes, an idle one arms the idle timeout.
func (sc *serverConn) streamDone() {
	sc.mu.Lock()
	idle := len(sc.halves) == 0
	sc.mu.Unlock()
	if !idle {
		return
	}
	if sc.away.Load() {
		sc.nc.SetReadDeadline(time.Now())
	} else if sc.p.Idle > 0 {
		sc.nc.SetReadDeadline(time.Now().Add(sc.p.Idle))
	}
}

func (sc *serverConn) serve() {
	defer sc.shutdown()
	var pre [len(preface)]byte
	if _, err := io.ReadFull(sc.r, pre[:]); err != nil || string(pre[:]) != preface {
		return
	}
	sc.hello(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: maxStreams})
	if sc.p.Idle > 0 {
		sc.nc.SetReadDeadline(time.Now().Add(sc.p.Idle))
	}
	first := true
	for {
		f, err := sc.fr.ReadFrame()
		if errors.Is(err, os.ErrDeadlineExceeded) && !sc.away.Load() {
			sc.mu.Lock()
			busy := len(sc.halves) > 0
			sc.mu.Unlock()
			if busy {
				sc.nc.SetReadDeadline(time.Time{})
				continue
			}
		}
		if err == nil && first {
			if _, ok := f.(*http2.SettingsFrame); !ok {
				err = http2.ConnectionError(http2.ErrCodeProtocol)
			}
			first = false
		}
		if err == nil {
			err = sc.frame(f)
		}
		if err == nil {
			continue
		}
		var se http2.StreamError
		var ce http2.ConnectionError
		if errors.As(err, &se) && se.StreamID%2 == 0 {
			// Streams a client may name are odd: an even one is not
			// a stream of this connection (RFC 9113 5.1.1).
			err = http2.ConnectionError(http2.ErrCodeProtocol)
		}
		switch {
		case errors.As(err, &se):
			sc.streamError(se)
			continue
		case errors.As(err, &ce):
			sc.goAway(sc.lastID.Load(), http2.ErrCode(ce))
		case errors.Is(err, http2.ErrFrameTooLarge):
			sc.goAway(sc.lastID.Load(), http2.ErrCodeFrameSize)
		case errors.Is(err, os.ErrDeadlineExceeded) && !sc.away.Load():
			sc.goAway(sc.lastID.Load(), http2.ErrCodeNo)
		}
		return
	}
}

// shutdown ends every stream still open and closes the connection.
func (sc *serverConn) shutdown() {
	for _, h := range sc.closeStreams() {
		h.st.downReset(http2.ErrCodeCancel)
	}
}

// streamError resets a stream the client got wrong; a new stream's id
// still counts as used.
func (sc *serverConn) streamError(se http2.StreamError) {
	id := se.StreamID
	if id%2 == 1 && id > sc.lastID.Load() {
		sc.lastID.Store(id)
	}
	sc.mu.Lock()
	h := sc.halves[id]
	if h == nil && !sc.dead {
		sc.fr.WriteRSTStream(id, se.Code)
	}
	sc.mu.Unlock()
	if h != nil {
		sc.reset(h, se.Code)
		h.st.downReset(http2.ErrCodeCancel)
		sc.streamDone()
	}
}

func (sc *serverConn) lookup(id uint32) *half {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.halves[id]
}

// idleStream says whether id names a stream not yet opened: a frame
// other than HEADERS or PRIORITY on one is a connection error.
func (sc *serverConn) idleStream(id uint32) bool { return id > sc.lastID.Load() }

func (sc *serverConn) frame(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		return sc.onHeaders(f)
	case *http2.DataFrame:
		id := f.StreamID
		h := sc.lookup(id)
		if h == nil && sc.idleStream(id) {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		n := int(f.Header().Length)
		if h != nil && h.recvEnd {
			h = nil
		}
		if err := sc.received(h, n, n-len(f.Data())); err != nil {
			return err
		}
		if h == nil {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
		}
		return h.st.reqData(f.Data(), f.StreamEnded())
	case *http2.RSTStreamFrame:
		h := sc.lookup(f.StreamID)
		if h == nil {
			if sc.idleStream(f.StreamID) {
				return http2.ConnectionError(http2.ErrCodeProtocol)
			}
			return nil
		}
		sc.mu.Lock()
		h.recvEnd = true
		h.sent = true
		sc.forgetLocked(h)
		sc.mu.Unlock()
		h.st.downReset(f.ErrCode)
		sc.streamDone()
	case *http2.SettingsFrame:
		return sc.settings(f, nil)
	case *http2.WindowUpdateFrame:
		if f.StreamID != 0 && sc.idleStream(f.StreamID) {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		return sc.windowUpdate(f)
	case *http2.PingFrame:
		sc.ping(f)
	case *http2.PriorityFrame:
		if f.StreamDep == f.StreamID {
			return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeProtocol}
		}
	case *http2.PushPromiseFrame:
		return http2.ConnectionError(http2.ErrCodeProtocol)
	case *http2.GoAwayFrame:
		sc.away.Store(true)
		sc.streamDone()
	}
	return nil
}

// headers opens a stream or takes a stream's trailers.
func (sc *serverConn) onHeaders(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	if id%2 == 0 {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if f.HasPriority() && f.Priority.StreamDep == id {
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	if h := sc.lookup(id); h != nil {
		if h.recvEnd {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
		}
		if !f.StreamEnded() || len(f.PseudoFields()) > 0 || f.Truncated || checkRegular(f.RegularFields()) != nil {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
		return h.st.reqTrailers(f.RegularFields())
	}
	if id <= sc.lastID.Load() {
		return http2.ConnectionError(http2.ErrCodeStreamClosed)
	}
	req, perr := parseRequest(f)
	sc.nc.SetReadDeadline(time.Time{})
	// The away check and the stream's registration share one hold of the
	// lock with drain, which reads lastID and the open streams under it.
	sc.mu.Lock()
	sc.lastID.Store(id)
	if sc.away.Load() {
		idle := len(sc.halves) == 0
		sc.mu.Unlock()
		if idle { // a drain's cut, cleared above
			sc.nc.SetReadDeadline(time.Now())
		}
		return nil // past our GOAWAY: ignored, the client may retry it
	}
	if len(sc.halves) >= maxStreams {
		sc.mu.Unlock()
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeRefusedStream}
	}
	if perr != nil {
		sc.mu.Unlock()
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	st := newStream(sc, req)
	st.down = sc.newHalf(id, st)
	st.down.recvEnd = f.StreamEnded()
	st.reqEnd = f.StreamEnded()
	sc.mu.Unlock()
	st.begin()
	return nil
}
