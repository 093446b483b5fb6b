package l7

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// upConn is a kept-alive upstream HTTP/1.1 connection.
type upConn struct {
	net.Conn
	r        *bufio.Reader
	w        *bufio.Writer
	lastUsed time.Time
	reused   bool
	shard    int        // the pool's shard it goes back to
	body     lengthBody // the current answer's body (readHead)

	// What readHead reuses from answer to answer.
	resp http.Response
	h    http.Header
	vals []string
	head []byte // the head's text (text)
}

// connPool keeps idle upstream connections per address (LIFO, so the
// warmest is reused and the coldest time out). Every request takes one
// and gives it back, on every core: each address's idle list is split in
// poolShards, each under its own lock on a cache line of its own. A
// client connection keeps to one shard (its hint), so its requests
// mostly find the upstream connection they used last; one that finds its
// shard empty looks in the others before dialling.
type connPool struct {
	dial    DialFunc
	timeout time.Duration // connect
	idle    time.Duration // an idle connection older than this is closed
	maxIdle int           // per address, over all shards

	byAddr sync.Map // address → *idleSet
	closed atomic.Bool
}

const poolShards = 8

type idleSet struct {
	shards [poolShards]struct {
		mu    sync.Mutex // guards conns
		conns []*upConn
		_     [32]byte
	}
}

func newConnPool(dial DialFunc, connectTimeout, idle time.Duration, maxIdle int) *connPool {
	if idle <= 0 {
		idle = 90 * time.Second
	}
	return &connPool{dial: dial, timeout: connectTimeout, idle: idle, maxIdle: maxIdle}
}

func (p *connPool) set(addr string) *idleSet {
	if s, ok := p.byAddr.Load(addr); ok {
		return s.(*idleSet)
	}
	s, _ := p.byAddr.LoadOrStore(addr, new(idleSet))
	return s.(*idleSet)
}

// get returns an idle connection to addr, from shard hint first, or
// dials a new one (which goes back to hint).
func (p *connPool) get(addr string, hint int) (*upConn, error) {
	now := time.Now()
	s := p.set(addr)
	for k := range poolShards {
		i := (hint + k) % poolShards
		sh := &s.shards[i]
		sh.mu.Lock()
		for l := sh.conns; len(l) > 0; l = sh.conns {
			c := l[len(l)-1]
			sh.conns = l[:len(l)-1]
			if now.Sub(c.lastUsed) < p.idle {
				sh.mu.Unlock()
				c.reused, c.shard = true, hint%poolShards
				return c, nil
			}
			c.Close()
		}
		sh.mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	nc, err := p.dial(ctx, "tcp", addr)
	cancel()
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: err}
	}
	lc := &lazyConn{Conn: nc} // a deadline per request, a timer operation seldom
	return &upConn{Conn: lc, r: bufio.NewReaderSize(lc, 16<<10), w: bufio.NewWriterSize(lc, 16<<10), shard: hint % poolShards}, nil
}

// put returns c for reuse, to the shard of the request that had it (or
// the next with room).
func (p *connPool) put(addr string, c *upConn) {
	c.lastUsed = time.Now()
	c.reused = false
	s := p.set(addr)
	for k := range poolShards {
		sh := &s.shards[(c.shard+k)%poolShards]
		sh.mu.Lock()
		// closed is read under the shard's lock, which close takes after
		// setting it: a put either sees it or is drained by close.
		if p.closed.Load() {
			sh.mu.Unlock()
			break
		}
		if len(sh.conns) < max(1, p.maxIdle/poolShards) {
			sh.conns = append(sh.conns, c)
			sh.mu.Unlock()
			return
		}
		sh.mu.Unlock()
	}
	c.Close()
}

// close closes every idle connection; later puts close theirs.
func (p *connPool) close() {
	p.closed.Store(true)
	p.byAddr.Range(func(_, v any) bool {
		s := v.(*idleSet)
		for i := range s.shards {
			sh := &s.shards[i]
			sh.mu.Lock()
			for _, c := range sh.conns {
				c.Close()
			}
			sh.conns = nil
			sh.mu.Unlock()
		}
		return true
	})
}
