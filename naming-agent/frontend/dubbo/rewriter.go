package dubbo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/detourmesh/detour/naming-agent/frontend"
	"github.com/detourmesh/detour/naming-agent/frontend/zookeeper"
	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/zookeeper/dubboapp"
)

// OwnerPrefix starts the owner of every publication the ZooKeeper front
// end makes: "zookeeper/0x" and the session id, or "zookeeper/persistent"
// for a provider node that is not ephemeral.
const OwnerPrefix = "zookeeper/"

// FirstWait bounds how long a consumer's first read of a providers
// directory waits for the agent's first answer (the cache answers at
// once; a service never seen waits for the registry).
const FirstWait = 2 * time.Second

// Rewriter makes a ZooKeeper front end the Dubbo registry of this host's
// apps, rewritten by the mesh, at both of Dubbo's levels. It is the
// server's Overlay (a consumer's read of /ROOT/S/providers is answered
// from the agent's view of S, one of /services/APP from the views of
// APP:dubbo and APP:tri) and its Observer (a provider node or an instance
// node an app creates is published; deleting it, or the end of its
// session, ends the publication).
//
// mu guards dirs, owners, apps and appOwners; Children and Data read
// what a folder shows from an atomic pointer, so they never wait for
// mu's writers.
type Rewriter struct {
	core   frontend.Core
	log    *zap.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	notify atomic.Pointer[func(path string)]

	mu        sync.Mutex
	dirs      map[string]*dir    // providers directory path -> its view
	owners    map[string]string  // provider node path -> owner of its publication
	apps      map[string]*appDir // /services/APP -> its views
	appOwners map[string]appPub  // instance node path -> its publications
}

// dir is one providers directory as consumers read it.
type dir struct {
	service  string
	children atomic.Pointer[[]string]
	first    chan struct{} // closed at the first known view
	once     sync.Once
}

