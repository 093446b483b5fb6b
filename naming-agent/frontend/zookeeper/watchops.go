package zookeeper

// handleWatchOp serves setWatches (after a reconnect), setWatches2,
// addWatch (persistent and recursive watches, ZooKeeper 3.6+),
// checkWatches and removeWatches.
func (c *conn) handleWatchOp(xid, op int32, r *reader) {
	s := c.srv
	var sw setWatches
	var pt pathType
	switch op {
	case opSetWatches, opSetWatches2:
		sw = decodeSetWatches(r, op == opSetWatches2)
	default:
		pt = decodePathType(r)
	}
	if r.err == nil && op != opSetWatches && op != opSetWatches2 && !validWatchType(op, pt.Type) {
		r.fail("watch type %d", pt.Type) // ZooKeeper fails to map it: a marshalling error
	}
	if r.err != nil {
		c.reply(replyFrame(xid, s.tree.zxid, codeMarshallingError), 0)
		return
	}
	switch op {
	case opSetWatches, opSetWatches2:
		s.setWatches(c, sw)
		c.reply(replyFrame(xid, s.tree.zxid, codeOK), 0)
	case opAddWatch:
		if pt.Type == addWatchPersistentRecursive {
			s.watches.data.add(pt.Path, c, modeRecursive)
		} else {
			s.watches.data.add(pt.Path, c, modePersistentWatch)
			s.watches.child.add(pt.Path, c, modePersistentWatch)
		}
		w := replyFrame(xid, s.tree.zxid, codeOK)
		w.int32(0) // ErrorResponse(0), as ZooKeeper answers
		c.reply(w, 0)
	case opCheckWatches, opRemoveWatches:
		found := s.watchesOf(c, pt, op == opRemoveWatches)
		cd := codeOK
		if !found {
			cd = codeNoWatcher
		}
		c.reply(replyFrame(xid, s.tree.zxid, cd), 0)
	}
}

func validWatchType(op, typ int32) bool {
	if op == opAddWatch {
		return typ == addWatchPersistent || typ == addWatchPersistentRecursive
	}
	return typ >= watcherChildren && typ <= watcherPersistentRecursive
}

// watchesOf is DataTree.containsWatcher, or removeWatch when remove.
// Children, Data and Any match a watch of any mode in their tables, as
// ZooKeeper 3.6 to 3.8 do; Persistent and PersistentRecursive are 3.9's.
func (s *Server) watchesOf(c *conn, pt pathType, remove bool) bool {
	type probe struct {
		t *watchTable
		m watchMode
	}
	all := modeStandard | modePersistentWatch | modeRecursive
	var probes []probe
	switch pt.Type {
	case watcherChildren:
		probes = []probe{{s.watches.child, all}}
	case watcherData:
		probes = []probe{{s.watches.data, all}}
	case watcherAny:
		probes = []probe{{s.watches.child, all}, {s.watches.data, all}}
	case watcherPersistent:
		probes = []probe{{s.watches.data, modePersistentWatch}}
		if remove {
			probes = append(probes, probe{s.watches.child, modePersistentWatch})
		}
	case watcherPersistentRecursive:
		probes = []probe{{s.watches.data, modeRecursive}}
	}
	found := false
	for _, p := range probes {
		if remove {
			found = p.t.remove(pt.Path, c, p.m) || found
		} else if p.t.has(pt.Path, c, p.m) {
			return true
		}
	}
	return found
}

// setWatches sets again the watches a client had before it reconnected,
// firing at once those whose node changed after relativeZxid, the last
// zxid the client saw (DataTree.setWatches). Those events carry zxid -1,
// as ZooKeeper's do.
func (s *Server) setWatches(c *conn, sw setWatches) {
	rel := sw.RelativeZxid
	for _, p := range sw.Data {
		switch v, ok := s.view(p); {
		case !ok:
			c.sendEvent(eventFrame(-1, eventNodeDeleted, p))
		case v.st.Mzxid > rel:
			c.sendEvent(eventFrame(-1, eventNodeDataChanged, p))
		default:
			s.watchData(c, p, v, true)
		}
	}
	for _, p := range sw.Exist {
		if v, ok := s.view(p); ok {
			c.sendEvent(eventFrame(-1, eventNodeCreated, p))
		} else {
			s.watchData(c, p, v, false)
		}
	}
	for _, p := range sw.Child {
		switch v, ok := s.view(p); {
		case !ok:
			c.sendEvent(eventFrame(-1, eventNodeDeleted, p))
		case v.st.Pzxid > rel:
			c.sendEvent(eventFrame(-1, eventNodeChildrenChanged, p))
		default:
			s.watches.child.add(p, c, modeStandard)
		}
	}
	for _, p := range sw.Persistent {
		s.watches.child.add(p, c, modePersistentWatch)
		s.watches.data.add(p, c, modePersistentWatch)
	}
	for _, p := range sw.PersistentRecursive {
		s.watches.data.add(p, c, modeRecursive)
	}
}
