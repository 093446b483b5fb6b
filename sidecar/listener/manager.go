// Package listener runs the sidecar's listeners and changes them live.
//
// Apply takes the complete set of listeners wanted. It binds every new
// address first; if any bind fails, it closes what it just bound and
// returns the error with nothing changed. Otherwise it commits: a
// listener whose Key is unchanged is not touched; one whose Key changed
// keeps its socket and gets the new handler (connections already
// accepted finish on the old one); a listener no longer wanted stops
// accepting, and its connections finish on their own.
//
// Every accepted connection is counted here, whatever serves it (L4,
// HTTP/1.1, h2c): connections total and active and the bytes read and
// written on it, on the Spec's Counters.
package listener

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"go.uber.org/zap"

	"github.com/detourmesh/detour/sidecar/stats"
)

// Handler serves accepted connections.
type Handler interface {
	// ServeConn owns c; it may block until c is done.
	ServeConn(c net.Conn)
}

// Drainer is a Handler that has its own connections to drain (an HTTP
// server) when it is replaced, removed or shut down.
type Drainer interface {
	Drain(ctx context.Context) error
	// Close ends whatever Drain did not.
	Close() error
}

// Spec is one wanted listener.
type Spec struct {
	Listen string
	// Key identifies the handler's configuration; equal Keys keep the
	// running handler.
	Key string
	// New builds the handler, only when needed.
	New func(addr net.Addr) Handler
	// Counters, if not nil, count the listener's connections and their
	// bytes (stats.Conn). They go with the handler: a changed Key takes
	// the new Spec's.
	Counters *stats.Counters
	// MaxConns caps the listener's open connections (counted on
	// Counters, which it needs): one more is closed as soon as it is
	// accepted and counted conn_limit. 0: no cap.
	MaxConns int64
}

// Manager owns the listeners. Safe for concurrent use.
type Manager struct {
	log    *zap.Logger
	listen func(network, addr string) (net.Listener, error)

	mu     sync.Mutex
	ls     map[string]*entry
	closed bool
	wg     sync.WaitGroup // accept loops and connections

	connsMu sync.Mutex
	conns   map[net.Conn]struct{}
	retired []Handler
}

type entry struct {
	spec Spec
	ln   net.Listener
	h    atomicHandler
}

// Option configures a Manager.
type Option func(*Manager)

// WithLogger sets the logger.
func WithLogger(l *zap.Logger) Option {
	return func(m *Manager) { m.log = l.Named("sidecar.listener") }
}

// WithListen replaces net.Listen (tests).
func WithListen(f func(network, addr string) (net.Listener, error)) Option {
	return func(m *Manager) { m.listen = f }
}

// New returns a manager with no listeners.
func New(opts ...Option) *Manager {
	m := &Manager{log: zap.NewNop(), listen: net.Listen, ls: map[string]*entry{}, conns: map[net.Conn]struct{}{}}
	for _, o := range opts {
		o(m)
	}
	return m
}

// ErrClosed: the manager was shut down.
var ErrClosed = errors.New("listener manager closed")

// Apply makes specs the listeners, all or nothing.
func (m *Manager) Apply(specs []Spec) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	want := make(map[string]Spec, len(specs))
	for _, s := range specs {
		if _, dup := want[s.Listen]; dup {
			return fmt.Errorf("listen %s: used twice", s.Listen)
		}
		want[s.Listen] = s
	}
	bound := map[string]net.Listener{}
	for addr := range want {
		if _, ok := m.ls[addr]; ok {
			continue
		}
		ln, err := m.listen("tcp", addr)
		if err != nil {
			for _, l := range bound {
				l.Close()
			}
			return fmt.Errorf("bind %s: %w", addr, err)
		}
		bound[addr] = ln
	}
	for addr, e := range m.ls {
		s, ok := want[addr]
		switch {
		case !ok:
			e.ln.Close()
			delete(m.ls, addr)
			m.retire(e.h.load())
			m.log.Info("listener removed", zap.String("addr", addr))
		case s.Key != e.spec.Key:
			old := e.h.load()
			e.h.store(s.New(e.ln.Addr()), s.Counters, s.MaxConns)
			e.spec = s
			m.retire(old)
			m.log.Info("listener changed", zap.String("addr", addr))
		}
	}
	for addr, ln := range bound {
		s := want[addr]
		e := &entry{spec: s, ln: ln}
		e.h.store(s.New(ln.Addr()), s.Counters, s.MaxConns)
		m.ls[addr] = e
		m.wg.Add(1)
		go m.accept(e)
		m.log.Info("listener added", zap.String("addr", addr))
	}
	return nil
}

// Addr returns the bound address of the listener for listen (useful with
// port 0), or nil.
func (m *Manager) Addr(listen string) net.Addr {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.ls[listen]; ok {
		return e.ln.Addr()
	}
	return nil
}

func (m *Manager) retire(h Handler) {
	d, ok := h.(Drainer)
	if !ok {
		return
	}
	m.connsMu.Lock()
	m.retired = append(m.retired, h)
	m.connsMu.Unlock()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		d.Drain(context.Background())
		m.connsMu.Lock()
		defer m.connsMu.Unlock()
		for i, r := range m.retired {
			if r == h {
				m.retired = append(m.retired[:i], m.retired[i+1:]...)
				break
			}
		}
	}()
}

func (m *Manager) accept(e *entry) {
	defer m.wg.Done()
	for {
		c, err := e.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		box := e.h.loadBox()
		h := box.h
		if box.c != nil {
			if box.max > 0 && box.c.ConnsActive.Load() >= box.max {
				// Closed before any byte is read: the client sees a
				// plain close, not a reset, when it has sent nothing.
				box.c.Fail(stats.ConnLimit)
				c.Close()
				continue
			}
			c = stats.Accepted(c, box.c)
		}
		if _, ok := h.(Drainer); ok {
			// HTTP servers track their own connections.
			h.ServeConn(c)
			continue
		}
		m.connsMu.Lock()
		m.conns[c] = struct{}{}
		m.connsMu.Unlock()
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			h.ServeConn(c)
			m.connsMu.Lock()
			delete(m.conns, c)
			m.connsMu.Unlock()
		}()
	}
}

// Shutdown stops accepting on every listener, waits for connections to
// finish until ctx ends, then closes the rest. Apply fails afterwards.
func (m *Manager) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	m.closed = true
	var drainers []Drainer
	for addr, e := range m.ls {
		e.ln.Close()
		if d, ok := e.h.load().(Drainer); ok {
			drainers = append(drainers, d)
		}
		delete(m.ls, addr)
	}
	m.mu.Unlock()
	m.connsMu.Lock()
	for _, h := range m.retired {
		drainers = append(drainers, h.(Drainer))
	}
	m.connsMu.Unlock()

	done := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		for _, d := range drainers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d.Drain(ctx)
			}()
		}
		wg.Wait()
		m.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	m.connsMu.Lock()
	n := len(m.conns)
	for c := range m.conns {
		c.Close()
	}
	m.connsMu.Unlock()
	for _, d := range drainers {
		d.Close()
	}
	<-done
	return fmt.Errorf("drain: %d connections still open at the deadline, closed: %w", n, ctx.Err())
}
