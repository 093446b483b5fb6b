package etcd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

var _ registry.Store = (*Registry)(nil)

// sharedDir is where the Store's keys live, below the prefix: PREFIX/_shared
// followed by the key ("detour/services/_shared/dubbo/mapping/org.x.S").
// No service starts with '_', so it is no service's.
const sharedDir = "/_shared"

func (r *Registry) sharedKey(key string) string { return r.cfg.Prefix + sharedDir + key }

// isShared reports an etcd key of the Store.
func (r *Registry) isShared(k []byte) bool {
	return bytes.HasPrefix(k, []byte(r.cfg.Prefix+sharedDir+"/"))
}

// PutKey sets key; an ephemeral key is attached to the Registry's lease
// and kept with its registrations: written again under a new lease,
// gone at Close or when the lease expires.
func (r *Registry) PutKey(ctx context.Context, key string, value []byte, ephemeral bool) error {
	if !registry.ValidKey(key) {
		return fmt.Errorf("etcd: put %q: %w: not a key", key, registry.ErrInvalid)
	}
	k, v := r.sharedKey(key), string(value)
	release, err := r.lockWrites(ctx)
	if err != nil {
		return fmt.Errorf("etcd: put %q: %w", key, err)
	}
	defer release()
	octx, cancel := r.opContext(ctx)
	defer cancel()
	if ephemeral {
		r.mu.Lock()
		cur, ok := r.regs[k]
		unchanged := ok && cur == v && r.lease != 0
		r.mu.Unlock()
		if unchanged {
			return nil
		}
		err = r.putLocked(octx, k, v)
	} else {
		_, err = r.client.Put(octx, k, v)
	}
	if err != nil {
		return fmt.Errorf("etcd: put %q: %w", key, r.failure(ctx, err))
	}
	r.mu.Lock()
	if ephemeral {
		r.regs[k] = v
	} else {
		delete(r.regs, k) // a plain key now: the lease no longer keeps it
	}
	r.mu.Unlock()
	return nil
}

// DeleteKey deletes key.
func (r *Registry) DeleteKey(ctx context.Context, key string) error {
	if !registry.ValidKey(key) {
		return fmt.Errorf("etcd: delete %q: %w: not a key", key, registry.ErrInvalid)
	}
	k := r.sharedKey(key)
	release, err := r.lockWrites(ctx)
	if err != nil {
		return fmt.Errorf("etcd: delete %q: %w", key, err)
	}
	defer release()
	octx, cancel := r.opContext(ctx)
	defer cancel()
	if _, err := r.client.Delete(octx, k); err != nil {
		return fmt.Errorf("etcd: delete %q: %w", key, r.failure(ctx, err))
	}
	r.mu.Lock()
	delete(r.regs, k)
	r.mu.Unlock()
	return nil
}

// WatchKeys reads the keys under prefix, then follows etcd's watch from
// that revision; it reads them again after any failure (a lost
// connection, a compaction), with backoff.
func (r *Registry) WatchKeys(ctx context.Context, prefix string, skip func(string) bool, fn func(map[string][]byte)) error {
	if prefix != "/" && !registry.ValidKey(prefix) {
		return fmt.Errorf("etcd: watch %q: %w: not a key", prefix, registry.ErrInvalid)
	}
	base := r.sharedKey(strings.TrimSuffix(prefix, "/"))
	bo := newBackoff(100*time.Millisecond, 5*time.Second)
	var last map[string][]byte
	for {
		err := r.watchKeysOnce(ctx, base, prefix, skip, &last, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if r.isClosed() {
			return fmt.Errorf("etcd: watch %q: %w", prefix, registry.ErrClosed)
		}
		d := bo.next()
		r.log.Warn("watch of shared keys failed; reading them again", zap.String("prefix", prefix),
			zap.Duration("retry_in", d), zap.Error(err))
		if !sleepCtx(ctx, d) {
			return ctx.Err()
		}
	}
}

// watchKeysOnce lists, calls fn, and follows until the watch fails.
func (r *Registry) watchKeysOnce(ctx context.Context, base, prefix string, skip func(string) bool, last *map[string][]byte, fn func(map[string][]byte)) error {
	octx, cancel := r.opContext(ctx)
	resp, err := r.client.Get(octx, base, clientv3.WithPrefix())
	cancel()
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	keys := map[string][]byte{}
	for _, kv := range resp.Kvs {
		r.applyShared(keys, prefix, skip, kv.Key, kv.Value, false)
	}
	deliver := func() {
		if *last == nil || !maps.EqualFunc(*last, keys, bytes.Equal) {
			*last = maps.Clone(keys)
			out := make(map[string][]byte, len(keys))
			for k, v := range keys {
				out[k] = bytes.Clone(v)
			}
			fn(out)
		}
	}
	deliver()
	wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer wcancel()
	lost := r.conn.lost()
	defer context.AfterFunc(lost, wcancel)()
	stopClosed := context.AfterFunc(r.ctx, wcancel)
	defer stopClosed()
	wch := r.client.Watch(wctx, base, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	for wr := range wch {
		switch {
		case wr.CompactRevision != 0:
			return fmt.Errorf("watch compacted up to %d", wr.CompactRevision)
		case wr.Err() != nil:
			return fmt.Errorf("watch: %w", wr.Err())
		case wr.Canceled:
			return errors.New("watch canceled by etcd")
		}
		for _, ev := range wr.Events {
			r.applyShared(keys, prefix, skip, ev.Kv.Key, ev.Kv.Value, ev.Type == clientv3.EventTypeDelete)
		}
		deliver()
	}
	if lost.Err() != nil {
		return errors.New("connection to etcd lost")
	}
	return errors.New("watch channel closed")
}

// applyShared records one etcd key in keys, by Store key, if it is under
// prefix and not skipped.
func (r *Registry) applyShared(keys map[string][]byte, prefix string, skip func(string) bool, k, v []byte, deleted bool) {
	if !r.isShared(k) {
		return
	}
	key := string(k[len(r.cfg.Prefix)+len(sharedDir):])
	if !registry.UnderPrefix(key, prefix) || registry.Skipped(key, prefix, skip) {
		return
	}
	if deleted {
		delete(keys, key)
		return
	}
	keys[key] = bytes.Clone(v)
}
