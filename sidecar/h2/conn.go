package h2

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"sync"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Windows this proxy grants its peers (both sides). A stream's window
// bounds what is buffered for it: credit is given back only as the
// bytes leave on the other side.
const (
	streamWindow = 256 << 10
	connWindow   = 4 << 20
	maxFrameOut  = 16 << 10
	maxHeaderLst = 1 << 20
)

// conn is one HTTP/2 connection's writing side and flow control, the
// client's (downstream) or an upstream's. Frames are read by one reader
// goroutine (server.go, client.go); every write holds mu and goes to a
// coalescing buffer, so frames written back to back leave in one
// syscall.
type conn struct {
	nc net.Conn
	w  *writer
	fr *http2.Framer

	mu       sync.Mutex
	enc      *hpack.Encoder
	hbuf     bytes.Buffer
	maxFrame uint32 // the peer's SETTINGS_MAX_FRAME_SIZE, capped
	initWin  int32  // the peer's SETTINGS_INITIAL_WINDOW_SIZE
	sendWin  int32  // connection-level send window
	recvPend int32  // connection-level bytes received, not yet credited
	recvWin  int32  // connection-level bytes the peer may still send
	halves   map[uint32]*half
	waiting  []*half // halves with data held back for want of window
	dead     bool
}

func newConn(nc net.Conn, r io.Reader) *conn {
	c := &conn{nc: nc, w: newWriter(nc), maxFrame: 16384, initWin: 65535, sendWin: 65535, recvWin: 65535, halves: map[uint32]*half{}}
	c.w.drained = c.drained
	br, ok := r.(*bufio.Reader) // l7.Server's, which peeked the preface
	if !ok {
		br = bufio.NewReaderSize(r, 16<<10)
	}
	c.fr = http2.NewFramer(c.w, br)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.MaxHeaderListSize = maxHeaderLst
	c.enc = hpack.NewEncoder(&c.hbuf)
	return c
}

// half is one stream as seen on one connection.
type half struct {
	c       *conn
	cc      *clientConn // an upstream's half
	id      uint32
	st      *stream
	sendWin int32
	pend    []byte // DATA held back for want of window
	end     bool   // END_STREAM follows pend
	trail   []hpack.HeaderField
	sent    bool // END_STREAM or RST_STREAM written: nothing more goes out
	recvEnd bool // END_STREAM or RST_STREAM read
	unacked int32
	recvWin int32 // bytes the peer may still send on it
	off     int64 // body bytes written on it (request halves)
}

// writeHeaders encodes fields into HEADERS and CONTINUATION frames; mu
// is held.
func (c *conn) writeHeaders(id uint32, fields []hpack.HeaderField, end bool) error {
	c.hbuf.Reset()
	for _, f := range fields {
		c.enc.WriteField(f)
	}
	blk := c.hbuf.Bytes()
	first := true
	for first || len(blk) > 0 {
		n := min(len(blk), int(c.maxFrame))
		var err error
		if first {
			err = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: blk[:n], EndStream: end, EndHeaders: n == len(blk)})
		} else {
			err = c.fr.WriteContinuation(id, n == len(blk), blk[:n])
		}
		if err != nil {
			c.dead = true
			return err
		}
		first, blk = false, blk[n:]
	}
	return nil
}

// headers writes a HEADERS block on h (END_STREAM if end).
func (c *conn) headers(h *half, fields []hpack.HeaderField, end bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h.sent || c.dead {
		return
	}
	c.writeHeaders(h.id, fields, end)
	if end {
		c.closeSentLocked(h)
	}
}

// send queues p (and then END_STREAM if end, or trailers) on h and
// writes what the windows allow; it returns the DATA bytes written now.
func (c *conn) send(h *half, p []byte, end bool, trailers []hpack.HeaderField) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h.sent || c.dead {
		return 0
	}
	n := 0
	if len(h.pend) == 0 {
		n = c.writeData(h, p, end && trailers == nil)
		p = p[n:]
		if len(p) == 0 && (h.sent || (!end && trailers == nil)) {
			return n
		}
	}
	h.pend = append(h.pend, p...)
	h.end = h.end || end
	if trailers != nil {
		h.trail = trailers
	}
	return n + c.flushLocked(h)
}

