package zookeeper

// OverlayChanged tells the server that what the Overlay answers for path
// changed: its children, or its data. Child watches on path fire
// (NodeChildrenChanged); standard data and exist watches set on path or
// one of its children, where the overlay (not the tree) makes the node,
// fire if that node appeared (NodeCreated), went (NodeDeleted) or its
// data changed (NodeDataChanged) since the watch was set. Recursive
// watches above path are not told of overlay changes.
//
// It may be called from any goroutine, an Observer's call included, but
// not while holding a lock that the Overlay's methods take: it takes
// the Server's lock, under which the Overlay is read.
func (s *Server) OverlayChanged(path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	zxid := s.tree.nextZxid()
	ov := s.ov[path]
	ov.count++
	ov.zxid = zxid
	s.ov[path] = ov
	s.watches.fire(path, eventNodeChildrenChanged, zxid)
	s.overlayDataWatches(path, zxid)
	var below []string
	for p := range s.watches.data.paths {
		if p != "/" && parentOf(p) == path {
			below = append(below, p)
		}
	}
	for _, p := range below {
		s.overlayDataWatches(p, zxid)
	}
}

// overlayDataWatches fires the standard data watches on p set where the
// overlay answered, for what changed since each was set.
func (s *Server) overlayDataWatches(p string, zxid int64) {
	byConn := s.watches.data.paths[p]
	if len(byConn) == 0 || s.tree.get(p) != nil { // a tree node's changes fire by themselves
		return
	}
	v, exists := s.view(p)
	sum := dataSum(v.data)
	type hit struct {
		c  *conn
		ev int32
	}
	var hits []hit
	for c, e := range byConn {
		if e.modes&modeStandard == 0 || !e.overlay {
			continue
		}
		switch {
		case !e.existed && exists:
			hits = append(hits, hit{c, eventNodeCreated})
		case e.existed && !exists:
			hits = append(hits, hit{c, eventNodeDeleted})
		case e.existed && exists && e.sum != sum:
			hits = append(hits, hit{c, eventNodeDataChanged})
		}
	}
	for _, h := range hits {
		s.watches.data.remove(p, h.c, modeStandard)
		h.c.sendEvent(eventFrame(zxid, h.ev, p))
	}
}
