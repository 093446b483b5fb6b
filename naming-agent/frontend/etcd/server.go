package etcd

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"sync"
	"sync/atomic"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/detourmesh/detour/naming-agent/frontend"
)

// ErrClosed is what Serve returns once Close was called.
var ErrClosed = errors.New("etcd front end closed")

// grpcOverheadBytes is what etcd allows above --max-request-bytes for
// gRPC's own framing.
const grpcOverheadBytes = 512 * 1024

// Option configures a Server.
type Option func(*Server)

// WithLogger logs to log.
func WithLogger(log *zap.Logger) Option { return func(s *Server) { s.log = log } }

// WithHost names this host in the front end's own keys (its host IP):
// agents sharing one etcd keep their apps' keys apart.
func WithHost(host string) Option { return func(s *Server) { s.host = host } }

// WithAgentAuth: the upstream client logs in with the agent's own
// user, and every call runs as that user (an app's token is not
// forwarded; its Authenticate still is, so a wrong password fails).
func WithAgentAuth() Option { return func(s *Server) { s.agentAuth = true } }

// WithMalformed is called for a service key whose value does not parse
// (it is kept unrewritten).
func WithMalformed(fn func(key string, err error)) Option {
	return func(s *Server) { s.onMalformed = fn }
}

// Server is the etcd v3 front end: a gRPC server of etcd's KV, Watch,
// Lease, Cluster, Maintenance and Auth services in front of the
// upstream etcd, with service keys turned into publications and views.
type Server struct {
	cfg         Config
	core        frontend.Core
	log         *zap.Logger
	host        string
	onMalformed func(string, error)
	agentAuth   bool
	layouts     []layout
	memberID    uint64

	up    *clientv3.Client
	kv    pb.KVClient
	watch pb.WatchClient
	lease pb.LeaseClient
	maint pb.MaintenanceClient
	auth  pb.AuthClient

	markers string // prefix of the apps' registration keys upstream
	tickKey string // read for a header's revision
	viewsAt string // prefix of each read service's rendering
	views   *views
	owned   *owned

	streams   atomic.Int64
	Malformed atomic.Int64 // service keys kept unrewritten

	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	gs     *grpc.Server
	closed bool
	wg     sync.WaitGroup
}

// New returns a front end for core over the upstream etcd up (the
// registry's own etcd, or the embedded one). It starts following the
// apps' registration keys at once: publications of keys that are gone
// (their lease expired while the agent was down) are ended.
func New(cfg Config, core frontend.Core, up *clientv3.Client, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if up == nil {
		return nil, errors.New("etcd front end: no upstream etcd (the registry is not etcd or embedded)")
	}
	s := &Server{cfg: cfg, core: core, log: zap.NewNop(), host: "local", up: up}
	for _, o := range opts {
		o(s)
	}
	for _, l := range cfg.Layouts {
		s.layouts = append(s.layouts, layout{kind: l.Kind, prefix: l.Prefix})
	}
	conn := up.ActiveConnection()
	s.kv, s.watch, s.lease = pb.NewKVClient(conn), pb.NewWatchClient(conn), pb.NewLeaseClient(conn)
	s.maint, s.auth = pb.NewMaintenanceClient(conn), pb.NewAuthClient(conn)
	s.markers = cfg.StatePrefix + "/" + s.host + "/keys/"
	s.tickKey = cfg.StatePrefix + "/" + s.host + "/tick"
	s.viewsAt = cfg.StatePrefix + "/" + s.host + "/views/"
	h := fnv.New64a()
	h.Write([]byte(cfg.Name + "/" + s.host))
	s.memberID = h.Sum64()
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.views = newViews(s)
	s.owned = newOwned(s)
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.owned.follow(s.ctx) }()
	go func() { defer s.wg.Done(); s.views.janitor(s.ctx) }()
	return s, nil
}

