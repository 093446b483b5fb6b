package zookeeper

import (
	"bufio"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/dubbogo/go-zookeeper/zk"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// wait bounds every wait of these tests for something that should
// happen at once.
const wait = 10 * time.Second

// testServer is a Server on a loopback port of its own.
type testServer struct {
	*Server
	addr string
}

// testConfig has short timeouts: a session may be 100ms to 60s.
func testConfig() Config {
	cfg := Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.TickTime = 50 * time.Millisecond
	cfg.MinSessionTimeout = 100 * time.Millisecond
	cfg.MaxSessionTimeout = 60 * time.Second
	return cfg
}

// startServer serves on 127.0.0.1:0 until the test ends.
func startServer(t testing.TB, cfg Config, opts ...Option) *testServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, l, cfg, opts...)
}

func serveOn(t testing.TB, l net.Listener, cfg Config, opts ...Option) *testServer {
	t.Helper()
	opts = append([]Option{WithLogger(zaptest.NewLogger(t))}, opts...)
	s, err := New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		_ = s.Close()
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Errorf("Serve = %v, want ErrClosed", err)
		}
	})
	return &testServer{Server: s, addr: l.Addr().String()}
}

// zkClient is a go-zookeeper client (dubbo-go's) with every event it
// saw, in order.
type zkClient struct {
	*zk.Conn
	closeOnce sync.Once
	mu        sync.Mutex
	events    []zk.Event
	notify    chan struct{}
}

// connectZK connects a go-zookeeper client and waits for its session;
// dialer, if given, is how it dials.
func connectZK(t testing.TB, addr string, timeout time.Duration, dialer ...zk.Dialer) *zkClient {
	t.Helper()
	zc := &zkClient{notify: make(chan struct{}, 1)}
	tl := &testLogger{t: t}
	t.Cleanup(tl.stop) // runs after the client's Close, registered below
	logger := zk.WithLogger(tl)
	callback := zk.WithEventCallback(func(e zk.Event) {
		zc.mu.Lock()
		zc.events = append(zc.events, e)
		zc.mu.Unlock()
		select {
		case zc.notify <- struct{}{}:
		default:
		}
	})
	var c *zk.Conn
	var err error
	if len(dialer) > 0 {
		c, _, err = zk.Connect([]string{addr}, timeout, logger, callback, zk.WithDialer(dialer[0]))
	} else {
		c, _, err = zk.Connect([]string{addr}, timeout, logger, callback)
	}
	if err != nil {
		t.Fatal(err)
	}
	zc.Conn = c
	t.Cleanup(zc.Close)
	zc.waitState(t, zk.StateHasSession)
	return zc
}

// Close closes the client once (go-zookeeper's Close panics the second
// time).
func (zc *zkClient) Close() { zc.closeOnce.Do(zc.Conn.Close) }

// waitState waits until the client's state is want: the first time,
// among all the events so far and those to come. To wait for a state the
// client had before (a session back after a restart), use waitStateAfter.
func (zc *zkClient) waitState(t testing.TB, want zk.State) {
	t.Helper()
	zc.waitStateAfter(t, 0, want)
}

// mark is the number of events seen so far, for waitStateAfter.
func (zc *zkClient) mark() int {
	zc.mu.Lock()
	defer zc.mu.Unlock()
	return len(zc.events)
}

// waitStateAfter waits until the client's state is want in an event after
// the first from (a mark): its earlier events are not news.
func (zc *zkClient) waitStateAfter(t testing.TB, from int, want zk.State) {
	t.Helper()
	zc.waitEvent(t, from, "state "+want.String(), func(e zk.Event) bool {
		return e.Type == zk.EventSession && e.State == want
	})
}

// waitEvent waits for an event that match accepts, among the events so
// far after the first from, and those to come.
func (zc *zkClient) waitEvent(t testing.TB, from int, what string, match func(zk.Event) bool) zk.Event {
	t.Helper()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for i := from; ; {
		zc.mu.Lock()
		evs := zc.events[i:]
		zc.mu.Unlock()
		for _, e := range evs {
			i++
			if match(e) {
				return e
			}
		}
		select {
		case <-zc.notify:
		case <-deadline.C:
			t.Fatalf("no event %s within %v", what, wait)
		}
	}
}

// nodeEvents returns the watch events (not session ones) seen so far.
func (zc *zkClient) nodeEvents() []zk.Event {
	zc.mu.Lock()
	defer zc.mu.Unlock()
	var out []zk.Event
	for _, e := range zc.events {
		if e.Type != zk.EventSession {
			out = append(out, zk.Event{Type: e.Type, Path: e.Path})
		}
	}
	return out
}

// testLogger sends go-zookeeper's log to the test until it ends: the
// client's goroutines still log after its Close returns, and a test's
// Logf after its end panics.
type testLogger struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (l *testLogger) Printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.done {
		l.t.Logf("go-zookeeper: "+format, args...)
	}
}

