package nacos

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	pb "github.com/nacos-group/nacos-sdk-go/v2/api/grpc"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/detourmesh/detour/naming-agent/frontend"
)

// ErrClosed is what Serve returns once Close was called.
var ErrClosed = errors.New("nacos front end: closed")

// FirstWait bounds how long a query or subscription of a service waits
// for the agent's first answer (the cache answers at once; a service
// never seen waits for the registry).
const FirstWait = 2 * time.Second

// Server is the Nacos front end. Create it with New, then Serve.
//
// mu guards conns, byRemote, services, known, beats and refClock; it is
// never held while calling the core's Publish or Unpublish, nor while
// sending on a stream.
type Server struct {
	cfg    Config
	core   frontend.Core
	log    *zap.Logger
	now    func() time.Time
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	grpc   *grpc.Server
	http   *http.Server
	udp    atomic.Pointer[net.UDPConn] // 1.x pushes; nil: none

	mu       sync.Mutex
	conns    map[string]*conn    // by connection ID
	byRemote map[string]*conn    // by client address
	services map[key]*service    // watched services
	known    map[key]bool        // every service an app named, for the service list
	beats    map[string]*beating // HTTP-registered ephemeral instances, by mesh service
	refClock uint64              // last lastRefTime handed out
	pushSeq  uint64
}

// Option configures New.
type Option func(*Server)

// WithLogger hands the server a logger; the default logs nothing.
func WithLogger(l *zap.Logger) Option {
	return func(s *Server) {
		if l != nil {
			s.log = l
		}
	}
}

// New returns a server over core.
func New(cfg Config, core frontend.Core, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg: cfg, core: core, log: zap.NewNop(), now: time.Now, ctx: ctx, cancel: cancel,
		conns: map[string]*conn{}, byRemote: map[string]*conn{}, services: map[key]*service{},
		known: map[key]bool{}, beats: map[string]*beating{},
	}
	for _, opt := range opts {
		opt(s)
	}
	s.log = s.log.Named("frontend.nacos")
	s.grpc = grpc.NewServer(
		grpc.WaitForHandlers(true),
		grpc.MaxRecvMsgSize(cfg.MaxMessageBytes),
		// A connection idles between small requests and pushes: a small
		// read buffer (gRPC's 32 KiB, held per connection, was most of a
		// connection's memory; its write buffer is pooled already).
		grpc.ReadBufferSize(4<<10),
		// nacos-sdk-go pings every 60 s even without streams; gRPC's
		// default policy (5 min) would answer with GOAWAY.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)
	pb.RegisterRequestServer(s.grpc, requestService{s})
	pb.RegisterBiRequestStreamServer(s.grpc, streamService{s})
	s.http = &http.Server{Handler: s.httpHandler(), ReadHeaderTimeout: 10 * time.Second}
	return s, nil
}

// Serve serves HTTP on httpLn and gRPC on grpcLn (see Listen) until
// Close, then returns ErrClosed. It first ends, after
// Config.RestoreGrace, the publications of an earlier run's connections
// that no app took over by registering again.
func (s *Server) Serve(httpLn, grpcLn net.Listener) error {
	if host, _, err := net.SplitHostPort(httpLn.Addr().String()); err == nil {
		s.listenUDP(host)
	}
	s.wg.Add(4)
	go func() {
		defer s.wg.Done()
		s.restore()
	}()
	go func() {
		defer s.wg.Done()
		s.housekeep()
	}()
	errs := make(chan error, 2)
	go func() {
		defer s.wg.Done()
		errs <- s.grpc.Serve(trackingListener{Listener: grpcLn, s: s})
	}()
	go func() {
		defer s.wg.Done()
		errs <- s.http.Serve(httpLn)
	}()
	err := <-errs
	if s.ctx.Err() != nil {
		return ErrClosed
	}
	return err
}

// Close stops serving: every connection is closed and watches stop.
// Publications outlive it (the agent keeps them): the apps reconnect to
// the next run and register again, taking them over; those that do not
// within its RestoreGrace are ended then, as are HTTP ephemeral
// instances whose heartbeats do not resume. It is idempotent.
func (s *Server) Close() {
	if s.ctx.Err() != nil {
		return
	}
	s.cancel()
	s.grpc.Stop()
	_ = s.http.Close()
	if uc := s.udp.Load(); uc != nil {
		uc.Close()
	}
	s.wg.Wait()
}

// restore waits out the grace, then ends the publications of owners
// that are not live: an earlier run's connections whose apps did not
// register again, and HTTP instances whose beats did not resume.
func (s *Server) restore() {
	select {
	case <-time.After(s.cfg.RestoreGrace):
	case <-s.ctx.Done():
		return
	}
	for _, p := range s.core.Owned(OwnerPrefix) {
		if p.Owner == ownerPersistent || s.live(p.Owner, p.Service) {
			continue
		}
		s.unpublish(p.Owner, p.Service, "its connection did not come back after the agent's restart")
	}
}

// live reports whether owner is a connection the server holds, or the
// HTTP owner with a beating instance of service.
func (s *Server) live(owner, service string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if owner == ownerHTTP {
		return s.beats[service] != nil
	}
	_, ok := s.conns[owner[len(OwnerPrefix):]]
	return ok
}

// unpublish ends owner's publication of service, logging why.
func (s *Server) unpublish(owner, service, why string) {
	if err := s.core.Unpublish(owner, service); errors.Is(err, frontend.ErrNotHeld) {
		return // taken over by a newer connection of the same app
	} else if err != nil {
		s.log.Warn("instance not unpublished", zap.String("service", service), zap.String("owner", owner), zap.Error(err))
		return
	}
	s.log.Info("instance unpublished: "+why, zap.String("service", service), zap.String("owner", owner))
}

// nextRefTimeLocked returns a lastRefTime later than every one handed
// out: nacos-sdk-go drops a push whose time is not after its cache's.
func (s *Server) nextRefTimeLocked() uint64 {
	now := uint64(s.now().UnixMilli())
	s.refClock = max(now, s.refClock+1)
	return s.refClock
}

// housekeep ends HTTP instances whose beats stopped and idle watches.
func (s *Server) housekeep() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.ctx.Done():
			return
		}
		s.sweepBeats()
		s.sweepIdle()
	}
}
