package zookeeper

import (
	"bytes"
	"slices"
)

// znode is one node of the tree.
type znode struct {
	data []byte // nil when created with null data, as ZooKeeper keeps it
	acl  []acl
	st   stat // DataLength and NumChildren are filled in by statOf
	kids map[string]struct{}
}

// tree is the znode tree, in memory only. Server.mu guards it; nothing in
// it locks.
//
// A zxid is epoch<<32 | counter, as ZooKeeper's: the epoch is taken
// anew at each start (see newEpoch), so zxids only grow across
// restarts and a client's lastZxidSeen from an earlier run is below ours.
type tree struct {
	nodes      map[string]*znode
	zxid       int64                         // the last zxid handed out
	ephemerals map[int64]map[string]struct{} // session → its ephemeral nodes
}

var openACL = []acl{{Perms: 31, Scheme: "world", ID: "anyone"}}

// newTree returns the tree a fresh ZooKeeper has: "/" and "/zookeeper"
// with its "quota" and "config" children, all at zxid 0.
func newTree(zxid int64) *tree {
	t := &tree{nodes: map[string]*znode{}, zxid: zxid, ephemerals: map[int64]map[string]struct{}{}}
	for _, p := range []string{"/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"} {
		n := &znode{data: []byte{}, acl: openACL, kids: map[string]struct{}{}}
		if p == "/zookeeper/config" {
			n.acl = []acl{{Perms: 1, Scheme: "world", ID: "anyone"}}
		}
		t.nodes[p] = n
		if parent, name, ok := split(p); ok {
			t.nodes[parent].kids[name] = struct{}{}
		}
	}
	return t
}

func (t *tree) get(p string) *znode { return t.nodes[p] }

// nextZxid hands out the zxid of a new transaction.
func (t *tree) nextZxid() int64 {
	t.zxid++
	return t.zxid
}

// statOf is n's Stat as a reply carries it (DataNode.copyStat). The
// tree counts creates in cversion (sequential names use that); clients
// see creates plus deletes, which is twice the creates less the children
// left. A container's owner shows as 0.
func statOf(n *znode) stat {
	s := n.st
	s.DataLength = int32(len(n.data))
	s.NumChildren = int32(len(n.kids))
	s.Cversion = n.st.Cversion*2 - s.NumChildren
	if s.EphemeralOwner == containerOwner {
		s.EphemeralOwner = 0
	}
	return s
}

