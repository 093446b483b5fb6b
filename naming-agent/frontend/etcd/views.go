package etcd

import (
	"bytes"
	"context"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.uber.org/zap"

	"github.com/detourmesh/detour/naming-agent/frontend"
)

const (
	keepSnaps   = 64               // rendered states kept per service for reads at a past revision
	viewIdle    = 2 * time.Minute  // a service nobody read or watches for this long is let go
	knownWait   = 2 * time.Second  // a first read waits this long for the agent's first answer
	tickTimeout = 5 * time.Second  // for the revision tick
	janitorTick = 30 * time.Second //
)

// views are the services apps read through a layout, each subscribed
// in the core and rendered as etcd keys. Every change of a rendering is
// written upstream (STATE_PREFIX/HOST/views/ID, the rendering as JSON),
// and the put's revision is the changed keys' revision: rendered keys
// carry real revisions, ordered with the pass-through keys. The
// upstream's history of that key is the renderings' history: a Range at
// revision R or a Watch from R+1 is answered from the rendering at R,
// also after an agent restart (the app's etcd client resumes its watch
// on the new process) and beyond the renderings kept in memory; a
// compacted R is the upstream's compacted error.
type views struct {
	s  *Server
	mu sync.Mutex
	m  map[string]*svcView
}

func newViews(s *Server) *views { return &views{s: s, m: map[string]*svcView{}} }

// snap is a service's rendering from revision rev on.
type snap struct {
	rev int64
	kvs map[string]*mvccpb.KeyValue
}

type svcView struct {
	rs      readSpace
	mu      sync.Mutex
	known   chan struct{} // closed at the first answer
	isKnown bool
	ready   chan struct{} // closed once hist and cancel are set
	hist    []snap        // never empty once ready; ascending rev
	subs    map[*viewSub]struct{}
	refs    int
	used    time.Time
	cancel  context.CancelFunc
	latest  chan frontend.View
}

// viewSub is a watch on a service's rendering.
type viewSub struct {
	noPut, noDelete, prevKV bool
	closed                  bool // under the view's mu: unsubscribed, deliver nothing
	send                    func(rev int64, evs []*mvccpb.Event)
}

// get returns rs's view, subscribed, with a reference the caller releases.
// A new view first reads what an earlier run rendered: only its first
// caller waits for that read, and no lock is held across it.
func (vs *views) get(rs readSpace) *svcView {
	vs.mu.Lock()
	v, ok := vs.m[rs.id()]
	if !ok {
		v = &svcView{rs: rs, known: make(chan struct{}), ready: make(chan struct{}),
			subs: map[*viewSub]struct{}{}, latest: make(chan frontend.View, 1)}
		vs.m[rs.id()] = v
	}
	v.refs++
	v.used = time.Now()
	vs.mu.Unlock()
	if !ok {
		ctx, cancel := context.WithCancel(vs.s.ctx)
		rctx, rcancel := context.WithTimeout(ctx, tickTimeout)
		last := vs.stored(rctx, rs, 0) // an earlier run's, so its readers' next change is right
		rcancel()
		v.mu.Lock()
		v.hist, v.cancel = []snap{last}, cancel
		v.mu.Unlock()
		close(v.ready)
		go vs.s.core.Watch(ctx, rs.service, func(fv frontend.View) {
			select { // keep only the latest
			case <-v.latest:
			default:
			}
			v.latest <- fv
		})
		go vs.apply(ctx, v)
	}
	<-v.ready
	return v
}

// lookup is get for a view that is there and ready: it never waits.
func (vs *views) lookup(rs readSpace) (*svcView, bool) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	v, ok := vs.m[rs.id()]
	if !ok {
		return nil, false
	}
	select {
	case <-v.ready:
	default:
		return nil, false
	}
	v.refs++
	v.used = time.Now()
	return v, true
}

func (vs *views) release(v *svcView) {
	vs.mu.Lock()
	v.refs--
	v.used = time.Now()
	vs.mu.Unlock()
}

// janitor lets go of services nobody uses.
func (vs *views) janitor(ctx context.Context) {
	for {
		select {
		case <-time.After(janitorTick):
		case <-ctx.Done():
			return
		}
		vs.mu.Lock()
		for id, v := range vs.m {
			if v.refs == 0 && time.Since(v.used) > viewIdle {
				v.cancel() // refs > 0 until ready: cancel is set
				delete(vs.m, id)
			}
		}
		vs.mu.Unlock()
	}
}

// apply renders each new view; a changed rendering gets a revision.
func (vs *views) apply(ctx context.Context, v *svcView) {
	for {
		var fv frontend.View
		select {
		case fv = <-v.latest:
		case <-ctx.Done():
			return
		}
		for !vs.applyOne(ctx, v, fv) {
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return
			}
			select { // a newer view replaces the one that failed
			case fv = <-v.latest:
			default:
			}
		}
	}
}

