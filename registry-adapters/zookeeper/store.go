package zookeeper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dubbogo/go-zookeeper/zk"
	"go.uber.org/zap"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

var _ registry.Store = (*Registry)(nil)

// The Store's keys are the znodes at exactly their paths, so apps
// outside the mesh that use the same ZooKeeper read and write the same
// nodes. Writes go through the registration session: an ephemeral key
// is an ephemeral node of it, made again by storeKeeper after the
// session is replaced (as the registrations are). Watches use the
// watchers' connection (see watchConn).

// storeState is a Registry's Store state, kept beside it (by pointer)
// until its Close.
type storeState struct {
	once sync.Once
	mu   sync.Mutex
	eph  map[string][]byte // ephemeral keys held: path -> data
}

var storeStates sync.Map // *Registry -> *storeState

func (r *Registry) storeState() *storeState {
	v, _ := storeStates.LoadOrStore(r, &storeState{eph: map[string][]byte{}})
	s := v.(*storeState)
	s.once.Do(func() { go r.storeKeeper(s) })
	return s
}

// storeKeeper makes the ephemeral keys again after each new session of
// the registration connection, until Close.
func (r *Registry) storeKeeper(s *storeState) {
	defer storeStates.Delete(r)
	var done uint64
	bo := backoff{min: 100 * time.Millisecond, max: 5 * time.Second}
	for {
		st, gen, changed := r.sess.get()
		var retry <-chan time.Time
		if st == zk.StateHasSession && gen != done {
			if err := r.restoreKeys(s); err != nil {
				d := bo.delay()
				r.log.Warn("zookeeper: writing shared ephemeral nodes again failed; will retry",
					zap.Duration("retry_in", d), zap.Error(err))
				retry = time.After(d)
			} else {
				done = gen
				bo.reset()
			}
		}
		select {
		case <-changed:
		case <-retry:
		case <-r.done:
			return
		}
	}
}

func (r *Registry) restoreKeys(s *storeState) error {
	s.mu.Lock()
	keys := make(map[string][]byte, len(s.eph))
	for k, v := range s.eph {
		keys[k] = v
	}
	s.mu.Unlock()
	for k, v := range keys {
		if err := r.putNode(k, v, true); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	return nil
}

// PutKey creates the node key with value, its missing parents
// persistent, or sets its data if it exists. An ephemeral key is a node
// of this client's session (one of another session at that path is
// replaced).
func (r *Registry) PutKey(ctx context.Context, key string, value []byte, ephemeral bool) error {
	if !registry.ValidKey(key) || key == "/zookeeper" || len(key) > len("/zookeeper/") && key[:len("/zookeeper/")] == "/zookeeper/" {
		return fmt.Errorf("zookeeper: put %q: %w: not a key", key, registry.ErrInvalid)
	}
	s := r.storeState()
	if err := r.awaitSession(ctx); err != nil {
		return fmt.Errorf("zookeeper: put %q: %w", key, err)
	}
	if ephemeral {
		// Recorded first: if the session is replaced meanwhile, the
		// keeper makes it.
		s.mu.Lock()
		s.eph[key] = bytes.Clone(value)
		s.mu.Unlock()
	} else {
		s.mu.Lock()
		delete(s.eph, key)
		s.mu.Unlock()
	}
	if err := r.putNode(key, value, ephemeral); err != nil {
		return fmt.Errorf("zookeeper: put %q: %w", key, r.storeErr(err))
	}
	return nil
}

func (r *Registry) putNode(key string, value []byte, ephemeral bool) error {
	flags := int32(0)
	if ephemeral {
		flags = zk.FlagEphemeral
	}
	if value == nil {
		value = []byte{}
	}
	for range 3 {
		_, err := r.conn.Create(key, value, flags, worldACL())
		if errors.Is(err, zk.ErrNoNode) {
			if err := r.ensureParents(key); err != nil {
				return err
			}
			_, err = r.conn.Create(key, value, flags, worldACL())
		}
		if !errors.Is(err, zk.ErrNodeExists) {
			return err
		}
		_, stat, err := r.conn.Exists(key)
		if err != nil {
			return err
		}
		if stat == nil {
			continue // deleted meanwhile
		}
		mine := stat.EphemeralOwner == r.conn.SessionID()
		if ephemeral && !mine {
			// Another session's node (this client's previous one, not
			// yet expired) or a persistent one: take it over.
			if err := r.conn.Delete(key, stat.Version); err != nil && !errors.Is(err, zk.ErrNoNode) && !errors.Is(err, zk.ErrBadVersion) {
				return err
			}
			continue
		}
		_, err = r.conn.Set(key, value, -1)
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		return err
	}
	return fmt.Errorf("node %s keeps changing", key)
}

// DeleteKey deletes the node key; one with children is ErrInvalid.
func (r *Registry) DeleteKey(ctx context.Context, key string) error {
	if !registry.ValidKey(key) {
		return fmt.Errorf("zookeeper: delete %q: %w: not a key", key, registry.ErrInvalid)
	}
	s := r.storeState()
	s.mu.Lock()
	delete(s.eph, key)
	s.mu.Unlock()
	if err := r.awaitSession(ctx); err != nil {
		return fmt.Errorf("zookeeper: delete %q: %w", key, err)
	}
	err := r.conn.Delete(key, -1)
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("zookeeper: delete %q: %w", key, r.storeErr(err))
	}
	return nil
}

// storeErr maps what ZooKeeper refuses for good to ErrInvalid, the rest
// to ErrUnavailable (or ErrClosed).
func (r *Registry) storeErr(err error) error {
	if errors.Is(err, zk.ErrNotEmpty) || errors.Is(err, zk.ErrNoChildrenForEphemerals) ||
		errors.Is(err, zk.ErrNoAuth) || errors.Is(err, zk.ErrInvalidACL) {
		return fmt.Errorf("%w: %w", registry.ErrInvalid, err)
	}
	if c := r.classify(err); errors.Is(c, registry.ErrClosed) || errors.Is(c, registry.ErrUnavailable) {
		return c
	}
	// A broken connection surfaces as a plain network error: retry.
	return fmt.Errorf("%w: %w", registry.ErrUnavailable, err)
}
