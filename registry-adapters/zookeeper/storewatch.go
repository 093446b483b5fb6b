package zookeeper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"time"

	"github.com/dubbogo/go-zookeeper/zk"
	"go.uber.org/zap"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

// WatchKeys follows the subtree at prefix with one-shot data and child
// watches on every node (go-zookeeper v1.0.3 has no addWatch, so no
// persistent recursive watch): a fired watch makes it read that node
// again and arm it anew; a new watch session (the watchers' connection
// is replaced after every disconnect) makes it read the whole subtree
// again. fn gets every node at or below prefix, parents included, but
// the subtrees skip reports, which are not read.
func (r *Registry) WatchKeys(ctx context.Context, prefix string, skip func(string) bool, fn func(map[string][]byte)) error {
	if prefix != "/" && !registry.ValidKey(prefix) {
		return fmt.Errorf("zookeeper: watch %q: %w: not a key", prefix, registry.ErrInvalid)
	}
	if skip == nil {
		skip = func(string) bool { return false }
	}
	tw := &treeWatch{r: r, prefix: prefix, skip: skip, fn: fn, events: make(chan treeEvent, 64)}
	return tw.run(ctx)
}

type watchKind uint8

const (
	kindData watchKind = iota
	kindChild
	kindExists
)

type treeEvent struct {
	gen  uint64
	path string
	kind watchKind
}

// treeWatch is one WatchKeys call.
type treeWatch struct {
	r      *Registry
	prefix string
	skip   func(string) bool // a subtree neither read nor watched
	fn     func(map[string][]byte)
	events chan treeEvent

	gen   uint64 // the watch session the state below is of
	stop  chan struct{}
	nodes map[string][]byte
	kids  map[string][]string
	armed map[string]map[watchKind]bool
	// watching are the armed watches run waits on in one reflect.Select
	// (no goroutine per watch); past maxSelect, a goroutine forwards one
	// to events.
	watching []armedWatch
	last     map[string][]byte // what fn got last
}

type armedWatch struct {
	ch   <-chan zk.Event
	path string
	kind watchKind
}

// maxSelect keeps reflect.Select under its 65536 cases.
const maxSelect = 60000

func (tw *treeWatch) run(ctx context.Context) error {
	defer func() {
		if tw.stop != nil {
			close(tw.stop)
		}
	}()
	bo := backoff{min: 50 * time.Millisecond, max: 2 * time.Second}
	var dirty []string // paths to read again; nil with a fresh state
	fresh := true
	for {
		conn, _, gen, changed := tw.r.watch.get()
		var retry <-chan time.Time
		if conn != nil {
			if gen != tw.gen || fresh {
				tw.reset(gen)
				dirty, fresh = []string{tw.root()}, false
			}
			if err := tw.sync(conn, dirty); err != nil {
				d := bo.delay()
				tw.r.log.Debug("zookeeper: reading shared nodes failed; will retry", zap.String("prefix", tw.prefix),
					zap.Duration("retry_in", d), zap.Error(err))
				retry = time.After(d) // dirty stays: read it all again
			} else {
				dirty = nil
				bo.reset()
				tw.deliver()
			}
		}
		ev, fired, err := tw.wait(ctx, changed, retry)
		if err != nil {
			return err
		}
		if fired && ev.gen == tw.gen {
			delete(tw.armed[ev.path], ev.kind)
			dirty = append(dirty, ev.path)
		}
	}
}

// wait blocks until a watch fires (fired), the connection changes, retry
// is due, or the watch ends (err).
func (tw *treeWatch) wait(ctx context.Context, changed <-chan struct{}, retry <-chan time.Time) (treeEvent, bool, error) {
	const fixed = 5
	cases := make([]reflect.SelectCase, fixed, fixed+len(tw.watching))
	recv := func(ch any) reflect.SelectCase {
		return reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)}
	}
	cases[0], cases[2], cases[3], cases[4] = recv(changed), recv(ctx.Done()), recv(tw.r.done), recv(tw.events)
	cases[1] = reflect.SelectCase{Dir: reflect.SelectRecv} // no retry: never chosen
	if retry != nil {
		cases[1] = recv(retry)
	}
	for _, w := range tw.watching {
		cases = append(cases, recv(w.ch))
	}
	chosen, v, _ := reflect.Select(cases)
	switch {
	case chosen == 2:
		return treeEvent{}, false, ctx.Err()
	case chosen == 3:
		return treeEvent{}, false, fmt.Errorf("zookeeper: watch %q: %w", tw.prefix, registry.ErrClosed)
	case chosen == 4:
		return v.Interface().(treeEvent), true, nil
	case chosen >= fixed:
		i := chosen - fixed
		w := tw.watching[i]
		last := len(tw.watching) - 1
		tw.watching[i], tw.watching[last] = tw.watching[last], armedWatch{}
		tw.watching = tw.watching[:last]
		return treeEvent{gen: tw.gen, path: w.path, kind: w.kind}, true, nil
	}
	return treeEvent{}, false, nil
}

func (tw *treeWatch) root() string { return tw.prefix }

