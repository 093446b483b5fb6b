package zookeeper

import (
	"bytes"
	"cmp"
	"encoding/json"
	"slices"
	"time"

	"go.uber.org/zap"
)

// restore builds the tree and takes back the sessions store kept: each
// with a full timeout from now to be resumed, its ephemeral nodes in
// place (and their parents, made persistent, if missing). A store that
// cannot be read is logged and the server starts empty, as the registry
// adapters do with theirs.
func (s *Server) restore(store SessionStore) {
	now := s.now()
	st := s.load(store)
	var storedEpoch, storedNext int64
	if st != nil {
		storedEpoch, storedNext = st.Epoch, st.NextSession
	}
	s.tree = newTree(newEpoch(now, storedEpoch) << 32)
	s.nextID = max(firstSessionID(s.cfg.ServerID, now), storedNext)
	var restored []RestoredSession
	// The Observer hears of the restore first, even of none: it may hold
	// what an earlier run's sessions made, and must know which came back.
	defer func() { s.notify.push(note{kind: noteRestored, restored: restored}) }()
	if st == nil {
		return
	}
	for _, ss := range st.Sessions {
		if s.sessions[ss.ID] != nil {
			continue
		}
		sess := &session{id: ss.ID, passwd: ss.Password, lastSeen: now,
			timeout: s.negotiate(ss.TimeoutMs)}
		s.sessions[ss.ID] = sess
		rs := RestoredSession{ID: ss.ID}
		for _, n := range ss.Ephemerals {
			if s.restoreNode(ss.ID, n) {
				rs.Ephemerals = append(rs.Ephemerals, Ephemeral{Path: n.Path, Data: bytes.Clone(n.Data)})
			}
		}
		restored = append(restored, rs)
	}
	s.log.Info("sessions restored", zap.Int("sessions", len(restored)))
}

func (s *Server) load(store SessionStore) *storedState {
	if store == nil {
		return nil
	}
	raw, err := store.Load()
	if err != nil {
		s.log.Warn("cannot read the stored sessions; starting without them", zap.Error(err))
		return nil
	}
	if len(raw) == 0 {
		return nil
	}
	st, err := decodeState(raw)
	if err != nil {
		s.log.Warn("stored sessions unreadable; starting without them", zap.Error(err))
		return nil
	}
	return st
}

// restoreNode puts back one ephemeral node with its stored stat, making
// its missing parents; it reports false (and logs) when it cannot.
func (s *Server) restoreNode(session int64, n storedNode) bool {
	tx := s.tree.begin(0, s.now().UnixMilli())
	parent := parentOf(n.Path)
	ok := s.tree.get(n.Path) == nil && tx.mkdirs(parent) != nil
	if ok {
		acls := n.ACL
		if len(acls) == 0 {
			acls = openACL
		}
		z := tx.add(n.Path, n.Data, acls, session)
		z.st.Ctime, z.st.Mtime, z.st.Version = n.Ctime, n.Mtime, n.Version
		z.st.Czxid, z.st.Mzxid, z.st.Pzxid = n.Czxid, n.Mzxid, n.Czxid
	}
	if !ok {
		tx.rollback()
		s.log.Warn("stored ephemeral node not restored", zap.String("path", n.Path),
			zap.String("session", sessionHex(session)))
	}
	return ok
}

// snapshotState encodes what the store keeps, for the saver: the sessions
// with their ephemeral nodes, the epoch, the next session id.
func (s *Server) snapshotState() ([]byte, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.saver.generation()
	st := storedState{Version: storedVersion, Epoch: s.tree.zxid >> 32, NextSession: s.nextID,
		Sessions: make([]storedSession, 0, len(s.sessions))}
	for _, sess := range s.sessions {
		ss := storedSession{ID: sess.id, Password: sess.passwd, TimeoutMs: int32(sess.timeout / time.Millisecond)}
		for _, p := range s.tree.ephemeralsOf(sess.id) {
			n := s.tree.get(p)
			ss.Ephemerals = append(ss.Ephemerals, storedNode{Path: p, Data: n.data, ACL: n.acl,
				Ctime: n.st.Ctime, Mtime: n.st.Mtime, Czxid: n.st.Czxid, Mzxid: n.st.Mzxid, Version: n.st.Version})
		}
		st.Sessions = append(st.Sessions, ss)
	}
	slices.SortFunc(st.Sessions, func(a, b storedSession) int { return cmp.Compare(a.ID, b.ID) })
	b, err := json.Marshal(st)
	if err != nil { // only plain types: cannot happen
		s.log.Error("cannot encode the sessions", zap.Error(err))
	}
	return b, g
}
