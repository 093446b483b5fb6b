// Package sessionfile keeps a registry adapter's session state
// (registry.SessionStore) in one file of the agent's data dir, so a
// restarted agent takes its ZooKeeper session or etcd lease back. The
// file may hold a session password: it is written 0600, atomically.
package sessionfile

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/detourmesh/detour/naming-agent/internal/atomicfile"
	"github.com/detourmesh/detour/registry-adapters/registry"
)

// Store is a registry.SessionStore backed by one file.
type Store struct {
	path string
	mu   sync.Mutex // orders Saves
}

var _ registry.SessionStore = (*Store)(nil)

// New returns the store at path; the file need not exist.
func New(path string) *Store { return &Store{path: path} }

// Load returns the stored state, or nil when there is none.
func (s *Store) Load() ([]byte, error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sessionfile: %w", err)
	}
	return b, nil
}

// Save replaces the stored state.
func (s *Store) Save(state []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := atomicfile.Write(s.path, state, 0o600); err != nil {
		return fmt.Errorf("sessionfile: %w", err)
	}
	return nil
}
