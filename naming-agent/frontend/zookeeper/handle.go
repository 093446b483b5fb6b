package zookeeper

import (
	"slices"
	"strings"

	"go.uber.org/zap"
)

// handle serves one request frame of an established session, as
// ZooKeeper's request pipeline would: a header that cannot be read closes
// the connection; a body that cannot be read is answered
// MarshallingError; an opcode ZooKeeper does not take is answered
// Unimplemented and the connection closed.
func (c *conn) handle(body []byte) verdict {
	s := c.srv
	r := newReader(body)
	xid, op := r.int32(), r.int32()
	if r.err != nil {
		c.log.Info("connection closed", zap.String("reason", "bad request header"), zap.Error(r.err))
		return closeNow
	}
	if p, ok := s.overlay.(Preparer); ok && (op == opExists || op == opGetData || op == opGetChildren || op == opGetChildren2) {
		peek := *r // the path comes first in each of these requests
		if path := peek.string(); peek.err == nil {
			p.Prepare(path)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := c.sess
	if sess == nil || sess.conn != c { // the session ended, or moved to another connection
		return closeNow
	}
	sess.lastSeen = s.now()

	switch op {
	case opPing:
		c.reply(replyFrame(xidPing, s.tree.zxid, codeOK), 0)
	case opAuth:
		return c.handleAuth(xid, r)
	case opCloseSession:
		s.endSession(sess)
		c.reply(replyFrame(xid, s.tree.zxid, codeOK), 0)
		return closeAfterReply
	case opCreate, opCreate2, opCreateContainer, opCreateTTL:
		c.handleCreate(xid, op, r)
	case opDelete:
		req := decodePathVersion(r)
		c.write(xid, r, func(tx *txn) (func(*writer), code) { return nil, tx.delete(req) })
	case opSetData:
		req := decodeSetData(r)
		c.write(xid, r, func(tx *txn) (func(*writer), code) {
			st, cd := tx.setDataOp(req)
			return st.encode, cd
		})
	case opSetACL:
		req := decodeSetACL(r)
		c.write(xid, r, func(tx *txn) (func(*writer), code) {
			st, cd := tx.setACLOp(req, c.env())
			return st.encode, cd
		})
	case opMulti:
		c.handleMulti(xid, r)
	case opReconfig: // standalone, reconfig disabled: ZooKeeper's answer
		s.tree.nextZxid()
		c.reply(replyFrame(xid, s.tree.zxid, codeReconfigDisabled), 0)
	case opExists, opGetData, opGetChildren, opGetChildren2, opGetACL, opSync, opMultiRead,
		opGetEphemerals, opGetAllChildrenNumber, opWhoAmI:
		c.handleRead(xid, op, r)
	case opSetWatches, opSetWatches2, opAddWatch, opCheckWatches, opRemoveWatches:
		c.handleWatchOp(xid, op, r)
	default:
		// check outside a multi, sasl, deleteContainer (the server's own),
		// getMaxChildren, anything unknown.
		c.log.Info("unimplemented opcode; connection closed", zap.Int32("op", op))
		c.reply(replyFrame(xid, -1, codeUnimplemented), 0)
		return closeAfterReply
	}
	return keepOpen
}

// reply queues a finished reply frame.
func (c *conn) reply(w *writer, gate uint64) { c.push(w.frame(), gate) }

func (c *conn) env() opEnv {
	e := opEnv{auth: c.auth}
	if c.srv.overlay != nil {
		e.overlaid = func(p string) bool { _, ok := c.srv.view(p); return ok }
	}
	return e
}

// write runs a one-op write transaction. Like ZooKeeper, a write takes a
// zxid even when it fails, and a body that cannot be read is a
// MarshallingError.
func (c *conn) write(xid int32, r *reader, do func(tx *txn) (func(*writer), code)) {
	s := c.srv
	tx := s.tree.begin(c.sess.id, s.now().UnixMilli())
	var body func(*writer)
	cd := codeMarshallingError
	if r.err == nil {
		body, cd = do(tx)
	}
	if cd != codeOK {
		tx.rollback()
		c.reply(replyFrame(xid, s.tree.zxid, cd), 0)
		return
	}
	gate := s.commit(tx)
	w := replyFrame(xid, s.tree.zxid, codeOK)
	if body != nil {
		body(w)
	}
	c.reply(w, gate)
}

func (c *conn) handleCreate(xid, op int32, r *reader) {
	req := decodeCreate(r, op == opCreateTTL)
	c.write(xid, r, func(tx *txn) (func(*writer), code) {
		path, st, cd := tx.create(op, req, c.env())
		return func(w *writer) {
			w.string(path)
			if op != opCreate {
				st.encode(w)
			}
		}, cd
	})
}

func (c *conn) handleMulti(xid int32, r *reader) {
	s := c.srv
	ops := decodeMulti(r, isWriteOp)
	tx := s.tree.begin(c.sess.id, s.now().UnixMilli())
	if r.err != nil {
		c.reply(replyFrame(xid, s.tree.zxid, codeMarshallingError), 0)
		return
	}
	results, ok := tx.multi(ops, c.env())
	var gate uint64
	if ok {
		gate = s.commit(tx)
	}
	// A failed multi is not an error in the reply header: the results
	// carry it, as ZooKeeper sends them.
	w := replyFrame(xid, s.tree.zxid, codeOK)
	encodeMultiResults(w, results)
	c.reply(w, gate)
}

// handleAuth accepts "digest" and "ip" identities (ACLs are kept but not
// enforced: acl.go). Another scheme is AuthFailed and the connection
// closed, as ZooKeeper does; an unreadable packet closes it too.
func (c *conn) handleAuth(xid int32, r *reader) verdict {
	p := decodeAuth(r)
	if r.err != nil {
		c.log.Info("connection closed", zap.String("reason", "bad auth packet"), zap.Error(r.err))
		return closeNow
	}
	id, ok := authenticate(p, c.ip)
	if !ok {
		c.log.Info("auth failed; connection closed", zap.String("scheme", p.Scheme))
		c.reply(replyFrame(xid, 0, codeAuthFailed), 0)
		return closeAfterReply
	}
	// Once per identity, as ZooKeeper's ServerCnxn.addAuthInfo: Curator
	// can send its auth both in the connect and right after it, and a
	// second copy would double the ACLs an "auth" entry makes.
	if !slices.Contains(c.auth, id) {
		c.auth = append(c.auth, id)
	}
	c.reply(replyFrame(xid, 0, codeOK), 0)
	return keepOpen
}

// ephemeralsWithPrefix is getEphemerals: the session's ephemeral nodes
// whose path starts with prefix ("" or "/" for all).
func (s *Server) ephemeralsWithPrefix(session int64, prefix string) []string {
	all := s.tree.ephemeralsOf(session)
	if p := strings.TrimSpace(prefix); p == "" || p == "/" {
		return all
	}
	out := all[:0]
	for _, p := range all {
		if strings.HasPrefix(p, prefix) {
			out = append(out, p)
		}
	}
	return out
}
