package nacostestserver

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	pb "github.com/nacos-group/nacos-sdk-go/v2/api/grpc"
	"go.uber.org/zap"

	"github.com/detourmesh/detour/internal/nacoswire"
)

// ErrUnknownConnection is returned by DropConnection for an ID the server
// does not hold (never seen, or already gone).
var ErrUnknownConnection = errors.New("nacostestserver: unknown connection")

// ConnInfo describes one client connection.
type ConnInfo struct {
	// ID is the connection ID the server handed out in its ServerCheck
	// answer, Nacos-style: "<unix ms>_<client ip>_<client port>".
	ID         string
	RemoteAddr string
	// Setup reports whether the client sent its ConnectionSetupRequest;
	// ClientVersion and Labels come from it.
	Setup         bool
	ClientVersion string
	Labels        map[string]string
}

// conn is one client TCP connection, which is one Nacos connection.
type conn struct {
	id     string
	remote string
	tc     net.Conn // drops the Nacos connection when closed
	// setupDone is closed when the client's ConnectionSetupRequest
	// arrives.
	setupDone chan struct{}

	// Guarded by Server.mu.
	setup         bool
	gone          bool
	clientVersion string
	labels        map[string]string
	published     map[serviceKey]bool
	subscribed    map[serviceKey]bool

	// sendMu orders pushes on the bi-stream; stream is nil until setup
	// and after the stream handler returned.
	sendMu sync.Mutex
	stream pb.BiRequestStream_RequestBiStreamServer
}

// send pushes p to the client, unless its stream is gone. Errors are the
// connection's end, which the stream handler sees too.
func (c *conn) send(p *pb.Payload) {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if c.stream != nil {
		_ = c.stream.Send(p)
	}
}

// trackingListener tells the server about every accepted connection, so
// it can hand out connection IDs and close a connection on purpose.
type trackingListener struct {
	net.Listener
	s *Server
}

func (l trackingListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.s.accepted(nc), nil
}

func (s *Server) accepted(nc net.Conn) net.Conn {
	remote := nc.RemoteAddr().String()
	id := fmt.Sprintf("%d_%s", time.Now().UnixMilli(), strings.ReplaceAll(remote, ":", "_"))
	if host, port, err := net.SplitHostPort(remote); err == nil {
		id = fmt.Sprintf("%d_%s_%s", time.Now().UnixMilli(), host, port)
	}
	c := &conn{
		id:         id,
		remote:     remote,
		setupDone:  make(chan struct{}),
		published:  map[serviceKey]bool{},
		subscribed: map[serviceKey]bool{},
	}
	tc := nacoswire.OnClose(nc, func() { s.drop(c) })
	c.tc = tc
	s.mu.Lock()
	s.conns[id] = c
	s.byRemote[remote] = c
	s.mu.Unlock()
	return tc
}