// writeData writes as much of p as the windows allow; mu is held.
func (c *conn) writeData(h *half, p []byte, end bool) int {
	n := 0
	for len(p) > 0 || end {
		k := min(len(p), int(c.maxFrame), int(max(0, min(h.sendWin, c.sendWin))))
		if k > 0 {
			k = min(k, c.w.room())
		}
		if k == 0 && len(p) > 0 {
			return n
		}
		last := end && k == len(p)
		if err := c.fr.WriteData(h.id, last, p[:k]); err != nil {
			c.dead = true
			return n
		}
		h.sendWin -= int32(k)
		c.sendWin -= int32(k)
		n, p = n+k, p[k:]
		if last {
			c.closeSentLocked(h)
			return n
		}
	}
	return n
}

// flushLocked writes h's held-back data, then its END_STREAM or trailers.
func (c *conn) flushLocked(h *half) int {
	if h.sent {
		return 0
	}
	n := c.writeData(h, h.pend, h.end && h.trail == nil && len(h.pend) > 0)
	if h.sent {
		return n // the last DATA carried END_STREAM
	}
	h.pend = h.pend[n:]
	if len(h.pend) > 0 {
		if !h.queued() {
			c.waiting = append(c.waiting, h)
		}
		return n
	}
	h.pend = nil
	if h.trail != nil && !h.sent {
		c.writeHeaders(h.id, h.trail, true)
		c.closeSentLocked(h)
	} else if h.end && !h.sent {
		c.fr.WriteData(h.id, true, nil)
		c.closeSentLocked(h)
	}
	return n
}

func (h *half) queued() bool {
	for _, w := range h.c.waiting {
		if w == h {
			return true
		}
	}
	return false
}

// wrote is one half's bytes written when a window opened.
type wrote struct {
	h *half
	n int
}

// flushWaiting retries every held-back half; mu is held.
func (c *conn) flushWaiting(out []wrote) []wrote {
	ws := c.waiting
	c.waiting = nil
	for i, h := range ws {
		if c.sendWin <= 0 {
			c.waiting = append(c.waiting, ws[i:]...)
			break
		}
		if n := c.flushLocked(h); n > 0 {
			out = append(out, wrote{h, n})
		}
	}
	return out
}

// closeSentLocked marks h done for writing, forgetting it when the peer
// is done too.
func (c *conn) closeSentLocked(h *half) {
	h.sent = true
	h.pend, h.trail = nil, nil
	if h.recvEnd {
		c.forgetLocked(h)
	}
}

func (c *conn) forgetLocked(h *half) {
	if c.halves[h.id] == h {
		delete(c.halves, h.id)
	}
}

// reset writes RST_STREAM on h unless it is over.
func (c *conn) reset(h *half, code http2.ErrCode) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !h.sent && !c.dead {
		c.fr.WriteRSTStream(h.id, code)
	}
	h.recvEnd = true
	c.closeSentLocked(h)
}

// closeEarly ends a stream whose response is out before the client
// finished its request: RST_STREAM(NO_ERROR), RFC 9113 8.1. A response
// still held back by flow control is left to finish.
func (c *conn) closeEarly(h *half) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h.sent && !h.recvEnd {
		if !c.dead {
			c.fr.WriteRSTStream(h.id, http2.ErrCodeNo)
		}
		h.recvEnd = true
		c.forgetLocked(h)
	}
}

// credit gives n bytes of h's stream window back to the peer, in batches.
func (c *conn) credit(h *half, n int) {
	if n <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if h.recvEnd || c.dead {
		return
	}
	h.unacked += int32(n)
	if h.unacked >= streamWindow/4 {
		c.fr.WriteWindowUpdate(h.id, uint32(h.unacked))
		h.recvWin += h.unacked
		h.unacked = 0
	}
}

