package zookeeper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/detourmesh/detour/naming-agent/frontend"
)

// PassthroughConfig says which of the apps' nodes the front end shares
// with every host through the registry (frontends.zookeeper.passthrough).
type PassthroughConfig struct {
	// Roots are the subtrees shared: every node an app writes at or
	// below one (but those the rewrite layer owns: Dubbo's providers)
	// goes to the registry, and every node the registry has there is
	// served here. Default: Dubbo's, /dubbo (registry, config center,
	// metadata report, mapping) and /services (application-level
	// instances). "/" shares everything; an empty list nothing.
	Roots []string `yaml:"roots"`
}

// DefaultPassthrough returns the roots Dubbo writes under by default.
func DefaultPassthrough() PassthroughConfig {
	return PassthroughConfig{Roots: []string{"/dubbo", "/services"}}
}

// Validate reports bad roots, each error naming the field.
func (c PassthroughConfig) Validate() error { return errors.Join(c.errs()...) }

func (c PassthroughConfig) errs() []error {
	var errs []error
	for i, r := range c.Roots {
		switch {
		case !validPath(r):
			errs = append(errs, fmt.Errorf("roots[%d]: %q is not a ZooKeeper path", i, r))
		case isZooKeeperPath(r):
			errs = append(errs, fmt.Errorf("roots[%d]: %q is the server's own", i, r))
		}
		for j, o := range c.Roots[:i] {
			if frontend.UnderPrefix(r, o) || frontend.UnderPrefix(o, r) {
				errs = append(errs, fmt.Errorf("roots[%d]: %q overlaps roots[%d] %q", i, r, j, o))
			}
		}
	}
	return errs
}

// Passthrough shares the apps' nodes under its roots through a
// frontend.Store: what a local app creates, changes or deletes there is
// written to the store (an ephemeral node as an ephemeral key, deleted
// when the node or its session goes), and what the store holds there is
// written into the local tree, so apps on every host read each other's
// nodes as on one ZooKeeper. It is the Server's Observer (with others,
// through Observers); Start connects it to the Server.
//
// Writes to the store go in order, one at a time; while the registry
// cannot be reached they wait and are retried, so nothing an app wrote
// is lost while the agent runs. A later write of the same path replaces
// one not yet made. Changes read from the store are applied without
// telling the Observer, so they are not written back.
type Passthrough struct {
	store   frontend.Store
	roots   []string
	exclude func(path string) bool
	log     *zap.Logger

	mu      sync.Mutex
	srv     *Server
	queue   []*write              // not yet written, in order
	eph     map[string]bool       // the local apps' ephemeral nodes under the roots
	sent    map[string][]sentNode // written, not yet seen back from the store
	wake    chan struct{}
	failing bool // the last write failed: say so once, and when it is over
	// draining: Close waits for the queue to empty; the writer then
	// returns, closing writerDone.
	draining   bool
	writerDone chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type write struct {
	path      string
	data      []byte
	ephemeral bool
	del       bool
}

type sentNode struct {
	data []byte
	gone bool
}

// maxSent bounds the writes remembered per path while waiting to see
// them back (a write that changed nothing is never seen).
const maxSent = 16

// NewPassthrough returns a Passthrough of the roots of cfg through store.
// exclude reports the paths the rewrite layer owns (its Overlay's), which
// are neither written nor read; nil: none.
func NewPassthrough(store frontend.Store, cfg PassthroughConfig, exclude func(string) bool, log *zap.Logger) *Passthrough {
	if exclude == nil {
		exclude = func(string) bool { return false }
	}
	if log == nil {
		log = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Passthrough{
		store: store, roots: slices.Clone(cfg.Roots), exclude: exclude,
		log: log.Named("frontend.zookeeper.passthrough"),
		eph: map[string]bool{}, sent: map[string][]sentNode{},
		wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel, writerDone: make(chan struct{}),
	}
}

// Start writes what the apps wrote, and watches the store into srv's
// tree. Call it once, after New.
func (p *Passthrough) Start(srv *Server) {
	p.mu.Lock()
	p.srv = srv
	p.mu.Unlock()
	p.wg.Add(1 + len(p.roots))
	go p.writer()
	for _, root := range p.roots {
		go p.watch(root)
	}
	if len(p.roots) == 0 {
		p.log.Info("pass-through off (no roots): apps' nodes stay on this host")
		return
	}
	p.log.Info("passing apps' nodes through the registry", zap.Strings("roots", p.roots))
}

// drainTimeout bounds how long Close waits for the writes queued.
const drainTimeout = 3 * time.Second

// Close makes the writes queued, for up to drainTimeout while the store
// takes them, and stops. Writes not made by then are dropped (and
// logged): the store's ephemeral keys live on with the agent's registry
// session, and the next run's front end, with the apps' sessions back,
// writes them again.
func (p *Passthrough) Close() {
	p.mu.Lock()
	started := p.srv != nil
	p.draining = true
	p.mu.Unlock()
	p.kick()
	if started {
		select {
		case <-p.writerDone:
		case <-time.After(drainTimeout):
		}
	}
	p.cancel()
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.queue); n > 0 {
		p.log.Warn("stopped with writes to the registry not made", zap.Int("writes", n))
	}
}

// Shared reports whether path is passed through.
func (p *Passthrough) Shared(path string) bool {
	if isZooKeeperPath(path) || path == "/" {
		return false
	}
	for _, r := range p.roots {
		if frontend.UnderPrefix(path, r) {
			return !p.exclude(path)
		}
	}
	return false
}

// NodeCreated writes an app's new node.
func (p *Passthrough) NodeCreated(_ int64, path string, data []byte, ephemeral bool) {
	if !p.Shared(path) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if ephemeral {
		p.eph[path] = true
	} else {
		delete(p.eph, path)
	}
	p.enqueueLocked(&write{path: path, data: data, ephemeral: ephemeral})
}

// NodeDataChanged writes an app's new data.
func (p *Passthrough) NodeDataChanged(_ int64, path string, data []byte) {
	if !p.Shared(path) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.enqueueLocked(&write{path: path, data: data, ephemeral: p.eph[path]})
}

// NodeDeleted deletes the node from the store: an app deleted it, or it
// was an ephemeral node whose session ended.
func (p *Passthrough) NodeDeleted(_ int64, path string) {
	if !p.Shared(path) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.eph, path)
	p.enqueueLocked(&write{path: path, del: true})
}

