package etcd

import (
	"context"
	"errors"
	"io"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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

// pendingCreate is a create sent up and not yet answered, or one over
// the cap (reject) whose refusal waits for the answers before it.
type pendingCreate struct {
	reject  bool
	rs      *readSpace
	start   int64
	marker  bool
	filters []pb.WatchCreateRequest_FilterType
	prevKV  bool
}

// attached is a watch's share of a service's rendering; v is nil until
// the view is ready, gone is set when the watch ends first.
type attached struct {
	v    *svcView
	sub  *viewSub
	gone bool
}

type watchStream struct {
	s    *Server
	out  chan *pb.WatchResponse
	ctx  context.Context
	slow context.CancelCauseFunc // ends the stream: its app does not read
	// order is held from taking a create's answer off pending to queueing
	// it: answers go out in the creates' order, as clients match them.
	order    sync.Mutex
	mu       sync.Mutex
	pending  []pendingCreate
	inflight int // pending creates sent up
	views    map[int64]*attached
	markers  map[int64]bool
	open     int
	closed   bool // detachAll ran: attach nothing more
}

func (w watchServer) Watch(stream pb.Watch_WatchServer) error {
	s := w.s
	if s.streams.Add(1) > int64(s.cfg.MaxStreams) {
		s.streams.Add(-1)
		return rpctypes.ErrGRPCRequestTooManyRequests
	}
	defer s.streams.Add(-1)
	ctx, cancel := context.WithCancelCause(s.fwd(stream.Context()))
	defer cancel(nil)
	up, err := s.watch.Watch(ctx)
	if err != nil {
		return err
	}
	queue := s.cfg.outQueue
	if queue <= 0 {
		queue = defaultOutQueue
	}
	ws := &watchStream{s: s, out: make(chan *pb.WatchResponse, queue), ctx: ctx, slow: cancel,
		views: map[int64]*attached{}, markers: map[int64]bool{}}
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
		err = context.Cause(ctx)
	}
	if c := context.Cause(ctx); errors.Is(c, errSlowApp) {
		return c
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, io.EOF) {
		err = nil
	}
	return err
}

// defaultOutQueue is the answers queued for one app stream. The
// upstream's answers wait for room (the app's reading paces its own
// upstream stream); a rendering's events never wait, see sendView.
const defaultOutQueue = 256

// errSlowApp ends a stream whose app leaves the queue's answers unread while
// a rendering changes. Unavailable: the app's etcd client opens another
// stream and resumes its watches from their last revisions, and the
// renderings' history gives it what it missed.
var errSlowApp = status.Error(codes.Unavailable, "etcd front end: the watch stream is not read; resume it")

func (ws *watchStream) send(r *pb.WatchResponse) {
	select {
	case ws.out <- r:
	case <-ws.ctx.Done():
	}
}

// sendView queues a rendering's events without waiting: it runs under
// the view's lock, which a stuck app would hold for every reader of the
// service. A full queue ends this stream instead.
func (ws *watchStream) sendView(r *pb.WatchResponse) {
	select {
	case ws.out <- r:
	default:
		ws.slow(errSlowApp)
	}
}

func (ws *watchStream) fromApp(stream pb.Watch_WatchServer, up pb.Watch_WatchClient) error {
	for {
		req, err := stream.Recv()
		if err != nil {
			return err
		}
		if c := req.GetCreateRequest(); c != nil && !ws.create(c) {
			continue
		}
		if err := up.Send(req); err != nil {
			return err
		}
	}
}

// create notes c, and reports whether it goes up. Creates not answered
// yet count against the cap: a client that sends creates without
// waiting gets no more upstream watches than the cap either.
func (ws *watchStream) create(c *pb.WatchCreateRequest) bool {
	ws.order.Lock()
	defer ws.order.Unlock()
	ws.mu.Lock()
	if ws.open+ws.inflight >= ws.s.cfg.MaxWatchesPerStream {
		queued := len(ws.pending) > 0
		if queued {
			ws.pending = append(ws.pending, pendingCreate{reject: true})
		}
		ws.mu.Unlock()
		if !queued {
			ws.send(tooMany())
		}
		return false
	}
	pc := pendingCreate{start: c.StartRevision, filters: c.Filters, prevKV: c.PrevKv}
	key, end := string(c.Key), string(c.RangeEnd)
	if end == "" && ws.s.owned.has(key) {
		c.Key, pc.marker = []byte(ws.s.owned.marker(key)), true
	} else if rs, ok := readOf(ws.s.layouts, ws.s.cfg.StatePrefix, key, end); ok {
		pc.rs = &rs
	}
	ws.pending = append(ws.pending, pc)
	ws.inflight++
	ws.mu.Unlock()
	return true
}

