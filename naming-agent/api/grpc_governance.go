package api

import (
	"context"

	"github.com/detourmesh/detour/api/agentpb"
	"github.com/detourmesh/detour/internal/governance"
)

// The routes and limits RPCs carry the sidecar's own messages; the agent
// keeps its JSON form (api/agentjson), so each call converts once.

func (s *agentServer) GetRoutes(ctx context.Context, req *agentpb.ServiceRequest) (*agentpb.RoutesResponse, error) {
	if err := s.read(ctx); err != nil {
		return nil, grpcError(err)
	}
	r, err := s.a.Routes(req.GetService())
	if err != nil {
		return nil, grpcError(err)
	}
	return &agentpb.RoutesResponse{Service: req.GetService(), Routes: governance.RoutesProto(r)}, nil
}

func (s *agentServer) SetRoutes(ctx context.Context, req *agentpb.SetRoutesRequest) (*agentpb.RoutesResponse, error) {
	if err := s.auth.allow(grpcToken(ctx), req.GetService(), 0); err != nil {
		return nil, grpcError(err)
	}
	if err := s.a.SetRoutes(req.GetService(), governance.RoutesFromProto(req.GetRoutes())); err != nil {
		return nil, grpcError(err)
	}
	return &agentpb.RoutesResponse{Service: req.GetService(), Routes: req.GetRoutes()}, nil
}

func (s *agentServer) GetLimits(ctx context.Context, req *agentpb.ServiceRequest) (*agentpb.LimitsResponse, error) {
	if err := s.read(ctx); err != nil {
		return nil, grpcError(err)
	}
	l, err := s.a.Limit(req.GetService())
	if err != nil {
		return nil, grpcError(err)
	}
	return &agentpb.LimitsResponse{Service: req.GetService(), Limits: governance.LimitProto(l)}, nil
}

func (s *agentServer) SetLimits(ctx context.Context, req *agentpb.SetLimitsRequest) (*agentpb.LimitsResponse, error) {
	if err := s.auth.allow(grpcToken(ctx), req.GetService(), 0); err != nil {
		return nil, grpcError(err)
	}
	if err := s.a.SetLimit(req.GetService(), governance.LimitFromProto(req.GetLimits())); err != nil {
		return nil, grpcError(err)
	}
	return &agentpb.LimitsResponse{Service: req.GetService(), Limits: req.GetLimits()}, nil
}
