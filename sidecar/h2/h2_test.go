package h2

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/detourmesh/detour/sidecar/cluster"
	"github.com/detourmesh/detour/sidecar/outlier"
	"github.com/detourmesh/detour/sidecar/stats"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// app is a grpc.testing.TestService tagged with its name.
type app struct {
	testpb.UnimplementedTestServiceServer
	tag      string
	fail     codes.Code // UnaryCall fails with it when set
	block    bool       // UnaryCall waits for its context
	once     bool       // only the first call blocks
	blocked  atomic.Int32
	canceled atomic.Int32  // calls that saw their context end
	calls    atomic.Int32  // UnaryCalls served
	started  chan struct{} // a blocked call began (when set)
}

func (s *app) UnaryCall(ctx context.Context, in *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	s.calls.Add(1)
	if s.fail != codes.OK {
		return nil, status.Error(s.fail, "failing")
	}
	if s.block && (!s.once || s.blocked.Add(1) == 1) {
		if s.started != nil {
			s.started <- struct{}{}
		}
		<-ctx.Done()
		s.canceled.Add(1)
		return nil, ctx.Err()
	}
	body := in.GetPayload().GetBody()
	if n := in.GetResponseSize(); n > 0 {
		body = bytes.Repeat([]byte{'r'}, int(n))
	}
	return &testpb.SimpleResponse{Username: s.tag, Payload: &testpb.Payload{Body: body}}, nil
}

func (s *app) StreamingOutputCall(in *testpb.StreamingOutputCallRequest, st testpb.TestService_StreamingOutputCallServer) error {
	for i, p := range in.GetResponseParameters() {
		body := bytes.Repeat([]byte{byte('a' + i%26)}, int(p.GetSize()))
		if err := st.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: body}}); err != nil {
			return err
		}
	}
	return nil
}

func (s *app) StreamingInputCall(st testpb.TestService_StreamingInputCallServer) error {
	total := 0
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return st.SendAndClose(&testpb.StreamingInputCallResponse{AggregatedPayloadSize: int32(total)})
		}
		if err != nil {
			return err
		}
		total += len(m.GetPayload().GetBody())
	}
}

func (s *app) FullDuplexCall(st testpb.TestService_FullDuplexCallServer) error {
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		body := append([]byte(s.tag+":"), m.GetPayload().GetBody()...)
		if err := st.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: body}}); err != nil {
			return err
		}
	}
}

// startApp serves a on a loopback port; the server stops at cleanup.
func startApp(t testing.TB, a *app, opts ...grpc.ServerOption) (string, *grpc.Server) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(opts...)
	testpb.RegisterTestServiceServer(g, a)
	go g.Serve(l)
	t.Cleanup(g.Stop)
	return l.Addr().String(), g
}

func newCluster(addrs ...string) *cluster.Cluster { return newClusterEject(2, addrs...) }

// newClusterEject ejects after failures in a row (0: never).
func newClusterEject(failures int, addrs ...string) *cluster.Cluster {
	cfg := cluster.Config{Policy: cluster.RoundRobin, Outlier: outlier.Config{
		ConsecutiveFailures: failures, BaseEjectionTime: time.Minute, MaxEjectionTime: time.Minute,
		MaxEjectionPercent: 50, Interval: time.Minute}}
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

func dialer(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// egress is a Proxy to cl with the sidecar's defaults.
func egress(cl *cluster.Cluster) *Proxy {
	return &Proxy{Cluster: cl, Listener: new(stats.Counters), Dial: dialer, ConnectTimeout: time.Second,
		Retries: 1, Retriable: map[int]bool{503: true}, BudgetPercent: 20, MinRetries: 3, BodyLimit: 64 << 10}
}

// serve runs p on a loopback listener and returns its address.
func serve(t testing.TB, p *Proxy) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go p.ServeConn(c, c)
		}
	}()
	t.Cleanup(func() { l.Close(); <-done; p.Close() })
	return l.Addr().String()
}

