// Package portalloc hands out the sidecar's per-service ports from
// configured ranges and keeps the assignment in a file, so that a
// restarted agent gives every service the port it had.
//
// A port is never given to two keys, and a port some other process holds
// when it is first assigned is skipped. Assignments are kept for good: a
// service that comes back gets its old port, whoever asks.
package portalloc

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"strconv"
	"sync"

	"github.com/detourmesh/detour/naming-agent/internal/atomicfile"
)

// ErrExhausted: every port of the pool's range is assigned or taken.
var ErrExhausted = errors.New("port range exhausted")

// Range is an inclusive range of ports.
type Range struct{ From, To int }

// Config configures an Allocator.
type Config struct {
	// Path is the file the assignment lives in.
	Path string
	// Ranges maps each pool name ("ingress", "egress") to its range.
	Ranges map[string]Range
	// Free reports whether port of pool can be bound right now; it is
	// asked only for ports not yet assigned. Nil means every port is free.
	Free func(pool string, port int) bool
	// Warn is told about a corrupt file (moved aside, the allocator
	// starts empty) and assignments dropped because they left their range.
	// Nil discards.
	Warn func(error)
}

// Allocator is the persisted assignment. It is safe for concurrent use.
type Allocator struct {
	cfg      Config
	mu       sync.Mutex
	assigned map[string]map[string]int // pool -> key -> port
	// used mirrors assigned (pool -> port), so finding a free port is
	// not a scan of every assignment per candidate: that made assigning
	// the k-th port O(k²), and 10,000 subscriptions took minutes.
	used map[string]map[int]bool
	// journaled counts assignments in the journal, not yet in the file.
	journaled int
	next      map[string]int // pool -> where the search for a free port starts
}

type fileFormat struct {
	Version int                       `json:"version"`
	Pools   map[string]map[string]int `json:"pools"`
}

// Open loads the assignment at cfg.Path, or starts empty when the file
// does not exist. A file that cannot be parsed is renamed to Path+".corrupt"
// and reported to Warn; only an unreadable file is an error.
func Open(cfg Config) (*Allocator, error) {
	if cfg.Warn == nil {
		cfg.Warn = func(error) {}
	}
	a := &Allocator{cfg: cfg, assigned: map[string]map[string]int{}, used: map[string]map[int]bool{}, next: map[string]int{}}
	for pool := range cfg.Ranges {
		a.assigned[pool] = map[string]int{}
		a.used[pool] = map[int]bool{}
	}
	if err := a.loadFile(); err != nil {
		return nil, err
	}
	if err := a.replayJournal(); err != nil {
		return nil, err
	}
	return a, nil
}

// loadFile loads the file, if there is one; a corrupt one is moved aside.
func (a *Allocator) loadFile() error {
	cfg := a.cfg
	b, err := os.ReadFile(cfg.Path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("portalloc: %w", err)
	}
	var f fileFormat
	if err := json.Unmarshal(b, &f); err != nil || f.Version != 1 {
		if err == nil {
			err = fmt.Errorf("version %d, want 1", f.Version)
		}
		cfg.Warn(fmt.Errorf("portalloc: %s is corrupt, moved to %s.corrupt, starting with no assignment: %w", cfg.Path, cfg.Path, err))
		if rerr := os.Rename(cfg.Path, cfg.Path+".corrupt"); rerr != nil {
			return fmt.Errorf("portalloc: move corrupt file aside: %w", rerr)
		}
		return nil
	}
	for pool, keys := range f.Pools {
		for key, port := range keys {
			a.loadLocked(pool, key, port, cfg.Path)
		}
	}
	return nil
}

// loadLocked takes one assignment read from a file, unless it is out of
// its range or its port is already someone else's.
func (a *Allocator) loadLocked(pool, key string, port int, from string) {
	r, ok := a.cfg.Ranges[pool]
	switch {
	case !ok:
		a.cfg.Warn(fmt.Errorf("portalloc: pool %q no longer configured: dropping %s=%d", pool, key, port))
	case port < r.From || port > r.To:
		a.cfg.Warn(fmt.Errorf("portalloc: %s port %d of %q outside %d-%d: dropped, a new one will be assigned", pool, port, key, r.From, r.To))
	case a.assigned[pool][key] == port:
		// Already known: the journal repeats what a compaction wrote.
	case a.usedLocked(pool, port):
		a.cfg.Warn(fmt.Errorf("portalloc: %s port %d assigned twice in %s: dropping %q", pool, port, from, key))
	default:
		if old, ok := a.assigned[pool][key]; ok {
			delete(a.used[pool], old)
		}
		a.assigned[pool][key] = port
		a.used[pool][port] = true
	}
}

// Get returns the port assigned to key in pool, if any.
func (a *Allocator) Get(pool, key string) (int, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.assigned[pool][key]
	return p, ok
}

// Assign returns key's port in pool, assigning and persisting (in the
// journal, see journal.go) a new one when key has none. The error wraps ErrExhausted when no port is left, or
// is the failure to write the file (then nothing is assigned).
func (a *Allocator) Assign(pool, key string) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.cfg.Ranges[pool]
	if !ok {
		return 0, fmt.Errorf("portalloc: unknown pool %q", pool)
	}
	if p, ok := a.assigned[pool][key]; ok {
		return p, nil
	}
	// Search on from the last port handed out, wrapping around: from the
	// range's start each time, the k-th assignment stepped over k-1 taken
	// ports.
	size, start := r.To-r.From+1, a.next[pool]
	if start < r.From || start > r.To {
		start = r.From
	}
	for i := range size {
		port := r.From + (start-r.From+i)%size
		if a.usedLocked(pool, port) || (a.cfg.Free != nil && !a.cfg.Free(pool, port)) {
			continue
		}
		if err := a.appendLocked(pool, key, port); err != nil {
			return 0, err
		}
		a.assigned[pool][key] = port
		a.used[pool][port] = true
		a.next[pool] = port + 1
		a.compactLocked()
		return port, nil
	}
	return 0, fmt.Errorf("portalloc: %s port for %q: %w (%d-%d)", pool, key, ErrExhausted, r.From, r.To)
}

// All returns a copy of pool's assignment.
func (a *Allocator) All(pool string) map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.assigned[pool])
}

func (a *Allocator) usedLocked(pool string, port int) bool { return a.used[pool][port] }

func (a *Allocator) saveLocked() error {
	b, err := json.MarshalIndent(fileFormat{Version: 1, Pools: a.assigned}, "", "  ")
	if err != nil {
		return fmt.Errorf("portalloc: %w", err)
	}
	if err := atomicfile.Write(a.cfg.Path, b, 0o644); err != nil {
		return fmt.Errorf("portalloc: save: %w", err)
	}
	return nil
}

// BindFree returns a Free function that tries to listen on ip:port for
// each pool's ip (pools not in ips are taken as free).
func BindFree(ips map[string]string) func(pool string, port int) bool {
	return func(pool string, port int) bool {
		ip, ok := ips[pool]
		if !ok {
			return true
		}
		l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err != nil {
			return false
		}
		l.Close()
		return true
	}
}