// SessionEnded: its nodes were deleted (NodeDeleted) just before.
func (p *Passthrough) SessionEnded(int64) {}

// SessionsRestored writes the restored sessions' ephemeral nodes again:
// the store may have lost them (a new registry session) while the agent
// was down.
func (p *Passthrough) SessionsRestored(sessions []RestoredSession) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range sessions {
		for _, e := range s.Ephemerals {
			if p.Shared(e.Path) {
				p.eph[e.Path] = true
				p.enqueueLocked(&write{path: e.Path, data: e.Data, ephemeral: true})
			}
		}
	}
}

// enqueueLocked queues w, replacing a write of the same path not yet
// made (w goes last, so a parent's deletion still follows its
// children's).
func (p *Passthrough) enqueueLocked(w *write) {
	p.queue = slices.DeleteFunc(p.queue, func(q *write) bool { return q.path == w.path })
	p.queue = append(p.queue, w)
	p.kick()
}

func (p *Passthrough) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Pending returns how many writes wait to be made.
func (p *Passthrough) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue)
}

func (p *Passthrough) queuedLocked(path string) bool {
	return slices.ContainsFunc(p.queue, func(q *write) bool { return q.path == path })
}

// writer makes the queued writes in order, retrying with backoff while
// the store fails.
func (p *Passthrough) writer() {
	defer p.wg.Done()
	defer close(p.writerDone)
	delay := time.Duration(0)
	for {
		p.mu.Lock()
		var w *write
		if len(p.queue) > 0 {
			w = p.queue[0]
		}
		draining := p.draining && (w == nil || p.failing)
		p.mu.Unlock()
		if draining {
			return
		}
		if w == nil {
			select {
			case <-p.wake:
				continue
			case <-p.ctx.Done():
				return
			}
		}
		err := p.do(w)
		if err != nil && !errors.Is(err, frontend.ErrRejected) {
			delay = min(max(2*delay, 100*time.Millisecond), 5*time.Second)
			p.failedWrite(w, err, delay)
			select {
			case <-time.After(delay):
			case <-p.ctx.Done():
				return
			}
			continue
		}
		delay = 0
		p.mu.Lock()
		if len(p.queue) > 0 && p.queue[0] == w {
			p.queue = p.queue[1:]
		}
		if err != nil { // the registry refuses it: retrying will not help
			p.log.Error("registry refused an app's node; it stays on this host only",
				zap.String("path", w.path), zap.Bool("delete", w.del), zap.Error(err))
		} else {
			s := append(p.sent[w.path], sentNode{data: w.data, gone: w.del})
			p.sent[w.path] = s[max(0, len(s)-maxSent):]
		}
		if p.failing {
			p.failing = false
			p.log.Info("registry writable again; making the writes kept", zap.Int("pending", len(p.queue)))
		}
		p.mu.Unlock()
	}
}

