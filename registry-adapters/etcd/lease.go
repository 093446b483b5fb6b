package etcd

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Limits of one transaction when registrations are written again, well
// under etcd's defaults (128 operations, 1.5 MiB per request).
const (
	restoreBatchOps   = 64
	restoreBatchBytes = 512 << 10
)

func (r *Registry) currentLease() clientv3.LeaseID {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lease
}

// putLocked writes one registration under the current lease, making a new
// lease first if there is none or etcd says it is gone. The caller holds
// the write lock.
func (r *Registry) putLocked(ctx context.Context, key, value string) error {
	lease := r.currentLease()
	if lease == 0 {
		if err := r.renewLocked(ctx, 0); err != nil {
			return err
		}
		lease = r.currentLease()
	}
	_, err := r.client.Put(ctx, key, value, clientv3.WithLease(lease))
	if !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return err
	}
	// The lease ended before the keeper noticed. Forget it, so that if
	// the renewal fails here the keeper's restore does it.
	r.log.Warn("lease lost, renewing it before the write", zap.String("lease", leaseString(lease)), zap.String("key", key))
	r.mu.Lock()
	if r.lease == lease {
		r.lease = 0
	}
	r.mu.Unlock()
	if err := r.renewLocked(ctx, lease); err != nil {
		return err
	}
	_, err = r.client.Put(ctx, key, value, clientv3.WithLease(r.currentLease()))
	return err
}

// renewLocked grants a new lease, writes every registration under it and
// makes it the current one; then it revokes old, the lease it replaces
// (0 for none), which by then holds none of them. On failure the current
// lease stays as it was, the new one expires unused, and the caller may
// try again. The caller holds the write lock.
func (r *Registry) renewLocked(ctx context.Context, old clientv3.LeaseID) error {
	grant, err := r.client.Grant(ctx, int64(r.cfg.LeaseTTL/time.Second))
	if err != nil {
		return fmt.Errorf("grant lease: %w", err)
	}
	id := grant.ID
	r.mu.Lock()
	ops := make([]clientv3.Op, 0, len(r.regs))
	sizes := make([]int, 0, len(r.regs))
	for k, v := range r.regs {
		ops = append(ops, clientv3.OpPut(k, v, clientv3.WithLease(id)))
		sizes = append(sizes, len(k)+len(v))
	}
	r.mu.Unlock()
	for start := 0; start < len(ops); {
		end, bytes := start, 0
		for end < len(ops) && end-start < restoreBatchOps && (end == start || bytes+sizes[end] <= restoreBatchBytes) {
			bytes += sizes[end]
			end++
		}
		if _, err := r.client.Txn(ctx).Then(ops[start:end]...).Commit(); err != nil {
			// Leave the new lease to expire rather than revoke it: if the
			// old one is in fact alive (the client only timed out), a
			// revoke would delete what the first batches moved to it.
			return fmt.Errorf("write %d registrations under lease %s: %w", len(ops), leaseString(id), err)
		}
		start = end
	}
	r.mu.Lock()
	r.lease = id
	r.mu.Unlock()
	r.saveSession(id, grant.ClusterId)
	select {
	case r.leaseChanged <- struct{}{}:
	default:
	}
	if len(ops) > 0 || old != 0 {
		r.log.Info("lease renewed, registrations written again",
			zap.String("lease", leaseString(id)), zap.String("old_lease", leaseString(old)), zap.Int("registrations", len(ops)))
	}
	if old != 0 {
		r.revokeSoon(old)
	}
	return nil
}

// revokeSoon revokes a lease that no registration uses any more, without
// holding anything up; if etcd cannot be reached the lease expires anyway.
func (r *Registry) revokeSoon(id clientv3.LeaseID) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		ctx, cancel := context.WithTimeout(r.ctx, r.cfg.RequestTimeout)
		defer cancel()
		if err := r.revoke(ctx, id); err != nil && r.ctx.Err() == nil {
			r.log.Debug("revoke of an unused lease failed; it will expire",
				zap.String("lease", leaseString(id)), zap.Error(err))
		}
	}()
}

// revoke revokes a lease; one that is already gone is not an error.
func (r *Registry) revoke(ctx context.Context, id clientv3.LeaseID) error {
	_, err := r.client.Revoke(ctx, id)
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return nil
	}
	return err
}

// keep keeps the current lease alive, and restores the registrations when
// it is lost. It runs until Close.
func (r *Registry) keep() {
	defer r.wg.Done()
	var (
		id   clientv3.LeaseID
		ka   <-chan *clientv3.LeaseKeepAliveResponse
		stop = func() {}
	)
	defer func() { stop() }()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-r.leaseChanged:
			cur := r.currentLease()
			if cur == id {
				continue
			}
			stop()
			id, ka, stop = cur, nil, func() {}
			if id == 0 {
				continue
			}
			kctx, cancel := context.WithCancel(r.ctx)
			ch, err := r.client.KeepAlive(kctx, id)
			if err != nil { // the client is closed
				cancel()
				r.log.Warn("cannot keep the lease alive", zap.String("lease", leaseString(id)), zap.Error(err))
				continue
			}
			ka, stop = ch, cancel
		case _, ok := <-ka:
			if ok {
				continue
			}
			// The client closes the channel when etcd says the lease is
			// gone, or when no keep-alive got through for a whole TTL.
			stop()
			ka, stop = nil, func() {}
			r.log.Warn("lease lost, restoring registrations", zap.String("lease", leaseString(id)))
			r.restore(id)
		}
	}
}

// restore replaces the lost lease old, with backoff, until it has
// succeeded, someone else (a Register) has done it, or Close.
func (r *Registry) restore(old clientv3.LeaseID) {
	bo := newBackoff(100*time.Millisecond, 5*time.Second)
	for attempt := 1; ; attempt++ {
		err := r.tryRestore(old)
		if err == nil {
			if attempt > 1 {
				r.log.Info("registrations restored", zap.Int("attempts", attempt))
			}
			return
		}
		d := bo.next()
		if attempt == 1 {
			r.log.Warn("cannot restore registrations yet, retrying", zap.Error(err), zap.Duration("retry_in", d))
		} else {
			r.log.Debug("cannot restore registrations yet, retrying",
				zap.Error(err), zap.Int("attempt", attempt), zap.Duration("retry_in", d))
		}
		if !sleepCtx(r.ctx, d) {
			return
		}
	}
}

func (r *Registry) tryRestore(old clientv3.LeaseID) error {
	release, err := r.lockWrites(r.ctx)
	if err != nil {
		return nil // closed
	}
	defer release()
	r.mu.Lock()
	if r.lease == old {
		r.lease = 0
	}
	cur, n := r.lease, len(r.regs)
	r.mu.Unlock()
	if cur != 0 || n == 0 {
		// Renewed already, or nothing to restore: the next Register
		// grants a lease.
		return nil
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.RequestTimeout)
	defer cancel()
	return r.renewLocked(ctx, old)
}

func leaseString(id clientv3.LeaseID) string { return fmt.Sprintf("%x", int64(id)) }
