package etcd

import (
	"hash/fnv"
	"sync"

	"go.uber.org/zap"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

// badEntry is an entry decodeEntry refused.
type badEntry struct {
	key    string
	value  []byte
	create int64 // the entry's CreateRevision
	mod    int64 // and ModRevision
	err    error
}

// version is what the reporter remembers of a bad entry. create and hash
// tell one bad entry from another under the same key (a new value, or the
// same value written again after a deletion); mod orders reads.
type version struct {
	create, mod int64
	hash        uint64
}

// reporter tells the log and the MalformedFunc about each bad entry once
// per distinct key and value, however often and by however many readers
// (List, watchers) it is read. It remembers only entries that still
// exist: a deletion seen by a watcher, or a later listing without the
// entry, forgets it.
type reporter struct {
	log *zap.Logger
	fn  registry.MalformedFunc

	mu   sync.Mutex
	seen map[string]map[string]version // service -> key -> last reported
}

func newReporter(log *zap.Logger, fn registry.MalformedFunc) *reporter {
	return &reporter{log: log, fn: fn, seen: map[string]map[string]version{}}
}

// listed records the bad entries of a listing of service at revision rev.
func (r *reporter) listed(service string, rev int64, bad []badEntry) {
	r.mu.Lock()
	m := r.seen[service]
	if m == nil {
		m = map[string]version{}
		r.seen[service] = m
	}
	present := make(map[string]bool, len(bad))
	var fresh []badEntry
	for _, b := range bad {
		present[b.key] = true
		if r.recordLocked(m, b) {
			fresh = append(fresh, b)
		}
	}
	for k, v := range m {
		// Gone at rev; one written after rev is newer than this listing.
		if !present[k] && v.mod <= rev {
			delete(m, k)
		}
	}
	if len(m) == 0 {
		delete(r.seen, service)
	}
	r.mu.Unlock()
	for _, b := range fresh {
		r.tell(service, b)
	}
}

// put records one bad entry a watcher saw written.
func (r *reporter) put(service string, b badEntry) {
	r.mu.Lock()
	m := r.seen[service]
	if m == nil {
		m = map[string]version{}
		r.seen[service] = m
	}
	fresh := r.recordLocked(m, b)
	r.mu.Unlock()
	if fresh {
		r.tell(service, b)
	}
}

// recordLocked stores b's version and reports whether it is new.
func (r *reporter) recordLocked(m map[string]version, b badEntry) bool {
	v := version{create: b.create, mod: b.mod, hash: hash(b.value)}
	prev, ok := m[b.key]
	switch {
	case ok && v.mod < prev.mod:
		return false // an older version, read late by a slower reader
	case ok && v.create == prev.create && v.hash == prev.hash:
		m[b.key] = v
		return false
	}
	m[b.key] = v
	return true
}

// deleted forgets key after a watcher saw it deleted at revision rev.
func (r *reporter) deleted(service, key string, rev int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.seen[service]
	if v, ok := m[key]; ok && v.mod < rev {
		delete(m, key)
		if len(m) == 0 {
			delete(r.seen, service)
		}
	}
}

func (r *reporter) tell(service string, b badEntry) {
	r.log.Warn("skipping malformed entry",
		zap.String("service", service), zap.String("key", b.key), zap.Error(b.err))
	if r.fn != nil {
		r.fn(service, b.key, b.err)
	}
}

func hash(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}
