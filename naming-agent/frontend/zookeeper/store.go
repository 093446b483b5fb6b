package zookeeper

import (
	"encoding/json"
	"fmt"
	"sync"

	"go.uber.org/zap"
)

// SessionStore keeps the server's sessions across restarts of the agent:
// their ids, passwords and timeouts, and their ephemeral nodes, so that
// an app's client reconnects to its session, ephemeral nodes in place,
// after the agent restarts within the session timeout. The agent hands in
// a file of its data dir; registry.SessionStore implementations (the
// agent's sessionfile) fit.
//
// Load returns nil and no error when nothing is stored. Save replaces
// what is stored, and is called from one goroutine at a time. The bytes
// are this package's business.
type SessionStore interface {
	Load() ([]byte, error)
	Save(state []byte) error
}

// storedState is what the server saves: version 1.
type storedState struct {
	Version int `json:"version"`
	// Epoch is the high half of the zxids of the run that saved it: the
	// next run takes a larger one.
	Epoch       int64           `json:"epoch"`
	NextSession int64           `json:"next_session"`
	Sessions    []storedSession `json:"sessions"`
}

type storedSession struct {
	ID         int64        `json:"id"`
	Password   []byte       `json:"password"`
	TimeoutMs  int32        `json:"timeout_ms"`
	Ephemerals []storedNode `json:"ephemerals,omitempty"`
}

type storedNode struct {
	Path    string `json:"path"`
	Data    []byte `json:"data"`
	ACL     []acl  `json:"acl"`
	Ctime   int64  `json:"ctime"`
	Mtime   int64  `json:"mtime"`
	Czxid   int64  `json:"czxid"`
	Mzxid   int64  `json:"mzxid"`
	Version int32  `json:"version"`
}

const storedVersion = 1

func decodeState(b []byte) (*storedState, error) {
	var st storedState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, err
	}
	if st.Version != storedVersion {
		return nil, fmt.Errorf("version %d, want %d", st.Version, storedVersion)
	}
	for _, s := range st.Sessions {
		if s.ID == 0 || len(s.Password) != 16 || s.TimeoutMs <= 0 {
			return nil, fmt.Errorf("session %#x: bad id, password or timeout", s.ID)
		}
		for _, n := range s.Ephemerals {
			if !validPath(n.Path) || n.Path == "/" {
				return nil, fmt.Errorf("session %#x: bad path %q", s.ID, n.Path)
			}
		}
	}
	return &st, nil
}

// saver writes the state behind the clients, coalescing: each change
// marks a generation; one goroutine snapshots the state (all the marks so
// far) and saves it, again and again while marks come. A reply that must
// not reach its client before its change is on disk (an ephemeral node
// created or deleted) waits for its generation in the connection's
// writer, never in the tree.
type saver struct {
	store    SessionStore
	snapshot func() ([]byte, uint64) // runs under Server.mu; the state and the generation it covers
	log      *zap.Logger

	mu     sync.Mutex // guards want, done, closed
	cond   *sync.Cond // done moved or closed
	want   uint64
	done   uint64
	closed bool
	wake   chan struct{}
	exited chan struct{}
}

func newSaver(store SessionStore, snapshot func() ([]byte, uint64), log *zap.Logger) *saver {
	s := &saver{store: store, snapshot: snapshot, log: log,
		wake: make(chan struct{}, 1), exited: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// mark records a change and returns the generation that covers it; 0
// without a store. It runs under Server.mu.
func (s *saver) mark() uint64 {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	s.want++
	g := s.want
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return g
}

// generation is the last mark, read by snapshot under Server.mu.
func (s *saver) generation() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.want
}

// wait blocks until generation g is saved (or the saver is closed).
func (s *saver) wait(g uint64) {
	if s == nil || g == 0 {
		return
	}
	s.mu.Lock()
	for s.done < g && !s.closed {
		s.cond.Wait()
	}
	s.mu.Unlock()
}

func (s *saver) run(stop <-chan struct{}) {
	defer close(s.exited)
	for {
		select {
		case <-s.wake:
			s.saveOnce()
		case <-stop:
			s.saveOnce() // what the last changes left
			s.mu.Lock()
			s.closed = true
			s.cond.Broadcast()
			s.mu.Unlock()
			return
		}
	}
}

func (s *saver) saveOnce() {
	s.mu.Lock()
	behind := s.done < s.want
	s.mu.Unlock()
	if !behind {
		return
	}
	state, g := s.snapshot()
	if err := s.store.Save(state); err != nil {
		// The clients go on: a session store that fails costs the
		// sessions at the next restart, not the service now.
		s.log.Error("cannot save the sessions", zap.Error(err))
	}
	s.mu.Lock()
	s.done = max(s.done, g)
	s.cond.Broadcast()
	s.mu.Unlock()
}
