package dataplane

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	durpb "google.golang.org/protobuf/types/known/durationpb"

	"github.com/detourmesh/detour/api/sidecarpb"
	"github.com/detourmesh/detour/sidecar/dubbo"
)

// dubboApp is a Dubbo provider answering every call with tag (hang:
// never), on the same free port of every ip.
func dubboApp(t *testing.T, tag string, hang bool, ips ...string) int {
	t.Helper()
	var mu sync.Mutex
	var conns []net.Conn
	serve := func(l net.Listener) {
		var wg sync.WaitGroup
		defer wg.Wait()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				rd := dubbo.NewReader(c, 4<<10, dubbo.DefaultMaxBody)
				for {
					h, _, err := rd.Next()
					if err != nil {
						return
					}
					if hang || !h.IsRequest() || h.Event() {
						continue
					}
					b := make([]byte, dubbo.HeaderLen, dubbo.HeaderLen+len(tag))
					dubbo.Header{Flag: dubbo.Hessian2, Status: dubbo.StatusOK, ID: h.ID, Len: len(tag)}.Put(b)
					c.Write(append(b, tag...))
				}
			}()
		}
	}
	var ls []net.Listener
	port := serveOn(t, func(l net.Listener) { mu.Lock(); ls = append(ls, l); mu.Unlock(); serve(l) }, func() {
		mu.Lock()
		defer mu.Unlock()
		for _, l := range ls {
			l.Close()
		}
		for _, c := range conns {
			c.Close()
		}
	}, ips...)
	return port
}

// dubboCall sends a two-way call with id on c and reads its answer.
func dubboCall(t *testing.T, c net.Conn, rd *dubbo.Reader, id uint64) (dubbo.Header, string) {
	t.Helper()
	b := make([]byte, dubbo.HeaderLen+1)
	dubbo.Header{Flag: dubbo.FlagRequest | dubbo.FlagTwoWay | dubbo.Hessian2, ID: id, Len: 1}.Put(b)
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	h, f, err := rd.Next()
	if err != nil {
		t.Fatal(err)
	}
	return h, string(f[dubbo.HeaderLen:])
}

// The mesh path for Dubbo: A's egress balances the calls of one client
// connection over B's and C's ingresses; C's app hangs after the first
// stretch and is ejected by time-outs, every later call answered by B.
func TestDubboPerCallBalancingAndTimeouts(t *testing.T) {
	const D = sidecarpb.Protocol_PROTOCOL_DUBBO
	b := startL7Remote(t, "127.0.0.3", "greeter", D, dubboApp(t, "b", false, "127.0.0.1", "127.0.0.3"), nil)
	c := startL7Remote(t, "127.0.0.4", "greeter", D, dubboApp(t, "c", true, "127.0.0.1", "127.0.0.4"), nil)
	a := newDP(t, Default())
	egress := hp("127.0.0.2", freePort(t, "127.0.0.2"))
	cl := clusterOf("greeter", D, b.endpoint(), c.endpoint())
	cl.RequestTimeout = durpb.New(100 * time.Millisecond)
	if err := a.Apply(context.Background(), egressSnap(1, egress, cl)); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, a, "greeter", b, c)
	conn, err := net.Dial("tcp", egress)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rd := dubbo.NewReader(conn, 4<<10, dubbo.DefaultMaxBody)
	seen := map[string]int{}
	timeouts := 0
	for id := range 40 {
		h, body := dubboCall(t, conn, rd, uint64(id))
		switch h.Status {
		case dubbo.StatusOK:
			seen[body]++
		case dubbo.StatusServerTimeout:
			timeouts++
		default:
			t.Fatalf("call %d: status %d", id, h.Status)
		}
		if h.ID != uint64(id) {
			t.Fatalf("call %d answered as %d", id, h.ID)
		}
	}
	if seen["b"] != 40-timeouts || timeouts != 3 {
		t.Fatalf("answers %v, %d time-outs; want 3 time-outs (then C ejected), the rest from B", seen, timeouts)
	}
	if endpointState(a, "greeter", c.endpoint().Addr) != sidecarpb.EndpointHealth_STATE_EJECTED {
		t.Fatal("C not ejected")
	}
	st := a.Stats().Clusters[0]
	if st.Requests != 40 || st.Failures["request_timeout"] != 3 {
		t.Fatalf("cluster stats %+v", st.View)
	}
	in := b.dp.Stats().Listeners[0]
	if in.Requests != 37 {
		t.Fatalf("B's ingress counted %d requests; want 37", in.Requests)
	}
}

