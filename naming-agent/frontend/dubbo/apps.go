package dubbo

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/detourmesh/detour/naming-agent/frontend"
	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/zookeeper/dubboapp"
)

// appDir is one /services/APP folder as consumers read it: the views of
// APP:dubbo and APP:tri, each followed by a watch of its own.
type appDir struct {
	app   string
	shown atomic.Pointer[appShown]
	first chan struct{} // closed once every view is known

	mu    sync.Mutex // guards views, known
	views []frontend.View
	known int
}

// appPub is what an instance node published.
type appPub struct {
	owner    string
	services []string
}

// appDirOf returns the state of /services/APP, starting its watches at
// the first call; nil when path is not such a folder or APP cannot be
// carried.
func (r *Rewriter) appDirOf(path string) *appDir {
	app, ok := dubboapp.InstanceDir(path)
	if !ok {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if d, seen := r.apps[path]; seen {
		return d
	}
	for _, p := range dubboapp.Protocols {
		if err := registry.ValidateService(dubboapp.ServiceName(app, p)); err != nil {
			r.log.Warn("app left out of the mesh: its name cannot be registered", zap.String("app", app), zap.Error(err))
			r.apps[path] = nil
			return nil
		}
	}
	d := &appDir{app: app, first: make(chan struct{}), views: make([]frontend.View, len(dubboapp.Protocols))}
	d.shown.Store(&appShown{data: map[string][]byte{}})
	r.apps[path] = d
	for i, p := range dubboapp.Protocols {
		service := dubboapp.ServiceName(app, p)
		d.views[i].Service = service
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.follow(service, func(v frontend.View) { r.appViewChanged(path, d, i, v) })
		}()
	}
	return d
}

// appViewChanged takes view i of d and tells the server when what
// consumers read changed.
func (r *Rewriter) appViewChanged(path string, d *appDir, i int, v frontend.View) {
	d.mu.Lock()
	wasKnown := d.views[i].Known
	d.views[i] = v
	if v.Known && !wasKnown {
		d.known++
		if d.known == len(d.views) {
			close(d.first)
		}
	}
	kids, data := AppInstances(d.app, d.views)
	old := d.shown.Load()
	changed := !slices.Equal(old.children, kids) || !sameData(old.data, data)
	if changed {
		d.shown.Store(&appShown{children: kids, data: data})
	}
	d.mu.Unlock()
	if changed {
		if f := r.notify.Load(); f != nil {
			(*f)(path)
		}
	}
}

func sameData(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || string(v) != string(w) {
			return false
		}
	}
	return true
}

// follow calls fn with service's view until the rewriter closes,
// watching again a second after a failed watch.
func (r *Rewriter) follow(service string, fn func(frontend.View)) {
	for r.ctx.Err() == nil {
		err := r.core.Watch(r.ctx, service, fn)
		if r.ctx.Err() != nil {
			return
		}
		r.log.Warn("watch of a service for its consumers failed; retrying", zap.String("service", service), zap.Error(err))
		select {
		case <-r.ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// appChildren answers a read of /services/APP (Overlay).
func (r *Rewriter) appChildren(path string) ([]string, bool) {
	d := r.appDirOf(path)
	if d == nil {
		return nil, false
	}
	return d.shown.Load().children, true
}

// appData answers a read of an instance node the view shows (Overlay).
func (r *Rewriter) appData(path string) ([]byte, bool) {
	app, id, ok := dubboapp.InstanceNode(path)
	if !ok {
		return nil, false
	}
	r.mu.Lock()
	d := r.apps[dubboapp.Dir(app)]
	r.mu.Unlock()
	if d == nil {
		return nil, false
	}
	b, ok := d.shown.Load().data[id]
	return b, ok
}

// appPrepare makes the first read of /services/APP wait, up to
// FirstWait, for the first answer of every view.
func (r *Rewriter) appPrepare(path string) {
	if d := r.appDirOf(path); d != nil {
		r.waitFirst(d.first)
	}
}

// publishApp publishes instance node path (created, or its data set),
// and ends what an earlier version of it published and this one does
// not.
func (r *Rewriter) publishApp(path string, owner string, data []byte) {
	app, _, _ := dubboapp.InstanceNode(path)
	log := r.log.With(zap.String("app", app), zap.String("path", path))
	var (
		done []string
		pubs []frontend.Publication
	)
	in, err := dubboapp.Parse(data)
	if err == nil && LocalMetadata(in.Metadata) {
		log.Warn("instance keeps its metadata local (its own MetadataService): consumers on other hosts are shown its real address, out of the mesh; metadata-type remote keeps them in it",
			zap.String("metadata_service", in.Metadata["dubbo.metadata-service.url-params"]))
	}
	if err == nil {
		var skipped []string
		pubs, skipped, err = AppPublications(app, in, owner)
		if len(skipped) > 0 {
			log.Warn("instance endpoints left out of the mesh", zap.Strings("endpoints", skipped))
		}
	}
	if err != nil {
		log.Warn("instance node not published", zap.Error(err))
	}
	for _, p := range pubs {
		if err := r.core.Publish(p); err != nil {
			log.Warn("instance endpoint not published", zap.String("service", p.Service), zap.Error(err))
			continue
		}
		done = append(done, p.Service)
		log.Info("instance endpoint published", zap.String("service", p.Service), zap.String("host", p.Host), zap.Int("port", p.Port), zap.String("owner", owner))
	}
	r.mu.Lock()
	old := r.appOwners[path]
	if len(done) > 0 {
		r.appOwners[path] = appPub{owner: owner, services: done}
	} else {
		delete(r.appOwners, path)
	}
	r.mu.Unlock()
	for _, s := range old.services {
		if !slices.Contains(done, s) || old.owner != owner {
			r.unpublish(old.owner, s, "the instance no longer has that endpoint")
		}
	}
}

// unpublishApp ends what instance node path published.
func (r *Rewriter) unpublishApp(path string) {
	r.mu.Lock()
	old, ok := r.appOwners[path]
	delete(r.appOwners, path)
	r.mu.Unlock()
	if !ok {
		return
	}
	for _, s := range old.services {
		r.unpublish(old.owner, s, "its instance node is gone")
	}
}