func client(t testing.TB, addr string, opts ...grpc.DialOption) testpb.TestServiceClient {
	cc, err := grpc.NewClient(addr, append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return testpb.NewTestServiceClient(cc)
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestUnaryBalancedAndStreaming(t *testing.T) {
	a, _ := startApp(t, &app{tag: "a"})
	b, _ := startApp(t, &app{tag: "b"})
	p := egress(newCluster(a, b))
	c := client(t, serve(t, p))
	seen := map[string]int{}
	for range 10 {
		r, err := c.UnaryCall(ctx(t), &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("hi")}})
		if err != nil {
			t.Fatal(err)
		}
		if string(r.GetPayload().GetBody()) != "hi" {
			t.Fatalf("echo %q", r.GetPayload().GetBody())
		}
		seen[r.GetUsername()]++
	}
	if seen["a"] != 5 || seen["b"] != 5 {
		t.Fatalf("round robin per request: %v", seen)
	}
	// Large messages both ways: past every window.
	big := bytes.Repeat([]byte{'x'}, 3<<20)
	r, err := c.UnaryCall(ctx(t), &testpb.SimpleRequest{Payload: &testpb.Payload{Body: big}, ResponseSize: 2 << 20})
	if err != nil || len(r.GetPayload().GetBody()) != 2<<20 {
		t.Fatalf("large unary: %v", err)
	}
	so, err := c.StreamingOutputCall(ctx(t), &testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{
		{Size: 1 << 20}, {Size: 10}, {Size: 300 << 10}, {Size: 2 << 20}}})
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for {
		m, err := so.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(m.GetPayload().GetBody()))
	}
	if len(sizes) != 4 || sizes[0] != 1<<20 || sizes[3] != 2<<20 {
		t.Fatalf("server streaming: %v", sizes)
	}
	si, err := c.StreamingInputCall(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for range 8 {
		if err := si.Send(&testpb.StreamingInputCallRequest{Payload: &testpb.Payload{Body: make([]byte, 200<<10)}}); err != nil {
			t.Fatal(err)
		}
	}
	if res, err := si.CloseAndRecv(); err != nil || res.GetAggregatedPayloadSize() != 8*200<<10 {
		t.Fatalf("client streaming: %v %v", res, err)
	}
	bidi, err := c.FullDuplexCall(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var tag string
	for i := range 20 {
		body := bytes.Repeat([]byte{byte('0' + i%10)}, i*10<<10)
		if err := bidi.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: body}}); err != nil {
			t.Fatal(err)
		}
		m, err := bidi.Recv()
		if err != nil {
			t.Fatal(err)
		}
		got := m.GetPayload().GetBody()
		if i == 0 {
			tag = string(got[:2])
		}
		if string(got[:2]) != tag || !bytes.Equal(got[2:], body) {
			t.Fatalf("bidi message %d: %d bytes", i, len(got))
		}
	}
	bidi.CloseSend()
	if _, err := bidi.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("bidi end: %v", err)
	}
	if got := p.Listener.Requests.Load(); got != 14 {
		t.Fatalf("listener requests %d, want 14", got)
	}
}

// TestSmallWindows: peers on both sides that grant only the 64 KiB
// default windows (no BDP growth): the proxy holds data back and sends it
// as WINDOW_UPDATEs come.
func TestSmallWindows(t *testing.T) {
	a, _ := startApp(t, &app{tag: "a"}, grpc.InitialWindowSize(65535), grpc.InitialConnWindowSize(65535))
	c := client(t, serve(t, egress(newCluster(a))), grpc.WithInitialWindowSize(65535), grpc.WithInitialConnWindowSize(65535))
	big := bytes.Repeat([]byte{'x'}, 1<<20)
	for range 3 {
		r, err := c.UnaryCall(ctx(t), &testpb.SimpleRequest{Payload: &testpb.Payload{Body: big}, ResponseSize: 3 << 20})
		if err != nil || len(r.GetPayload().GetBody()) != 3<<20 {
			t.Fatalf("large unary, small windows: %v", err)
		}
	}
	bidi, err := c.FullDuplexCall(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		body := bytes.Repeat([]byte{byte('a' + i)}, 300<<10)
		if err := bidi.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: body}}); err != nil {
			t.Fatal(err)
		}
		m, err := bidi.Recv()
		if err != nil || !bytes.Equal(m.GetPayload().GetBody()[2:], body) {
			t.Fatalf("bidi %d: %v", i, err)
		}
	}
	bidi.CloseSend()
	if _, err := bidi.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("bidi end: %v", err)
	}
}

