package zookeeper

import (
	"bytes"
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dubbogo/go-zookeeper/zk"
)

// handshake takes a stored session back through go-zookeeper, which has
// no API for it (Conn's session id and password are private): it sits in
// the registration connection's dialer and, on a connection that opens a
// new session, puts the stored session id and password into the
// ConnectRequest the library writes. The server answers as to any client
// that reconnects: with that session, which the library then keeps (it
// takes the id and password of every ConnectResponse), or with session 0
// when it has expired, and the library starts a new one. The handshake
// also reads the password of each ConnectResponse, so that it can be
// stored.
//
// The library writes the ConnectRequest in one Write and reads the
// response before it starts its send and receive loops; both happen on
// its connect goroutine.
type handshake struct {
	mu       sync.Mutex
	resumeID int64  // the session to ask for on the next new session; 0: none
	resumePw []byte // its password
	answered chan struct{}
	result   int64  // the server's answer to the request: resumeID, or 0 (expired)
	sid      int64  // the session of the last ConnectResponse that gave one
	passwd   []byte // its password
}

func newHandshake() *handshake { return &handshake{answered: make(chan struct{})} }

// resume makes the next connection that opens a new session ask for
// session id instead; answered closes when the server has answered.
func (h *handshake) resume(id int64, passwd []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.resumeID, h.resumePw = id, bytes.Clone(passwd)
}

// outcome is the server's answer to the resume request, once answered is
// closed: the session id it gave, 0 if it refused.
func (h *handshake) outcome() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.result
}

// session returns the session of the last ConnectResponse and its
// password; 0 and nil before the first.
func (h *handshake) session() (int64, []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sid, bytes.Clone(h.passwd)
}

// wrap returns dial with the handshake in every connection it opens.
func (h *handshake) wrap(dial zk.Dialer) zk.Dialer {
	return func(network, addr string, timeout time.Duration) (net.Conn, error) {
		c, err := dial(network, addr, timeout)
		if err != nil {
			return nil, err
		}
		return &handshakeConn{Conn: c, h: h}, nil
	}
}

// rewrite returns the ConnectRequest packet p to send, and whether it
// asks for the stored session: p itself unless a resume is pending and p
// opens a new session (session id 0).
func (h *handshake) rewrite(p []byte) ([]byte, bool) {
	h.mu.Lock()
	id, pw := h.resumeID, h.resumePw
	h.mu.Unlock()
	if id == 0 {
		return p, false
	}
	return rewriteConnectRequest(p, id, pw)
}

// answer records a ConnectResponse: its session, and if it answers a
// resume request, the outcome.
func (h *handshake) answer(sid int64, passwd []byte, resumeAsked bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if resumeAsked && h.resumeID != 0 {
		h.result = sid
		h.resumeID, h.resumePw = 0, nil
		close(h.answered)
	}
	if sid != 0 {
		h.sid, h.passwd = sid, bytes.Clone(passwd)
	}
}

// handshakeConn is one connection of the registration session.
type handshakeConn struct {
	net.Conn
	h *handshake

	wrote       atomic.Bool // the ConnectRequest went out
	resumeAsked bool        // it asked for the stored session; set before the answer is read
	answered    atomic.Bool // the ConnectResponse was read
	resp        []byte      // the ConnectResponse so far
}

func (c *handshakeConn) Write(p []byte) (int, error) {
	if c.wrote.Load() {
		return c.Conn.Write(p)
	}
	c.wrote.Store(true)
	out, asked := c.h.rewrite(p)
	c.resumeAsked = asked
	n, err := c.Conn.Write(out)
	if n == len(out) {
		n = len(p) // the caller counts its own bytes
	}
	return min(n, len(p)), err
}

func (c *handshakeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.answered.Load() {
		c.resp = append(c.resp, p[:n]...)
		if sid, pw, done, ok := parseConnectResponse(c.resp); done {
			c.answered.Store(true)
			c.resp = nil
			if ok {
				c.h.answer(sid, pw, c.resumeAsked)
			}
		}
	}
	return n, err
}

// The ConnectRequest, in jute: int32 length of the rest, int32
// protocolVersion, int64 lastZxidSeen, int32 timeOut, int64 sessionId,
// buffer passwd (int32 length, bytes), and from newer clients a bool
// readOnly.
const (
	reqSessionOff = 4 + 4 + 8 + 4
	reqPasswdOff  = reqSessionOff + 8
)

// rewriteConnectRequest returns p with session id and password replaced
// if p is one whole ConnectRequest that opens a new session, else p.
func rewriteConnectRequest(p []byte, id int64, passwd []byte) ([]byte, bool) {
	if len(p) < reqPasswdOff+4 || int(binary.BigEndian.Uint32(p)) != len(p)-4 {
		return p, false
	}
	if binary.BigEndian.Uint64(p[reqSessionOff:]) != 0 {
		return p, false // the library resumes a session of its own
	}
	pwEnd := reqPasswdOff + 4 + int(binary.BigEndian.Uint32(p[reqPasswdOff:]))
	if pwEnd > len(p) || pwEnd < reqPasswdOff+4 {
		return p, false
	}
	out := make([]byte, 0, len(p)-pwEnd+reqPasswdOff+4+len(passwd))
	out = append(out, p[:reqSessionOff]...)
	out = binary.BigEndian.AppendUint64(out, uint64(id))
	out = binary.BigEndian.AppendUint32(out, uint32(len(passwd)))
	out = append(out, passwd...)
	out = append(out, p[pwEnd:]...)
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	return out, true
}

// maxConnectResponse bounds what is buffered of a ConnectResponse (whose
// password is 16 bytes); anything longer is not one.
const maxConnectResponse = 1024

// parseConnectResponse reads a ConnectResponse from the start of b:
// int32 length, int32 protocolVersion, int32 timeOut, int64 sessionId,
// buffer passwd. done is false while b is too short to tell; ok is false
// when b is no ConnectResponse.
func parseConnectResponse(b []byte) (sid int64, passwd []byte, done, ok bool) {
	if len(b) < 4 {
		return 0, nil, false, false
	}
	n := int(binary.BigEndian.Uint32(b))
	if n < 4+4+8+4 || n > maxConnectResponse {
		return 0, nil, true, false
	}
	if len(b) < 4+n {
		return 0, nil, false, false
	}
	body := b[4 : 4+n]
	sid = int64(binary.BigEndian.Uint64(body[8:]))
	pwLen := int(binary.BigEndian.Uint32(body[16:]))
	if pwLen < 0 || 20+pwLen > len(body) {
		return 0, nil, true, false
	}
	return sid, bytes.Clone(body[20 : 20+pwLen]), true, true
}