// Serve serves l until Close.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.gs = grpc.NewServer(grpc.MaxRecvMsgSize(s.cfg.MaxRequestBytes + grpcOverheadBytes))
	pb.RegisterKVServer(s.gs, kvServer{s: s})
	pb.RegisterWatchServer(s.gs, watchServer{s: s})
	pb.RegisterLeaseServer(s.gs, leaseServer{s: s})
	pb.RegisterClusterServer(s.gs, clusterServer{s: s, addr: l.Addr().String()})
	pb.RegisterMaintenanceServer(s.gs, maintServer{s: s})
	pb.RegisterAuthServer(s.gs, authServer{s: s})
	gs := s.gs
	s.mu.Unlock()
	err := gs.Serve(l)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	return err
}

// Close stops serving and following. The apps' publications stay: their
// keys and leases live in the upstream etcd, and the next run takes
// them over.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	gs := s.gs
	s.mu.Unlock()
	s.cancel()
	if gs != nil {
		gs.Stop()
	}
	s.wg.Wait()
}

// fwd is the context of a call forwarded upstream: the app's auth token
// goes with it, so the upstream checks the app's own credentials, unless
// the front end logs in itself (WithAgentAuth).
func (s *Server) fwd(ctx context.Context) context.Context {
	if s.agentAuth {
		return ctx
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if t := md.Get(rpctypes.TokenFieldNameGRPC); len(t) > 0 {
			return metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, t[0])
		}
	}
	return ctx
}

// clusterServer answers MemberList with the front end as the only member:
// clients that re-read their endpoints from it stay here.
type clusterServer struct {
	pb.UnimplementedClusterServer
	s    *Server
	addr string
}

func (c clusterServer) MemberList(ctx context.Context, _ *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	hdr, err := c.s.header(ctx)
	if err != nil {
		return nil, err
	}
	url := "http://" + c.addr
	return &pb.MemberListResponse{Header: hdr, Members: []*pb.Member{{
		ID: c.s.memberID, Name: c.s.cfg.Name, ClientURLs: []string{url}, PeerURLs: []string{url},
	}}}, nil
}

// header is a header with the upstream's current revision.
func (s *Server) header(ctx context.Context) (*pb.ResponseHeader, error) {
	r, err := s.kv.Range(s.fwd(ctx), &pb.RangeRequest{Key: []byte(s.tickKey), CountOnly: true})
	if err != nil {
		return nil, err
	}
	h := r.Header
	h.MemberId = s.memberID
	return h, nil
}

// maintServer: Status and Alarm are the upstream's, with the front end
// as the member; what moves data or members is not offered.
type maintServer struct {
	pb.UnimplementedMaintenanceServer
	s *Server
}

func (m maintServer) Status(ctx context.Context, r *pb.StatusRequest) (*pb.StatusResponse, error) {
	resp, err := m.s.maint.Status(m.s.fwd(ctx), r)
	if err != nil {
		return nil, err
	}
	resp.Header.MemberId = m.s.memberID
	resp.Leader = m.s.memberID
	return resp, nil
}

func (m maintServer) Alarm(ctx context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	return m.s.maint.Alarm(m.s.fwd(ctx), r)
}

// authServer forwards what apps log in with: the upstream checks the
// app's own user and password, and its token comes back to the app.
type authServer struct {
	pb.UnimplementedAuthServer
	s *Server
}

func (a authServer) Authenticate(ctx context.Context, r *pb.AuthenticateRequest) (*pb.AuthenticateResponse, error) {
	return a.s.auth.Authenticate(a.s.fwd(ctx), r)
}

func (a authServer) AuthStatus(ctx context.Context, r *pb.AuthStatusRequest) (*pb.AuthStatusResponse, error) {
	return a.s.auth.AuthStatus(a.s.fwd(ctx), r)
}

func (s *Server) malformed(key string, err error) {
	s.Malformed.Add(1)
	s.log.Warn("service key kept unrewritten: its value does not parse", zap.String("key", key), zap.Error(err))
	if s.onMalformed != nil {
		s.onMalformed(key, err)
	}
}

// classify tells whether a Put of key is a service registration.
func (s *Server) classify(key string, value []byte, lease int64) (registration, bool) {
	for _, l := range s.layouts {
		r, err := l.parse(key, value, lease)
		if errors.Is(err, errNotLayout) {
			continue
		}
		if err != nil {
			s.malformed(key, fmt.Errorf("%s layout: %w", l.kind, err))
			return registration{}, false
		}
		return r, true
	}
	return registration{}, false
}
