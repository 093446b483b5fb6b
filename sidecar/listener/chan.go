package listener

import (
	"net"
	"sync"
)

// ChanListener is a net.Listener fed by ServeConn, so an http.Server can
// serve connections a Manager accepted.
type ChanListener struct {
	addr net.Addr
	ch   chan net.Conn
	once sync.Once
	done chan struct{}
}

// NewChanListener returns a listener reporting addr.
func NewChanListener(addr net.Addr) *ChanListener {
	return &ChanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

// ServeConn hands c to Accept, or closes it if the listener is closed.
func (l *ChanListener) ServeConn(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		c.Close()
	}
}

// Accept returns the next handed connection.
func (l *ChanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close makes Accept fail.
func (l *ChanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr is the address given to NewChanListener.
func (l *ChanListener) Addr() net.Addr { return l.addr }
