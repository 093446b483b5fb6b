// Package coalesce batches a connection's small writes into fewer
// syscalls. net/http's HTTP/2 server and transport flush every frame: a
// gRPC unary call through the sidecar costs a write(2) for each HEADERS,
// DATA and trailer frame on both hops, and profiles showed those writes
// at ~40 % of the sidecar's CPU. A Conn's Write only appends to a buffer;
// one flusher goroutine, started on demand, writes whatever accumulated
// by the time it runs — every frame queued while the writer was busy. An
// idle connection has no goroutine.
//
// The price: Write reports success before the bytes reach the kernel. A
// failed write is returned by the next Write (or Close), and the
// connection is then dead, which is what HTTP/2 does with any write error
// anyway. Only wrap connections whose protocol tolerates that.
package coalesce

import (
	"net"
	"sync"
	"time"
)

// maxPending bounds the buffered bytes: past it Write waits for the
// flusher, so a slow peer pushes back as it would without the buffer.
const maxPending = 256 << 10

// closeFlushWait bounds how long Close waits for pending bytes (a GOAWAY,
// say) to be written before it closes the connection under them.
const closeFlushWait = time.Second

// Conn is a net.Conn whose writes are coalesced.
type Conn struct {
	net.Conn

	mu       sync.Mutex
	cond     sync.Cond // signalled when the flusher finishes a batch
	buf      []byte    // pending bytes
	spare    []byte    // the buffer being written, reused for the next batch
	flushing bool
	err      error // the first write error: every later Write returns it
}

// New wraps c.
func New(c net.Conn) *Conn {
	w := &Conn{Conn: c}
	w.cond.L = &w.mu
	return w
}

// Write queues p and returns at once, unless maxPending bytes are
// already waiting.
func (c *Conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.err == nil && len(c.buf) > 0 && len(c.buf)+len(p) > maxPending {
		c.cond.Wait()
	}
	if c.err != nil {
		return 0, c.err
	}
	c.buf = append(c.buf, p...)
	if !c.flushing {
		c.flushing = true
		go c.flush()
	}
	return len(p), nil
}

// flush writes batches until nothing is pending.
func (c *Conn) flush() {
	c.mu.Lock()
	for len(c.buf) > 0 && c.err == nil {
		batch := c.buf
		c.buf = c.spare[:0]
		c.mu.Unlock()
		_, err := c.Conn.Write(batch)
		c.mu.Lock()
		c.spare = batch
		if err != nil {
			c.err = err
		}
		c.cond.Broadcast()
	}
	c.flushing = false
	c.cond.Broadcast()
	c.mu.Unlock()
}

// Close writes what is pending (for up to a second) and closes the
// connection.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.flushing {
		// A stuck peer must not hold Close: past the wait, closing the
		// connection fails the flusher's write.
		t := time.AfterFunc(closeFlushWait, func() { c.Conn.Close() })
		for c.flushing {
			c.cond.Wait()
		}
		t.Stop()
	}
	c.mu.Unlock()
	return c.Conn.Close()
}