func TestUnavailableRetriedAndEjected(t *testing.T) {
	good := &app{tag: "good"}
	bad := &app{tag: "bad", fail: codes.Unavailable}
	g, _ := startApp(t, good)
	b, _ := startApp(t, bad)
	cl := newCluster(g, b)
	p := egress(cl)
	c := client(t, serve(t, p))
	for range 6 {
		r, err := c.UnaryCall(ctx(t), &testpb.SimpleRequest{})
		if err != nil || r.GetUsername() != "good" {
			t.Fatalf("retried on the good endpoint: %v %v", r, err)
		}
	}
	if bad.calls.Load() == 0 || p.Listener.Retries.Load() == 0 || p.Listener.Failures[stats.GRPCUnavailable].Load() == 0 {
		t.Fatalf("no retry seen: bad calls %d, retries %d", bad.calls.Load(), p.Listener.Retries.Load())
	}
	var badEp *cluster.Endpoint
	for _, e := range cl.Endpoints() {
		if e.Addr == b {
			badEp = e
		}
	}
	if badEp.Stats.Failures[stats.GRPCUnavailable].Load() == 0 {
		t.Fatal("outlier failure not counted on the endpoint")
	}
	// Ejected after 2 consecutive failures: it gets no more calls.
	n := bad.calls.Load()
	for range 6 {
		if _, err := c.UnaryCall(ctx(t), &testpb.SimpleRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if bad.calls.Load() != n {
		t.Fatalf("ejected endpoint still called: %d then %d", n, bad.calls.Load())
	}
	// With no retry allowed the client sees the trailers-only status.
	p2 := egress(newCluster(b))
	p2.Retries = 0
	c2 := client(t, serve(t, p2))
	if _, err := c2.UnaryCall(ctx(t), &testpb.SimpleRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("trailers-only UNAVAILABLE: %v", err)
	}
	bad.fail = codes.PermissionDenied
	if _, err := c2.UnaryCall(ctx(t), &testpb.SimpleRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("trailers-only error: %v", err)
	}
}

func TestDeadlineCancelAndTimeout(t *testing.T) {
	a := &app{tag: "a", block: true, started: make(chan struct{}, 1)}
	addr, _ := startApp(t, a)
	p := egress(newCluster(addr))
	c := client(t, serve(t, p))
	dl, cancel := context.WithTimeout(ctx(t), 500*time.Millisecond)
	defer cancel()
	if _, err := c.UnaryCall(dl, &testpb.SimpleRequest{}); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("deadline: %v", err)
	}
	cx, cancel2 := context.WithCancel(ctx(t))
	go func() { <-a.started; cancel2() }()
	<-a.started // the deadline call's
	if _, err := c.UnaryCall(cx, &testpb.SimpleRequest{}); status.Code(err) != codes.Canceled {
		t.Fatalf("cancel: %v", err)
	}
	waitFor(t, "both upstream calls canceled", func() bool { return a.canceled.Load() == 2 })
	// A new proxy: the first call's attempt waits for a dial, too.
	p = egress(newCluster(addr))
	p.RequestTimeout = 300 * time.Millisecond
	c = client(t, serve(t, p))
	go func() { <-a.started }()
	if _, err := c.UnaryCall(ctx(t), &testpb.SimpleRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("request timeout (504): %v", err)
	}
	if p.Listener.Failures[stats.RequestTimeout].Load() != 1 {
		t.Fatalf("request timeout not counted: %+v", p.Listener.View())
	}
	waitFor(t, "timed-out call canceled upstream", func() bool { return a.canceled.Load() == 3 })
}

func TestUpstreamDownRetriedAndOverflow(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close()
	live, _ := startApp(t, &app{tag: "live"})
	p := egress(newCluster(dead, live))
	c := client(t, serve(t, p))
	for range 4 {
		if r, err := c.UnaryCall(ctx(t), &testpb.SimpleRequest{}); err != nil || r.GetUsername() != "live" {
			t.Fatalf("connect failure retried: %v %v", r, err)
		}
	}
	if p.Listener.Failures[stats.ConnectRefused].Load() == 0 || p.Listener.Retries.Load() == 0 {
		t.Fatal("connect failure and retry not counted")
	}
	blocker := &app{tag: "block", block: true, started: make(chan struct{}, 1)}
	baddr, _ := startApp(t, blocker)
	p2 := egress(newCluster(baddr))
	p2.MaxRequests = 1
	c2 := client(t, serve(t, p2))
	cx, cancel := context.WithCancel(ctx(t))
	errc := make(chan error, 1)
	go func() { _, err := c2.UnaryCall(cx, &testpb.SimpleRequest{}); errc <- err }()
	<-blocker.started
	if _, err := c2.UnaryCall(ctx(t), &testpb.SimpleRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("overflow: %v", err)
	}
	cancel()
	<-errc
	if p2.Listener.Failures[stats.Overflow].Load() != 1 {
		t.Fatal("overflow not counted")
	}
}

func waitFor(t testing.TB, what string, ok func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for !ok() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting: %s", what)
		case <-time.After(5 * time.Millisecond):
		}
	}
}