// tooMany is etcd's answer to a create past max_watches_per_stream.
func tooMany() *pb.WatchResponse {
	return &pb.WatchResponse{Header: &pb.ResponseHeader{}, WatchId: -1, Created: true, Canceled: true,
		CancelReason: rpctypes.ErrGRPCRequestTooManyRequests.Error()}
}

func (ws *watchStream) fromUpstream(up pb.Watch_WatchClient) error {
	for {
		r, err := up.Recv()
		if err != nil {
			return err
		}
		ws.order.Lock()
		ws.mu.Lock()
		var pc *pendingCreate
		rejects := 0
		if r.Created && len(ws.pending) > 0 {
			pc = &ws.pending[0]
			ws.inflight--
			for ws.pending = ws.pending[1:]; len(ws.pending) > 0 && ws.pending[0].reject; ws.pending = ws.pending[1:] {
				rejects++
			}
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
		if r.Canceled { // the rendering's events end before the cancel
			ws.detach(r.WatchId)
		}
		ws.send(r)
		for ; rejects > 0; rejects-- {
			ws.send(tooMany())
		}
		ws.order.Unlock()
		switch {
		case pc != nil && !r.Canceled && pc.marker:
			ws.mu.Lock()
			ws.markers[r.WatchId] = true
			ws.mu.Unlock()
		case pc != nil && !r.Canceled && pc.rs != nil:
			if pc.start <= 0 && r.Header != nil {
				// "From now" is from the creation's revision: a rendering
				// made while the watch is being attached is sent.
				pc.start = r.Header.Revision + 1
			}
			ws.attach(r.WatchId, *pc)
		}
	}
}

// attach adds the service's rendering to watch id. The reader does it
// at once where memory has what it needs; otherwise (a service's first
// read, a start older than the renderings kept) the watch's own
// goroutine waits for the upstream, so no other watch waits.
func (ws *watchStream) attach(id int64, pc pendingCreate) {
	sub := &viewSub{prevKV: pc.prevKV, send: func(rev int64, evs []*mvccpb.Event) {
		ws.sendView(&pb.WatchResponse{Header: &pb.ResponseHeader{Revision: rev}, WatchId: id, Events: evs})
	}}
	for _, f := range pc.filters {
		sub.noPut = sub.noPut || f == pb.WatchCreateRequest_NOPUT
		sub.noDelete = sub.noDelete || f == pb.WatchCreateRequest_NODELETE
	}
	a := &attached{sub: sub}
	v, ok := ws.s.views.lookup(*pc.rs)
	ws.mu.Lock()
	if ws.closed {
		ws.mu.Unlock()
		if ok {
			ws.s.views.release(v)
		}
		return
	}
	ws.views[id], a.v = a, v
	ws.mu.Unlock()
	if ok && v.subscribeKept(pc.start, sub) {
		return
	}
	go func() {
		if !ok {
			v = ws.s.views.get(*pc.rs)
			ws.mu.Lock()
			gone := a.gone
			a.v = v
			ws.mu.Unlock()
			if gone {
				ws.s.views.release(v)
				return
			}
		}
		ws.s.views.subscribe(ws.ctx, v, pc.start, sub) // nothing once unsubscribed
	}()
}

func (ws *watchStream) detach(id int64) {
	ws.mu.Lock()
	a, ok := ws.views[id]
	delete(ws.views, id)
	delete(ws.markers, id)
	var v *svcView
	if ok {
		a.gone, v = true, a.v
	}
	ws.mu.Unlock()
	if v != nil {
		v.unsubscribe(a.sub)
		ws.s.views.release(v)
	}
}

func (ws *watchStream) detachAll() {
	ws.mu.Lock()
	ws.closed = true
	ids := make([]int64, 0, len(ws.views))
	for id := range ws.views {
		ids = append(ids, id)
	}
	ws.mu.Unlock()
	for _, id := range ids {
		ws.detach(id)
	}
}
