package api

import (
	"context"
	"maps"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/detourmesh/detour/api/agentpb"
	"github.com/detourmesh/detour/naming-agent/agent"
)

// RegisterGRPC registers detour.agent.v1 and detour.sidecar.v1 on s.
func RegisterGRPC(s *grpc.Server, a *agent.Agent, opts ...SidecarOption) {
	sc := registerSidecar(s, a, opts...)
	agentpb.RegisterAgentServer(s, &agentServer{a: a, auth: sc.auth})
}

type agentServer struct {
	agentpb.UnimplementedAgentServer
	a    *agent.Agent
	auth *auth // mutations need the token when it is set (auth.go)
}

// read asks a valid token of a read when api.token_for_reads is set.
func (s *agentServer) read(ctx context.Context) error {
	if s.auth == nil || !s.auth.forReads {
		return nil
	}
	return s.auth.check(grpcToken(ctx))
}

func (s *agentServer) Publish(ctx context.Context, req *agentpb.PublishRequest) (*agentpb.Publication, error) {
	if err := s.auth.allow(grpcToken(ctx), req.GetService(), int(req.GetPort())); err != nil {
		return nil, grpcError(err)
	}
	pub, err := s.a.Publish(agent.PublishRequest{
		Service: req.GetService(), Port: int(req.GetPort()), Protocol: req.GetProtocol(), Metadata: req.GetMetadata(),
		Health: agent.HealthSpec{Type: req.GetHealth().GetType(), Path: req.GetHealth().GetPath()},
		Update: req.GetUpdate(),
	})
	if err != nil {
		return nil, grpcError(err)
	}
	return publicationPB(pub), nil
}

func (s *agentServer) Unpublish(ctx context.Context, req *agentpb.UnpublishRequest) (*agentpb.UnpublishResponse, error) {
	if err := s.auth.allow(grpcToken(ctx), req.GetService(), 0); err != nil {
		return nil, grpcError(err)
	}
	if err := s.a.Unpublish(req.GetService(), int(req.GetPort())); err != nil {
		return nil, grpcError(err)
	}
	return &agentpb.UnpublishResponse{}, nil
}

func (s *agentServer) Unsubscribe(ctx context.Context, req *agentpb.UnsubscribeRequest) (*agentpb.UnsubscribeResponse, error) {
	if err := s.auth.allow(grpcToken(ctx), req.GetService(), 0); err != nil {
		return nil, grpcError(err)
	}
	if err := s.a.Unsubscribe(req.GetService()); err != nil {
		return nil, grpcError(err)
	}
	return &agentpb.UnsubscribeResponse{}, nil
}

func (s *agentServer) Resolve(ctx context.Context, req *agentpb.ResolveRequest) (*agentpb.Answer, error) {
	if err := s.read(ctx); err != nil {
		return nil, grpcError(err)
	}
	ans, err := s.a.Resolve(ctx, req.GetService())
	if err != nil {
		return nil, grpcError(err)
	}
	return answerPB(ans), nil
}

func (s *agentServer) Subscribe(req *agentpb.SubscribeRequest, stream agentpb.Agent_SubscribeServer) error {
	if err := s.read(stream.Context()); err != nil {
		return grpcError(err)
	}
	err := s.a.Subscribe(stream.Context(), req.GetService(), req.GetRevision(), func(ans agent.Answer) error {
		return stream.Send(answerPB(ans))
	})
	if stream.Context().Err() != nil {
		return nil
	}
	return grpcError(err)
}

func (s *agentServer) SetMesh(ctx context.Context, req *agentpb.SetMeshRequest) (*agentpb.SetMeshResponse, error) {
	if err := s.auth.allow(grpcToken(ctx), req.GetService(), 0); err != nil {
		return nil, grpcError(err)
	}
	if err := s.a.SetMesh(req.GetService(), req.GetEnabled()); err != nil {
		return nil, grpcError(err)
	}
	return &agentpb.SetMeshResponse{Service: req.GetService(), Enabled: req.GetEnabled()}, nil
}

func (s *agentServer) Status(ctx context.Context, req *agentpb.StatusRequest) (*agentpb.StatusResponse, error) {
	if err := s.read(ctx); err != nil {
		return nil, grpcError(err)
	}
	st := s.a.Status()
	out := &agentpb.StatusResponse{
		HostIp: st.HostIP,
		Registry: &agentpb.RegistryStatus{
			Url: st.Registry.URL, Ok: st.Registry.OK, Error: st.Registry.Error,
		},
		MeshDisabled: st.MeshDisabled,
	}
	if st.Registry.ErrorSince != nil {
		out.Registry.ErrorSince = timestamppb.New(*st.Registry.ErrorSince)
	}
	sc := st.Sidecar
	out.Sidecar = &agentpb.SidecarStatus{
		State: sc.State, Connected: sc.Connected, AdminAddr: sc.AdminAddr,
		SentVersion: sc.SentVersion, AckedVersion: sc.AckedVersion, LastNack: sc.LastNack,
		ConsecutiveReady: uint32(sc.ConsecutiveReady), ConsecutiveFailed: uint32(sc.ConsecutiveFailed),
		Since: timestamppb.New(sc.Since),
	}
	for _, l := range sc.Listeners {
		out.Sidecar.Listeners = append(out.Sidecar.Listeners, &agentpb.ListenerState{Listen: l.Listen, Service: l.Service, Up: l.Up, Error: l.Error})
	}
	for _, e := range sc.Endpoints {
		out.Sidecar.Endpoints = append(out.Sidecar.Endpoints, &agentpb.EndpointState{Service: e.Service, Addr: e.Addr, State: e.State})
	}
	for _, p := range st.Publications {
		out.Publications = append(out.Publications, publicationPB(p))
	}
	for _, sub := range st.Subscriptions {
		out.Subscriptions = append(out.Subscriptions, &agentpb.Subscription{
			Service: sub.Service, Answer: answerPB(sub.Answer), Subscribers: uint32(sub.Subscribers),
			EgressPort: uint32(sub.EgressPort), MeshEnabled: sub.MeshEnabled, Error: sub.Error, FromCache: sub.FromCache,
		})
	}
	return out, nil
}

func publicationPB(p agent.Publication) *agentpb.Publication {
	return &agentpb.Publication{
		Service: p.Service, Port: uint32(p.Port), Protocol: p.Protocol, Metadata: maps.Clone(p.Metadata),
		Health:      &agentpb.HealthCheck{Type: p.Health.Type, Path: p.Health.Path},
		IngressPort: uint32(p.IngressPort), RegisteredAddr: p.RegisteredAddr, Mesh: p.Mesh,
		Healthy: p.Healthy, HealthSource: p.HealthSource, RegistryError: p.RegistryError,
	}
}

func answerPB(a agent.Answer) *agentpb.Answer {
	out := &agentpb.Answer{Service: a.Service, Mesh: a.Mesh, Revision: a.Revision, Governance: &agentpb.Governance{Mesh: a.Governance.Mesh}}
	for _, e := range a.Endpoints {
		out.Endpoints = append(out.Endpoints, &agentpb.Endpoint{Addr: e.Addr})
	}
	for _, e := range a.Fallback {
		out.Fallback = append(out.Fallback, &agentpb.Endpoint{Addr: e.Addr})
	}
	if r := a.Governance.Retries; r != nil {
		out.Governance.Retries = uint32(*r)
	}
	if t := a.Governance.TimeoutMS; t != nil {
		out.Governance.TimeoutMs = uint32(*t)
	}
	return out
}