// children returns n's children, sorted (ZooKeeper's order is a hash
// set's; sorted is as good and stable for tests).
func children(n *znode) []string {
	out := make([]string, 0, len(n.kids))
	for k := range n.kids {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// isSessionOwner: owner is a session's, not 0 and not a container's.
func isSessionOwner(owner int64) bool { return owner != 0 && owner != containerOwner }

// txn is one transaction on the tree: a request, a multi, the end of a
// session. Changes apply at once and record how to undo them (a failed
// multi rolls back); the watches they fire and what the observer is told
// wait in fires and notes until the transaction commits.
type txn struct {
	t       *tree
	zxid    int64
	time    int64 // ms since the epoch: ctime and mtime
	session int64 // who asks; 0 for the server itself
	undo    []func()
	fires   []fire
	notes   []note
	persist bool     // an ephemeral node changed: the session store is behind
	emptied []string // parents that lost a child: containers to check
}

// fire is a watch trigger, run at commit: ev on path.
type fire struct {
	path string
	ev   int32
}

func (t *tree) begin(session, nowMs int64) *txn {
	return &txn{t: t, zxid: t.nextZxid(), time: nowMs, session: session}
}

// rollback undoes every change and forgets what they would have fired.
func (tx *txn) rollback() {
	for i := len(tx.undo) - 1; i >= 0; i-- {
		tx.undo[i]()
	}
	tx.undo, tx.fires, tx.notes, tx.emptied, tx.persist = nil, nil, nil, nil, false
}

// add creates path under its existing parent. The caller has checked
// everything ZooKeeper checks.
func (tx *txn) add(path string, data []byte, acls []acl, owner int64) *znode {
	t := tx.t
	parentPath, name, _ := split(path)
	parent := t.nodes[parentPath]
	n := &znode{data: data, acl: acls, kids: map[string]struct{}{}, st: stat{
		Czxid: tx.zxid, Mzxid: tx.zxid, Pzxid: tx.zxid,
		Ctime: tx.time, Mtime: tx.time, EphemeralOwner: owner,
	}}
	oldCversion, oldPzxid := parent.st.Cversion, parent.st.Pzxid
	parent.st.Cversion++
	parent.st.Pzxid = tx.zxid
	parent.kids[name] = struct{}{}
	t.nodes[path] = n
	if isSessionOwner(owner) {
		tx.addEphemeral(owner, path)
	}
	tx.undo = append(tx.undo, func() {
		delete(t.nodes, path)
		delete(parent.kids, name)
		parent.st.Cversion, parent.st.Pzxid = oldCversion, oldPzxid
	})
	tx.fires = append(tx.fires, fire{path, eventNodeCreated}, fire{parentPath, eventNodeChildrenChanged})
	tx.notes = append(tx.notes, note{kind: noteCreated, session: tx.session, path: path,
		data: bytes.Clone(data), ephemeral: isSessionOwner(owner)})
	return n
}

// remove deletes the childless node at path. ZooKeeper moves the
// parent's pzxid but not its cversion.
func (tx *txn) remove(path string) {
	t := tx.t
	parentPath, name, _ := split(path)
	parent, n := t.nodes[parentPath], t.nodes[path]
	oldPzxid := parent.st.Pzxid
	delete(parent.kids, name)
	parent.st.Pzxid = tx.zxid
	delete(t.nodes, path)
	if owner := n.st.EphemeralOwner; isSessionOwner(owner) {
		tx.removeEphemeral(owner, path)
	}
	tx.undo = append(tx.undo, func() {
		t.nodes[path] = n
		parent.kids[name] = struct{}{}
		parent.st.Pzxid = oldPzxid
	})
	tx.fires = append(tx.fires, fire{path, eventNodeDeleted}, fire{parentPath, eventNodeChildrenChanged})
	tx.notes = append(tx.notes, note{kind: noteDeleted, session: tx.session, path: path,
		ephemeral: isSessionOwner(n.st.EphemeralOwner)})
	tx.emptied = append(tx.emptied, parentPath)
}

// setData replaces n's data with version as its new version.
func (tx *txn) setData(path string, n *znode, data []byte, version int32) {
	old, oldStat := n.data, n.st
	n.data = data
	n.st.Version, n.st.Mzxid, n.st.Mtime = version, tx.zxid, tx.time
	if isSessionOwner(n.st.EphemeralOwner) {
		tx.persist = true
	}
	tx.undo = append(tx.undo, func() { n.data, n.st = old, oldStat })
	tx.fires = append(tx.fires, fire{path, eventNodeDataChanged})
	tx.notes = append(tx.notes, note{kind: noteDataChanged, session: tx.session, path: path,
		data: bytes.Clone(data), ephemeral: isSessionOwner(n.st.EphemeralOwner)})
}

// setACL replaces n's ACL; ZooKeeper changes only its aversion.
func (tx *txn) setACL(n *znode, acls []acl, aversion int32) {
	old, oldAversion := n.acl, n.st.Aversion
	n.acl, n.st.Aversion = acls, aversion
	tx.undo = append(tx.undo, func() { n.acl, n.st.Aversion = old, oldAversion })
}

func (tx *txn) addEphemeral(owner int64, path string) {
	t := tx.t
	set := t.ephemerals[owner]
	if set == nil {
		set = map[string]struct{}{}
		t.ephemerals[owner] = set
	}
	set[path] = struct{}{}
	tx.persist = true
	tx.undo = append(tx.undo, func() {
		delete(set, path)
		if len(set) == 0 {
			delete(t.ephemerals, owner)
		}
	})
}

func (tx *txn) removeEphemeral(owner int64, path string) {
	t := tx.t
	set := t.ephemerals[owner]
	delete(set, path)
	if len(set) == 0 {
		delete(t.ephemerals, owner)
	}
	tx.persist = true
	tx.undo = append(tx.undo, func() {
		if t.ephemerals[owner] == nil {
			t.ephemerals[owner] = set
		}
		set[path] = struct{}{}
	})
}

// ephemeralsOf returns session's ephemeral nodes, sorted.
func (t *tree) ephemeralsOf(session int64) []string {
	out := make([]string, 0, len(t.ephemerals[session]))
	for p := range t.ephemerals[session] {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// descendants counts the nodes below p (getAllChildrenNumber).
func (t *tree) descendants(p string) int {
	n := t.nodes[p]
	if n == nil {
		return 0
	}
	total := len(n.kids)
	for k := range n.kids {
		total += t.descendants(join(p, k))
	}
	return total
}

// nextVersion is ZooKeeper's checkAndIncVersion after the check: -1 is
// skipped, since it means "any version" in a request.
func nextVersion(v int32) int32 {
	if v+1 == -1 {
		return 0
	}
	return v + 1
}
