package nacostestserver

import (
	"context"

	pb "github.com/nacos-group/nacos-sdk-go/v2/api/grpc"
	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/detourmesh/detour/internal/nacoswire"
)

// requestService implements the unary Request service: every request of
// the SDK except the connection setup.
type requestService struct{ s *Server }

func (h requestService) Request(ctx context.Context, p *pb.Payload) (*pb.Payload, error) {
	s := h.s
	typ := p.GetMetadata().GetType()
	c := s.connOf(ctx)
	if c == nil {
		return nacoswire.Unregistered(""), nil
	}
	if r := nacoswire.ServerCheck(p, c.id); r != nil {
		return r, nil
	}
	var req nacoswire.NamingRequest
	if err := nacoswire.Decode(p, &req); err != nil {
		return nacoswire.ErrorPayload("", nacoswire.CodeBadRequest, err.Error()), nil
	}
	if !s.registered(ctx, c) {
		return nacoswire.Unregistered(req.RequestID), nil
	}
	if typ != nacoswire.TypeHealthCheck {
		if refused := s.auth.check(p, req.RequestID); refused != nil {
			return refused, nil
		}
	}
	switch typ {
	case nacoswire.TypeHealthCheck:
		return nacoswire.Encode(nacoswire.TypeHealthCheckResp, nacoswire.OK(req.RequestID)), nil
	case nacoswire.TypeInstance:
		return s.instance(c, req), nil
	case nacoswire.TypeBatchInstance:
		return s.batchInstance(c, req), nil
	case nacoswire.TypeServiceQuery:
		k := newServiceKey(req.Namespace, req.GroupName, req.ServiceName)
		s.mu.Lock()
		info := s.serviceInfoLocked(k, req.Cluster, req.HealthyOnly)
		s.mu.Unlock()
		return nacoswire.Encode(nacoswire.TypeQueryServiceResp, nacoswire.ServiceResponse{Response: nacoswire.OK(req.RequestID), ServiceInfo: info}), nil
	case nacoswire.TypeSubscribeService:
		k := newServiceKey(req.Namespace, req.GroupName, req.ServiceName)
		s.mu.Lock()
		info := s.subscribeLocked(c, k, req.Clusters, req.Subscribe)
		s.mu.Unlock()
		return nacoswire.Encode(nacoswire.TypeSubscribeResp, nacoswire.ServiceResponse{Response: nacoswire.OK(req.RequestID), ServiceInfo: info}), nil
	case nacoswire.TypeServiceList:
		s.mu.Lock()
		names := s.serviceNamesLocked(req.Namespace, req.GroupName)
		s.mu.Unlock()
		return nacoswire.Encode(nacoswire.TypeServiceListResp, nacoswire.ServiceListResponse{
			Response: nacoswire.OK(req.RequestID), Count: len(names), ServiceNames: page(names, req.PageNo, req.PageSize),
		}), nil
	default:
		s.log.Debug("unsupported request", zap.String("type", typ))
		return nacoswire.ErrorPayload(req.RequestID, nacoswire.CodeNoHandler, "RequestHandler Not Found: "+typ), nil
	}
}

// instance handles InstanceRequest: registerInstance replaces what the
// connection published for the service with one instance;
// deregisterInstance removes all of it, whatever instance it names, as
// Nacos 2.x does.
func (s *Server) instance(c *conn, req nacoswire.NamingRequest) *pb.Payload {
	k := newServiceKey(req.Namespace, req.GroupName, req.ServiceName)
	var insts []model.Instance
	switch req.Type {
	case "registerInstance":
		if err := checkInstance(req.Instance); err != nil {
			return nacoswire.ErrorPayload(req.RequestID, nacoswire.CodeBadRequest, err.Error())
		}
		insts = []model.Instance{req.Instance}
	case "deregisterInstance":
	default:
		return nacoswire.ErrorPayload(req.RequestID, nacoswire.CodeBadRequest, "unsupported request type "+req.Type)
	}
	if k.name == "" {
		return nacoswire.ErrorPayload(req.RequestID, nacoswire.CodeBadRequest, "serviceName must not be empty")
	}
	s.mu.Lock()
	pushes := s.publishLocked(c, k, insts)
	s.mu.Unlock()
	s.send(pushes)
	return nacoswire.Encode(nacoswire.TypeInstanceResp, nacoswire.OK(req.RequestID))
}

// batchInstance handles BatchInstanceRequest (batchRegisterInstance):
// the instances replace what the connection published for the service.
func (s *Server) batchInstance(c *conn, req nacoswire.NamingRequest) *pb.Payload {
	k := newServiceKey(req.Namespace, req.GroupName, req.ServiceName)
	if req.Type != "batchRegisterInstance" {
		return nacoswire.ErrorPayload(req.RequestID, nacoswire.CodeBadRequest, "unsupported request type "+req.Type)
	}
	if k.name == "" || len(req.Instances) == 0 {
		return nacoswire.ErrorPayload(req.RequestID, nacoswire.CodeBadRequest, "serviceName and instances must not be empty")
	}
	for _, in := range req.Instances {
		if err := checkInstance(in); err != nil {
			return nacoswire.ErrorPayload(req.RequestID, nacoswire.CodeBadRequest, err.Error())
		}
	}
	s.mu.Lock()
	pushes := s.publishLocked(c, k, req.Instances)
	s.mu.Unlock()
	s.send(pushes)
	return nacoswire.Encode(nacoswire.TypeBatchInstanceResp, nacoswire.OK(req.RequestID))
}

// send delivers pushes, outside Server.mu. A push to a connection whose
// stream is gone is dropped; that connection re-subscribes and reads the
// state again when it reconnects.
func (s *Server) send(pushes []push) {
	for _, p := range pushes {
		p.c.send(nacoswire.Encode(nacoswire.TypeNotifySubscriber, p.p))
	}
}

// streamService implements the BiRequestStream service: the client's
// ConnectionSetupRequest comes in on it, the server's pushes go out on it,
// and the client's acknowledgements of pushes come back (and are ignored).
type streamService struct{ s *Server }

func (h streamService) RequestBiStream(stream pb.BiRequestStream_RequestBiStreamServer) error {
	s := h.s
	c := s.connOf(stream.Context())
	if c == nil {
		return status.Error(codes.Unavailable, "nacostestserver: connection is unregistered")
	}
	defer s.streamEnded(c, stream)
	for {
		p, err := stream.Recv()
		if err != nil {
			return nil
		}
		if p.GetMetadata().GetType() != nacoswire.TypeConnectionSetup {
			continue
		}
		var req nacoswire.SetupRequest
		if err := nacoswire.Decode(p, &req); err != nil {
			s.log.Debug("bad connection setup", zap.String("conn", c.id), zap.Error(err))
			return status.Error(codes.InvalidArgument, err.Error())
		}
		s.setup(c, stream, req)
	}
}
