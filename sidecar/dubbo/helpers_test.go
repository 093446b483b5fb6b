package dubbo

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/detourmesh/detour/sidecar/cluster"
	"github.com/detourmesh/detour/sidecar/outlier"
)

// fakeServer is a Dubbo provider: it answers each two-way request with
// what its answer func returns (hang: never), the heartbeat it is sent
// included, and records what it saw.
type fakeServer struct {
	ln     net.Listener
	name   string
	answer func(h Header, body []byte) (status byte, resp []byte, hang bool)

	requests, events, oneWay atomic.Int64
	eventAnswers             atomic.Int64 // event responses received (heartbeat answers)
	mu                       sync.Mutex
	conns                    []net.Conn
	wg                       sync.WaitGroup
}

func newFakeServer(t testing.TB, name string) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{ln: ln, name: name}
	s.answer = func(Header, []byte) (byte, []byte, bool) { return StatusOK, []byte(name), false }
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.close)
	return s
}

func (s *fakeServer) addr() string { return s.ln.Addr().String() }

func (s *fakeServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns = append(s.conns, c)
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(c)
	}
}

func (s *fakeServer) serve(c net.Conn) {
	defer s.wg.Done()
	defer c.Close()
	rd := NewReader(c, 4<<10, DefaultMaxBody)
	var mu sync.Mutex
	for {
		h, f, err := rd.Next()
		if err != nil {
			return
		}
		switch {
		case !h.IsRequest():
			if h.Event() {
				s.eventAnswers.Add(1)
			}
			continue
		case h.Event():
			s.events.Add(1)
			if h.TwoWay() {
				mu.Lock()
				c.Write(HeartbeatResponse(h))
				mu.Unlock()
			}
			continue
		case !h.TwoWay():
			s.oneWay.Add(1)
			continue
		}
		s.requests.Add(1)
		status, body, hang := s.answer(h, append([]byte(nil), f[HeaderLen:]...))
		if hang {
			continue
		}
		mu.Lock()
		c.Write(frame(Header{Flag: Hessian2, Status: status, ID: h.ID}, body))
		mu.Unlock()
	}
}

// dropConns closes the connections accepted so far.
func (s *fakeServer) dropConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

func (s *fakeServer) close() {
	s.ln.Close()
	s.dropConns()
	s.wg.Wait()
}

// frame builds a frame of h with body.
func frame(h Header, body []byte) []byte {
	h.Len = len(body)
	b := make([]byte, HeaderLen, HeaderLen+len(body))
	h.Put(b)
	return append(b, body...)
}

func request(id uint64, body string) []byte {
	return frame(Header{Flag: FlagRequest | FlagTwoWay | Hessian2, ID: id}, []byte(body))
}

// client is a Dubbo consumer's connection: calls by id, answers read by
// one reader and handed to their callers.
type client struct {
	t  testing.TB
	c  net.Conn
	mu sync.Mutex
	w  sync.Mutex
	wt map[uint64]chan reply
	// other receives frames that answer no call (events).
	other chan reply
	done  chan struct{}
}

type reply struct {
	h    Header
	body []byte
}

func dialClient(t testing.TB, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cl := &client{t: t, c: c, wt: map[uint64]chan reply{}, other: make(chan reply, 16), done: make(chan struct{})}
	go cl.read()
	t.Cleanup(func() { c.Close(); <-cl.done })
	return cl
}

func (c *client) read() {
	defer close(c.done)
	rd := NewReader(c.c, 4<<10, DefaultMaxBody)
	for {
		h, f, err := rd.Next()
		if err != nil {
			c.mu.Lock()
			for id, ch := range c.wt {
				close(ch)
				delete(c.wt, id)
			}
			c.mu.Unlock()
			return
		}
		r := reply{h, append([]byte(nil), f[HeaderLen:]...)}
		c.mu.Lock()
		ch := c.wt[h.ID]
		delete(c.wt, h.ID)
		c.mu.Unlock()
		if ch == nil || h.IsRequest() {
			select {
			case c.other <- r:
			default:
			}
			continue
		}
		ch <- r
	}
}

// send writes a request frame and returns where its answer comes.
func (c *client) send(f []byte) <-chan reply {
	h, err := Decode(f, DefaultMaxBody)
	if err != nil {
		c.t.Fatal(err)
	}
	ch := make(chan reply, 1)
	c.mu.Lock()
	c.wt[h.ID] = ch
	c.mu.Unlock()
	c.w.Lock()
	defer c.w.Unlock()
	if _, err := c.c.Write(f); err != nil {
		c.t.Errorf("write: %v", err)
	}
	return ch
}

// call sends one request and waits for its answer.
func (c *client) call(id uint64, body string) reply {
	c.t.Helper()
	return wait(c.t, c.send(request(id, body)))
}

func wait(t testing.TB, ch <-chan reply) reply {
	t.Helper()
	select {
	case r, ok := <-ch:
		if !ok {
			t.Fatal("connection closed before the answer")
		}
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no answer in 10 s")
	}
	return reply{}
}

// closedWithin reports whether the client's connection is closed by the
// other side within d.
func (c *client) closedWithin(d time.Duration) bool {
	select {
	case <-c.done:
		return true
	case <-time.After(d):
		return false
	}
}

// testCluster is a healthy cluster of addrs, round robin, ejecting after
// failures in a row.
func testCluster(failures int, addrs ...string) *cluster.Cluster {
	cfg := cluster.Config{Policy: cluster.RoundRobin, Outlier: outlier.Config{
		ConsecutiveFailures: failures, BaseEjectionTime: time.Minute, MaxEjectionTime: time.Minute,
		MaxEjectionPercent: 100, Interval: time.Second,
	}}
	cl := cluster.New("svc", cfg, time.Now)
	var specs []cluster.Spec
	for _, a := range addrs {
		specs = append(specs, cluster.Spec{Addr: a, AppAddr: a, Weight: 1})
	}
	cl.Update(cfg, specs)
	for _, e := range cl.Endpoints() {
		cl.SetHealth(e, cluster.Healthy)
	}
	return cl
}

// serve runs p on a listener of its own and returns its address.
func serve(t testing.TB, p *Proxy) string {
	t.Helper()
	if p.Dial == nil {
		p.Dial = (&net.Dialer{}).DialContext
	}
	if p.ConnectTimeout == 0 {
		p.ConnectTimeout = time.Second
	}
	if p.RequestTimeout == 0 && p.Cluster != nil { // ingress tests run with none
		p.RequestTimeout = 5 * time.Second
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.ServeConn(c)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done; p.Close() })
	return ln.Addr().String()
}
