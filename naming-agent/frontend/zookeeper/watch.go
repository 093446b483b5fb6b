package zookeeper

import "hash/fnv"

// Watches are ZooKeeper's WatchManager: two tables, data (getData,
// exists, persistent watches) and child (getChildren), of path → watcher
// → modes. A standard watch fires once; persistent ones stay until
// removed; a recursive one (data table only) also fires for every node
// below its path, except for NodeChildrenChanged, as in ZooKeeper 3.6+.
// Watches belong to a connection, not a session: a client sets them again
// with setWatches after it reconnects.

type watchMode uint8

const (
	modeStandard watchMode = 1 << iota
	modePersistentWatch
	modeRecursive
)

// watchEntry is one watcher's watch on one path.
type watchEntry struct {
	modes watchMode
	// For a standard data watch set on a node the overlay synthesizes:
	// whether it existed and a hash of its data then, so that
	// OverlayChanged can tell what changed for this watcher.
	existed bool
	sum     uint64
	overlay bool
}

type watchTable struct {
	paths     map[string]map[*conn]*watchEntry
	recursive int // recursive watches in the table: ancestors are walked only if > 0
}

func newWatchTable() *watchTable {
	return &watchTable{paths: map[string]map[*conn]*watchEntry{}}
}

// add sets a watch with mode m, and returns the entry for the caller to
// fill in.
func (wt *watchTable) add(p string, c *conn, m watchMode) *watchEntry {
	byConn := wt.paths[p]
	if byConn == nil {
		byConn = map[*conn]*watchEntry{}
		wt.paths[p] = byConn
	}
	e := byConn[c]
	if e == nil {
		e = &watchEntry{}
		byConn[c] = e
		c.watched[p]++
	}
	if m == modeRecursive && e.modes&modeRecursive == 0 {
		wt.recursive++
	}
	e.modes |= m
	return e
}

// remove drops c's watches on p with a mode in m; it reports whether any
// went.
func (wt *watchTable) remove(p string, c *conn, m watchMode) bool {
	e := wt.paths[p][c]
	if e == nil || e.modes&m == 0 {
		return false
	}
	if m&modeRecursive != 0 && e.modes&modeRecursive != 0 {
		wt.recursive--
	}
	e.modes &^= m
	if e.modes == 0 {
		wt.drop(p, c)
	}
	return true
}

func (wt *watchTable) drop(p string, c *conn) {
	delete(wt.paths[p], c)
	if len(wt.paths[p]) == 0 {
		delete(wt.paths, p)
	}
	if c.watched[p]--; c.watched[p] <= 0 {
		delete(c.watched, p)
	}
}

func (wt *watchTable) has(p string, c *conn, m watchMode) bool {
	e := wt.paths[p][c]
	return e != nil && e.modes&m != 0
}

// removeConn drops every watch of c (its connection closed).
func (wt *watchTable) removeConn(c *conn) {
	for p := range c.watched {
		if e := wt.paths[p][c]; e != nil {
			if e.modes&modeRecursive != 0 {
				wt.recursive--
			}
			wt.drop(p, c)
		}
	}
}

// trigger returns the watchers an event on p reaches, each once, and
// consumes their standard watches on p. Watchers in suppress are
// consumed but left out (ZooKeeper sends one NodeDeleted to a client
// that had both a data and a child watch).
func (wt *watchTable) trigger(p string, suppress map[*conn]bool) map[*conn]bool {
	var out map[*conn]bool
	reach := func(c *conn) {
		if out == nil {
			out = map[*conn]bool{}
		}
		out[c] = true
	}
	for c, e := range wt.paths[p] {
		if !suppress[c] {
			reach(c)
		}
		if e.modes&modeStandard != 0 {
			wt.remove(p, c, modeStandard)
		}
	}
	if wt.recursive > 0 {
		for anc := parentOf(p); anc != ""; anc = parentOf(anc) {
			for c, e := range wt.paths[anc] {
				if e.modes&modeRecursive != 0 && !suppress[c] {
					reach(c)
				}
			}
		}
	}
	return out
}

// count is the number of (path, watcher) pairs, for mntr.
func (wt *watchTable) count() int {
	n := 0
	for _, byConn := range wt.paths {
		n += len(byConn)
	}
	return n
}

// watches is the server's two tables.
type watches struct {
	data, child *watchTable
}

func newWatches() *watches { return &watches{data: newWatchTable(), child: newWatchTable()} }

// fire delivers ev on p as ZooKeeper's DataTree does: created and data
// changes reach the data table; a deletion reaches the data table then
// the child table (one event per watcher); a children change reaches the
// child table.
func (w *watches) fire(p string, ev int32, zxid int64) {
	var reached map[*conn]bool
	switch ev {
	case eventNodeCreated, eventNodeDataChanged:
		reached = w.data.trigger(p, nil)
	case eventNodeDeleted:
		reached = w.data.trigger(p, nil)
		for c := range w.child.trigger(p, reached) {
			if reached == nil {
				reached = map[*conn]bool{}
			}
			reached[c] = true
		}
	case eventNodeChildrenChanged:
		reached = w.child.trigger(p, nil)
	}
	if len(reached) == 0 {
		return
	}
	frame := eventFrame(zxid, ev, p)
	for c := range reached {
		c.sendEvent(frame)
	}
}

// removeConn drops every watch of c.
func (w *watches) removeConn(c *conn) {
	w.data.removeConn(c)
	w.child.removeConn(c)
}

// dataSum hashes data for an overlay watch entry.
func dataSum(data []byte) uint64 {
	h := fnv.New64a()
	h.Write(data)
	return h.Sum64()
}
