package etcd

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/detourmesh/detour/naming-agent/frontend"
)

// ownerPrefix starts the Owner of every publication of this front end.
const ownerPrefix = "etcd/"

// owned are this host's apps' registration keys. Each lives upstream as
// its marker, StatePrefix/HOST/keys/APPKEY, with the app's value on the
// app's own lease: the lease's expiry or revoke (the real etcd's) ends
// the marker, and following the markers ends the publication. So the
// app's lease semantics hold end to end, and an agent restart takes the
// publications over from the keys still there.
type owned struct {
	s    *Server
	mu   sync.Mutex
	keys map[string]registration // app key -> its registration
}

func newOwned(s *Server) *owned { return &owned{s: s, keys: map[string]registration{}} }

func (o *owned) marker(appKey string) string { return o.s.markers + appKey }

// has reports whether appKey is a registration key this host's apps hold.
func (o *owned) has(appKey string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, ok := o.keys[appKey]
	return ok
}

// note records a write the app made, before following sees it: the app
// may read its key back at once.
func (o *owned) note(appKey string, r registration) {
	o.mu.Lock()
	o.keys[appKey] = r
	o.mu.Unlock()
}

// follow lists the markers, ends the publications of keys gone while the
// agent was down, and follows the markers until ctx ends.
func (o *owned) follow(ctx context.Context) {
	for ctx.Err() == nil {
		err := o.followOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		o.s.log.Warn("etcd front end: following the apps' keys; again in 1s", zap.Error(err))
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
		}
	}
}

func (o *owned) followOnce(ctx context.Context) error {
	resp, err := o.s.up.Get(ctx, o.s.markers, clientv3.WithPrefix())
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, kv := range resp.Kvs {
		k := strings.TrimPrefix(string(kv.Key), o.s.markers)
		seen[ownerPrefix+k] = true
		o.put(k, kv.Value, kv.Lease)
	}
	for _, p := range o.s.core.Owned(ownerPrefix) {
		if !seen[p.Owner] {
			o.s.log.Info("etcd front end: an app's key is gone (its lease ended while the agent was down)", zap.String("key", strings.TrimPrefix(p.Owner, ownerPrefix)))
			o.s.core.Unpublish(p.Owner, p.Service)
		}
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for wr := range o.s.up.Watch(wctx, o.s.markers, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1)) {
		if err := wr.Err(); err != nil {
			return err
		}
		for _, ev := range wr.Events {
			k := strings.TrimPrefix(string(ev.Kv.Key), o.s.markers)
			if ev.Type == clientv3.EventTypeDelete {
				o.gone(k)
			} else {
				o.put(k, ev.Kv.Value, ev.Kv.Lease)
			}
		}
	}
	return errors.New("watch ended")
}

// put publishes the registration of appKey.
func (o *owned) put(appKey string, value []byte, lease int64) {
	r, ok := o.s.classify(appKey, value, lease)
	if !ok {
		return
	}
	o.note(appKey, r)
	o.publish(appKey, r)
}

func (o *owned) publish(appKey string, r registration) {
	p := frontend.Publication{Service: r.service, Host: r.host, Port: r.port, Protocol: r.protocol,
		Weight: r.weight, Metadata: r.metadata, Owner: ownerPrefix + appKey}
	if err := o.s.core.Publish(p); err != nil {
		o.s.log.Warn("etcd front end: an app's registration not published", zap.String("key", appKey), zap.Error(err))
	}
}

// gone ends appKey's publication; another key of the same service still
// held (an app restarted under a new lease) is published in its place.
func (o *owned) gone(appKey string) {
	o.mu.Lock()
	r, ok := o.keys[appKey]
	delete(o.keys, appKey)
	var next string
	var nr registration
	for k, other := range o.keys {
		if ok && other.service == r.service {
			next, nr = k, other
		}
	}
	o.mu.Unlock()
	if !ok {
		return
	}
	err := o.s.core.Unpublish(ownerPrefix+appKey, r.service)
	if err == nil && next != "" {
		o.publish(next, nr)
	}
}
