package etcd

import (
	"context"
	"errors"
	"io"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// watchServer is etcd's Watch service. Each app stream has one upstream
// stream: creates, cancels and progress requests go up in order, and the
// upstream's answers come back as they are (its watch ids are the app's).
// A watch of a service's keys also gets the service's rendering as
// events, with the same watch id; a watch of an app's own registration
// key follows its marker.
type watchServer struct {
	pb.UnimplementedWatchServer
	s *Server
}

// pendingCreate is a create sent up and not yet answered.
type pendingCreate struct {
	rs      *readSpace
	start   int64
	marker  bool
	filters []pb.WatchCreateRequest_FilterType
	prevKV  bool
}

type attached struct {
	v   *svcView
	sub *viewSub
}

type watchStream struct {
	s       *Server
	out     chan *pb.WatchResponse
	ctx     context.Context
	mu      sync.Mutex
	pending []pendingCreate
	views   map[int64]attached
	markers map[int64]bool
	open    int
}

func (w watchServer) Watch(stream pb.Watch_WatchServer) error {
	s := w.s
	if s.streams.Add(1) > int64(s.cfg.MaxStreams) {
		s.streams.Add(-1)
		return rpctypes.ErrGRPCRequestTooManyRequests
	}
	defer s.streams.Add(-1)
	ctx, cancel := context.WithCancel(s.fwd(stream.Context()))
	defer cancel()
	up, err := s.watch.Watch(ctx)
	if err != nil {
		return err
	}
	ws := &watchStream{s: s, out: make(chan *pb.WatchResponse, 256), ctx: ctx,
		views: map[int64]attached{}, markers: map[int64]bool{}}
	defer ws.detachAll()
	errc := make(chan error, 3)
	go func() { // the one sender to the app
		for {
			select {
			case r := <-ws.out:
				if err := stream.Send(r); err != nil {
					errc <- err
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { errc <- ws.fromUpstream(up) }()
	go func() { errc <- ws.fromApp(stream, up) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, io.EOF) {
		err = nil
	}
	return err
}

func (ws *watchStream) send(r *pb.WatchResponse) {
	select {
	case ws.out <- r:
	case <-ws.ctx.Done():
	}
}

func (ws *watchStream) fromApp(stream pb.Watch_WatchServer, up pb.Watch_WatchClient) error {
	for {
		req, err := stream.Recv()
		if err != nil {
			return err
		}
		if c := req.GetCreateRequest(); c != nil {
			ws.mu.Lock()
			if ws.open >= ws.s.cfg.MaxWatchesPerStream {
				ws.mu.Unlock()
				ws.send(&pb.WatchResponse{Header: &pb.ResponseHeader{}, WatchId: -1, Created: true, Canceled: true,
					CancelReason: rpctypes.ErrGRPCRequestTooManyRequests.Error()})
				continue
			}
			pc := pendingCreate{start: c.StartRevision, filters: c.Filters, prevKV: c.PrevKv}
			key, end := string(c.Key), string(c.RangeEnd)
			if end == "" && ws.s.owned.has(key) {
				c.Key, pc.marker = []byte(ws.s.owned.marker(key)), true
			} else if rs, ok := readOf(ws.s.layouts, ws.s.cfg.StatePrefix, key, end); ok {
				pc.rs = &rs
			}
			ws.pending = append(ws.pending, pc)
			ws.mu.Unlock()
		}
		if err := up.Send(req); err != nil {
			return err
		}
	}
}

func (ws *watchStream) fromUpstream(up pb.Watch_WatchClient) error {
	for {
		r, err := up.Recv()
		if err != nil {
			return err
		}
		ws.mu.Lock()
		var pc *pendingCreate
		if r.Created && len(ws.pending) > 0 {
			pc = &ws.pending[0]
			ws.pending = ws.pending[1:]
			if !r.Canceled {
				ws.open++
			}
		}
		if r.Canceled && !r.Created {
			ws.open--
		}
		if ws.markers[r.WatchId] {
			for _, e := range r.Events {
				ws.s.unmarkKVs([]*mvccpb.KeyValue{e.Kv, e.PrevKv})
			}
		}
		ws.mu.Unlock()
		ws.send(r)
		switch {
		case pc != nil && !r.Canceled && pc.marker:
			ws.mu.Lock()
			ws.markers[r.WatchId] = true
			ws.mu.Unlock()
		case pc != nil && !r.Canceled && pc.rs != nil:
			ws.attach(r.WatchId, *pc)
		case r.Canceled:
			ws.detach(r.WatchId)
		}
	}
}

// attach adds the service's rendering to watch id.
func (ws *watchStream) attach(id int64, pc pendingCreate) {
	v := ws.s.views.get(*pc.rs)
	sub := &viewSub{prevKV: pc.prevKV, send: func(rev int64, evs []*mvccpb.Event) {
		ws.send(&pb.WatchResponse{Header: &pb.ResponseHeader{Revision: rev}, WatchId: id, Events: evs})
	}}
	for _, f := range pc.filters {
		sub.noPut = sub.noPut || f == pb.WatchCreateRequest_NOPUT
		sub.noDelete = sub.noDelete || f == pb.WatchCreateRequest_NODELETE
	}
	ws.mu.Lock()
	ws.views[id] = attached{v: v, sub: sub}
	ws.mu.Unlock()
	ws.s.views.subscribe(ws.ctx, v, pc.start, sub)
}

func (ws *watchStream) detach(id int64) {
	ws.mu.Lock()
	a, ok := ws.views[id]
	delete(ws.views, id)
	delete(ws.markers, id)
	ws.mu.Unlock()
	if ok {
		a.v.unsubscribe(a.sub)
		ws.s.views.release(a.v)
	}
}

func (ws *watchStream) detachAll() {
	ws.mu.Lock()
	ids := make([]int64, 0, len(ws.views))
	for id := range ws.views {
		ids = append(ids, id)
	}
	ws.mu.Unlock()
	for _, id := range ids {
		ws.detach(id)
	}
}