// Stage 2 and bypass as for the other protocols: B's sidecar gone, its
// app alive, A's calls go to the app directly on the same client
// connection.
func TestDubboBypass(t *testing.T) {
	const D = sidecarpb.Protocol_PROTOCOL_DUBBO
	b := startL7Remote(t, "127.0.0.3", "greeter", D, dubboApp(t, "b", false, "127.0.0.1", "127.0.0.3"), nil)
	a := newDP(t, Default())
	egress := hp("127.0.0.2", freePort(t, "127.0.0.2"))
	if err := a.Apply(context.Background(), egressSnap(1, egress, clusterOf("greeter", D, b.endpoint()))); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, a, "greeter", b)
	conn, err := net.Dial("tcp", egress)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rd := dubbo.NewReader(conn, 4<<10, dubbo.DefaultMaxBody)
	if h, body := dubboCall(t, conn, rd, 1); h.Status != dubbo.StatusOK || body != "b" {
		t.Fatalf("through B's sidecar: %+v %q", h, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	b.dp.Shutdown(ctx)
	cancel()
	eventually(t, "bypass", func() bool {
		return endpointState(a, "greeter", b.endpoint().Addr) == sidecarpb.EndpointHealth_STATE_BYPASS
	})
	for id := range 10 {
		if h, body := dubboCall(t, conn, rd, uint64(10+id)); h.Status != dubbo.StatusOK || body != "b" {
			t.Fatalf("bypassing: %+v %q", h, body)
		}
	}
	if e := a.Stats().Clusters[0].Endpoints[0]; e.Bypassed != 10 {
		t.Fatalf("bypassed %d calls; want 10", e.Bypassed)
	}
}

// B's sidecar drains (SIGTERM) while A's client calls on: B's ingress
// sends the read-only event, A moves its calls to C (a refused connect
// to B retried there), no call fails, and B's drain ends before its
// deadline: A's pooled connection is closed once idle.
func TestDubboDrainIngress(t *testing.T) {
	const D = sidecarpb.Protocol_PROTOCOL_DUBBO
	b := startL7Remote(t, "127.0.0.3", "greeter", D, dubboApp(t, "b", false, "127.0.0.1", "127.0.0.3"), nil)
	c := startL7Remote(t, "127.0.0.4", "greeter", D, dubboApp(t, "c", false, "127.0.0.1", "127.0.0.4"), nil)
	a := newDP(t, Default())
	egress := hp("127.0.0.2", freePort(t, "127.0.0.2"))
	cl := clusterOf("greeter", D, b.endpoint(), c.endpoint())
	cl.Retries = 2
	if err := a.Apply(context.Background(), egressSnap(1, egress, cl)); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, a, "greeter", b, c)
	conn, err := net.Dial("tcp", egress)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rd := dubbo.NewReader(conn, 4<<10, dubbo.DefaultMaxBody)
	for id := range 10 { // both ingresses in A's pool
		dubboCall(t, conn, rd, uint64(id))
	}
	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		drained <- b.dp.Shutdown(ctx)
	}()
	seen := map[string]int{}
	for id := uint64(100); ; id++ {
		h, body := dubboCall(t, conn, rd, id)
		if h.Status != dubbo.StatusOK {
			t.Fatalf("call %d during B's drain: status %d %q", id, h.Status, body)
		}
		seen[body]++
		select {
		case err := <-drained:
			if err != nil {
				t.Fatalf("B's drain: %v", err)
			}
			if seen["c"] == 0 {
				t.Fatalf("answers during the drain %v", seen)
			}
			return
		default:
		}
	}
}
