// Package proxy is the sidecar's L4 forwarding: a bidirectional copy with
// correct half-close, an idle timeout and a first-response-byte timeout,
// and the egress (cluster, load balancing, retries on connect failure,
// outlier reports) and ingress (one fixed local target) connection
// handlers built on it.
//
// Hot path: two goroutines per connection (the accepting one copies
// client to upstream, one more copies back). Between two *net.TCPConn,
// io.Copy uses splice(2), so bytes never enter user space after the first
// read of each direction (which goes through a pooled buffer so the
// first-byte timer knows when the client spoke). Deadlines, not timers,
// carry both timeouts: the idle timeout re-arms a read deadline every
// quarter of its length, so a busy connection costs one SetReadDeadline
// per quarter, not per read.
package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/detourmesh/detour/sidecar/stats"
)

// PipeConfig bounds one proxied connection.
type PipeConfig struct {
	// Idle closes the connection after no byte moved either way for this
	// long (between Idle and 1.5×Idle after the last byte); 0: never.
	Idle time.Duration
	// FirstByte: once the client sent data, the upstream must send a byte
	// within this long or the connection fails; 0: no limit.
	FirstByte time.Duration
}

// PipeResult is how a proxied connection went.
type PipeResult struct {
	Up, Down int64 // bytes client→upstream, upstream→client
	// GotFirstByte: the upstream sent at least one byte.
	GotFirstByte bool
	// FirstByteTimeout: the client sent data and the upstream stayed
	// silent past PipeConfig.FirstByte.
	FirstByteTimeout bool
	// IdleTimeout: closed for being idle.
	IdleTimeout bool
}

// BufferPool hands out the buffers of the first reads.
type BufferPool struct{ p sync.Pool }

// NewBufferPool returns a pool of size-byte buffers.
func NewBufferPool(size int) *BufferPool {
	return &BufferPool{p: sync.Pool{New: func() any { b := make([]byte, size); return &b }}}
}

func (bp *BufferPool) get() *[]byte  { return bp.p.Get().(*[]byte) }
func (bp *BufferPool) put(b *[]byte) { bp.p.Put(b) }

type pipe struct {
	client, upstream net.Conn
	cfg              PipeConfig
	period           time.Duration
	pool             *BufferPool
	counters         []*stats.Counters

	lastActive atomic.Int64 // unix nanos
	sentAt     atomic.Int64 // unix nanos of the client's first data; 0: none yet
	gotFirst   atomic.Bool
	fbTimeout  atomic.Bool
	idleOut    atomic.Bool
	up, down   atomic.Int64
}

// Pipe copies both ways until both directions ended, then closes both
// connections. A direction that ends with EOF half-closes the other
// side's write direction; an error in either closes both. Bytes are added
// to every counter as they move (BytesIn client→upstream, BytesOut back).
func Pipe(client, upstream net.Conn, cfg PipeConfig, pool *BufferPool, counters ...*stats.Counters) PipeResult {
	p := &pipe{client: client, upstream: upstream, cfg: cfg, pool: pool, counters: counters}
	if cfg.Idle > 0 {
		p.period = max(cfg.Idle/4, time.Millisecond)
	}
	// A splice counts its bytes when it returns: waking at least every
	// countEvery keeps the counters moving with a long-lived connection
	// (a Dubbo or gRPC client's), not only at its end. The price is one
	// deadline and one wake-up a second per direction of an open
	// connection, idle or not.
	if p.period == 0 || p.period > countEvery {
		p.period = countEvery
	}
	p.lastActive.Store(time.Now().UnixNano())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.upstreamToClient()
	}()
	p.clientToUpstream()
	<-done
	client.Close()
	upstream.Close()
	return PipeResult{
		Up: p.up.Load(), Down: p.down.Load(), GotFirstByte: p.gotFirst.Load(),
		FirstByteTimeout: p.fbTimeout.Load(), IdleTimeout: p.idleOut.Load(),
	}
}

func (p *pipe) abort() {
	p.client.Close()
	p.upstream.Close()
}

func (p *pipe) moved(n int64, toUpstream bool) {
	if n <= 0 {
		return
	}
	p.lastActive.Store(time.Now().UnixNano())
	if toUpstream {
		p.up.Add(n)
	} else {
		p.down.Add(n)
	}
	for _, c := range p.counters {
		if toUpstream {
			c.BytesIn.Add(uint64(n))
		} else {
			c.BytesOut.Add(uint64(n))
		}
	}
}

