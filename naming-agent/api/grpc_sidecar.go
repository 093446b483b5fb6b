package api

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/detourmesh/detour/api/sidecarpb"
	"github.com/detourmesh/detour/naming-agent/agent"
	"github.com/detourmesh/detour/naming-agent/config"
)

// SidecarOption configures the sidecar control server.
type SidecarOption func(*sidecarServer)

// WithSidecarLogger sets the control server's logger.
func WithSidecarLogger(l *zap.Logger) SidecarOption {
	return func(s *sidecarServer) { s.log = l.Named("api.sidecar") }
}

// WithHelloTimeout bounds how long a new stream may take to send Hello.
func WithHelloTimeout(d time.Duration) SidecarOption {
	return func(s *sidecarServer) { s.helloTimeout = d }
}

// WithAuth makes the gRPC API ask for cfg's tokens (cfg.Token,
// cfg.ScopedTokens) on every mutation, as the HTTP API does.
func WithAuth(cfg config.API) SidecarOption {
	return func(s *sidecarServer) { s.auth = newAuth(cfg) }
}

// WithSidecarSecret makes the control stream ask for secret (the
// per-boot secret in DATA_DIR/sidecar.secret) or the API token in its
// metadata (SidecarSecretKey) before its Hello is heard: another local
// process cannot take the sidecar's place, nor learn who holds it.
func WithSidecarSecret(secret config.Secret) SidecarOption {
	return func(s *sidecarServer) { s.secret = secret }
}

func registerSidecar(g *grpc.Server, a *agent.Agent, opts ...SidecarOption) *sidecarServer {
	s := &sidecarServer{a: a, log: zap.NewNop(), helloTimeout: 5 * time.Second}
	for _, o := range opts {
		o(s)
	}
	sidecarpb.RegisterSidecarControlServer(g, s)
	return s
}

type sidecarServer struct {
	sidecarpb.UnimplementedSidecarControlServer
	a            *agent.Agent
	log          *zap.Logger
	helloTimeout time.Duration
	auth         *auth
	secret       config.Secret
}

// Control runs one sidecar stream: Hello first, then snapshots out and
// Ack/Nack/Status in, until either side ends it.
func (s *sidecarServer) Control(stream sidecarpb.SidecarControl_ControlServer) error {
	if err := checkSidecar(stream.Context(), s.secret, s.auth); err != nil {
		s.log.Warn("sidecar stream refused", zap.Error(err))
		return grpcError(err)
	}
	hello, err := s.recvHello(stream)
	if err != nil {
		return grpcError(err)
	}
	sess, err := s.a.SidecarConnect(hello)
	if err != nil {
		return grpcError(err)
	}
	defer sess.Close()

	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	sendErr := make(chan error, 1)
	go func() {
		for {
			snap, err := sess.Next(ctx)
			if err != nil {
				sendErr <- err
				cancel()
				return
			}
			if err := stream.Send(&sidecarpb.AgentMessage{Msg: &sidecarpb.AgentMessage_Snapshot{Snapshot: snap}}); err != nil {
				sendErr <- err
				cancel()
				return
			}
		}
	}()
	recvErr := s.recvLoop(stream, sess)
	cancel()
	err = <-sendErr
	if !errors.Is(recvErr, context.Canceled) { // recvLoop ends only on an error
		err = recvErr
	}
	if errors.Is(err, agent.ErrReplaced) || errors.Is(err, agent.ErrInvalid) || errors.Is(err, agent.ErrSidecarRefused) {
		return grpcError(err)
	}
	return nil
}

func (s *sidecarServer) recvHello(stream sidecarpb.SidecarControl_ControlServer) (*sidecarpb.Hello, error) {
	type result struct {
		msg *sidecarpb.SidecarMessage
		err error
	}
	ch := make(chan result, 1)
	go func() {
		m, err := stream.Recv()
		ch <- result{m, err}
	}()
	t := time.NewTimer(s.helloTimeout)
	defer t.Stop()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		h := r.msg.GetHello()
		if h == nil {
			return nil, fmt.Errorf("%w: the first message of a control stream must be Hello", agent.ErrInvalid)
		}
		return h, nil
	case <-t.C:
		// Returning ends the stream, which ends the pending Recv.
		return nil, fmt.Errorf("%w: no Hello within %v", agent.ErrInvalid, s.helloTimeout)
	}
}

func (s *sidecarServer) recvLoop(stream sidecarpb.SidecarControl_ControlServer, sess *agent.SidecarSession) error {
	for {
		m, err := stream.Recv()
		if err != nil {
			return err
		}
		switch msg := m.Msg.(type) {
		case *sidecarpb.SidecarMessage_Ack:
			sess.Ack(msg.Ack.GetVersion())
		case *sidecarpb.SidecarMessage_Nack:
			sess.Nack(msg.Nack.GetVersion(), msg.Nack.GetReason())
		case *sidecarpb.SidecarMessage_Status:
			sess.Status(msg.Status)
		case *sidecarpb.SidecarMessage_Hello:
			return fmt.Errorf("%w: Hello sent twice on one stream", agent.ErrInvalid)
		default:
			s.log.Warn("unknown message from the sidecar; ignored")
		}
	}
}
