package frontend

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"strings"
	"sync"
)

// ErrRejected: the registry refuses a Store's write (a bad key, a node
// with children to delete); retrying will not help.
var ErrRejected = errors.New("rejected by the registry")

// Store keeps what a front end passes through unchanged (a Dubbo app's
// consumer nodes, configurators, metadata reports: everything that is
// not a registration or a read of one) where every host sees it. Keys
// are absolute '/'-separated paths. Methods are safe for concurrent use.
//
// The agent gives front ends its registry's store where the adapter has
// one (ZooKeeper: the znodes themselves; etcd and embedded: keys under
// the adapter's prefix), and otherwise (Nacos) a MemoryStore: the keys
// are then this agent's only.
type Store interface {
	// Put sets key to data. An ephemeral key lives with the agent's
	// registry session: it goes when the agent dies, not when it
	// restarts within the session's timeout.
	Put(ctx context.Context, key string, data []byte, ephemeral bool) error
	// Delete deletes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Watch calls fn with every key equal to prefix or below it, now and
	// after each change, until ctx ends; then it returns ctx.Err(). skip,
	// if not nil, leaves out the keys it reports and all below them.
	// While the registry is unreachable it retries by itself, and calls
	// fn again once it has read the keys anew. Calls are sequential; the
	// map is fn's to keep.
	Watch(ctx context.Context, prefix string, skip func(key string) bool, fn func(map[string][]byte)) error
}

// MemoryStore is a Store in this process only: the fallback where the
// registry keeps nothing but registrations (Nacos), and the tests'.
// Ephemeral keys are kept like the others.
type MemoryStore struct {
	mu      sync.Mutex
	keys    map[string][]byte
	changed chan struct{} // closed and replaced on each change
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{keys: map[string][]byte{}, changed: make(chan struct{})}
}

// Put sets key.
func (m *MemoryStore) Put(_ context.Context, key string, data []byte, _ bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.keys[key]; ok && bytes.Equal(old, data) {
		return nil
	}
	m.keys[key] = bytes.Clone(data)
	m.bump()
	return nil
}

// Delete deletes key.
func (m *MemoryStore) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.keys[key]; ok {
		delete(m.keys, key)
		m.bump()
	}
	return nil
}

func (m *MemoryStore) bump() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// Watch calls fn with the keys under prefix now and after each change
// that touches them.
func (m *MemoryStore) Watch(ctx context.Context, prefix string, skip func(string) bool, fn func(map[string][]byte)) error {
	var last map[string][]byte
	for {
		m.mu.Lock()
		cur := make(map[string][]byte)
		for k, v := range m.keys {
			if UnderPrefix(k, prefix) && !skipped(k, prefix, skip) {
				cur[k] = v // values are replaced, never changed in place
			}
		}
		changed := m.changed
		m.mu.Unlock()
		if last == nil || !maps.EqualFunc(last, cur, bytes.Equal) {
			last = cur
			out := make(map[string][]byte, len(cur))
			for k, v := range cur {
				out[k] = bytes.Clone(v)
			}
			fn(out)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// skipped: key or an ancestor of it below prefix is one skip reports.
func skipped(key, prefix string, skip func(string) bool) bool {
	if skip == nil {
		return false
	}
	for k := key; len(k) >= len(prefix) && k != "" && k != "/"; k = k[:max(strings.LastIndexByte(k, '/'), 0)] {
		if skip(k) {
			return true
		}
	}
	return false
}

// UnderPrefix reports whether key is prefix or below it ("/" is above
// every key).
func UnderPrefix(key, prefix string) bool {
	if prefix == "/" {
		return true
	}
	return key == prefix || len(key) > len(prefix) && key[len(prefix)] == '/' && key[:len(prefix)] == prefix
}