// reset forgets everything read on an earlier watch session.
func (tw *treeWatch) reset(gen uint64) {
	if tw.stop != nil {
		close(tw.stop)
	}
	tw.gen, tw.stop, tw.watching = gen, make(chan struct{}), nil
	tw.nodes, tw.kids, tw.armed = map[string][]byte{}, map[string][]string{}, map[string]map[watchKind]bool{}
}

// sync reads the given paths (and any new node below them) again,
// arming the watches not armed.
func (tw *treeWatch) sync(conn *zk.Conn, paths []string) error {
	seen := map[string]bool{}
	for len(paths) > 0 {
		p := paths[0]
		paths = paths[1:]
		if seen[p] {
			continue
		}
		seen[p] = true
		more, err := tw.read(conn, p)
		if err != nil {
			return err
		}
		paths = append(paths, more...)
	}
	return nil
}

// read reads p's data and children, arming what is not armed, and
// returns the children it did not know.
func (tw *treeWatch) read(conn *zk.Conn, p string) ([]string, error) {
	if p == "/" && tw.prefix == "/" {
		// "/" itself is no key; only its children are read.
		kids, _, w, err := conn.ChildrenW(p)
		if err != nil {
			return nil, err
		}
		tw.forward(w, p, kindChild)
		return tw.setKids(p, filterZK(kids)), nil
	}
	var data []byte
	var stat *zk.Stat
	var err error
	if tw.armed[p][kindData] {
		data, stat, err = conn.Get(p)
	} else {
		var w *zk.Watcher
		data, stat, w, err = conn.GetW(p)
		if err == nil {
			tw.forward(w, p, kindData)
		}
	}
	if errors.Is(err, zk.ErrNoNode) {
		tw.remove(p)
		if p == tw.prefix && !tw.armed[p][kindExists] {
			ok, _, w, err := conn.ExistsW(p)
			if err != nil {
				return nil, err
			}
			tw.forward(w, p, kindExists)
			if ok {
				return []string{p}, nil // created meanwhile
			}
		}
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	tw.nodes[p] = data
	if stat != nil && stat.EphemeralOwner != 0 {
		// An ephemeral node has no children (a consumer node): no child
		// watch, half the watches on a tree of them.
		return tw.setKids(p, nil), nil
	}
	var kids []string
	if tw.armed[p][kindChild] {
		kids, _, err = conn.Children(p)
	} else {
		var w *zk.Watcher
		kids, _, w, err = conn.ChildrenW(p)
		if err == nil {
			tw.forward(w, p, kindChild)
		}
	}
	if errors.Is(err, zk.ErrNoNode) {
		tw.remove(p)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return tw.setKids(p, kids), nil
}

// setKids records p's children, forgets the subtrees of those gone and
// returns the paths of the new ones.
func (tw *treeWatch) setKids(p string, kids []string) []string {
	old := map[string]bool{}
	for _, k := range tw.kids[p] {
		old[k] = true
	}
	var fresh []string
	kept := kids[:0:0]
	for _, k := range kids {
		if tw.skip(childPath(p, k)) {
			continue
		}
		kept = append(kept, k)
		if !old[k] {
			fresh = append(fresh, childPath(p, k))
		}
		delete(old, k)
	}
	for k := range old {
		tw.remove(childPath(p, k))
	}
	tw.kids[p] = kept
	return fresh
}

// remove forgets p and everything below it.
func (tw *treeWatch) remove(p string) {
	for _, k := range tw.kids[p] {
		tw.remove(childPath(p, k))
	}
	delete(tw.nodes, p)
	delete(tw.kids, p)
}

// forward arms w: run waits on it (past maxSelect, a goroutine passes its
// event, tagged with the watch session, to events).
func (tw *treeWatch) forward(w *zk.Watcher, p string, kind watchKind) {
	if tw.armed[p] == nil {
		tw.armed[p] = map[watchKind]bool{}
	}
	tw.armed[p][kind] = true
	if len(tw.watching) < maxSelect {
		tw.watching = append(tw.watching, armedWatch{ch: w.EvtCh, path: p, kind: kind})
		return
	}
	ev, stop := treeEvent{gen: tw.gen, path: p, kind: kind}, tw.stop
	go func() {
		select {
		case <-w.EvtCh:
		case <-stop:
			return
		}
		select {
		case tw.events <- ev:
		case <-stop:
		}
	}()
}

func (tw *treeWatch) deliver() {
	if tw.last != nil && maps.EqualFunc(tw.last, tw.nodes, bytes.Equal) {
		return
	}
	tw.last = maps.Clone(tw.nodes)
	out := make(map[string][]byte, len(tw.nodes))
	for k, v := range tw.nodes {
		out[k] = bytes.Clone(v)
	}
	tw.fn(out)
}

func childPath(parent, name string) string {
	if parent == "/" {
		return "/" + name
	}
	return parent + "/" + name
}

// filterZK drops /zookeeper, the server's own, from the root's children.
func filterZK(kids []string) []string {
	out := kids[:0:0]
	for _, k := range kids {
		if k != "zookeeper" && !strings.ContainsRune(k, 0) {
			out = append(out, k)
		}
	}
	return out
}