// connOf returns the connection a request or stream arrived on, or nil
// when the server no longer holds it (dropped).
func (s *Server) connOf(ctx context.Context) *conn {
	addr, ok := nacoswire.PeerAddr(ctx)
	if !ok {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byRemote[addr]
}

// registered waits for c's ConnectionSetupRequest, up to the setup grace,
// and reports whether c is a set-up connection the server still holds.
// Nacos answers a request that comes before the setup with "connection is
// unregistered" at once; the grace spares tests on a loaded machine the
// reconnect that answer causes (the SDK sends its first request 100 ms
// after the setup).
func (s *Server) registered(ctx context.Context, c *conn) bool {
	nacoswire.AwaitSetup(ctx, c.setupDone, s.setupGrace)
	s.mu.Lock()
	defer s.mu.Unlock()
	return c.setup && !c.gone
}

// setup records c's ConnectionSetupRequest and the stream to push on.
func (s *Server) setup(c *conn, stream pb.BiRequestStream_RequestBiStreamServer, req nacoswire.SetupRequest) {
	s.mu.Lock()
	if c.gone || c.setup {
		s.mu.Unlock()
		return
	}
	c.setup = true
	c.clientVersion = req.ClientVersion
	c.labels = maps.Clone(req.Labels)
	s.mu.Unlock()
	c.sendMu.Lock()
	c.stream = stream
	c.sendMu.Unlock()
	close(c.setupDone)
	s.log.Debug("connection set up", zap.String("conn", c.id), zap.Any("labels", req.Labels))
}

// streamEnded is called when c's bi-stream handler returns: like Nacos,
// the server unregisters the connection, forgetting its instances.
func (s *Server) streamEnded(c *conn, stream pb.BiRequestStream_RequestBiStreamServer) {
	c.sendMu.Lock()
	mine := c.stream == stream
	if mine {
		c.stream = nil
	}
	c.sendMu.Unlock()
	if mine {
		s.drop(c)
	}
}

// drop unregisters c: its instances and subscriptions go, and subscribers
// of the services it published are told. It is idempotent and returns
// once the server's state no longer has c.
func (s *Server) drop(c *conn) {
	s.mu.Lock()
	if c.gone {
		s.mu.Unlock()
		return
	}
	c.gone = true
	delete(s.conns, c.id)
	if s.byRemote[c.remote] == c {
		delete(s.byRemote, c.remote)
	}
	pushes := s.forgetLocked(c)
	s.mu.Unlock()
	c.sendMu.Lock()
	c.stream = nil
	c.sendMu.Unlock()
	s.log.Debug("connection dropped", zap.String("conn", c.id))
	s.send(pushes)
}

// DropConnection makes the server drop the connection with this ID, as a
// Nacos restart or a partition would: its ephemeral instances and
// subscriptions are forgotten (subscribers are told) and its TCP
// connection is closed. It returns once the state is gone; the client
// notices the closed connection and has to reconnect and register again.
func (s *Server) DropConnection(id string) error {
	s.mu.Lock()
	c := s.conns[id]
	s.mu.Unlock()
	if c == nil {
		return fmt.Errorf("%w: %q", ErrUnknownConnection, id)
	}
	s.drop(c)
	_ = c.tc.Close()
	return nil
}

// ResetConnection sends the client of the connection with this ID a
// ConnectResetRequest naming this server, as Nacos does to move a client
// to another server: the SDK connects anew and closes this connection,
// and the server then drops it.
func (s *Server) ResetConnection(id string) error {
	s.mu.Lock()
	c := s.conns[id]
	ok := c != nil && c.setup && !c.gone
	s.pushSeq++
	seq := s.pushSeq
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownConnection, id)
	}
	host, port, err := net.SplitHostPort(s.Addr())
	if err != nil {
		return err
	}
	c.send(nacoswire.Encode(nacoswire.TypeConnectReset, nacoswire.ResetRequest{
		RequestID: strconv.FormatUint(seq, 10), Module: "internal", ServerIP: host, ServerPort: port,
	}))
	return nil
}

// DropConnections drops every connection (see DropConnection), as a
// restart of the server would, and returns how many there were.
func (s *Server) DropConnections() int {
	s.mu.Lock()
	conns := slices.Collect(maps.Values(s.conns))
	s.mu.Unlock()
	for _, c := range conns {
		s.drop(c)
		_ = c.tc.Close()
	}
	return len(conns)
}

// Connections lists the connections the server holds, sorted by ID.
func (s *Server) Connections() []ConnInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ConnInfo, 0, len(s.conns))
	for _, c := range s.conns {
		out = append(out, ConnInfo{
			ID:            c.id,
			RemoteAddr:    c.remote,
			Setup:         c.setup,
			ClientVersion: c.clientVersion,
			Labels:        maps.Clone(c.labels),
		})
	}
	slices.SortFunc(out, func(a, b ConnInfo) int { return strings.Compare(a.ID, b.ID) })
	return out
}
