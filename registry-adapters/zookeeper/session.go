package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dubbogo/go-zookeeper/zk"
	"go.uber.org/zap"
)

// sessionState follows the connection state the ZooKeeper library reports
// and wakes whoever waits on it. The library calls set from its own
// goroutines, so set never blocks.
type sessionState struct {
	mu      sync.Mutex
	state   zk.State
	gen     uint64        // bumped on every StateHasSession: a (re)connect
	changed chan struct{} // closed and replaced on every change
}

func newSessionState() *sessionState {
	return &sessionState{state: zk.StateDisconnected, changed: make(chan struct{})}
}

func (s *sessionState) set(st zk.State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state = st
	if st == zk.StateHasSession {
		s.gen++
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// get returns the state, the number of (re)connects so far, and a channel
// closed at the next change.
func (s *sessionState) get() (zk.State, uint64, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state, s.gen, s.changed
}

// backoff doubles a delay from min up to max.
type backoff struct {
	min, max, next time.Duration
}

func (b *backoff) delay() time.Duration {
	d := max(b.next, b.min)
	b.next = min(2*d, b.max)
	return d
}

func (b *backoff) reset() { b.next = 0 }

// keep runs for the life of the Registry. After every (re)connect it makes
// the server hold what this client registered: after a session expiry the
// server has dropped every ephemeral node, so they are all created again;
// after a plain reconnect it only finds them there. It also deletes nodes
// left behind by requests whose outcome a lost connection hid.
func (r *Registry) keep() {
	defer r.wg.Done()
	var (
		reconciled uint64 // session generation last reconciled
		lastSID    int64
		wasUp      bool
		retry      *time.Timer
		retryC     <-chan time.Time
		bo         = backoff{min: 100 * time.Millisecond, max: 5 * time.Second}
	)
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		st, gen, changed := r.sess.get()
		up := st == zk.StateHasSession
		if up && !wasUp {
			sid := r.conn.SessionID()
			switch {
			case lastSID == 0:
				r.log.Info("zookeeper session established", zap.String("session_id", sessionHex(sid)))
			case sid != lastSID:
				r.log.Warn("zookeeper session expired; new session, registering again",
					zap.String("old_session_id", sessionHex(lastSID)), zap.String("session_id", sessionHex(sid)),
					zap.Int("registrations", r.registrationCount()))
			default:
				r.log.Info("zookeeper connection restored", zap.String("session_id", sessionHex(sid)))
			}
			lastSID = sid
		} else if !up && wasUp {
			r.log.Warn("zookeeper connection lost", zap.Stringer("state", st))
		}
		wasUp = up
		if up && gen != reconciled && retryC == nil {
			if err := r.reconcile(); err != nil {
				if r.isClosed() {
					return
				}
				d := bo.delay()
				r.log.Warn("zookeeper: restoring registrations failed; will retry", zap.Duration("retry_in", d), zap.Error(err))
				retry = time.NewTimer(d)
				retryC = retry.C
			} else {
				reconciled = gen
				bo.reset()
			}
		}
		select {
		case <-changed:
			if retry != nil {
				retry.Stop()
			}
			retryC = nil
		case <-retryC:
			retryC = nil
		case <-r.done:
			return
		}
	}
}

// reconcile stores a new session, deletes orphaned nodes and those the
// previous run left that the session owns, and makes sure every
// registration's node exists, owned by the current session.
func (r *Registry) reconcile() error {
	if err := r.lockWrites(context.Background()); err != nil {
		return err
	}
	defer r.unlockWrites()
	r.mu.Lock()
	regs := make([]*registration, 0, len(r.regs))
	for _, reg := range r.regs {
		regs = append(regs, reg)
	}
	orphans := make([]string, 0, len(r.orphans))
	for p := range r.orphans {
		orphans = append(orphans, p)
	}
	stale := make([]string, 0, len(r.stale))
	for p := range r.stale {
		stale = append(stale, p)
	}
	r.mu.Unlock()

	if r.sessionChanged() {
		r.saveSession("") // before the nodes are made again
	}

	for _, p := range orphans {
		if err := r.conn.Delete(p, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
			return fmt.Errorf("delete orphan %s: %w", p, err)
		}
		r.mu.Lock()
		delete(r.orphans, p)
		r.mu.Unlock()
	}
	inUse := make(map[string]bool, len(regs))
	for _, reg := range regs {
		inUse[reg.path] = true
	}
	for _, p := range stale {
		if err := r.dropStale(p, inUse[p]); err != nil {
			return fmt.Errorf("delete node %s of the previous run: %w", p, err)
		}
	}
	for _, reg := range regs {
		if err := r.ensureNode(reg.path, reg.data); err != nil {
			return fmt.Errorf("register %s again: %w", reg.ep, err)
		}
	}
	return nil
}

// ensureNode creates the ephemeral node path with data, and its persistent parents
// if needed. A node already there is fine if the current session owns it.
// One owned by another session is an error: right after an expiry it is
// the old session's node the server is about to delete, so the caller
// tries again later.
func (r *Registry) ensureNode(path string, data []byte) error {
	_, err := r.conn.Create(path, data, zk.FlagEphemeral, r.acl())
	if errors.Is(err, zk.ErrNoNode) {
		if err := r.ensureParents(path); err != nil {
			return err
		}
		_, err = r.conn.Create(path, data, zk.FlagEphemeral, r.acl())
	}
	if errors.Is(err, zk.ErrNodeExists) {
		return r.checkOwner(path)
	}
	return err
}

func (r *Registry) checkOwner(path string) error {
	ok, stat, err := r.conn.Exists(path)
	if err != nil {
		return err
	}
	sid := r.conn.SessionID()
	if !ok {
		return fmt.Errorf("node %s vanished while being created; will retry", path)
	}
	if stat.EphemeralOwner != sid {
		return fmt.Errorf("node %s exists, owned by session %s, not by this client's %s",
			path, sessionHex(stat.EphemeralOwner), sessionHex(sid))
	}
	return nil
}

// ensureParents creates the persistent ancestors of path that are
// missing, tolerating other clients creating them at the same time.
func (r *Registry) ensureParents(path string) error {
	for i := 1; i < len(path); i++ {
		if path[i] != '/' {
			continue
		}
		_, err := r.conn.Create(path[:i], nil, 0, r.acl())
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("create %s: %w", path[:i], err)
		}
	}
	return nil
}

func sessionHex(id int64) string { return fmt.Sprintf("0x%x", id) }

// worldACL is the ACL of the nodes a client without credentials
// creates: open to all, as Dubbo creates them.
func worldACL() []zk.ACL { return zk.WorldACL(zk.PermAll) }

// acl is the ACL of the nodes this client registers: with credentials,
// all permissions for their creator only (Curator's CREATOR_ALL_ACL).
func (r *Registry) acl() []zk.ACL {
	if r.cfg.Username != "" {
		return zk.AuthACL(zk.PermAll)
	}
	return worldACL()
}
