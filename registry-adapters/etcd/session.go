package etcd

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

var _ registry.Resumer = (*Registry)(nil)

// storedSession is what the Registry keeps in its SessionStore: the lease
// its registrations are bound to, and where. The registrations themselves
// are the keys etcd has attached to the lease.
type storedSession struct {
	Lease   int64  `json:"lease_id"`
	Cluster uint64 `json:"cluster_id"`
	Prefix  string `json:"prefix"`
}

// Adopted returns the registrations New took back with the stored lease
// (see registry.Resumer), sorted by service and address: what they were
// at New; it does not change afterwards. Nil when no lease was taken
// back; empty when one was, holding nothing.
func (r *Registry) Adopted() []registry.Endpoint {
	return cloneEndpoints(r.adopted)
}

// resume takes back the lease named in the store if etcd still holds it:
// it keeps it alive at once, then reads the registrations attached to it.
// Whatever goes wrong, the Registry starts without a lease, as without a
// store, and says why in the log. It runs in New, before the keeper.
func (r *Registry) resume() {
	raw, err := r.store.Load()
	if err != nil {
		r.log.Warn("cannot read the stored session; starting a new one", zap.Error(err))
		return
	}
	if len(raw) == 0 {
		return
	}
	var st storedSession
	if err := json.Unmarshal(raw, &st); err != nil || st.Lease == 0 {
		r.log.Warn("stored session unreadable; starting a new one", zap.ByteString("stored", raw), zap.Error(err))
		return
	}
	id := clientv3.LeaseID(st.Lease)
	log := r.log.With(zap.String("lease", leaseString(id)))
	if st.Prefix != r.cfg.Prefix {
		log.Info("stored lease is of another prefix; starting a new one", zap.String("stored_prefix", st.Prefix))
		return
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.RequestTimeout)
	defer cancel()
	// A keep-alive first: it tells whether the lease lives and gives it
	// its whole TTL again before anything else takes time.
	ka, err := r.client.KeepAliveOnce(ctx, id)
	switch {
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		log.Info("stored lease has expired; starting a new one")
		return
	case err != nil:
		log.Warn("cannot check the stored lease; starting a new one", zap.Error(err))
		return
	case ka.ClusterId != st.Cluster:
		log.Info("stored lease is of another etcd cluster; starting a new one",
			zap.Uint64("stored_cluster_id", st.Cluster), zap.Uint64("cluster_id", ka.ClusterId))
		return
	}
	ttl, err := r.client.TimeToLive(ctx, id, clientv3.WithAttachedKeys())
	if err == nil && ttl.TTL <= 0 {
		err = rpctypes.ErrLeaseNotFound
	}
	if err != nil {
		log.Warn("cannot read the keys of the stored lease; starting a new one", zap.Error(err))
		return
	}
	regs, adopted, strays, err := r.readAttached(ctx, id, ttl.Keys)
	if err != nil {
		log.Warn("cannot read the keys of the stored lease; starting a new one", zap.Error(err))
		return
	}
	for _, key := range strays {
		// Not a registration of this layout: nothing should keep it.
		_, err := r.client.Txn(ctx).
			If(clientv3.Compare(clientv3.LeaseValue(key), "=", id)).
			Then(clientv3.OpDelete(key)).
			Commit()
		if err != nil {
			log.Warn("cannot delete a key of the stored lease that is no registration; it lives as long as the lease",
				zap.String("key", key), zap.Error(err))
		}
	}
	if adopted == nil {
		adopted = []registry.Endpoint{} // taken back, holding nothing
	}
	slices.SortFunc(adopted, func(a, b registry.Endpoint) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.Addr, b.Addr))
	})
	r.mu.Lock()
	r.lease, r.regs, r.adopted = id, regs, adopted
	r.mu.Unlock()
	r.leaseChanged <- struct{}{} // buffered; the keeper is not running yet
	log.Info("lease taken back from the previous run", zap.Int("registrations", len(adopted)), zap.Int("strays", len(strays)))
}

// readAttached reads the keys attached to lease id and returns the
// registrations among them (key → value, and as endpoints) and the other
// keys still bound to the lease.
func (r *Registry) readAttached(ctx context.Context, id clientv3.LeaseID, keys [][]byte) (map[string]string, []registry.Endpoint, []string, error) {
	regs := make(map[string]string, len(keys))
	var adopted []registry.Endpoint
	var strays []string
	for start := 0; start < len(keys); start += restoreBatchOps {
		batch := keys[start:min(start+restoreBatchOps, len(keys))]
		ops := make([]clientv3.Op, len(batch))
		for i, k := range batch {
			ops[i] = clientv3.OpGet(string(k))
		}
		resp, err := r.client.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return nil, nil, nil, err
		}
		for _, op := range resp.Responses {
			for _, kv := range op.GetResponseRange().GetKvs() {
				if clientv3.LeaseID(kv.Lease) != id {
					continue // put again since, by someone else
				}
				if r.isShared(kv.Key) { // an ephemeral Store key: kept like a registration
					regs[string(kv.Key)] = string(kv.Value)
					continue
				}
				ep, err := r.decodeOwn(kv.Key, kv.Value)
				if err != nil {
					r.log.Warn("key of the stored lease is no registration", zap.ByteString("key", kv.Key), zap.Error(err))
					strays = append(strays, string(kv.Key))
					continue
				}
				regs[string(kv.Key)] = string(kv.Value)
				adopted = append(adopted, ep)
			}
		}
	}
	return regs, adopted, strays, nil
}

// decodeOwn decodes a key this adapter wrote, PREFIX/SERVICE/ADDR.
func (r *Registry) decodeOwn(key, value []byte) (registry.Endpoint, error) {
	rest, ok := strings.CutPrefix(string(key), r.cfg.Prefix+"/")
	if !ok {
		return registry.Endpoint{}, fmt.Errorf("not under %s/", r.cfg.Prefix)
	}
	service, _, _ := strings.Cut(rest, "/")
	if err := registry.ValidateService(service); err != nil {
		return registry.Endpoint{}, err
	}
	ep, err := decodeEntry(r.cfg.Prefix, service, key, value)
	if err != nil {
		return registry.Endpoint{}, err
	}
	return ep.Normalized()
}

// saveSession stores lease id of the etcd cluster cluster, or nothing for
// id 0. The store's errors are logged: a Registry works without it, only
// a restart then starts a new lease.
func (r *Registry) saveSession(id clientv3.LeaseID, cluster uint64) {
	if r.store == nil {
		return
	}
	var state []byte
	if id != 0 {
		state, _ = json.Marshal(storedSession{Lease: int64(id), Cluster: cluster, Prefix: r.cfg.Prefix})
	}
	if err := r.store.Save(state); err != nil {
		r.log.Warn("cannot store the session; a restart will start a new lease",
			zap.String("lease", leaseString(id)), zap.Error(err))
	}
}

func cloneEndpoints(eps []registry.Endpoint) []registry.Endpoint {
	if eps == nil {
		return nil
	}
	out := make([]registry.Endpoint, len(eps))
	for i, ep := range eps {
		out[i], _ = ep.Normalized() // a copy with its own Metadata
	}
	return out
}
