package dubbo

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/detourmesh/detour/sidecar/observe"
	"github.com/detourmesh/detour/sidecar/stats"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// One client connection, its calls spread over every provider; two
// clients using the same ids each get their own answers.
func TestBalancedAndIDsRewritten(t *testing.T) {
	var srvs []*fakeServer
	var addrs []string
	for i := range 3 {
		s := newFakeServer(t, "p"+strconv.Itoa(i))
		s.answer = func(h Header, body []byte) (byte, []byte, bool) {
			return StatusOK, append([]byte(s.name+":"), body...), false
		}
		srvs, addrs = append(srvs, s), append(addrs, s.addr())
	}
	p := &Proxy{Cluster: testCluster(5, addrs...), Log: zaptest.NewLogger(t)}
	addr := serve(t, p)
	a, b := dialClient(t, addr), dialClient(t, addr)
	per := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range []*client{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var chans []<-chan reply
			for id := range 150 {
				chans = append(chans, c.send(request(uint64(id), fmt.Sprintf("%p-%d", c, id))))
			}
			for id, ch := range chans {
				r := wait(t, ch)
				name, body, _ := cut(string(r.body))
				if r.h.ID != uint64(id) || r.h.Status != StatusOK || body != fmt.Sprintf("%p-%d", c, id) {
					t.Errorf("call %d answered %+v %q", id, r.h, r.body)
				}
				mu.Lock()
				per[name]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, s := range srvs {
		if per[s.name] != 100 { // round robin over three
			t.Errorf("answers per provider %v; want 100 each", per)
			break
		}
	}
	if v := p.Cluster.Stats.View(); v.Requests != 300 || v.ConnsTotal != 3 || len(v.Failures) != 0 {
		t.Errorf("cluster counted %+v; want 300 requests over 3 connections", v)
	}
}

func cut(s string) (string, string, bool) {
	for i := range s {
		if s[i] == ':' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// Heartbeats are answered by the proxy and never reach the provider.
func TestHeartbeatAnsweredLocally(t *testing.T) {
	s := newFakeServer(t, "p")
	p := &Proxy{Cluster: testCluster(5, s.addr())}
	c := dialClient(t, serve(t, p))
	r := wait(t, c.send(Heartbeat(42)))
	if !r.h.Event() || r.h.IsRequest() || r.h.ID != 42 || r.h.Status != StatusOK {
		t.Errorf("heartbeat answered %+v", r.h)
	}
	if r := c.call(1, "x"); r.h.Status != StatusOK {
		t.Errorf("call after heartbeat: %+v", r.h)
	}
	if n := s.events.Load(); n != 0 {
		t.Errorf("provider saw %d events", n)
	}
}

// A provider that never answers: each call gets SERVER_TIMEOUT, the
// provider is ejected after three, and every later call succeeds on the
// other; its late answers are dropped and counted.
func TestTimeoutEjectsAndLateDropped(t *testing.T) {
	good, hung := newFakeServer(t, "good"), newFakeServer(t, "hung")
	release := make(chan struct{})
	var late sync.WaitGroup
	hung.answer = func(h Header, _ []byte) (byte, []byte, bool) {
		late.Add(1)
		<-release // answers only after the time-out
		return StatusOK, []byte("late"), false
	}
	p := &Proxy{Cluster: testCluster(3, good.addr(), hung.addr()), RequestTimeout: 100 * time.Millisecond, Log: zaptest.NewLogger(t)}
	c := dialClient(t, serve(t, p))
	timeouts := 0
	for id := range 20 {
		r := c.call(uint64(id), "x")
		switch r.h.Status {
		case StatusServerTimeout:
			timeouts++
			if id > 6 {
				t.Errorf("call %d timed out after the ejection", id)
			}
		case StatusOK:
			if string(r.body) != "good" {
				t.Errorf("call %d: %q", id, r.body)
			}
		default:
			t.Errorf("call %d: status %d", id, r.h.Status)
		}
	}
	if timeouts != 3 {
		t.Errorf("%d time-outs; want 3 before the ejection", timeouts)
	}
	var hungEP bool
	for _, e := range p.Cluster.Endpoints() {
		if e.Addr == hung.addr() {
			hungEP = e.Outlier.Ejected()
		}
	}
	if !hungEP {
		t.Error("the hung provider is not ejected")
	}
	close(release)
	eventually(t, func() bool { return p.Listener.Failures[stats.UnknownResponse].Load() == 3 })
	if r := c.call(100, "x"); r.h.ID != 100 || string(r.body) != "good" {
		t.Errorf("after the late answers: %+v %q", r.h, r.body)
	}
	if n := p.Listener.Failures[stats.RequestTimeout].Load(); n != 3 {
		t.Errorf("listener counted %d time-outs", n)
	}
}

// Error statuses count against the endpoint: ejected after three.
func TestErrorStatusEjects(t *testing.T) {
	good, bad := newFakeServer(t, "good"), newFakeServer(t, "bad")
	bad.answer = func(Header, []byte) (byte, []byte, bool) {
		return StatusServerError, appendString(nil, "boom"), false
	}
	p := &Proxy{Cluster: testCluster(3, good.addr(), bad.addr())}
	c := dialClient(t, serve(t, p))
	errs := 0
	for id := range 20 {
		r := c.call(uint64(id), "x")
		if r.h.Status == StatusServerError {
			errs++
			if ErrorMessage(r.body) != "boom" {
				t.Errorf("error body %q", r.body)
			}
		}
	}
	if errs != 3 || p.Listener.Failures[stats.DubboStatus].Load() != 3 {
		t.Errorf("%d errors passed on, %d counted; want 3 then the ejection", errs, p.Listener.Failures[stats.DubboStatus].Load())
	}
}

// A refused connect is retried on another endpoint when Retries allows
// (nothing was sent), else answered SERVER_ERROR.
func TestConnectRefused(t *testing.T) {
	good := newFakeServer(t, "good")
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	for _, retries := range []int{0, 1} {
		p := &Proxy{Cluster: testCluster(100, dead, good.addr()), Retries: retries}
		c := dialClient(t, serve(t, p))
		var ok, failed int
		for id := range 10 {
			switch r := c.call(uint64(id), "x"); r.h.Status {
			case StatusOK:
				ok++
			case StatusServerError:
				failed++
			}
		}
		want := 5
		if retries > 0 {
			want = 0
		}
		if failed != want || ok != 10-want {
			t.Errorf("retries %d: ok %d failed %d", retries, ok, failed)
		}
		if n := p.Listener.Failures[stats.ConnectRefused].Load(); n < 5 || retries == 0 && n != 5 {
			t.Errorf("retries %d: %d refusals counted", retries, n)
		}
		if n := p.Listener.Retries.Load(); retries > 0 && n != p.Listener.Failures[stats.ConnectRefused].Load() {
			t.Errorf("retries %d: %d retries for %d refusals", retries, n, p.Listener.Failures[stats.ConnectRefused].Load())
		}
	}
}

// A provider's connection ends with calls in flight: they are answered
// CHANNEL_INACTIVE; the next call dials again.
func TestUpstreamClosedWithCallsInFlight(t *testing.T) {
	s := newFakeServer(t, "p")
	block := make(chan struct{})
	var once sync.Once
	s.answer = func(Header, []byte) (byte, []byte, bool) {
		once.Do(func() { <-block })
		return StatusOK, []byte("p"), false
	}
	p := &Proxy{Cluster: testCluster(100, s.addr())}
	c := dialClient(t, serve(t, p))
	ch := c.send(request(1, "x"))
	eventually(t, func() bool { return s.requests.Load() == 1 })
	s.dropConns()
	close(block)
	if r := wait(t, ch); r.h.Status != StatusChannelInactive {
		t.Errorf("in flight when the provider closed: %+v %q", r.h, r.body)
	}
	if r := c.call(2, "x"); r.h.Status != StatusOK {
		t.Errorf("next call: %+v", r.h)
	}
}

// Bad input from a client closes its connection with a counter; other
// connections carry on. A response from a client is dropped.
func TestBadInputFromClient(t *testing.T) {
	s := newFakeServer(t, "p")
	p := &Proxy{Cluster: testCluster(100, s.addr()), MaxBody: 1 << 10, Log: zaptest.NewLogger(t)}
	addr := serve(t, p)
	steady := dialClient(t, addr)
	for i, bad := range [][]byte{
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		request(1, string(make([]byte, 1025))),
		request(2, "truncated")[:20],
	} {
		c := dialClient(t, addr)
		c.c.Write(bad)
		if i == 2 {
			c.c.(*net.TCPConn).CloseWrite()
		}
		if !c.closedWithin(10 * time.Second) {
			t.Errorf("bad input %d: connection still open", i)
		}
	}
	if n := p.Listener.Failures[stats.BadFrame].Load(); n != 3 {
		t.Errorf("bad frames counted: %d", n)
	}
	steady.c.Write(frame(Header{Flag: Hessian2, Status: StatusOK, ID: 9}, []byte("stray")))
	if r := steady.call(1, "x"); r.h.Status != StatusOK {
		t.Errorf("the other connection: %+v", r.h)
	}
	if n := p.Listener.Failures[stats.BadFrame].Load(); n != 4 {
		t.Errorf("a client's response not counted: %d", n)
	}
}

// One-way calls are forwarded and answered by no one; ingress mode
// sends to its target.
func TestOneWayAndIngress(t *testing.T) {
	s := newFakeServer(t, "app")
	p := &Proxy{Target: s.addr()}
	c := dialClient(t, serve(t, p))
	c.c.Write(frame(Header{Flag: FlagRequest | Hessian2, ID: 5}, []byte("fire")))
	if r := c.call(6, "x"); r.h.Status != StatusOK || string(r.body) != "app" {
		t.Errorf("ingress call: %+v %q", r.h, r.body)
	}
	eventually(t, func() bool { return s.oneWay.Load() == 1 })
	if n := p.Listener.Requests.Load(); n != 2 {
		t.Errorf("requests %d", n)
	}
}

// Drain on egress serves the connections it has until their clients
// close them (no new ones are taken): a call in flight and one sent
// during the drain are answered. At ctx's end what is left is closed.
func TestDrain(t *testing.T) {
	s := newFakeServer(t, "p")
	release := make(chan struct{})
	s.answer = func(h Header, _ []byte) (byte, []byte, bool) {
		if h.ID == 1 { // the first call on the proxy's upstream connection
			<-release
		}
		return StatusOK, []byte("p"), false
	}
	p := &Proxy{Cluster: testCluster(100, s.addr())}
	addr := serve(t, p)
	c, gone := dialClient(t, addr), dialClient(t, addr)
	ch := c.send(request(1, "x"))
	eventually(t, func() bool { return s.requests.Load() == 1 })
	gone.c.Close()
	drained := make(chan error, 1)
	go func() { drained <- p.Drain(t.Context()) }()
	ch2 := c.send(request(2, "y")) // behind call 1 at the provider
	close(release)
	if r := wait(t, ch); r.h.Status != StatusOK {
		t.Errorf("in flight at the drain: %+v", r.h)
	}
	if r := wait(t, ch2); r.h.Status != StatusOK {
		t.Errorf("a call sent during the drain: %+v", r.h)
	}
	select {
	case err := <-drained:
		t.Fatalf("Drain returned (%v) with a client connected", err)
	case <-time.After(20 * time.Millisecond):
	}
	c.c.Close()
	if err := <-drained; err != nil {
		t.Error(err)
	}

	// An ingress sends the read-only event and closes each connection
	// once it has no call in flight.
	release2 := make(chan struct{})
	s.answer = func(Header, []byte) (byte, []byte, bool) { <-release2; return StatusOK, []byte("p"), false }
	in := &Proxy{Target: s.addr()}
	ci := dialClient(t, serve(t, in))
	ch7 := ci.send(request(7, "x"))
	eventually(t, func() bool { return in.inflight.Load() == 1 })
	go func() { drained <- in.Drain(t.Context()) }()
	select {
	case r := <-ci.other:
		if !r.h.IsRequest() || !r.h.Event() || r.h.TwoWay() || ErrorMessage(r.body) != "R" {
			t.Errorf("the ingress's drain sent %+v %q", r.h, r.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no read-only event from the ingress")
	}
	close(release2)
	if r := wait(t, ch7); r.h.Status != StatusOK {
		t.Errorf("in flight at the ingress's drain: %+v", r.h)
	}
	if !ci.closedWithin(10 * time.Second) {
		t.Error("the ingress's client connection open after its calls ended")
	}
	if err := <-drained; err != nil {
		t.Error(err)
	}

	// At ctx's end the rest is closed.
	p2 := &Proxy{Cluster: testCluster(100, s.addr())}
	c2 := dialClient(t, serve(t, p2))
	if r := c2.call(1, "z"); r.h.Status != StatusOK {
		t.Fatalf("before the drain: %+v", r.h)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := p2.Drain(ctx); err == nil {
		t.Error("Drain with an ended ctx and a client connected returned nil")
	}
	if !c2.closedWithin(10 * time.Second) {
		t.Error("connection open after the drain's end")
	}
}

func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-deadline:
			t.Fatal("condition not met in 10 s")
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// An ingress that cannot reach its app answers SERVICE_NOT_FOUND (the
// call was not sent); the caller's egress retries that on another
// endpoint when Retries allows, else passes it on.
func TestNotSentRetried(t *testing.T) {
	good := newFakeServer(t, "good")
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	deadApp := ln.Addr().String()
	ln.Close()
	ingress := serve(t, &Proxy{Target: deadApp})
	for _, retries := range []int{0, 2} {
		p := &Proxy{Cluster: testCluster(100, ingress, good.addr()), Retries: retries}
		c := dialClient(t, serve(t, p))
		notFound := 0
		for id := range 10 {
			switch r := c.call(uint64(id), "x"); r.h.Status {
			case StatusOK:
			case StatusServiceNotFound:
				notFound++
			default:
				t.Errorf("retries %d: call %d: %+v %q", retries, id, r.h, r.body)
			}
		}
		if want := map[int]int{0: 5, 2: 0}[retries]; notFound != want {
			t.Errorf("retries %d: %d calls answered SERVICE_NOT_FOUND; want %d", retries, notFound, want)
		}
		if n := p.Listener.Failures[stats.DubboStatus].Load(); n == 0 {
			t.Errorf("retries %d: SERVICE_NOT_FOUND not counted against the ingress", retries)
		}
	}
}

// A provider's heartbeat is answered by the proxy; its read-only event
// makes the proxy send later calls on a new connection.
func TestProviderHeartbeatAndReadOnly(t *testing.T) {
	s := newFakeServer(t, "p")
	p := &Proxy{Cluster: testCluster(100, s.addr())}
	c := dialClient(t, serve(t, p))
	if r := c.call(1, "x"); r.h.Status != StatusOK {
		t.Fatalf("first call: %+v", r.h)
	}
	s.mu.Lock()
	up := s.conns[0]
	s.mu.Unlock()
	if _, err := up.Write(Heartbeat(77)); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return s.eventAnswers.Load() == 1 })
	if _, err := up.Write(ReadOnlyEvent(78)); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool {
		return p.pool.ready(s.addr()) == nil // the read-only connection takes no new calls
	})
	if r := c.call(2, "x"); r.h.Status != StatusOK {
		t.Fatalf("call after the read-only event: %+v", r.h)
	}
	s.mu.Lock()
	n := len(s.conns)
	s.mu.Unlock()
	if n != 2 {
		t.Errorf("provider saw %d connections; want a new one after the read-only event", n)
	}
}

// TestObserved: answered calls, the sidecar's own error answers included,
// are recorded with their status and outcome class; one-way calls are not.
func TestObserved(t *testing.T) {
	var log bytes.Buffer
	o, err := observe.New(&log, observe.Full, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := newFakeServer(t, "app")
	closed := newFakeServer(t, "gone")
	closed.close()
	for _, target := range []string{s.addr(), closed.addr()} {
		p := &Proxy{Target: target, Observe: o.Listener("greeter", "ingress")}
		c := dialClient(t, serve(t, p))
		c.c.Write(frame(Header{Flag: FlagRequest | Hessian2, ID: 5}, []byte("fire")))
		c.call(6, "x")
	}
	o.Flush()
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"dubbo_status":20,`) || !strings.Contains(lines[1], `"dubbo_status":60,`) {
		t.Fatalf("log: %s", log.String())
	}
	for _, tc := range []struct {
		status byte
		class  int
	}{{StatusOK, 2}, {StatusBadRequest, 4}, {StatusClientError, 4}, {StatusServiceNotFound, 5}, {StatusServerTimeout, 5}, {StatusThreadpoolExhausted, 5}} {
		if c := callClass(tc.status); c != tc.class {
			t.Errorf("status %d: class %d, want %d", tc.status, c, tc.class)
		}
	}
}
