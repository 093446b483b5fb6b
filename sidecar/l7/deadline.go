package l7

import (
	"errors"
	"net"
	"os"
	"time"
)

// Setting a deadline is a runtime timer operation, and the HTTP/1.1
// path wants several per request (the client's idle and head deadlines,
// a gap per write, the upstream's request deadline and its checks that
// the client is still there). lazyConn keeps them without one timer
// operation each: the deadline armed on the connection is never later
// than the one wanted, and is moved only when the wanted one comes
// earlier. One that fires before the wanted one (which has moved on
// since) is armed again and the read or write goes on; so a deadline
// costs a timer operation once per its length, not once per request, and
// still fires when it should.

// lazyDeadline is one direction's deadline: want is what the caller
// asked for (zero: none), armed what the connection has.
type lazyDeadline struct{ want, armed time.Time }

// move sets the wanted deadline and reports whether it must be armed now.
func (d *lazyDeadline) move(t time.Time) bool {
	d.want = t
	if t.IsZero() || !d.armed.IsZero() && !t.Before(d.armed) {
		return false
	}
	d.armed = t
	return true
}

// lazyConn is a connection whose deadlines are lazyDeadlines. Its reads
// and writes go on past a deadline that fired early; stop, if set, says
// that a deadline was cut on purpose from outside (a drain), so the
// error stands.
type lazyConn struct {
	net.Conn
	rd, wd lazyDeadline
	stop   func() bool
}

func (c *lazyConn) SetReadDeadline(t time.Time) error {
	if c.rd.move(t) {
		return c.Conn.SetReadDeadline(t)
	}
	return nil
}

func (c *lazyConn) SetWriteDeadline(t time.Time) error {
	if c.wd.move(t) {
		return c.Conn.SetWriteDeadline(t)
	}
	return nil
}

func (c *lazyConn) SetDeadline(t time.Time) error {
	err := c.SetReadDeadline(t)
	if werr := c.SetWriteDeadline(t); err == nil {
		err = werr
	}
	return err
}

func (c *lazyConn) Read(p []byte) (int, error) {
	for {
		n, err := c.Conn.Read(p)
		if n > 0 || err == nil || !errors.Is(err, os.ErrDeadlineExceeded) || !c.early(&c.rd, false) {
			return n, err
		}
	}
}

func (c *lazyConn) Write(p []byte) (int, error) {
	n := 0
	for {
		m, err := c.Conn.Write(p[n:])
		n += m
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) || !c.early(&c.wd, true) {
			return n, err
		}
	}
}

// early reports whether the deadline that fired came before the wanted
// one, after arming that one.
func (c *lazyConn) early(d *lazyDeadline, write bool) bool {
	if c.stop != nil && c.stop() {
		return false
	}
	if !d.want.IsZero() && !time.Now().Before(d.want) {
		return false
	}
	d.armed = d.want
	if write {
		c.Conn.SetWriteDeadline(d.want)
	} else {
		c.Conn.SetReadDeadline(d.want)
	}
	// A stop that came between the check and the arming was overwritten.
	return c.stop == nil || !c.stop()
}

// limitReader is the client connection's reader: limited while a request
// head is read, unlimited for bodies. While a body is read, gap > 0
// bounds each read: a body that stops coming for that long ends with a
// timeout (a deadline per read of up to 16 KiB, not per byte). headBy,
// when set, is the head deadline that the next read arms (a head that did
// not come whole in its first segment).
type limitReader struct {
	c      net.Conn
	remain int64
	gap    time.Duration
	headBy time.Time
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.remain <= 0 {
		return 0, errors.New("request head too large")
	}
	if int64(len(p)) > l.remain {
		p = p[:l.remain]
	}
	if l.gap > 0 {
		l.c.SetReadDeadline(time.Now().Add(l.gap))
	} else if !l.headBy.IsZero() {
		l.c.SetReadDeadline(l.headBy)
		l.headBy = time.Time{}
	}
	n, err := l.c.Read(p)
	l.remain -= int64(n)
	return n, err
}

// writeGap bounds each write to the client: one that cannot finish for
// gap (a client that stops reading its answer) fails, and the connection
// closes. Deadlines are per write, so a long answer that keeps moving is
// never cut.
type writeGap struct {
	c   net.Conn
	gap time.Duration
}

func (w writeGap) Write(p []byte) (int, error) {
	w.c.SetWriteDeadline(time.Now().Add(w.gap))
	return w.c.Write(p)
}
