package nacos

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	pb "github.com/nacos-group/nacos-sdk-go/v2/api/grpc"
	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/detourmesh/detour/internal/nacoswire"
)

// requestService implements the unary Request service: every request of
// a client except its connection setup.
type requestService struct{ s *Server }

func (h requestService) Request(ctx context.Context, p *pb.Payload) (*pb.Payload, error) {
	s := h.s
	c := s.connOf(ctx)
	if c == nil {
		return nacoswire.Unregistered(""), nil
	}
	if r := nacoswire.ServerCheck(p, c.id); r != nil {
		return r, nil
	}
	return s.handle(ctx, c, p), nil
}

// handle answers one request of set-up connection c: a Nacos response,
// or an ErrorResponse saying what was wrong (nothing changes then).
func (s *Server) handle(ctx context.Context, c *conn, p *pb.Payload) *pb.Payload {
	typ := p.GetMetadata().GetType()
	var req nacoswire.NamingRequest
	if err := nacoswire.Decode(p, &req); err != nil {
		return nacoswire.ErrorPayload("", nacoswire.CodeBadRequest, err.Error())
	}
	if !s.registered(ctx, c) {
		return nacoswire.Unregistered(req.RequestID)
	}
	bad := func(err error) *pb.Payload {
		return nacoswire.ErrorPayload(req.RequestID, nacoswire.CodeBadRequest, err.Error())
	}
	switch typ {
	case nacoswire.TypeHealthCheck:
		return nacoswire.Encode(nacoswire.TypeHealthCheckResp, nacoswire.OK(req.RequestID))
	case nacoswire.TypeServiceList:
		return nacoswire.Encode(nacoswire.TypeServiceListResp, s.serviceList(req))
	case nacoswire.TypeInstance, nacoswire.TypeBatchInstance, nacoswire.TypeServiceQuery, nacoswire.TypeSubscribeService:
	default:
		s.log.Debug("unsupported request", zap.String("type", typ))
		msg := "RequestHandler Not Found: " + typ
		if strings.HasPrefix(typ, "Config") {
			msg += ": detour's Nacos front end serves naming only; point config clients at the real Nacos"
		}
		return nacoswire.ErrorPayload(req.RequestID, nacoswire.CodeNoHandler, msg)
	}
	k := newKey(req.Namespace, req.GroupName, req.ServiceName)
	mesh, err := k.mesh()
	if err != nil {
		return bad(err)
	}
	switch typ {
	case nacoswire.TypeInstance:
		return s.instance(c, k, mesh, req)
	case nacoswire.TypeBatchInstance:
		if req.Type != "batchRegisterInstance" {
			return bad(fmt.Errorf("unsupported request type %q", req.Type))
		}
		if len(req.Instances) == 0 {
			return bad(errors.New("instances must not be empty"))
		}
		if err := s.register(c, k, mesh, req.Instances); err != nil {
			return bad(err)
		}
		return nacoswire.Encode(nacoswire.TypeBatchInstanceResp, nacoswire.OK(req.RequestID))
	case nacoswire.TypeServiceQuery:
		info := s.query(ctx, k, mesh, req.Cluster)
		return nacoswire.Encode(nacoswire.TypeQueryServiceResp, nacoswire.ServiceResponse{Response: nacoswire.OK(req.RequestID), ServiceInfo: info})
	default: // TypeSubscribeService
		info := s.subscribe(ctx, c, k, mesh, req.Clusters, req.Subscribe)
		return nacoswire.Encode(nacoswire.TypeSubscribeResp, nacoswire.ServiceResponse{Response: nacoswire.OK(req.RequestID), ServiceInfo: info})
	}
}

// instance handles InstanceRequest: registerInstance replaces what the
// connection published for the service; deregisterInstance removes it,
// whatever instance it names, as Nacos 2.x does.
func (s *Server) instance(c *conn, k key, mesh string, req nacoswire.NamingRequest) *pb.Payload {
	switch req.Type {
	case "registerInstance":
		if err := s.register(c, k, mesh, []model.Instance{req.Instance}); err != nil {
			return nacoswire.ErrorPayload(req.RequestID, nacoswire.CodeBadRequest, err.Error())
		}
	case "deregisterInstance":
		s.deregister(c, mesh)
	default:
		return nacoswire.ErrorPayload(req.RequestID, nacoswire.CodeBadRequest, fmt.Sprintf("unsupported request type %q", req.Type))
	}
	return nacoswire.Encode(nacoswire.TypeInstanceResp, nacoswire.OK(req.RequestID))
}

