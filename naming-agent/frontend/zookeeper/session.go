package zookeeper

import (
	"bytes"
	"crypto/rand"
	"strconv"
	"time"

	"go.uber.org/zap"
)

// session is a client session: it outlives its connections, and ends
// when its client closes it or sends nothing for its timeout. Server.mu
// guards it.
type session struct {
	id       int64
	passwd   []byte // 16 random bytes
	timeout  time.Duration
	lastSeen time.Time
	conn     *conn // nil while no connection holds it
}

// epochBase is where zxid epochs start: seconds since 2025-01-01 keep
// epoch<<32 positive for 68 years, where Unix seconds would overflow it
// in 2038.
const epochBase = 1735689600

// newEpoch is the zxid epoch of a run: the clock's seconds since
// epochBase, and more than the epoch of the run that saved the store, so
// zxids only grow across restarts.
func newEpoch(now time.Time, stored int64) int64 {
	return max(now.Unix()-epochBase, stored+1, 1)
}

// firstSessionID is ZooKeeper's SessionTrackerImpl.initializeNextSid: the
// server id in the high byte, the clock's milliseconds below it, so ids
// differ across restarts; each new session takes the next.
func firstSessionID(serverID int, now time.Time) int64 {
	return int64(uint64(now.UnixMilli())<<24>>8) | int64(serverID)<<56
}

// negotiate bounds the timeout a client asks for, as ZooKeeper does.
func (s *Server) negotiate(askedMs int32) time.Duration {
	t := time.Duration(askedMs) * time.Millisecond
	return min(max(t, s.cfg.MinSessionTimeout), s.cfg.MaxSessionTimeout)
}

// connect handles c's ConnectRequest: a new session, or an existing one
// taken over from its old connection. An unknown or expired session, or
// a wrong password, is answered as ZooKeeper answers it (timeout 0,
// session 0) and the connection closed.
func (s *Server) connect(c *conn, req connectRequest) verdict {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return closeNow
	}
	c.hasReadOnly = req.HasReadOnly
	if req.LastZxidSeen > s.tree.zxid {
		// ZooKeeper refuses a client ahead of it ("try another server").
		// Here there is no other server: catch up instead, so such a
		// client is served (and told its session expired) rather than
		// refused forever.
		s.log.Warn("client has seen a zxid beyond ours; moving ours up",
			zap.Int64("client_zxid", req.LastZxidSeen), zap.Int64("zxid", s.tree.zxid))
		s.tree.zxid = req.LastZxidSeen
	}
	timeout := s.negotiate(req.TimeOut)
	if req.SessionID == 0 {
		if s.cfg.MaxSessions > 0 && len(s.sessions) >= s.cfg.MaxSessions {
			c.log.Warn("too many sessions; connection closed", zap.Int("max_sessions", s.cfg.MaxSessions))
			return closeNow
		}
		sess := s.newSession(timeout)
		s.attach(c, sess)
		c.log.Debug("session created", zap.String("session", sessionHex(sess.id)), zap.Duration("timeout", timeout))
		c.push((&connectResponse{TimeOut: int32(timeout.Milliseconds()), SessionID: sess.id,
			Passwd: sess.passwd, HasReadOnly: c.hasReadOnly}).frame(), 0)
		return keepOpen
	}
	sess := s.sessions[req.SessionID]
	if sess == nil || !bytes.Equal(sess.passwd, req.Passwd) {
		c.log.Info("session expired, unknown or wrong password", zap.String("session", sessionHex(req.SessionID)))
		c.push((&connectResponse{Passwd: make([]byte, 16), HasReadOnly: c.hasReadOnly}).frame(), 0)
		return closeAfterReply
	}
	if sess.conn != nil && sess.conn != c {
		sess.conn.shutdown() // the client moved; its old connection's reader cleans up
	}
	if sess.timeout != timeout {
		sess.timeout = timeout
		s.saver.mark()
	}
	s.attach(c, sess)
	c.log.Debug("session resumed", zap.String("session", sessionHex(sess.id)))
	c.push((&connectResponse{TimeOut: int32(timeout.Milliseconds()), SessionID: sess.id,
		Passwd: sess.passwd, HasReadOnly: c.hasReadOnly}).frame(), 0)
	return keepOpen
}

func (s *Server) attach(c *conn, sess *session) {
	sess.conn, sess.lastSeen = c, s.now()
	c.sess = sess
}

// newSession makes a session: like ZooKeeper's createSession, a
// transaction with a zxid of its own.
func (s *Server) newSession(timeout time.Duration) *session {
	for s.nextID == 0 || s.sessions[s.nextID] != nil {
		s.nextID++
	}
	sess := &session{id: s.nextID, passwd: make([]byte, 16), timeout: timeout}
	s.nextID++
	_, _ = rand.Read(sess.passwd) // crypto/rand never fails on Linux
	s.sessions[sess.id] = sess
	s.tree.nextZxid()
	s.saver.mark()
	return sess
}

// endSession ends sess in one transaction: its ephemeral nodes are
// deleted (their watches fire), the Observer is told, the store updated.
// The caller closes the connection.
func (s *Server) endSession(sess *session) {
	delete(s.sessions, sess.id)
	tx := s.tree.begin(sess.id, s.now().UnixMilli())
	for _, p := range s.tree.ephemeralsOf(sess.id) {
		tx.remove(p)
	}
	tx.notes = append(tx.notes, note{kind: noteSessionEnded, session: sess.id})
	s.commit(tx)
	s.saver.mark()
	if sess.conn != nil {
		sess.conn.sess = nil
		sess.conn = nil
	}
}

// expireSessions ends the sessions that sent nothing for their timeout;
// tickLoop calls it every tick.
func (s *Server) expireSessions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	now := s.now()
	for _, sess := range s.sessions {
		if now.Sub(sess.lastSeen) <= sess.timeout {
			continue
		}
		s.log.Info("session expired", zap.String("session", sessionHex(sess.id)),
			zap.Duration("timeout", sess.timeout))
		c := sess.conn
		s.endSession(sess)
		if c != nil {
			c.shutdown()
		}
	}
}

func sessionHex(id int64) string { return "0x" + strconv.FormatUint(uint64(id), 16) }