// idle says whether nothing moved for Idle (plus one period of
// uncertainty: bytes in a splice are counted when it returns).
func (p *pipe) idle(now time.Time) bool {
	return p.cfg.Idle > 0 && now.UnixNano()-p.lastActive.Load() >= int64(p.cfg.Idle+p.period)
}

// countEvery bounds how long bytes that moved go uncounted.
const countEvery = time.Second

func (p *pipe) clientToUpstream() {
	if p.cfg.FirstByte > 0 {
		buf := p.pool.get()
		n, err := p.readFirst(p.client, *buf)
		if n > 0 {
			if !p.gotFirst.Load() {
				now := time.Now()
				p.sentAt.Store(now.UnixNano())
				p.upstream.SetReadDeadline(now.Add(p.cfg.FirstByte))
			}
			_, werr := p.upstream.Write((*buf)[:n])
			p.moved(int64(n), true)
			if werr != nil && err == nil {
				err = werr
			}
		}
		p.pool.put(buf)
		if !p.finish(err, p.upstream) {
			return
		}
	}
	p.finish(p.copyLoop(p.upstream, p.client, true), p.upstream)
}

func (p *pipe) upstreamToClient() {
	if p.cfg.FirstByte > 0 {
		buf := p.pool.get()
		n, err := p.readFirst(p.upstream, *buf)
		if n > 0 {
			p.gotFirst.Store(true)
			_, werr := p.client.Write((*buf)[:n])
			p.moved(int64(n), false)
			if werr != nil && err == nil {
				err = werr
			}
		}
		p.pool.put(buf)
		if !p.finish(err, p.client) {
			return
		}
	} else {
		defer func() {
			if p.down.Load() > 0 {
				p.gotFirst.Store(true)
			}
		}()
	}
	p.finish(p.copyLoop(p.client, p.upstream, false), p.client)
}

// finish ends a direction: nil goes on (false: nothing more to do is
// never the case for nil), EOF half-closes dst, an error aborts both.
// It reports whether the direction should continue.
func (p *pipe) finish(err error, dst net.Conn) bool {
	switch {
	case err == nil:
		return true
	case errors.Is(err, io.EOF):
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			if cw.CloseWrite() == nil {
				return false
			}
		}
		p.abort()
	default:
		p.abort()
	}
	return false
}

// readFirst reads once from src, waking at each deadline to apply the
// idle and first-byte timeouts. It returns io.EOF at the end of src.
func (p *pipe) readFirst(src net.Conn, buf []byte) (int, error) {
	isUpstream := src == p.upstream
	for {
		var dl time.Time
		now := time.Now()
		if p.period > 0 {
			dl = now.Add(p.period)
		}
		if sent := p.sentAt.Load(); isUpstream && sent != 0 {
			if fb := time.Unix(0, sent).Add(p.cfg.FirstByte); dl.IsZero() || fb.Before(dl) {
				dl = fb
			}
		}
		src.SetReadDeadline(dl)
		n, err := src.Read(buf)
		if n > 0 || err == nil {
			return n, nil
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, err
		}
		now = time.Now()
		if sent := p.sentAt.Load(); isUpstream && sent != 0 && now.UnixNano()-sent >= int64(p.cfg.FirstByte) {
			p.fbTimeout.Store(true)
			return 0, errFirstByte
		}
		if p.period > 0 && p.idle(now) {
			p.idleOut.Store(true)
			return 0, errIdle
		}
	}
}

var (
	errFirstByte = errors.New("first byte timeout")
	errIdle      = errors.New("idle timeout")
)

// copyLoop copies src to dst (splice between TCP connections), waking
// every period to check for idleness. It returns io.EOF at src's end.
func (p *pipe) copyLoop(dst, src net.Conn, toUpstream bool) error {
	for {
		if p.period > 0 {
			src.SetReadDeadline(time.Now().Add(p.period))
		} else {
			src.SetReadDeadline(time.Time{})
		}
		n, err := io.Copy(dst, src)
		p.moved(n, toUpstream)
		if err == nil {
			return io.EOF
		}
		if p.period > 0 && errors.Is(err, os.ErrDeadlineExceeded) {
			if p.idle(time.Now()) {
				p.idleOut.Store(true)
				return errIdle
			}
			continue
		}
		return err
	}
}
