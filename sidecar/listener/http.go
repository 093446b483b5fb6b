package listener

import (
	"context"
	"net"
	"net/http"
	"time"
)

// HTTP is a Handler that serves HTTP/1.1 and h2c (prior knowledge) on
// the connections it is handed, with its own http.Server.
type HTTP struct {
	ln   *ChanListener
	srv  *http.Server
	done chan struct{}
}

// NewHTTP starts serving h; idle closes keep-alive connections idle that
// long (0: never).
func NewHTTP(addr net.Addr, h http.Handler, idle time.Duration) *HTTP {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	s := &HTTP{
		ln:   NewChanListener(addr),
		srv:  &http.Server{Handler: h, Protocols: p, IdleTimeout: idle, ReadHeaderTimeout: 30 * time.Second},
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		s.srv.Serve(s.ln)
	}()
	return s
}

// ServeConn hands c to the server.
func (s *HTTP) ServeConn(c net.Conn) { s.ln.ServeConn(c) }

// Drain stops accepting and waits for requests in flight, until ctx ends.
func (s *HTTP) Drain(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}

// Close closes every connection at once.
func (s *HTTP) Close() error {
	err := s.srv.Close()
	<-s.done
	return err
}