func (l *testLogger) stop() {
	l.mu.Lock()
	l.done = true
	l.mu.Unlock()
}

// fakeClock is a clock a test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

// memStore is a SessionStore in memory.
type memStore struct {
	mu    sync.Mutex
	state []byte
	saves int
	err   error
}

func (m *memStore) Load() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]byte(nil), m.state...), nil
}

func (m *memStore) Save(b []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.saves++
	if m.err != nil {
		return m.err
	}
	m.state = append([]byte(nil), b...)
	return nil
}

// rawClient speaks the wire protocol byte by byte, for what no client
// library sends: malformed packets, every opcode, its own xids.
type rawClient struct {
	t      testing.TB
	nc     net.Conn
	br     *bufio.Reader
	xid    int32
	sid    int64
	passwd []byte
	tmo    int32
	events []rawEvent
}

type rawEvent struct {
	typ  int32
	path string
}

type replyHeader struct {
	xid  int32
	zxid int64
	err  code
}

// dialRaw connects and establishes a session (sid 0: a new one) with a
// 10s timeout.
func dialRaw(t testing.TB, addr string, sid int64, passwd []byte) *rawClient {
	t.Helper()
	return dialRawTimeout(t, addr, sid, passwd, 10000)
}

func dialRawTimeout(t testing.TB, addr string, sid int64, passwd []byte, timeoutMs int32) *rawClient {
	t.Helper()
	c := dialRawConn(t, addr)
	w := newWriter()
	w.int32(0)
	w.int64(0)
	w.int32(timeoutMs)
	w.int64(sid)
	if passwd == nil {
		passwd = make([]byte, 16)
	}
	w.buffer(passwd)
	w.bool(false)
	c.sendFrame(w.frame())
	r := c.readFrame()
	if r == nil {
		t.Fatal("no connect response")
	}
	r.int32()
	c.tmo, c.sid, c.passwd = r.int32(), r.int64(), r.buffer()
	if r.err != nil {
		t.Fatalf("connect response: %v", r.err)
	}
	return c
}

func dialRawConn(t testing.TB, addr string) *rawClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(wait)) // moved on by each request
	return &rawClient{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *rawClient) sendFrame(frame []byte) {
	c.t.Helper()
	_ = c.nc.SetDeadline(time.Now().Add(wait))
	if _, err := c.nc.Write(frame); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// readFrame returns the next frame, nil at EOF or error.
func (c *rawClient) readFrame() *reader {
	r, _ := c.readFrameErr()
	return r
}

func (c *rawClient) readFrameErr() (*reader, error) {
	n, err := readFrameLength(c.br)
	if err != nil {
		return nil, err
	}
	b, err := readFrameBody(c.br, n)
	if err != nil {
		return nil, err
	}
	return newReader(b), nil
}

// call sends a request and returns its reply's header and body, keeping
// the events that came before it; ok false if the server closed.
func (c *rawClient) call(op int32, body func(w *writer)) (replyHeader, *reader, bool) {
	c.t.Helper()
	c.xid++
	return c.callXid(c.xid, op, body)
}

func (c *rawClient) callXid(xid, op int32, body func(w *writer)) (replyHeader, *reader, bool) {
	c.t.Helper()
	w := newWriter()
	w.int32(xid)
	w.int32(op)
	if body != nil {
		body(w)
	}
	c.sendFrame(w.frame())
	return c.reply(xid)
}

// reply reads frames until the reply to xid (ping replies are -2).
func (c *rawClient) reply(xid int32) (replyHeader, *reader, bool) {
	for {
		r := c.readFrame()
		if r == nil {
			return replyHeader{}, nil, false
		}
		h := replyHeader{xid: r.int32(), zxid: r.int64(), err: code(r.int32())}
		if h.xid == xidNotification {
			e := rawEvent{typ: r.int32()}
			r.int32()
			e.path = r.string()
			c.events = append(c.events, e)
			continue
		}
		if h.xid == xid || (xid == xidPing && h.xid == xidPing) {
			return h, r, true
		}
	}
}

// closed reports whether the server closed the connection: a read gets
// EOF (or a reset) rather than a frame.
func (c *rawClient) closed() bool {
	_ = c.nc.SetReadDeadline(time.Now().Add(wait))
	for {
		_, err := c.readFrameErr()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return false
		}
		if err != nil {
			return true
		}
	}
}

func pathBody(p string) func(*writer) { return func(w *writer) { w.string(p) } }

func pathWatchBody(p string, watch bool) func(*writer) {
	return func(w *writer) { w.string(p); w.bool(watch) }
}

func createBody(p string, data []byte, flags int32) func(*writer) {
	return func(w *writer) {
		w.string(p)
		w.buffer(data)
		encodeACLs(w, openACL)
		w.int32(flags)
	}
}
