package zookeeper

import (
	"fmt"
	"strings"
)

// The write operations, each checking what ZooKeeper's
// PrepRequestProcessor checks, in its order, so that a request with
// several faults gets the same error.

// opEnv is what a write needs beyond the tree: who asks, and whether the
// overlay makes a path exist.
type opEnv struct {
	auth []authID
	// overlaid reports a path the tree lacks but the overlay serves; nil
	// without an overlay.
	overlaid func(path string) bool
}

// create is create, create2, createContainer and createTTL.
func (tx *txn) create(op int32, req createRequest, env opEnv) (string, stat, code) {
	mode := req.Flags
	if mode < modePersistent || mode > modePersistentSeqTTL {
		return "", stat{}, codeBadArguments
	}
	ttlMode := mode == modePersistentTTL || mode == modePersistentSeqTTL
	if ttlMode { // TTL nodes need extendedTypesEnabled, off by default
		return "", stat{}, codeUnimplemented
	}
	if op == opCreateTTL { // a TTL request for a mode without a TTL
		return "", stat{}, codeBadArguments
	}
	slash := strings.LastIndexByte(req.Path, '/')
	if slash < 0 || strings.IndexByte(req.Path, 0) >= 0 {
		return "", stat{}, codeBadArguments
	}
	parentPath := req.Path[:slash]
	if parentPath == "" {
		parentPath = "/"
	}
	acls, c := fixACL(req.ACL, env.auth)
	if c != codeOK {
		return "", stat{}, c
	}
	parent := tx.t.get(parentPath)
	if parent == nil {
		parent = tx.materialize(parentPath, env)
	}
	if parent == nil {
		return "", stat{}, codeNoNode
	}
	path := req.Path
	if mode == modePersistentSequential || mode == modeEphemeralSequential {
		path += fmt.Sprintf("%010d", parent.st.Cversion)
	}
	if !validPath(path) {
		return "", stat{}, codeBadArguments
	}
	if tx.t.get(path) != nil {
		return "", stat{}, codeNodeExists
	}
	if isSessionOwner(parent.st.EphemeralOwner) {
		return "", stat{}, codeNoChildrenForEphemerals
	}
	var owner int64
	switch {
	case op == opCreateContainer:
		owner = containerOwner
	case mode == modeEphemeral || mode == modeEphemeralSequential:
		owner = tx.session
	}
	// create and create2 with the container flag make a plain persistent
	// node: ZooKeeper's CreateTxn keeps only "ephemeral or not".
	n := tx.add(path, req.Data, acls, owner)
	return path, statOf(n), codeOK
}

// materialize creates p, and its missing ancestors, as persistent nodes
// when the overlay says p exists but the tree lacks it: a client that
// saw p (exists, getChildren) then creates a child must not get NoNode.
func (tx *txn) materialize(p string, env opEnv) *znode {
	if env.overlaid == nil || !validPath(p) || !env.overlaid(p) {
		return nil
	}
	return tx.mkdirs(p)
}

// mkdirs makes p and its missing ancestors persistent nodes; nil if one
// of them is an ephemeral node.
func (tx *txn) mkdirs(p string) *znode {
	if p == "" { // above the root: only a malformed path gets here
		return nil
	}
	if n := tx.t.get(p); n != nil {
		if isSessionOwner(n.st.EphemeralOwner) {
			return nil
		}
		return n
	}
	if tx.mkdirs(parentOf(p)) == nil {
		return nil
	}
	return tx.add(p, []byte{}, openACL, 0)
}

func (tx *txn) delete(req pathVersion) code {
	p := req.Path
	slash := strings.LastIndexByte(p, '/')
	if slash < 0 || strings.IndexByte(p, 0) >= 0 || specialPath(p) {
		return codeBadArguments
	}
	parentPath := p[:slash]
	if parentPath == "" {
		parentPath = "/"
	}
	if tx.t.get(parentPath) == nil {
		return codeNoNode
	}
	n := tx.t.get(p)
	if n == nil {
		return codeNoNode
	}
	if req.Version != -1 && req.Version != n.st.Version {
		return codeBadVersion
	}
	if len(n.kids) > 0 {
		return codeNotEmpty
	}
	tx.remove(p)
	return codeOK
}

func (tx *txn) setDataOp(req setDataRequest) (stat, code) {
	if !validPath(req.Path) {
		return stat{}, codeBadArguments
	}
	n := tx.t.get(req.Path)
	if n == nil {
		return stat{}, codeNoNode
	}
	if req.Version != -1 && req.Version != n.st.Version {
		return stat{}, codeBadVersion
	}
	tx.setData(req.Path, n, req.Data, nextVersion(n.st.Version))
	return statOf(n), codeOK
}

func (tx *txn) check(req pathVersion) code {
	if !validPath(req.Path) {
		return codeBadArguments
	}
	n := tx.t.get(req.Path)
	if n == nil {
		return codeNoNode
	}
	if req.Version != -1 && req.Version != n.st.Version {
		return codeBadVersion
	}
	return codeOK
}

func (tx *txn) setACLOp(req setACLRequest, env opEnv) (stat, code) {
	if !validPath(req.Path) {
		return stat{}, codeBadArguments
	}
	acls, c := fixACL(req.ACL, env.auth)
	if c != codeOK {
		return stat{}, c
	}
	n := tx.t.get(req.Path)
	if n == nil {
		return stat{}, codeNoNode
	}
	if req.Version != -1 && req.Version != n.st.Aversion {
		return stat{}, codeBadVersion
	}
	tx.setACL(n, acls, nextVersion(n.st.Aversion))
	return statOf(n), codeOK
}

// multi runs ops as one transaction. On the first failure everything is
// undone and the results are ZooKeeper's: OK (0) for the ops before, the
// error for the failing one, RuntimeInconsistency for the ops after.
func (tx *txn) multi(ops []multiOp, env opEnv) ([]multiResult, bool) {
	results := make([]multiResult, 0, len(ops))
	failed := -1
	for i, op := range ops {
		var res multiResult
		var c code
		switch op.Op {
		case opCreate, opCreate2, opCreateContainer, opCreateTTL:
			res.Path, res.Stat, c = tx.create(op.Op, op.Create, env)
			res.Type = opCreate2
			if op.Op == opCreate {
				res.Type = opCreate
			}
		case opDelete:
			c, res.Type = tx.delete(op.PV), opDelete
		case opSetData:
			res.Stat, c = tx.setDataOp(op.SetData)
			res.Type = opSetData
		case opCheck:
			c, res.Type = tx.check(op.PV), opCheck
		}
		if c != codeOK {
			failed = i
			results = append(results, multiResult{Type: opError, Err: c})
			break
		}
		results = append(results, res)
	}
	if failed < 0 {
		return results, true
	}
	tx.rollback()
	for i := range results[:failed] {
		results[i] = multiResult{Type: opError, Err: codeOK}
	}
	for range ops[failed+1:] {
		results = append(results, multiResult{Type: opError, Err: codeRuntimeInconsistency})
	}
	return results, false
}
