package registrytest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

// FileStore is a registry.SessionStore in one file, for tests: Save
// writes a temporary file beside it and renames it over the old one, so
// the file holds the old state or the new, never a mix. Several
// FileStores may share a path, as the runs of one process share its data
// dir: give each client its own, and Freeze the one of a client that
// crashes.
type FileStore struct {
	path   string
	mu     sync.Mutex // serializes this store's Saves
	frozen atomic.Bool
	saves  atomic.Int64
}

var _ registry.SessionStore = (*FileStore)(nil)

// NewFileStore returns a store in the file at path, which need not exist.
func NewFileStore(path string) *FileStore { return &FileStore{path: path} }

// Load implements registry.SessionStore: nil when the file does not exist.
func (s *FileStore) Load() ([]byte, error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// Save implements registry.SessionStore. After Freeze it writes nothing
// and reports success.
func (s *FileStore) Save(state []byte) error {
	if s.frozen.Load() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := os.CreateTemp(filepath.Dir(s.path), filepath.Base(s.path)+".tmp*")
	if err != nil {
		return fmt.Errorf("session store: %w", err)
	}
	_, err = f.Write(state)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), s.path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("session store: %w", err)
	}
	s.saves.Add(1)
	return nil
}

// Freeze makes every later Save a no-op, as a killed process writes
// nothing more: the client whose store it is may still be closed by a
// test's cleanup, and must not change what the next run finds.
func (s *FileStore) Freeze() { s.frozen.Store(true) }

// Saves is how many Saves wrote the file.
func (s *FileStore) Saves() int64 { return s.saves.Load() }