func (p *Passthrough) do(w *write) error {
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	if w.del {
		return p.store.Delete(ctx, w.path)
	}
	return p.store.Put(ctx, w.path, w.data, w.ephemeral)
}

func (p *Passthrough) failedWrite(w *write, err error, delay time.Duration) {
	p.mu.Lock()
	first, n := !p.failing, len(p.queue)
	p.failing = true
	p.mu.Unlock()
	if first {
		p.log.Warn("cannot write apps' nodes to the registry; kept and retried",
			zap.String("path", w.path), zap.Int("pending", n), zap.Error(err))
	} else {
		p.log.Debug("write to the registry failed again", zap.String("path", w.path),
			zap.Int("pending", n), zap.Duration("retry_in", delay), zap.Error(err))
	}
}

// watch follows root in the store and applies what changed between two
// readings to the tree.
func (p *Passthrough) watch(root string) {
	defer p.wg.Done()
	var prev map[string][]byte
	for {
		err := p.store.Watch(p.ctx, root, p.exclude, func(cur map[string][]byte) {
			p.apply(prev, cur)
			prev = cur
		})
		if p.ctx.Err() != nil {
			return
		}
		// A Store's Watch returns only when ctx ends; be safe anyway.
		p.log.Warn("watch of the registry ended; watching again", zap.String("root", root), zap.Error(err))
		select {
		case <-time.After(time.Second):
		case <-p.ctx.Done():
			return
		}
	}
}

// apply writes into the tree the nodes that changed from prev to cur:
// not those an app here has a write of queued (the store is behind), nor
// those the store shows as they were before a write of ours it has not
// shown yet (a reading older than the write).
func (p *Passthrough) apply(prev, cur map[string][]byte) {
	var changes []remoteNode
	for k, v := range cur {
		if old, ok := prev[k]; !ok || !bytes.Equal(old, v) || prev == nil {
			changes = append(changes, remoteNode{path: k, data: v})
		}
	}
	for k := range prev {
		if _, ok := cur[k]; !ok {
			changes = append(changes, remoteNode{path: k, gone: true})
		}
	}
	// Parents before children; deletions children first.
	slices.SortFunc(changes, func(a, b remoteNode) int {
		if a.gone != b.gone {
			if a.gone {
				return 1
			}
			return -1
		}
		if a.gone {
			return -strings.Compare(a.path, b.path)
		}
		return strings.Compare(a.path, b.path)
	})
	p.mu.Lock()
	defer p.mu.Unlock()
	keep := changes[:0]
	for _, c := range changes {
		if !p.Shared(c.path) || p.queuedLocked(c.path) || p.staleLocked(c) {
			continue
		}
		keep = append(keep, c)
	}
	if len(keep) == 0 || p.srv == nil {
		return
	}
	n := p.srv.applyRemote(keep)
	p.log.Debug("applied the registry's changes", zap.Int("changes", len(keep)), zap.Int("applied", n))
}

// staleLocked reports whether c is the store showing a write of ours
// that a later write of ours replaced.
func (p *Passthrough) staleLocked(c remoteNode) bool {
	list := p.sent[c.path]
	if len(list) == 0 {
		return false
	}
	i := slices.IndexFunc(list, func(s sentNode) bool {
		return s.gone == c.gone && (s.gone || bytes.Equal(s.data, c.data))
	})
	if i < 0 { // someone else's change
		delete(p.sent, c.path)
		return false
	}
	if rest := list[i+1:]; len(rest) > 0 {
		p.sent[c.path] = rest
		return true
	}
	delete(p.sent, c.path)
	return false
}
