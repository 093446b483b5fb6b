package nacos

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"time"

	pb "github.com/nacos-group/nacos-sdk-go/v2/api/grpc"
	"go.uber.org/zap"

	"github.com/detourmesh/detour/internal/nacoswire"
)

// conn is one client TCP connection, which is one Nacos connection and
// the owner ("nacos/ID") of the instances registered on it.
type conn struct {
	id     string
	remote string
	tc     net.Conn // drops the Nacos connection when closed
	// setupDone is closed when the ConnectionSetupRequest arrives.
	setupDone chan struct{}
	// wake tells the connection's push loop that pending has work.
	wake chan struct{}
	// quit is closed when the connection is dropped; pushDone when its
	// push loop (if started) has returned.
	quit, pushDone chan struct{}

	// Guarded by Server.mu.
	setup      bool
	gone       bool
	published  map[string]key          // mesh service -> the Nacos service registered
	subscribed map[key]map[string]bool // service -> the cluster filters asked for
	pending    map[key]bool            // services whose push is due
	labels     map[string]string       // from the setup
	// stream is the bi-stream that set the connection up: the push loop
	// sends on it (set before the loop starts, read only by it).
	stream  pb.BiRequestStream_RequestBiStreamServer
	pushing bool // the push loop was started
}

func (c *conn) owner() string { return OwnerPrefix + c.id }

// trackingListener tells the server about every accepted connection, so
// it hands out connection IDs and ends a connection's instances when
// its TCP connection closes.
type trackingListener struct {
	net.Listener
	s *Server
}

func (l trackingListener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if tc := l.s.accepted(nc); tc != nil {
			return tc, nil
		}
	}
}

// accepted registers nc, or closes it and returns nil past
// MaxConnections. A connection not set up within SetupTimeout is closed.
func (s *Server) accepted(nc net.Conn) net.Conn {
	remote := nc.RemoteAddr().String()
	id := fmt.Sprintf("%d_%s", time.Now().UnixMilli(), remote)
	if host, port, err := net.SplitHostPort(remote); err == nil {
		id = fmt.Sprintf("%d_%s_%s", time.Now().UnixMilli(), host, port)
	}
	c := &conn{
		id: id, remote: remote, setupDone: make(chan struct{}), wake: make(chan struct{}, 1),
		quit: make(chan struct{}), pushDone: make(chan struct{}),
		published: map[string]key{}, subscribed: map[key]map[string]bool{}, pending: map[key]bool{},
	}
	tc := nacoswire.OnClose(nc, func() { s.drop(c) })
	c.tc = tc
	s.mu.Lock()
	if s.cfg.MaxConnections > 0 && len(s.conns) >= s.cfg.MaxConnections {
		s.mu.Unlock()
		s.log.Warn("connection refused: max_connections reached", zap.String("addr", remote), zap.Int("max_connections", s.cfg.MaxConnections))
		nc.Close()
		return nil
	}
	s.conns[id] = c
	s.byRemote[remote] = c
	s.mu.Unlock()
	// Called from the gRPC server's accept loop, which Close waits for.
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTimer(s.cfg.SetupTimeout)
		defer t.Stop()
		select {
		case <-c.setupDone:
		case <-s.ctx.Done():
		case <-t.C:
			s.log.Debug("connection closed: no setup in time", zap.String("conn", id))
			tc.Close()
		}
	}()
	return tc
}

// connOf returns the connection a request or stream arrived on, or nil
// when the server no longer holds it.
func (s *Server) connOf(ctx context.Context) *conn {
	addr, ok := nacoswire.PeerAddr(ctx)
	if !ok {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byRemote[addr]
}

// setupGrace: Nacos answers a request before the connection's setup
// with "connection is unregistered" (the SDK reconnects); a request
// that overtook its setup on a loaded machine waits this long first.
const setupGrace = 2 * time.Second

// registered waits for c's setup, up to setupGrace, and reports whether
// c is a set-up connection the server still holds.
func (s *Server) registered(ctx context.Context, c *conn) bool {
	nacoswire.AwaitSetup(ctx, c.setupDone, setupGrace)
	s.mu.Lock()
	defer s.mu.Unlock()
	return c.setup && !c.gone
}

// setupConn records c's setup and the stream to push on; false if c was
// set up before or is gone.
func (s *Server) setupConn(c *conn, labels map[string]string, stream pb.BiRequestStream_RequestBiStreamServer) bool {
	s.mu.Lock()
	if c.gone || c.setup {
		s.mu.Unlock()
		return false
	}
	c.setup = true
	c.stream = stream
	c.labels = maps.Clone(labels)
	s.mu.Unlock()
	close(c.setupDone)
	s.log.Debug("connection set up", zap.String("conn", c.id))
	return true
}

// drop forgets c: its instances are unpublished and its subscriptions
// end, as Nacos does when a connection is unregistered; not when the
// server closes. Idempotent.
func (s *Server) drop(c *conn) {
	s.mu.Lock()
	if c.gone {
		s.mu.Unlock()
		return
	}
	c.gone = true
	close(c.quit)
	delete(s.conns, c.id)
	if s.byRemote[c.remote] == c {
		delete(s.byRemote, c.remote)
	}
	for k := range c.subscribed {
		if svc := s.services[k]; svc != nil {
			delete(svc.subscribers, c)
		}
	}
	clear(c.subscribed)
	pubs := slices.Sorted(maps.Keys(c.published))
	clear(c.published)
	s.mu.Unlock()
	if s.ctx.Err() != nil {
		// The server is closing (the agent stops or restarts): the
		// publications stay for the apps, which reconnect to the next
		// run and register again (see restore).
		return
	}
	for _, mesh := range pubs {
		s.unpublish(c.owner(), mesh, "its connection ended")
	}
	s.log.Debug("connection dropped", zap.String("conn", c.id))
}

// ConnCount is the number of gRPC connections the server holds.
func (s *Server) ConnCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}