// NewRewriter returns a rewriter over core. Hand it to the server
// (zookeeper.WithOverlay, WithObserver), then call Start with the
// server's OverlayChanged.
func NewRewriter(core frontend.Core, log *zap.Logger) *Rewriter {
	if log == nil {
		log = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Rewriter{
		core: core, log: log.Named("frontend.dubbo"), ctx: ctx, cancel: cancel,
		dirs: map[string]*dir{}, owners: map[string]string{},
		apps: map[string]*appDir{}, appOwners: map[string]appPub{},
	}
}

// Start binds the server's OverlayChanged: changes of the views are told
// to the server from then on.
func (r *Rewriter) Start(overlayChanged func(path string)) {
	r.notify.Store(&overlayChanged)
}

// Close stops every watch. It does not end publications: they outlive
// the agent, as the sessions that made them do.
func (r *Rewriter) Close() {
	r.cancel()
	r.wg.Wait()
}

// Children answers a read of a providers directory or of an app's
// instances (Overlay).
func (r *Rewriter) Children(path string) ([]string, bool) {
	d := r.dir(path)
	if d == nil {
		return r.appChildren(path)
	}
	return *d.children.Load(), true
}

// Data answers a read of a provider node or an instance node the view
// shows (Overlay).
func (r *Rewriter) Data(path string) ([]byte, bool) {
	if b, ok := r.appData(path); ok {
		return b, true
	}
	parent, name, ok := cutLast(path)
	if !ok {
		return nil, false
	}
	r.mu.Lock()
	d := r.dirs[parent]
	r.mu.Unlock()
	if d == nil { // never read, or out of the mesh
		return nil, false
	}
	if _, found := slices.BinarySearch(*d.children.Load(), name); !found {
		return nil, false
	}
	return []byte{}, true
}

// Prepare makes the first read of a providers directory wait, up to
// FirstWait, for the agent's first answer, so a consumer that checks for
// providers at start finds them. It may block: call it outside any lock.
func (r *Rewriter) Prepare(path string) {
	if d := r.dir(path); d != nil {
		r.waitFirst(d.first)
		return
	}
	r.appPrepare(path)
}

// waitFirst waits up to FirstWait for first to close.
func (r *Rewriter) waitFirst(first <-chan struct{}) {
	select {
	case <-first: // answered before: the usual case, no timer
		return
	default:
	}
	t := time.NewTimer(FirstWait)
	defer t.Stop()
	select {
	case <-first:
	case <-t.C:
	case <-r.ctx.Done():
	}
}

// dir returns the state of providers directory path, starting its watch
// at the first call; nil when path is not one.
func (r *Rewriter) dir(path string) *dir {
	service, ok := ProvidersDir(path)
	if !ok {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if d, seen := r.dirs[path]; seen {
		return d // nil: a name the mesh cannot carry
	}
	if err := registry.ValidateService(service); err != nil {
		// A name no registry takes (a Java inner class's '$'): the app
		// reads and writes the tree as written, out of the mesh.
		r.log.Warn("service left out of the mesh: its name cannot be registered", zap.String("service", service), zap.Error(err))
		r.dirs[path] = nil
		return nil
	}
	d := &dir{service: service, first: make(chan struct{})}
	d.children.Store(&[]string{})
	r.dirs[path] = d
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.watch(path, d)
	}()
	return d
}

// watch follows d's service until the rewriter closes.
func (r *Rewriter) watch(path string, d *dir) {
	r.follow(d.service, func(v frontend.View) {
		old := *d.children.Load()
		kids := Children(d.service, v, old)
		if !slices.Equal(old, kids) {
			d.children.Store(&kids)
			if f := r.notify.Load(); f != nil {
				(*f)(path)
			}
		}
		if v.Known {
			d.once.Do(func() { close(d.first) })
		}
	})
}

// NodeCreated publishes a provider node or an instance node (Observer).
func (r *Rewriter) NodeCreated(session int64, path string, data []byte, ephemeral bool) {
	if _, _, ok := dubboapp.InstanceNode(path); ok {
		r.publishApp(path, ownerOf(session, ephemeral), data)
		return
	}
	service, u, ok, err := ProviderNode(path)
	if !ok {
		return
	}
	if err != nil {
		r.log.Warn("provider node not published", zap.String("path", path), zap.Error(err))
		return
	}
	owner := ownerOf(session, ephemeral)
	if err := r.core.Publish(Publication(service, u, owner)); err != nil {
		r.log.Warn("provider not published", zap.String("service", service), zap.String("path", path), zap.Error(err))
		return
	}
	r.mu.Lock()
	r.owners[path] = owner
	r.mu.Unlock()
	r.log.Info("provider published", zap.String("service", service), zap.String("addr", fmt.Sprintf("%s:%d", u.Host, u.Port)), zap.String("owner", owner))
}

// NodeDataChanged publishes an instance node's new data (an app updates
// its instance when its metadata revision changes); a provider's data
// means nothing to Dubbo (Observer).
func (r *Rewriter) NodeDataChanged(session int64, path string, data []byte) {
	if _, _, ok := dubboapp.InstanceNode(path); !ok {
		return
	}
	r.mu.Lock()
	old, ok := r.appOwners[path]
	r.mu.Unlock()
	owner := old.owner
	if !ok {
		// Not published before (bad data then): the setter's session
		// holds it now, as an ephemeral node's owner would.
		owner = ownerOf(session, true)
	}
	r.publishApp(path, owner, data)
}

// NodeDeleted ends the publication of a provider node or an instance
// node (Observer).
func (r *Rewriter) NodeDeleted(_ int64, path string) {
	if _, _, ok := dubboapp.InstanceNode(path); ok {
		r.unpublishApp(path)
		return
	}
	r.mu.Lock()
	owner, ok := r.owners[path]
	delete(r.owners, path)
	r.mu.Unlock()
	if !ok {
		return
	}
	service, _, _, _ := ProviderNode(path)
	r.unpublish(owner, service, "its node is gone")
}

// SessionEnded: the session's provider nodes were reported deleted
// before (Observer).
func (r *Rewriter) SessionEnded(int64) {}

// SessionsRestored comes first, once (Observer): it takes back the
// publications of the sessions an earlier run had, whose clients may now
// reconnect, and ends those of every other session (their apps are
// gone; persistent nodes did not outlive the restart either).
func (r *Rewriter) SessionsRestored(sessions []zookeeper.RestoredSession) {
	alive := map[string]bool{}
	r.mu.Lock()
	for _, s := range sessions {
		owner := ownerOf(s.ID, true)
		for _, e := range s.Ephemerals {
			if _, _, ok, err := ProviderNode(e.Path); ok && err == nil {
				r.owners[e.Path] = owner
				alive[owner] = true
			}
			if app, _, ok := dubboapp.InstanceNode(e.Path); ok {
				if in, err := dubboapp.Parse(e.Data); err == nil {
					if pubs, _, err := AppPublications(app, in, owner); err == nil && len(pubs) > 0 {
						ap := appPub{owner: owner}
						for _, p := range pubs {
							ap.services = append(ap.services, p.Service)
						}
						r.appOwners[e.Path] = ap
						alive[owner] = true
					}
				}
			}
		}
	}
	r.mu.Unlock()
	for _, p := range r.core.Owned(OwnerPrefix) {
		if !alive[p.Owner] {
			r.unpublish(p.Owner, p.Service, "its session did not come back after the agent's restart")
		}
	}
}

func (r *Rewriter) unpublish(owner, service, why string) {
	if err := r.core.Unpublish(owner, service); errors.Is(err, frontend.ErrNotHeld) {
		// A newer session took the service over (the app restarted
		// before its old session ended): nothing of this owner's is left.
		return
	} else if err != nil {
		r.log.Warn("provider not unpublished", zap.String("service", service), zap.String("owner", owner), zap.Error(err))
		return
	}
	r.log.Info("provider unpublished: "+why, zap.String("service", service), zap.String("owner", owner))
}

func ownerOf(session int64, ephemeral bool) string {
	if !ephemeral {
		return OwnerPrefix + "persistent"
	}
	return fmt.Sprintf("%s0x%x", OwnerPrefix, uint64(session))
}
