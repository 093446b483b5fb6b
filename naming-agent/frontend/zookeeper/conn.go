package zookeeper

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"
)

// conn is one client connection: serve reads and handles its requests,
// writeLoop writes what q holds.
type conn struct {
	srv *Server
	nc  net.Conn
	ip  string
	log *zap.Logger
	q   outQueue

	// Guarded by Server.mu.
	sess        *session
	auth        []authID
	watched     map[string]int // paths with a watch of this conn: tables holding one
	hasReadOnly bool           // the client's ConnectRequest had the readOnly byte

	shutOnce    sync.Once
	writerDone  chan struct{}
	writerStart sync.Once
}

func newConn(s *Server, nc net.Conn, ip string) *conn {
	c := &conn{
		srv:        s,
		nc:         nc,
		ip:         ip,
		log:        s.log.With(zap.String("addr", nc.RemoteAddr().String())),
		watched:    map[string]int{},
		auth:       []authID{{Scheme: "ip", ID: ip}},
		writerDone: make(chan struct{}),
	}
	c.q.init(s.cfg.OutgoingQueueBytes)
	return c
}

// verdict is what becomes of a connection after a request.
type verdict uint8

const (
	keepOpen        verdict = iota
	closeAfterReply         // write what is queued, then close (ZooKeeper's closeConn)
	closeNow
)

// serve is the connection's goroutine: the handshake, then one request
// after another.
func (c *conn) serve() {
	s := c.srv
	defer s.connWG.Done()
	v := c.run()
	c.finish(v)
	s.dropConn(c)
}

func (c *conn) run() verdict {
	s := c.srv
	br := bufio.NewReader(c.nc)
	_ = c.nc.SetReadDeadline(time.Now().Add(s.cfg.ConnectTimeout))
	n, err := readFrameLength(br)
	if err != nil {
		c.logDrop("no connect request", err)
		return closeNow
	}
	if cmd, ok := fourLetterWord(n); ok {
		c.startWriter()
		c.push(s.fourLetter(cmd), 0)
		return closeAfterReply
	}
	body, err := readFrameBody(br, n)
	if err != nil {
		c.logDrop("bad connect request", err)
		return closeNow
	}
	req, err := decodeConnectRequest(body)
	if err != nil {
		c.logDrop("bad connect request", err)
		return closeNow
	}
	_ = c.nc.SetReadDeadline(time.Time{}) // the session timeout rules from now on
	c.startWriter()
	if v := s.connect(c, req); v != keepOpen {
		return v
	}
	for {
		n, err := readFrameLength(br)
		if err == nil {
			body, err = readFrameBody(br, n)
		}
		if err != nil {
			c.logDrop("read", err)
			return closeNow
		}
		s.received.Add(1)
		if v := c.handle(body); v != keepOpen {
			return v
		}
	}
}

func (c *conn) logDrop(what string, err error) {
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		c.log.Debug("connection closed", zap.String("reason", what), zap.Error(err))
		return
	}
	c.log.Info("connection closed", zap.String("reason", what), zap.Error(err))
}

// finish closes the connection: at once, or after what is queued is
// written. Then it reads what the client still sends, for a moment, so
// that its unread requests do not reset the connection before it reads
// our last reply (net/http's lingering close).
func (c *conn) finish(v verdict) {
	if v == closeAfterReply {
		c.q.finish()
		c.waitWriter()
		if tc, ok := c.nc.(*net.TCPConn); ok && tc.CloseWrite() == nil {
			_ = c.nc.SetReadDeadline(time.Now().Add(time.Second))
			_, _ = io.Copy(io.Discard, io.LimitReader(c.nc, maxBuffer))
		}
	}
	c.shutdown()
	c.waitWriter()
}

// shutdown closes the socket and drops what is queued. It may be called
// from anywhere, Server.mu held or not, any number of times.
func (c *conn) shutdown() {
	c.shutOnce.Do(func() {
		_ = c.nc.Close()
		c.q.close()
	})
}

func (c *conn) startWriter() {
	c.writerStart.Do(func() { go c.writeLoop() })
}

// waitWriter waits for the writer, if it was started.
func (c *conn) waitWriter() {
	started := true
	c.writerStart.Do(func() { started = false; close(c.writerDone) })
	if started {
		<-c.writerDone
	}
}

// push queues a frame; gate is the save generation it waits for. A
// client whose queue is full is disconnected. Runs under Server.mu or
// from the connection's own goroutine.
func (c *conn) push(frame []byte, gate uint64) {
	if !c.q.push(frame, gate) {
		c.log.Warn("client does not read its replies; disconnected",
			zap.Int("outgoing_queue_bytes", c.srv.cfg.OutgoingQueueBytes))
		c.shutdown()
	}
}

// sendEvent queues a watch notification.
func (c *conn) sendEvent(frame []byte) { c.push(frame, 0) }

func (c *conn) writeLoop() {
	defer close(c.writerDone)
	s := c.srv
	// Small: it lives as long as the connection, one per session (a
	// 64 KiB buffer was 64 of a session's 76 KiB); a larger frame is
	// written through it.
	bw := bufio.NewWriterSize(c.nc, 4<<10)
	for {
		items, finishing, ok := c.q.take()
		if !ok {
			return
		}
		for _, it := range items {
			s.saver.wait(it.gate)
			_ = c.nc.SetWriteDeadline(time.Now().Add(s.cfg.ConnectTimeout))
			if _, err := bw.Write(it.frame); err != nil {
				c.shutdown()
				return
			}
		}
		if err := bw.Flush(); err != nil {
			c.shutdown()
			return
		}
		s.sent.Add(int64(len(items)))
		if finishing && c.q.empty() {
			return
		}
	}
}

// outQueue is what waits to be written to one client.
type outQueue struct {
	mu        sync.Mutex // guards the fields below
	items     []outItem
	size      int
	limit     int
	closed    bool // dropped: the connection is gone
	finishing bool // no more pushes; the writer ends once it wrote all
	wake      chan struct{}
}

type outItem struct {
	frame []byte
	gate  uint64
}

func (q *outQueue) init(limit int) {
	q.limit = limit
	q.wake = make(chan struct{}, 1)
}

// push reports false when the queue is over its limit; a frame for a
// closed or finishing queue is dropped.
func (q *outQueue) push(frame []byte, gate uint64) bool {
	q.mu.Lock()
	if q.closed || q.finishing {
		q.mu.Unlock()
		return true
	}
	if q.size+len(frame) > q.limit {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, outItem{frame, gate})
	q.size += len(frame)
	q.mu.Unlock()
	q.signal()
	return true
}

func (q *outQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take waits for frames and returns them all; ok is false once closed,
// finishing true once no more will come.
func (q *outQueue) take() (items []outItem, finishing, ok bool) {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return nil, false, false
		}
		if len(q.items) > 0 || q.finishing {
			items, q.items, q.size = q.items, nil, 0
			finishing = q.finishing
			q.mu.Unlock()
			return items, finishing, true
		}
		q.mu.Unlock()
		<-q.wake
	}
}

func (q *outQueue) empty() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) == 0
}

func (q *outQueue) finish() {
	q.mu.Lock()
	q.finishing = true
	q.mu.Unlock()
	q.signal()
}

func (q *outQueue) close() {
	q.mu.Lock()
	q.closed, q.items, q.size = true, nil, 0
	q.mu.Unlock()
	q.signal()
}