func (vs *views) applyOne(ctx context.Context, v *svcView, fv frontend.View) bool {
	rendered := render(v.rs, fv)
	v.mu.Lock()
	defer v.mu.Unlock()
	if fv.Known && !v.isKnown {
		v.isKnown = true
		defer close(v.known)
	}
	cur := v.hist[len(v.hist)-1]
	if sameRendering(cur.kvs, rendered) {
		return true
	}
	tctx, cancel := context.WithTimeout(ctx, tickTimeout)
	resp, err := vs.s.kv.Put(tctx, &pb.PutRequest{Key: []byte(vs.s.viewsAt + v.rs.id()), Value: encodeRendering(cur, rendered)})
	cancel()
	if err != nil {
		vs.s.log.Warn("etcd front end: no revision for a view change; again in 1s", zap.String("service", v.rs.service), zap.Error(err))
		return false
	}
	rev := resp.Header.Revision
	next := snap{rev: rev, kvs: map[string]*mvccpb.KeyValue{}}
	var evs []*mvccpb.Event
	for _, k := range sortedKeys(rendered) {
		val := rendered[k]
		old, had := cur.kvs[k]
		switch {
		case had && bytes.Equal(old.Value, val):
			next.kvs[k] = old
		case had:
			next.kvs[k] = &mvccpb.KeyValue{Key: []byte(k), Value: val, CreateRevision: old.CreateRevision, ModRevision: rev, Version: old.Version + 1}
			evs = append(evs, &mvccpb.Event{Type: mvccpb.PUT, Kv: next.kvs[k], PrevKv: old})
		default:
			next.kvs[k] = &mvccpb.KeyValue{Key: []byte(k), Value: val, CreateRevision: rev, ModRevision: rev, Version: 1}
			evs = append(evs, &mvccpb.Event{Type: mvccpb.PUT, Kv: next.kvs[k]})
		}
	}
	for _, k := range sortedKeys(cur.kvs) {
		if _, ok := next.kvs[k]; !ok {
			evs = append(evs, &mvccpb.Event{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: []byte(k), ModRevision: rev}, PrevKv: cur.kvs[k]})
		}
	}
	v.hist = append(v.hist, next)
	if len(v.hist) > keepSnaps {
		v.hist = v.hist[len(v.hist)-keepSnaps:]
	}
	for sub := range v.subs {
		sub.deliver(rev, evs)
	}
	return true
}

func sameRendering(cur map[string]*mvccpb.KeyValue, r map[string][]byte) bool {
	if len(cur) != len(r) {
		return false
	}
	for k, kv := range cur {
		if v, ok := r[k]; !ok || !bytes.Equal(v, kv.Value) {
			return false
		}
	}
	return true
}

func (sub *viewSub) deliver(rev int64, evs []*mvccpb.Event) {
	var out []*mvccpb.Event
	for _, e := range evs {
		if (e.Type == mvccpb.PUT && sub.noPut) || (e.Type == mvccpb.DELETE && sub.noDelete) {
			continue
		}
		if !sub.prevKV && e.PrevKv != nil {
			e = &mvccpb.Event{Type: e.Type, Kv: e.Kv}
		}
		out = append(out, e)
	}
	if len(out) > 0 {
		sub.send(rev, out)
	}
}

// waitKnown waits a little for the agent's first answer.
func (v *svcView) waitKnown(ctx context.Context) {
	select {
	case <-v.known:
	case <-time.After(knownWait):
	case <-ctx.Done():
	}
}

// at returns the rendering at revision rev: from memory, or from the
// upstream's history where it is older than what memory keeps.
func (vs *views) at(ctx context.Context, v *svcView, rev int64) snap {
	v.mu.Lock()
	for i := len(v.hist) - 1; i >= 0; i-- {
		if v.hist[i].rev <= rev {
			s := v.hist[i]
			v.mu.Unlock()
			return s
		}
	}
	v.mu.Unlock()
	return vs.stored(ctx, v.rs, rev)
}

// subscribe adds sub; a watch from start gets the changes since the
// rendering at start-1 at once, as one batch at the newest revision. It
// reads the upstream only where start-1 is older than the renderings
// kept (subscribeKept says whether it must).
func (vs *views) subscribe(ctx context.Context, v *svcView, start int64, sub *viewSub) {
	if v.subscribeKept(start, sub) {
		return
	}
	base := vs.stored(ctx, v.rs, start-1) // the past does not change: read before locking
	v.mu.Lock()
	defer v.mu.Unlock()
	v.subscribeLocked(base, start, sub)
}

// subscribeKept subscribes sub from what memory keeps, and reports
// false, subscribing nothing, where start-1 is older than that.
func (v *svcView) subscribeKept(start int64, sub *viewSub) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	cur := v.hist[len(v.hist)-1]
	if start <= 0 || cur.rev < start { // nothing rendered since start-1
		v.subscribeLocked(cur, start, sub)
		return true
	}
	for i := len(v.hist) - 1; i >= 0; i-- {
		if v.hist[i].rev < start {
			v.subscribeLocked(v.hist[i], start, sub)
			return true
		}
	}
	return false
}

func (v *svcView) subscribeLocked(base snap, start int64, sub *viewSub) {
	if sub.closed {
		return
	}
	if cur := v.hist[len(v.hist)-1]; start > 0 && cur.rev >= start {
		sub.deliver(cur.rev, diff(base, cur))
	}
	v.subs[sub] = struct{}{}
}

func (v *svcView) unsubscribe(sub *viewSub) {
	v.mu.Lock()
	sub.closed = true
	delete(v.subs, sub)
	v.mu.Unlock()
}

// diff is the events that take a to b, at b's revision.
func diff(a, b snap) []*mvccpb.Event {
	var evs []*mvccpb.Event
	for _, k := range sortedKeys(b.kvs) {
		if old, ok := a.kvs[k]; !ok || old.ModRevision != b.kvs[k].ModRevision {
			e := &mvccpb.Event{Type: mvccpb.PUT, Kv: b.kvs[k]}
			if ok {
				e.PrevKv = old
			}
			evs = append(evs, e)
		}
	}
	for _, k := range sortedKeys(a.kvs) {
		if _, ok := b.kvs[k]; !ok {
			evs = append(evs, &mvccpb.Event{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: []byte(k), ModRevision: b.rev}, PrevKv: a.kvs[k]})
		}
	}
	return evs
}