// received counts a DATA frame of n bytes (padding included) read on h
// (nil: a stream no longer open) against the windows. The connection's
// window is credited back in batches at once (streams' windows bound
// what is buffered), padding at once too; an overrun is a flow-control
// error.
func (c *conn) received(h *half, n, pad int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.recvWin -= int32(n); c.recvWin < 0 {
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	c.recvPend += int32(n)
	if c.recvPend >= connWindow/4 && !c.dead {
		c.fr.WriteWindowUpdate(0, uint32(c.recvPend))
		c.recvWin += c.recvPend
		c.recvPend = 0
	}
	if h == nil {
		return nil
	}
	if h.recvWin -= int32(n); h.recvWin < 0 {
		return http2.StreamError{StreamID: h.id, Code: http2.ErrCodeFlowControl}
	}
	if pad > 0 && !h.recvEnd {
		h.unacked += int32(pad)
	}
	return nil
}

// newHalf registers stream id on c; mu is held.
func (c *conn) newHalf(id uint32, st *stream) *half {
	h := &half{c: c, id: id, st: st, sendWin: c.initWin, recvWin: streamWindow}
	c.halves[id] = h
	return h
}

// settings applies the peer's SETTINGS and acknowledges them.
func (c *conn) settings(f *http2.SettingsFrame, onMax func(uint32)) error {
	if f.IsAck() {
		return nil
	}
	if err := f.ForeachSetting(func(s http2.Setting) error { return s.Valid() }); err != nil {
		return err
	}
	var out []wrote
	c.mu.Lock()
	f.ForeachSetting(func(s http2.Setting) error {
		switch s.ID {
		case http2.SettingInitialWindowSize:
			d := int32(s.Val) - c.initWin
			c.initWin = int32(s.Val)
			for _, h := range c.halves {
				h.sendWin += d
			}
		case http2.SettingMaxFrameSize:
			c.maxFrame = min(s.Val, maxFrameOut)
		case http2.SettingHeaderTableSize:
			c.enc.SetMaxDynamicTableSizeLimit(min(s.Val, 4096))
		case http2.SettingMaxConcurrentStreams:
			if onMax != nil {
				onMax(s.Val)
			}
		}
		return nil
	})
	for _, h := range c.halves {
		if h.sendWin > 0 && len(h.pend) > 0 && !h.queued() {
			c.waiting = append(c.waiting, h)
		}
	}
	c.fr.WriteSettingsAck()
	out = c.flushWaiting(out)
	c.mu.Unlock()
	relayWrote(out)
	return nil
}

// windowUpdate applies a WINDOW_UPDATE; a bad one is a connection error
// (stream 0) or a stream error.
func (c *conn) windowUpdate(f *http2.WindowUpdateFrame) error {
	var out []wrote
	c.mu.Lock()
	if f.StreamID == 0 {
		if int64(c.sendWin)+int64(f.Increment) > 1<<31-1 {
			c.mu.Unlock()
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		c.sendWin += int32(f.Increment)
		out = c.flushWaiting(out)
	} else if h := c.halves[f.StreamID]; h != nil {
		if int64(h.sendWin)+int64(f.Increment) > 1<<31-1 {
			c.mu.Unlock()
			return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeFlowControl}
		}
		h.sendWin += int32(f.Increment)
		if n := c.flushLocked(h); n > 0 {
			out = append(out, wrote{h, n})
		}
	}
	c.mu.Unlock()
	relayWrote(out)
	return nil
}

// hello writes what opens a connection after the preface: SETTINGS and
// the connection window's raise.
func (c *conn) hello(extra ...http2.Setting) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := append([]http2.Setting{
		{ID: http2.SettingInitialWindowSize, Val: streamWindow},
		{ID: http2.SettingMaxHeaderListSize, Val: maxHeaderLst},
	}, extra...)
	c.fr.WriteSettings(s...)
	c.fr.WriteWindowUpdate(0, connWindow-65535)
	c.recvWin = connWindow
}

// ping answers a PING.
func (c *conn) ping(f *http2.PingFrame) {
	if f.IsAck() {
		return
	}
	c.mu.Lock()
	c.fr.WritePing(true, f.Data)
	c.mu.Unlock()
}

// goAway writes GOAWAY.
func (c *conn) goAway(last uint32, code http2.ErrCode) {
	c.mu.Lock()
	if !c.dead {
		c.fr.WriteGoAway(last, code, nil)
	}
	c.mu.Unlock()
}

// drained writes held-back DATA once the write buffer has room again.
func (c *conn) drained() {
	c.mu.Lock()
	out := c.flushWaiting(nil)
	c.mu.Unlock()
	relayWrote(out)
}

// relayWrote tells each stream what left on a connection once a window
// opened, so that the other side's window is credited.
func relayWrote(out []wrote) {
	for _, w := range out {
		if w.h.st != nil {
			w.h.st.wrote(w.h, w.n)
		}
	}
}

// closeStreams marks c dead, takes the halves of its open streams and
// closes its writer; each side then ends those streams its own way.
func (c *conn) closeStreams() []*half {
	c.mu.Lock()
	c.dead = true
	hs := make([]*half, 0, len(c.halves))
	for _, h := range c.halves {
		hs = append(hs, h)
	}
	c.halves = map[uint32]*half{}
	c.mu.Unlock()
	c.w.close()
	return hs
}
