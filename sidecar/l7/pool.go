package l7

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"sync"
	"time"
)

// upConn is a kept-alive upstream HTTP/1.1 connection.
type upConn struct {
	net.Conn
	r        *bufio.Reader
	w        *bufio.Writer
	lastUsed time.Time
	reused   bool
	body     lengthBody // the current answer's body (readHead)

	// What readHead reuses from answer to answer.
	resp http.Response
	h    http.Header
	vals []string
	head []byte // the head's text (text)
}

// connPool keeps idle upstream connections per address (LIFO, so the
// warmest is reused and the coldest time out).
type connPool struct {
	dial    DialFunc
	timeout time.Duration // connect
	idle    time.Duration // an idle connection older than this is closed
	maxIdle int

	mu     sync.Mutex
	byAddr map[string][]*upConn
	closed bool
}

func newConnPool(dial DialFunc, connectTimeout, idle time.Duration, maxIdle int) *connPool {
	if idle <= 0 {
		idle = 90 * time.Second
	}
	return &connPool{dial: dial, timeout: connectTimeout, idle: idle, maxIdle: maxIdle, byAddr: map[string][]*upConn{}}
}

// get returns an idle connection to addr or dials a new one.
func (p *connPool) get(addr string) (*upConn, error) {
	now := time.Now()
	p.mu.Lock()
	for l := p.byAddr[addr]; len(l) > 0; l = p.byAddr[addr] {
		c := l[len(l)-1]
		p.byAddr[addr] = l[:len(l)-1]
		if now.Sub(c.lastUsed) < p.idle {
			p.mu.Unlock()
			c.reused = true
			return c, nil
		}
		c.Close()
	}
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	nc, err := p.dial(ctx, "tcp", addr)
	cancel()
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: err}
	}
	lc := &lazyConn{Conn: nc} // a deadline per request, a timer operation seldom
	return &upConn{Conn: lc, r: bufio.NewReaderSize(lc, 16<<10), w: bufio.NewWriterSize(lc, 16<<10)}, nil
}

// put returns c for reuse.
func (p *connPool) put(addr string, c *upConn) {
	c.lastUsed = time.Now()
	c.reused = false
	p.mu.Lock()
	if p.closed || len(p.byAddr[addr]) >= p.maxIdle {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.byAddr[addr] = append(p.byAddr[addr], c)
	p.mu.Unlock()
}

// close closes every idle connection; later puts close theirs.
func (p *connPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for a, l := range p.byAddr {
		for _, c := range l {
			c.Close()
		}
		delete(p.byAddr, a)
	}
}
