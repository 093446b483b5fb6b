package zookeeper

import "bytes"

// remoteNode is a node as the registry has it: its data, or gone.
type remoteNode struct {
	path string
	data []byte
	gone bool
}

// applyRemote brings the tree in line with nodes another host wrote (or
// deleted) in the registry: each change is a transaction of the server
// (session 0) whose watches fire as for any other write, but the
// Observer is not told, so the pass-through does not write back what it
// just read. A local session's ephemeral node is left alone: its session
// here is what it lives by. A node to delete that has children, or one
// to create under an ephemeral node, is skipped. It returns how many
// changes were applied.
func (s *Server) applyRemote(nodes []remoteNode) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0
	}
	applied := 0
	for _, rn := range nodes {
		if !validPath(rn.path) || rn.path == "/" || isZooKeeperPath(rn.path) {
			continue
		}
		n := s.tree.get(rn.path)
		if n != nil && isSessionOwner(n.st.EphemeralOwner) {
			continue
		}
		tx := s.tree.begin(0, s.now().UnixMilli())
		switch {
		case rn.gone:
			if n == nil || len(n.kids) > 0 {
				tx.rollback()
				continue
			}
			tx.remove(rn.path)
		case n == nil:
			if tx.mkdirs(parentOf(rn.path)) == nil {
				tx.rollback()
				continue
			}
			tx.add(rn.path, bytes.Clone(rn.data), openACL, 0)
		case bytes.Equal(n.data, rn.data):
			tx.rollback()
			continue
		default:
			tx.setData(rn.path, n, bytes.Clone(rn.data), nextVersion(n.st.Version))
		}
		tx.notes = nil // not the apps' doing: nothing to pass through
		s.commit(tx)
		applied++
	}
	return applied
}

// isZooKeeperPath: /zookeeper and below, the server's own.
func isZooKeeperPath(p string) bool {
	return p == "/zookeeper" || len(p) > len("/zookeeper") && p[:len("/zookeeper/")] == "/zookeeper/"
}

// Observers returns an Observer that tells each of obs, in order.
func Observers(obs ...Observer) Observer { return observers(obs) }

type observers []Observer

func (o observers) NodeCreated(session int64, path string, data []byte, ephemeral bool) {
	for _, x := range o {
		x.NodeCreated(session, path, bytes.Clone(data), ephemeral)
	}
}

func (o observers) NodeDataChanged(session int64, path string, data []byte) {
	for _, x := range o {
		x.NodeDataChanged(session, path, bytes.Clone(data))
	}
}

func (o observers) NodeDeleted(session int64, path string) {
	for _, x := range o {
		x.NodeDeleted(session, path)
	}
}

func (o observers) SessionEnded(session int64) {
	for _, x := range o {
		x.SessionEnded(session)
	}
}

func (o observers) SessionsRestored(sessions []RestoredSession) {
	for _, x := range o {
		x.SessionsRestored(sessions)
	}
}
