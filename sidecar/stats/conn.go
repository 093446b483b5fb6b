package stats

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
)

// Conn is an accepted connection counted on its listener's Counters, the
// same way for every protocol: L4, HTTP/1.1 and h2c all read and write
// through it. Each Read, Write, ReadFrom and WriteTo adds what it moved
// (BytesIn from the client, BytesOut to it) with one atomic add; the
// first Close takes it off ConnsActive.
type Conn struct {
	net.Conn
	c      *Counters
	closed atomic.Bool
}

// Accepted counts nc as a new connection of c and wraps it.
func Accepted(nc net.Conn, c *Counters) *Conn {
	c.ConnsTotal.Add(1)
	c.ConnsActive.Add(1)
	return &Conn{Conn: nc, c: c}
}

// Read counts what it read as BytesIn.
func (x *Conn) Read(p []byte) (int, error) {
	n, err := x.Conn.Read(p)
	if n > 0 {
		x.c.BytesIn.Add(uint64(n))
	}
	return n, err
}

// Write counts what it wrote as BytesOut.
func (x *Conn) Write(p []byte) (int, error) {
	n, err := x.Conn.Write(p)
	if n > 0 {
		x.c.BytesOut.Add(uint64(n))
	}
	return n, err
}

// ReadFrom hands io.Copy into the connection to the wrapped one, so a
// copy between two TCP connections still splices (a plain wrapper would
// make it copy through user space), and counts the total as BytesOut.
func (x *Conn) ReadFrom(r io.Reader) (int64, error) {
	var n int64
	var err error
	if rf, ok := x.Conn.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(struct{ io.Writer }{x.Conn}, r)
	}
	if n > 0 {
		x.c.BytesOut.Add(uint64(n))
	}
	return n, err
}

// WriteTo is ReadFrom's other direction: io.Copy out of the connection,
// counted as BytesIn.
func (x *Conn) WriteTo(w io.Writer) (int64, error) {
	var n int64
	var err error
	if wt, ok := x.Conn.(io.WriterTo); ok {
		n, err = wt.WriteTo(w)
	} else {
		n, err = io.Copy(w, struct{ io.Reader }{x.Conn})
	}
	if n > 0 {
		x.c.BytesIn.Add(uint64(n))
	}
	return n, err
}

// CloseWrite half-closes the wrapped connection, if it can.
func (x *Conn) CloseWrite() error {
	if cw, ok := x.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// Close closes the connection; the first call takes it off ConnsActive.
func (x *Conn) Close() error {
	if x.closed.CompareAndSwap(false, true) {
		x.c.ConnsActive.Add(-1)
	}
	return x.Conn.Close()
}
