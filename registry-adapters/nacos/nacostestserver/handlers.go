package nacostestserver

import (
	"context"

	pb "github.com/nacos-group/nacos-sdk-go/v2/api/grpc"
	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// requestService implements the unary Request service: every request of
// the SDK except the connection setup.
type requestService struct{ s *Server }

func (h requestService) Request(ctx context.Context, p *pb.Payload) (*pb.Payload, error) {
	s := h.s
	typ := p.GetMetadata().GetType()
	c := s.connOf(ctx)
	if c == nil {
		return errorPayload("", codeUnregistered, "Connection is unregistered."), nil
	}
	if typ == typeServerCheck {
		return encode(typeServerCheckResp, serverCheckResponse{response: ok(""), ConnectionID: c.id}), nil
	}
	var req namingRequest
	if err := decode(p, &req); err != nil {
		return errorPayload("", codeBadRequest, err.Error()), nil
	}
	if !s.registered(ctx, c) {
		return errorPayload(req.RequestID, codeUnregistered, "Connection is unregistered."), nil
	}
	switch typ {
	case typeHealthCheck:
		return encode(typeHealthCheckResp, ok(req.RequestID)), nil
	case typeInstance:
		return s.instance(c, req), nil
	case typeBatchInstance:
		return s.batchInstance(c, req), nil
	case typeServiceQuery:
		k := newServiceKey(req.Namespace, req.GroupName, req.ServiceName)
		s.mu.Lock()
		info := s.serviceInfoLocked(k, req.Cluster, req.HealthyOnly)
		s.mu.Unlock()
		return encode(typeQueryServiceResp, serviceResponse{response: ok(req.RequestID), ServiceInfo: info}), nil
	case typeSubscribeService:
		k := newServiceKey(req.Namespace, req.GroupName, req.ServiceName)
		s.mu.Lock()
		info := s.subscribeLocked(c, k, req.Clusters, req.Subscribe)
		s.mu.Unlock()
		return encode(typeSubscribeResp, serviceResponse{response: ok(req.RequestID), ServiceInfo: info}), nil
	default:
		s.log.Debug("unsupported request", zap.String("type", typ))
		return errorPayload(req.RequestID, codeNoHandler, "RequestHandler Not Found: "+typ), nil
	}
}

// instance handles InstanceRequest: registerInstance replaces what the
// connection published for the service with one instance;
// deregisterInstance removes all of it, whatever instance it names, as
// Nacos 2.x does.
func (s *Server) instance(c *conn, req namingRequest) *pb.Payload {
	k := newServiceKey(req.Namespace, req.GroupName, req.ServiceName)
	var insts []model.Instance
	switch req.Type {
	case "registerInstance":
		if err := checkInstance(req.Instance); err != nil {
			return errorPayload(req.RequestID, codeBadRequest, err.Error())
		}
		insts = []model.Instance{req.Instance}
	case "deregisterInstance":
	default:
		return errorPayload(req.RequestID, codeBadRequest, "unsupported request type "+req.Type)
	}
	if k.name == "" {
		return errorPayload(req.RequestID, codeBadRequest, "serviceName must not be empty")
	}
	s.mu.Lock()
	pushes := s.publishLocked(c, k, insts)
	s.mu.Unlock()
	s.send(pushes)
	return encode(typeInstanceResp, ok(req.RequestID))
}

// batchInstance handles BatchInstanceRequest (batchRegisterInstance):
// the instances replace what the connection published for the service.
func (s *Server) batchInstance(c *conn, req namingRequest) *pb.Payload {
	k := newServiceKey(req.Namespace, req.GroupName, req.ServiceName)
	if req.Type != "batchRegisterInstance" {
		return errorPayload(req.RequestID, codeBadRequest, "unsupported request type "+req.Type)
	}
	if k.name == "" || len(req.Instances) == 0 {
		return errorPayload(req.RequestID, codeBadRequest, "serviceName and instances must not be empty")
	}
	for _, in := range req.Instances {
		if err := checkInstance(in); err != nil {
			return errorPayload(req.RequestID, codeBadRequest, err.Error())
		}
	}
	s.mu.Lock()
	pushes := s.publishLocked(c, k, req.Instances)
	s.mu.Unlock()
	s.send(pushes)
	return encode(typeBatchInstanceResp, ok(req.RequestID))
}

// send delivers pushes, outside Server.mu. A push to a connection whose
// stream is gone is dropped; that connection re-subscribes and reads the
// state again when it reconnects.
func (s *Server) send(pushes []push) {
	for _, p := range pushes {
		p.c.send(encode(typeNotifySubscriber, p.p))
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
		if p.GetMetadata().GetType() != typeConnectionSetup {
			continue
		}
		var req setupRequest
		if err := decode(p, &req); err != nil {
			s.log.Debug("bad connection setup", zap.String("conn", c.id), zap.Error(err))
			return status.Error(codes.InvalidArgument, err.Error())
		}
		s.setup(c, stream, req)
	}
}
