package nacos

import (
	"context"
	"fmt"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/common/remote/rpc"
	"github.com/nacos-group/nacos-sdk-go/v2/common/remote/rpc/rpc_request"
	"github.com/nacos-group/nacos-sdk-go/v2/common/remote/rpc/rpc_response"
	"go.uber.org/zap"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

// Keeping Nacos in line after connection loss. The SDK's gRPC client
// reconnects by itself (after a broken stream, a failed health check, or
// a server's "connection is unregistered"), and Nacos drops a connection's
// ephemeral instances and subscriptions with the connection, so
// everything must be written again on the new one.
//
// The SDK's naming client has redo logic for this, driven by the gRPC
// client's connection listeners. The adapter uses neither: the gRPC client
// reads its current connection for a log line while its reconnect writes
// it, unsynchronised, whenever a listener is registered (a data race the
// race detector reports on every reconnect); and the naming client's redo
// re-registers from a cache that a failed register has already changed,
// runs unsynchronised with new registrations (a stale set can land after a
// newer one), and never retries a redo that failed.
//
// Instead the reconciler watches the client's status: every reconnect the
// client makes by itself takes it out of RUNNING for at least the 100 ms
// it waits after the connection setup, and the reconciler looks every
// 50 ms. When it is back, the reconciler publishes every service's
// recorded set again and subscribes every watched service again, each
// under the service's write lock, and retries with backoff until Nacos
// took it. The one reconnect that keeps the status RUNNING is the one a
// server asks for (ConnectResetRequest, when Nacos rebalances clients or
// shuts down): resetHandler passes it to the SDK and schedules the same
// redo after the switch.

const (
	reconcileTick = 50 * time.Millisecond
	minBackoff    = 250 * time.Millisecond
	maxBackoff    = 5 * time.Second
)

// redoAfterReset are the delays after a ConnectResetRequest at which
// everything is written again: the SDK switches connections in the
// background, in about 100 ms when the new server answers at once and in a
// few seconds when it does not.
var redoAfterReset = []time.Duration{time.Second, 5 * time.Second}

// reconnectedLocked marks everything for writing again on a new
// connection. r.mu is held.
func (r *Registry) reconnectedLocked() {
	r.epoch++
	for _, st := range r.services {
		// A new connection holds nothing of this client.
		st.dirty = len(st.regs) > 0
		if s := st.sub; s != nil {
			s.needSub = true
			s.refTime = 0
		}
	}
	r.kickLocked()
	r.log.Debug("connection made anew", zap.Uint64("epoch", r.epoch))
}

// connectionReset is told by resetHandler that the server asked the
// client to reconnect.
func (r *Registry) connectionReset() {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.redoAt = r.redoAt[:0]
	for _, d := range redoAfterReset {
		r.redoAt = append(r.redoAt, now.Add(d))
	}
}

// resetHandler wraps the SDK's handler of ConnectResetRequest.
type resetHandler struct {
	r     *Registry
	inner rpc.ConnectResetRequestHandler
}

var _ rpc.IServerRequestHandler = resetHandler{}

func (h resetHandler) Name() string { return h.inner.Name() }

func (h resetHandler) RequestReply(req rpc_request.IRequest, c *rpc.RpcClient) rpc_response.IResponse {
	resp := h.inner.RequestReply(req, c)
	h.r.connectionReset()
	return resp
}

// reconcileLoop runs until Close: it watches the connection and writes
// dirty services and subscriptions again.
func (r *Registry) reconcileLoop() {
	defer r.wg.Done()
	t := time.NewTicker(reconcileTick)
	defer t.Stop()
	backoff := minBackoff
	var retryAt time.Time
	for {
		kicked := false
		select {
		case <-r.done:
			return
		case <-r.kick:
			kicked = true
		case <-t.C:
		}
		running := r.rpc.IsRunning()
		r.watchHealth(running)
		if !running || (!kicked && time.Now().Before(retryAt)) {
			continue
		}
		if r.reconcile() {
			backoff, retryAt = minBackoff, time.Time{}
		} else {
			retryAt = time.Now().Add(backoff)
			backoff = min(2*backoff, maxBackoff)
		}
	}
}

// watchHealth follows the client's status: back to RUNNING after being
// out of it means a new connection (see above). Once the connection has
// been down for RequestTimeout, watchers are told
// registry.ErrUnavailable; they are told the set again when the
// subscription is made again.
func (r *Registry) watchHealth(running bool) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if running {
		if !r.downSince.IsZero() {
			r.downSince = time.Time{}
			r.reconnectedLocked()
		} else if len(r.redoAt) > 0 && !now.Before(r.redoAt[0]) {
			r.redoAt = r.redoAt[1:]
			r.reconnectedLocked()
		}
		return
	}
	if r.downSince.IsZero() {
		r.downSince = now
		return
	}
	down := now.Sub(r.downSince)
	if down < r.cfg.RequestTimeout {
		return
	}
	for _, st := range r.services {
		if s := st.sub; s != nil {
			s.failLocked(fmt.Errorf("nacos: watch %q: no connection to nacos for %v: %w",
				st.name, down.Round(time.Millisecond), registry.ErrUnavailable))
		}
	}
}

// reconcile writes every dirty service and every subscription that needs
// it, and reports whether all of it went through.
func (r *Registry) reconcile() bool {
	r.mu.Lock()
	var work []*svcState
	for _, st := range r.sortedServicesLocked() {
		if st.dirty || st.sub != nil && (st.sub.needSub || st.sub.err != nil) {
			work = append(work, st)
		}
	}
	r.mu.Unlock()
	ok := true
	for _, st := range work {
		if !r.republish(st) {
			ok = false
		}
		if !r.resubscribe(st) {
			ok = false
		}
	}
	return ok
}

// republish sends st's recorded set if st is dirty.
func (r *Registry) republish(st *svcState) bool {
	if err := r.lock(context.Background(), st); err != nil {
		return true // closed
	}
	defer r.unlock(st)
	r.mu.Lock()
	if !st.dirty {
		r.mu.Unlock()
		return true
	}
	regs, epoch := st.regs, r.epoch
	req, sent, err := r.publication(st.name, regs, st.lastSent)
	if req == nil || err != nil {
		// Nothing was ever sent for the service, or a recorded endpoint
		// does not map (it was validated on the way in).
		st.dirty = false
		r.mu.Unlock()
		return true
	}
	r.mu.Unlock()
	_, err = r.do(req, r.done)
	r.mu.Lock()
	defer r.mu.Unlock()
	st.lastSent = sent
	if err != nil {
		r.log.Warn("publishing registrations again failed; retrying",
			zap.String("service", st.name), zap.Int("endpoints", len(regs)), zap.Error(err))
		return false
	}
	st.dirty = r.epoch != epoch
	if len(regs) > 0 {
		r.log.Info("registrations published again", zap.String("service", st.name), zap.Int("endpoints", len(regs)))
	}
	return true
}

// resubscribe makes st's subscription again if it needs it.
func (r *Registry) resubscribe(st *svcState) bool {
	if err := r.lock(context.Background(), st); err != nil {
		return true // closed
	}
	r.mu.Lock()
	s := st.sub
	if s == nil || !s.needSub && s.err == nil {
		r.mu.Unlock()
		r.unlock(st)
		return true
	}
	epoch := r.epoch
	r.mu.Unlock()
	req := rpc_request.NewSubscribeServiceRequest(r.cfg.Namespace, st.name, r.cfg.Group, "", true)
	resp, err := r.do(req, r.done)
	r.subscribed(st, s, epoch, resp, err) // releases st's lock
	return err == nil
}
