package zookeeper

import "strings"

// nodeView is a node as reads see it: the tree's, with the overlay's
// children if it owns the path, or one only the overlay makes.
type nodeView struct {
	data []byte
	st   stat
	kids []string
	tree *znode // nil for a node only the overlay makes
}

// overlayV counts OverlayChanged calls for a path: they move the
// synthetic cversion, pzxid and mzxid, so setWatches after a reconnect
// sees the change.
type overlayV struct {
	count int32
	zxid  int64
}

// view returns what a read of p sees. Runs under Server.mu.
func (s *Server) view(p string) (nodeView, bool) {
	n := s.tree.get(p)
	var kids []string
	var data []byte
	okKids, okData := false, false
	if s.overlay != nil {
		kids, okKids = s.overlay.Children(p)
		if n == nil { // the tree's node wins for its data
			data, okData = s.overlay.Data(p)
		}
	}
	ov := s.ov[p]
	if n != nil {
		v := nodeView{data: n.data, st: statOf(n), tree: n}
		if okKids {
			v.kids = kids
			v.st.NumChildren = int32(len(kids))
			v.st.Cversion += ov.count
			v.st.Pzxid = max(v.st.Pzxid, ov.zxid)
		} else {
			v.kids = children(n)
		}
		return v, true
	}
	if !okKids && !okData {
		return nodeView{}, false
	}
	if data == nil {
		data = []byte{}
	}
	return nodeView{data: data, kids: kids, st: stat{
		Cversion:    ov.count,
		Pzxid:       ov.zxid,
		Mzxid:       max(ov.zxid, s.ov[parentOf(p)].zxid),
		DataLength:  int32(len(data)),
		NumChildren: int32(len(kids)),
	}}, true
}

// watchData sets a standard data watch for c on p, as getData or exists
// saw it.
func (s *Server) watchData(c *conn, p string, v nodeView, exists bool) {
	e := s.watches.data.add(p, c, modeStandard)
	e.existed = exists
	e.overlay = s.overlay != nil && (!exists || v.tree == nil)
	if e.overlay && exists {
		e.sum = dataSum(v.data)
	}
}

func (c *conn) handleRead(xid, op int32, r *reader) {
	s := c.srv
	var pw pathWatch
	var pt string
	switch op {
	case opExists, opGetData, opGetChildren, opGetChildren2:
		pw = decodePathWatch(r)
	case opGetACL, opSync, opGetEphemerals, opGetAllChildrenNumber:
		pt = r.string()
	}
	if r.err != nil {
		c.reply(replyFrame(xid, s.tree.zxid, codeMarshallingError), 0)
		return
	}
	ok := func() *writer { return replyFrame(xid, s.tree.zxid, codeOK) }
	fail := func(cd code) { c.reply(replyFrame(xid, s.tree.zxid, cd), 0) }
	switch op {
	case opExists:
		if strings.IndexByte(pw.Path, 0) >= 0 {
			fail(codeBadArguments)
			return
		}
		v, found := s.view(pw.Path)
		if pw.Watch { // set even on a missing node: it fires when created
			s.watchData(c, pw.Path, v, found)
		}
		if !found {
			fail(codeNoNode)
			return
		}
		w := ok()
		v.st.encode(w)
		c.reply(w, 0)
	case opGetData:
		v, found := s.view(pw.Path)
		if !found {
			fail(codeNoNode)
			return
		}
		if pw.Watch {
			s.watchData(c, pw.Path, v, true)
		}
		w := ok()
		w.buffer(v.data)
		v.st.encode(w)
		c.reply(w, 0)
	case opGetChildren, opGetChildren2:
		v, found := s.view(pw.Path)
		if !found {
			fail(codeNoNode)
			return
		}
		if pw.Watch {
			s.watches.child.add(pw.Path, c, modeStandard)
		}
		w := ok()
		w.strings(v.kids)
		if op == opGetChildren2 {
			v.st.encode(w)
		}
		c.reply(w, 0)
	case opGetACL:
		v, found := s.view(pt)
		if !found {
			fail(codeNoNode)
			return
		}
		w := ok()
		if v.tree != nil {
			encodeACLs(w, v.tree.acl)
		} else {
			encodeACLs(w, openACL)
		}
		v.st.encode(w)
		c.reply(w, 0)
	case opSync: // one server: everything is in sync
		w := ok()
		w.string(pt)
		c.reply(w, 0)
	case opMultiRead:
		c.multiRead(xid, r)
	case opGetEphemerals:
		w := ok()
		w.strings(s.ephemeralsWithPrefix(c.sess.id, pt))
		c.reply(w, 0)
	case opGetAllChildrenNumber:
		if s.tree.get(pt) == nil {
			fail(codeNoNode)
			return
		}
		w := ok()
		w.int32(int32(s.tree.descendants(pt)))
		c.reply(w, 0)
	case opWhoAmI:
		w := ok()
		w.int32(int32(len(c.auth)))
		for _, id := range c.auth {
			scheme, user := clientInfo(id)
			w.string(scheme)
			w.string(user)
		}
		c.reply(w, 0)
	}
}

// multiRead answers getData and getChildren ops, each with its own
// result or error; it sets no watches.
func (c *conn) multiRead(xid int32, r *reader) {
	s := c.srv
	ops := decodeMulti(r, isReadOp)
	if r.err != nil {
		c.reply(replyFrame(xid, s.tree.zxid, codeMarshallingError), 0)
		return
	}
	results := make([]multiResult, 0, len(ops))
	for _, op := range ops {
		v, found := s.view(op.Read.Path)
		switch {
		case !found:
			results = append(results, multiResult{Type: opError, Err: codeNoNode})
		case op.Op == opGetData:
			results = append(results, multiResult{Type: opGetData, Data: v.data, Stat: v.st})
		default:
			results = append(results, multiResult{Type: opGetChildren, Kids: v.kids})
		}
	}
	w := replyFrame(xid, s.tree.zxid, codeOK)
	encodeMultiResults(w, results)
	c.reply(w, 0)
}
