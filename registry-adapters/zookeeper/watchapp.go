package zookeeper

import (
	"cmp"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dubbogo/go-zookeeper/zk"
	"go.uber.org/zap"

	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/zookeeper/dubboapp"
)

// An application-level service, APP:PROTOCOL (dubboapp.ServiceName), is
// Dubbo 3's layout: each endpoint an ephemeral node /services/APP/ID
// whose data is Curator's instance JSON. Its watcher lists the children
// with a child watch, as for providers, and reads each child's data with
// a data watch of its own, so an app updating its instance (a new
// metadata revision) is seen too.

// instNode is an instance node's data as a watcher read it.
type instNode struct {
	data  []byte
	gen   uint64      // the watch session it was read (and its watch armed) on
	stale atomic.Bool // its data watch fired: read it again
}

// appState is the part of a watcher of an application-level service
// that its goroutine owns.
type appState struct {
	kick  chan struct{}        // a data watch fired; buffered, 1
	nodes map[string]*instNode // by child name
}

// runApp is run for an application-level service: the same connection
// handling, plus the children's data.
func (w *watcher) runApp() {
	defer close(w.stopped)
	bo := backoff{min: 50 * time.Millisecond, max: 2 * time.Second}
	graceTimer := time.NewTimer(w.r.cfg.RequestTimeout)
	defer graceTimer.Stop()
	grace := graceTimer.C
	var (
		armed    <-chan zk.Event
		armedGen uint64
		names    []string
		zxid     int64
		reread   bool
	)
	for {
		conn, st, gen, changed := w.r.watch.get()
		if conn == nil {
			armed = nil
			if w.notConnected(&grace, changed, st) {
				return
			}
			continue
		}
		var err error
		if armed == nil || armedGen != gen {
			var ev <-chan zk.Event
			names, zxid, ev, err = w.readAndArm(conn)
			if err == nil {
				armed, armedGen, reread = ev, gen, true
			}
		}
		if err == nil && reread {
			err = w.readInstances(conn, gen, names)
		}
		if err != nil {
			armed = nil
			if w.failed(err, &bo, changed) {
				return
			}
			continue
		}
		if reread {
			reread = false
			bo.reset()
			grace = nil
			w.publish(w.r.decodeApp(w.service, names, w.app.nodes, zxid))
		}
		select {
		case <-armed:
			armed = nil
		case <-w.app.kick:
			reread = true
		case <-changed:
		case <-w.done:
			return
		}
	}
}

// readInstances reads, with a data watch, the children not read on this
// watch session or changed since, and forgets those gone. A child
// deleted meanwhile is left out: its parent's watch fires.
func (w *watcher) readInstances(conn *zk.Conn, gen uint64, names []string) error {
	present := make(map[string]bool, len(names))
	for _, name := range names {
		present[name] = true
		if n := w.app.nodes[name]; n != nil && n.gen == gen && !n.stale.Load() {
			continue
		}
		data, _, zw, err := conn.GetW(w.path + "/" + name)
		if errors.Is(err, zk.ErrNoNode) {
			delete(w.app.nodes, name)
			continue
		}
		if err != nil {
			return err
		}
		n := &instNode{data: data, gen: gen}
		w.app.nodes[name] = n
		go func() {
			select {
			case <-zw.EvtCh: // changed, deleted, or its connection closed
				n.stale.Store(true)
				select {
				case w.app.kick <- struct{}{}:
				default:
				}
			case <-w.done:
			}
		}()
	}
	for name := range w.app.nodes {
		if !present[name] {
			delete(w.app.nodes, name)
		}
	}
	return nil
}

// decodeApp turns instance nodes into the endpoints of service and
// reports the malformed ones, each once.
func (r *Registry) decodeApp(service string, names []string, nodes map[string]*instNode, pzxid int64) []registry.Endpoint {
	datas := make(map[string][]byte, len(names))
	for _, name := range names {
		if n := nodes[name]; n != nil {
			datas[name] = n.data
		}
	}
	eps, bad := decodeInstances(service, names, datas)
	for _, name := range r.malformed.fresh(service, bad, pzxid) {
		r.log.Warn("zookeeper: skipping malformed instance node",
			zap.String("service", service), zap.String("node", name), zap.Error(bad[name]))
		r.onMalformed(service, name, bad[name])
	}
	return eps
}

// decodeInstances reads the instance nodes of an application-level
// service: each instance's endpoint of the service's protocol, written by
// an agent or by a Dubbo app itself. Instances without such an endpoint
// are not the service's; of several with one address, the one
// registered last wins (then the greater name), as for providers.
func decodeInstances(service string, names []string, datas map[string][]byte) ([]registry.Endpoint, map[string]error) {
	type candidate struct {
		ep   registry.Endpoint
		ms   int64
		name string
	}
	var bad map[string]error
	best := map[string]candidate{}
	for _, name := range names {
		data, ok := datas[name]
		if !ok {
			continue
		}
		ep, ok, err := readInstance(service, data)
		if err != nil {
			if bad == nil {
				bad = map[string]error{}
			}
			bad[name] = err
			continue
		}
		if !ok {
			continue
		}
		in, _ := dubboapp.Parse(data)
		c := candidate{ep, in.RegisteredMs, name}
		cur, seen := best[ep.Addr]
		if !seen || cmp.Or(cmp.Compare(c.ms, cur.ms), strings.Compare(name, cur.name)) > 0 {
			best[ep.Addr] = c
		}
	}
	eps := make([]registry.Endpoint, 0, len(best))
	for _, c := range best {
		eps = append(eps, c.ep)
	}
	registry.Sort(eps)
	return eps, bad
}

// readInstance reads one instance node's data as an endpoint of service.
func readInstance(service string, data []byte) (registry.Endpoint, bool, error) {
	in, err := dubboapp.Parse(data)
	if err != nil {
		return registry.Endpoint{}, false, err
	}
	if app, _, _ := dubboapp.ParseServiceName(service); in.Name != app {
		return registry.Endpoint{}, false, fmt.Errorf("instance of %q, not of %q", in.Name, app)
	}
	return dubboapp.ToEndpoint(service, in, MetaProtocol)
}

// instancePath is the node of ep, an endpoint of an application-level
// service, and its data.
func instancePath(ep registry.Endpoint, registered time.Time) (string, []byte, error) {
	in, err := dubboapp.FromEndpoint(ep, registered.UnixMilli())
	if err != nil {
		return "", nil, err
	}
	return dubboapp.Dir(in.Name) + "/" + ep.Addr, in.Marshal(), nil
}
