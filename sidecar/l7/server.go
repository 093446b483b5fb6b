package l7

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/detourmesh/detour/sidecar/coalesce"
	"github.com/detourmesh/detour/sidecar/listener"
	"github.com/detourmesh/detour/sidecar/stats"
)

// preface is how an h2c (prior knowledge) connection starts.
const preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// Server is an L7 listener's handler: HTTP/1.1 connections take the H1
// fast path, h2c connections (gRPC) go to an http.Server serving H2.
type Server struct {
	h1   *H1
	h2   *listener.HTTP
	idle time.Duration

	frames FrameProxy // when set, serves h2c instead of h2

	mu       sync.Mutex
	conns    map[net.Conn]*atomic.Int32
	wg       sync.WaitGroup
	draining atomic.Bool
}

// NewServer serves h1 and h2 on connections it is handed; upstream
// HTTP/1.1 connections are dialled with dial, kept idle up to idle.
func NewServer(addr net.Addr, h1 *H1, h2 http.Handler, dial DialFunc, connectTimeout, idle time.Duration) *Server {
	upIdle := idle
	if h1.UpstreamIdle > 0 {
		upIdle = h1.UpstreamIdle
	}
	h1.pool = newConnPool(dial, connectTimeout, upIdle, 256)
	return &Server{h1: h1, h2: listener.NewHTTP(addr, h2, idle), idle: idle, conns: map[net.Conn]*atomic.Int32{}}
}

// FrameProxy serves h2c connections frame by frame (sidecar/h2): c's
// bytes, the preface included, are read from r.
type FrameProxy interface {
	ServeConn(c net.Conn, r interface{ Read([]byte) (int, error) })
	Drain(ctx context.Context) error
	Close() error
}

// UseFrames hands h2c connections to fp instead of net/http; call it
// before the first connection.
func (s *Server) UseFrames(fp FrameProxy) { s.frames = fp }

// bufConn replays what was peeked.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (b bufConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// ServeConn serves c.
func (s *Server) ServeConn(c net.Conn) {
	state := new(atomic.Int32)
	s.mu.Lock()
	if s.draining.Load() {
		s.mu.Unlock()
		c.Close()
		return
	}
	s.conns[c] = state
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		handedOver := false
		defer func() {
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			if !handedOver {
				c.Close()
			}
		}()
		lr := &limitReader{c: c, remain: maxHeaderBytes}
		br := bufio.NewReaderSize(lr, 16<<10)
		// The first request's head (or h2c preface) must come whole
		// within the head timeout of the accept, as in nginx.
		if first := s.h1.HeadTimeout; first > 0 {
			c.SetReadDeadline(time.Now().Add(first))
		} else if s.idle > 0 {
			c.SetReadDeadline(time.Now().Add(s.idle))
		}
		for n := 1; n <= len(preface); n++ {
			b, err := br.Peek(n)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) && s.h1.HeadTimeout > 0 && !s.draining.Load() {
					s.h1.Listener.Fail(stats.HeadTimeout)
				}
				return
			}
			if b[n-1] != preface[n-1] {
				s.h1.serve(c, br, lr, s.idle, state, s.draining.Load)
				return
			}
		}
		c.SetReadDeadline(time.Time{})
		lr.remain = 1<<63 - 1
		if s.frames != nil {
			s.frames.ServeConn(c, br)
			return
		}
		handedOver = true
		// HTTP/2 flushes every frame; coalescing them saves most writes.
		s.h2.ServeConn(bufConn{Conn: coalesce.New(c), r: br})
	}()
}

// Drain stops taking requests: idle HTTP/1.1 connections close now,
// busy ones after their current request; h2c ones get GOAWAY. It waits
// until all are gone or ctx ends.
func (s *Server) Drain(ctx context.Context) error {
	s.mu.Lock()
	s.draining.Store(true)
	for c, st := range s.conns {
		if st.Load() == stateIdle {
			c.SetReadDeadline(time.Now())
		}
	}
	s.mu.Unlock()
	err := s.h2.Drain(ctx)
	if s.frames != nil {
		if ferr := s.frames.Drain(ctx); err == nil {
			err = ferr
		}
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.Close()
		<-done
		if err == nil {
			err = ctx.Err()
		}
	}
	s.h1.pool.close()
	return err
}

// Close closes every connection.
func (s *Server) Close() error {
	s.mu.Lock()
	s.draining.Store(true)
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	err := s.h2.Close()
	if s.frames != nil {
		s.frames.Close()
	}
	s.wg.Wait()
	s.h1.pool.close()
	return err
}