// register publishes the first instance of insts for c. The agent holds
// one publication per service and host, so a batch's other instances are
// left out of the mesh (logged). A disabled instance is a deregister.
func (s *Server) register(c *conn, k key, mesh string, insts []model.Instance) error {
	for _, in := range insts {
		if !in.Ephemeral {
			return errors.New("instance format invalid: a persistent instance (ephemeral=false) is registered over HTTP, /nacos/v1/ns/instance")
		}
		if _, err := publicationOf(mesh, in, c.owner()); err != nil {
			return err
		}
	}
	if !insts[0].Enable {
		s.deregister(c, mesh)
		return nil
	}
	if len(insts) > 1 {
		s.log.Warn("batch registration: only the first instance is carried by the mesh (one publication per service and host)",
			zap.String("service", mesh), zap.Int("instances", len(insts)))
	}
	pub, _ := publicationOf(mesh, insts[0], c.owner())
	if err := s.core.Publish(pub); err != nil {
		return err
	}
	s.mu.Lock()
	s.known[k] = true
	gone := c.gone
	if !gone {
		c.published[mesh] = k
	}
	s.mu.Unlock()
	if gone { // the connection ended while publishing
		s.unpublish(c.owner(), mesh, "its connection ended")
		return nil
	}
	s.log.Info("instance published", zap.String("service", mesh), zap.String("addr", fmt.Sprintf("%s:%d", pub.Host, pub.Port)), zap.String("owner", pub.Owner))
	return nil
}

// deregister ends c's publication of mesh, if it has one.
func (s *Server) deregister(c *conn, mesh string) {
	s.mu.Lock()
	_, ok := c.published[mesh]
	delete(c.published, mesh)
	s.mu.Unlock()
	if ok {
		s.unpublish(c.owner(), mesh, "deregistered")
	}
}

// serviceList answers a ServiceListRequest: the services of the
// namespace and group that this host's apps registered or asked for
// (the agent has no registry-wide list), sorted, a page of them.
func (s *Server) serviceList(req nacoswire.NamingRequest) nacoswire.ServiceListResponse {
	k := newKey(req.Namespace, req.GroupName, "")
	s.mu.Lock()
	var names []string
	for n := range s.known {
		if n.namespace == k.namespace && n.group == k.group {
			names = append(names, n.name)
		}
	}
	s.mu.Unlock()
	slices.Sort(names)
	return nacoswire.ServiceListResponse{Response: nacoswire.OK(req.RequestID), Count: len(names), ServiceNames: page(names, req.PageNo, req.PageSize)}
}

// page is page pageNo (from 1) of pageSize names; everything if size <= 0.
func page(names []string, pageNo, pageSize int) []string {
	if pageSize <= 0 {
		return append([]string{}, names...)
	}
	start := len(names)
	if pageNo = max(pageNo, 1); pageNo-1 <= len(names)/pageSize { // no overflow
		start = min((pageNo-1)*pageSize, len(names))
	}
	end := min(start+pageSize, len(names))
	return append([]string{}, names[start:end]...)
}

// streamService implements the BiRequestStream service: the client's
// ConnectionSetupRequest comes in on it and its acknowledgements of
// pushes (ignored); the server's pushes go out on it, sent by the
// connection's push loop, started at its first subscription (a
// provider's connection never needs one).
type streamService struct{ s *Server }

func (h streamService) RequestBiStream(stream pb.BiRequestStream_RequestBiStreamServer) error {
	s := h.s
	c := s.connOf(stream.Context())
	if c == nil {
		return status.Error(codes.Unavailable, "nacos front end: connection is unregistered")
	}
	// Only the stream that set the connection up pushes; its end is the
	// connection's end, as in Nacos.
	mine := false
	defer func() {
		if mine {
			s.drop(c)
			s.mu.Lock()
			started := c.pushing
			s.mu.Unlock()
			if started {
				<-c.pushDone // no Send after this handler returns
			}
		}
	}()
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
			return status.Error(codes.InvalidArgument, err.Error())
		}
		if s.setupConn(c, req.Labels, stream) {
			mine = true
		}
	}
}

// startPushLocked starts c's push loop, once. Server.mu is held; it is
// called from a request handler, which Close waits for before s.wg.
func (s *Server) startPushLocked(c *conn) {
	if c.pushing || c.gone || c.stream == nil {
		return
	}
	c.pushing = true
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(c.pushDone)
		for {
			select {
			case <-c.quit:
				return
			case <-s.ctx.Done():
				return
			case <-c.wake:
			}
			for _, p := range s.duePushes(c) {
				if err := c.stream.Send(p); err != nil {
					return
				}
			}
		}
	}()
}

// duePushes takes c's pending services and builds their pushes, each
// from the service's state now (a burst of changes is one push).
func (s *Server) duePushes(c *conn) []*pb.Payload {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*pb.Payload
	for k := range c.pending {
		delete(c.pending, k)
		svc := s.services[k]
		if svc == nil {
			continue
		}
		for _, clusters := range slices.Sorted(maps.Keys(c.subscribed[k])) {
			s.pushSeq++
			out = append(out, nacoswire.Encode(nacoswire.TypeNotifySubscriber, nacoswire.NotifyRequest{
				RequestID:   fmt.Sprint(s.pushSeq),
				Namespace:   k.namespace,
				ServiceName: k.name,
				GroupName:   k.group,
				Module:      "naming",
				ServiceInfo: s.infoLocked(svc, clusters),
			}))
		}
	}
	return out
}
