package nacostestserver

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	pb "github.com/nacos-group/nacos-sdk-go/v2/api/grpc"
	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// GRPCPortOffset is how far above its HTTP port a Nacos server listens for
// gRPC, and where nacos-sdk-go looks for it.
const GRPCPortOffset = 1000

// Server is the test server. Create it with Start; it is ready when Start
// returns.
type Server struct {
	log        *zap.Logger
	setupGrace time.Duration
	httpLn     net.Listener
	grpcLn     net.Listener
	grpc       *grpc.Server
	http       *http.Server
	wg         sync.WaitGroup
	closeOnce  sync.Once
	auth       *authState // nil: no authentication (auth.go)

	mu       sync.Mutex
	conns    map[string]*conn // by connection ID
	byRemote map[string]*conn // by client address
	services map[serviceKey]*service
	refClock uint64 // last lastRefTime handed out
	pushSeq  uint64 // requestId of the last push
}

// Option configures Start.
type Option func(*Server)

// WithLogger makes the server log connections and drops at debug level.
// The default logs nothing.
func WithLogger(l *zap.Logger) Option {
	return func(s *Server) {
		if l != nil {
			s.log = l
		}
	}
}

// Start starts a server on a free pair of loopback ports, HTTP port P and
// gRPC port P+1000, the pair a Nacos client expects: configure clients
// with Addr. Only the gRPC port speaks; the HTTP port answers every
// request with 501, since nacos-sdk-go's naming client does not use HTTP,
// but for the login of WithAuth.
func Start(opts ...Option) (*Server, error) {
	s := &Server{
		log:        zap.NewNop(),
		setupGrace: 2 * time.Second,
		conns:      map[string]*conn{},
		byRemote:   map[string]*conn{},
		services:   map[serviceKey]*service{},
	}
	for _, opt := range opts {
		opt(s)
	}
	var err error
	s.httpLn, s.grpcLn, err = listenPair()
	if err != nil {
		return nil, err
	}
	s.grpc = grpc.NewServer(
		grpc.WaitForHandlers(true), // so Close returns after every handler
		// The SDK pings every 60 s even without streams; gRPC's default
		// policy (5 min) would answer with GOAWAY.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)
	pb.RegisterRequestServer(s.grpc, requestService{s})
	pb.RegisterBiRequestStreamServer(s.grpc, streamService{s})
	s.http = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if s.auth != nil && r.URL.Path == "/nacos/v1/auth/users/login" {
				s.auth.login(w, r)
				return
			}
			http.Error(w, "nacostestserver: the HTTP API is not implemented; use gRPC on port+1000", http.StatusNotImplemented)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		_ = s.grpc.Serve(trackingListener{Listener: s.grpcLn, s: s})
	}()
	go func() {
		defer s.wg.Done()
		_ = s.http.Serve(s.httpLn)
	}()
	return s, nil
}

// listenPair finds loopback ports P and P+1000 that are both free.
func listenPair() (httpLn, grpcLn net.Listener, err error) {
	for range 100 {
		httpLn, err = net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, fmt.Errorf("nacostestserver: listen: %w", err)
		}
		port := httpLn.Addr().(*net.TCPAddr).Port
		if port+GRPCPortOffset <= 65535 {
			grpcLn, err = net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+GRPCPortOffset)))
			if err == nil {
				return httpLn, grpcLn, nil
			}
		}
		_ = httpLn.Close()
	}
	return nil, nil, errors.New("nacostestserver: no free loopback port pair P, P+1000 after 100 tries")
}

// Addr is the address to configure a Nacos client with, "127.0.0.1:P",
// as for a real Nacos: P is the HTTP port and gRPC is on P+1000.
func (s *Server) Addr() string { return s.httpLn.Addr().String() }

// GRPCAddr is the address the gRPC services listen on, Addr's port + 1000.
func (s *Server) GRPCAddr() string { return s.grpcLn.Addr().String() }

// Close stops the server: every connection is closed and every goroutine
// it started has returned. It is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.grpc.Stop()
		_ = s.http.Close()
		s.wg.Wait()
	})
	return nil
}

// PutRawInstance stores in as an instance of service (namespace and group
// "" mean Nacos's defaults) that no connection owns, without the checks a
// registration gets: an IP that is no address, port 0, a weight out of
// range or any metadata are kept as they are, so tests can see what a
// client does with an entry it cannot use. Cluster, service name and
// instance ID are filled in when empty; the instance ID is returned.
// Subscribers are told. It stays until RemoveRawInstance or Close.
func (s *Server) PutRawInstance(namespace, group, service string, in model.Instance) string {
	k := newServiceKey(namespace, group, service)
	in = normalize(k, in)
	s.mu.Lock()
	s.serviceLocked(k).raw[in.InstanceId] = in
	pushes := s.changedLocked(k)
	s.mu.Unlock()
	s.send(pushes)
	return in.InstanceId
}

// RemoveRawInstance removes an instance written with PutRawInstance and
// reports whether there was one.
func (s *Server) RemoveRawInstance(namespace, group, service, instanceID string) bool {
	k := newServiceKey(namespace, group, service)
	s.mu.Lock()
	svc := s.services[k]
	if svc == nil {
		s.mu.Unlock()
		return false
	}
	if _, ok := svc.raw[instanceID]; !ok {
		s.mu.Unlock()
		return false
	}
	delete(svc.raw, instanceID)
	pushes := s.changedLocked(k)
	s.mu.Unlock()
	s.send(pushes)
	return true
}

// Instances returns every instance the server holds for service, from
// every connection and raw, enabled or not, sorted by instance ID.
func (s *Server) Instances(namespace, group, service string) []model.Instance {
	k := newServiceKey(namespace, group, service)
	s.mu.Lock()
	defer s.mu.Unlock()
	all := s.allLocked(k)
	for i := range all {
		all[i].Metadata = maps.Clone(all[i].Metadata)
	}
	return all
}
