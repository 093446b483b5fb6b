package dataplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
	durpb "google.golang.org/protobuf/types/known/durationpb"

	"github.com/detourmesh/detour/api/sidecarpb"
)

// serveOn serves srv (an *http.Server or *grpc.Server) on the same free
// port of every ip and returns the port.
func serveOn(t *testing.T, serve func(net.Listener), stop func(), ips ...string) int {
	t.Helper()
	port := freePort(t, ips...)
	var wg sync.WaitGroup
	for _, ip := range ips {
		l, err := net.Listen("tcp", hp(ip, port))
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			serve(l)
		}()
	}
	t.Cleanup(func() { stop(); wg.Wait() })
	return port
}

func httpApp(t *testing.T, h http.Handler, ips ...string) int {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: h, Protocols: p}
	return serveOn(t, func(l net.Listener) { srv.Serve(l) }, func() { srv.Close() }, ips...)
}

// startL7Remote runs a server-side sidecar fronting the app on port.
func startL7Remote(t *testing.T, ip, service string, proto sidecarpb.Protocol, port int, check *sidecarpb.AppCheck) *remote {
	t.Helper()
	r := &remote{ip: ip, port: port, ingress: freePort(t, ip), health: freePort(t, ip)}
	r.dp = newDP(t, Default())
	if check == nil {
		check = &sidecarpb.AppCheck{Kind: "tcp"}
	}
	check.Service, check.Target, check.Check = service, hp("127.0.0.1", port), fastCheck()
	snap := &sidecarpb.Snapshot{
		Version: 1, HostIp: ip, HealthListen: hp(ip, r.health),
		Ingress:   []*sidecarpb.IngressListener{{Service: service, Listen: hp(ip, r.ingress), Target: hp("127.0.0.1", port), Protocol: proto}},
		AppChecks: []*sidecarpb.AppCheck{check},
	}
	if err := r.dp.Apply(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	return r
}

func tagHandler(tag string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s xff=%s body=%s", tag, r.Method, r.URL.Path, r.Header.Get("X-Forwarded-For"), body)
	})
}

func waitHealthy(t *testing.T, d *Dataplane, service string, rs ...*remote) {
	t.Helper()
	eventually(t, "endpoints healthy", func() bool {
		for _, r := range rs {
			if endpointState(d, service, r.endpoint().Addr) != sidecarpb.EndpointHealth_STATE_HEALTHY {
				return false
			}
		}
		return true
	})
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Post(url, "text/plain", strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHTTPPerRequestBalancingAndHeaders(t *testing.T) {
	const H = sidecarpb.Protocol_PROTOCOL_HTTP
	b := startL7Remote(t, "127.0.0.3", "web", H, httpApp(t, tagHandler("b"), "127.0.0.1", "127.0.0.3"), &sidecarpb.AppCheck{Kind: "http", Path: "/healthz"})
	c := startL7Remote(t, "127.0.0.4", "web", H, httpApp(t, tagHandler("c"), "127.0.0.1", "127.0.0.4"), nil)
	a := newDP(t, Default())
	egress := hp("127.0.0.2", freePort(t, "127.0.0.2"))
	if err := a.Apply(context.Background(), egressSnap(1, egress, clusterOf("web", H, b.endpoint(), c.endpoint()))); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, a, "web", b, c)
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}} // one kept-alive connection
	defer client.CloseIdleConnections()
	seen := map[string]int{}
	for range 40 {
		code, body := get(t, client, "http://"+egress+"/p")
		if code != 200 || !strings.Contains(body, "POST /p") || !strings.Contains(body, "body=payload") {
			t.Fatalf("%d %q", code, body)
		}
		if !strings.Contains(body, "xff=127.0.0.1, 127.0.0.") {
			t.Fatalf("forwarding headers: %q", body)
		}
		seen[body[:1]]++
	}
	if seen["b"] == 0 || seen["c"] == 0 {
		t.Fatalf("requests on one connection must be balanced one by one: %v", seen)
	}
	if a.Stats().Clusters[0].Requests != 40 {
		t.Fatalf("requests: %+v", a.Stats().Clusters[0].View)
	}
}

func TestHTTPRetryAndEjectOn5xx(t *testing.T) {
	const H = sidecarpb.Protocol_PROTOCOL_HTTP
	failing := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		http.Error(w, "down", http.StatusServiceUnavailable)
	})
	b := startL7Remote(t, "127.0.0.3", "web", H, httpApp(t, failing, "127.0.0.1", "127.0.0.3"), nil)
	c := startL7Remote(t, "127.0.0.4", "web", H, httpApp(t, tagHandler("c"), "127.0.0.1", "127.0.0.4"), nil)
	a := newDP(t, Default())
	egress := hp("127.0.0.2", freePort(t, "127.0.0.2"))
	cl := clusterOf("web", H, b.endpoint(), c.endpoint())
	cl.Retries = 1
	if err := a.Apply(context.Background(), egressSnap(1, egress, cl)); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, a, "web", b, c)
	for range 20 {
		if code, body := get(t, http.DefaultClient, "http://"+egress+"/"); code != 200 || !strings.HasPrefix(body, "c POST / ") || !strings.Contains(body, "body=payload") {
			t.Fatalf("a retry must hide the 503, with the body replayed: %d %q", code, body)
		}
	}
	if endpointState(a, "web", b.endpoint().Addr) != sidecarpb.EndpointHealth_STATE_EJECTED {
		t.Fatal("5xx must eject")
	}
	st := a.Stats().Clusters[0]
	if st.Retries == 0 || st.Failures["status_5xx"] < 3 {
		t.Fatalf("stats: %+v", st.View)
	}
}

func TestHTTPRequestTimeout(t *testing.T) {
	const H = sidecarpb.Protocol_PROTOCOL_HTTP
	hang := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.ReadAll(r.Body); <-r.Context().Done() })
	b := startL7Remote(t, "127.0.0.3", "web", H, httpApp(t, hang, "127.0.0.1", "127.0.0.3"), nil)
	a := newDP(t, Default())
	egress := hp("127.0.0.2", freePort(t, "127.0.0.2"))
	cl := clusterOf("web", H, b.endpoint())
	cl.RequestTimeout = durpb.New(100 * time.Millisecond)
	if err := a.Apply(context.Background(), egressSnap(1, egress, cl)); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, a, "web", b)
	if code, _ := get(t, http.DefaultClient, "http://"+egress+"/"); code != http.StatusGatewayTimeout {
		t.Fatalf("code %d", code)
	}
	if n := a.Stats().Clusters[0].Failures["request_timeout"]; n != 1 {
		t.Fatalf("request_timeout failures: %d", n)
	}
}

// testServer is a grpc.testing.TestService: unary, client streaming and
// full duplex, tagged; unavailable makes UnaryCall fail with UNAVAILABLE.
type testServer struct {
	testpb.UnimplementedTestServiceServer
	tag         string
	unavailable bool
}

func (s *testServer) UnaryCall(ctx context.Context, in *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if s.unavailable {
		return nil, status.Error(codes.Unavailable, "going away")
	}
	return &testpb.SimpleResponse{Username: s.tag}, nil
}

func (s *testServer) StreamingInputCall(st testpb.TestService_StreamingInputCallServer) error {
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

func (s *testServer) FullDuplexCall(st testpb.TestService_FullDuplexCallServer) error {
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

func grpcApp(t *testing.T, s *testServer, ips ...string) int {
	g := grpc.NewServer()
	testpb.RegisterTestServiceServer(g, s)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(g, hs)
	return serveOn(t, func(l net.Listener) { g.Serve(l) }, g.Stop, ips...)
}

func TestGRPCUnaryAndStreamingBothWays(t *testing.T) {
	const G = sidecarpb.Protocol_PROTOCOL_GRPC
	b := startL7Remote(t, "127.0.0.3", "grpc", G, grpcApp(t, &testServer{tag: "b"}, "127.0.0.1", "127.0.0.3"), &sidecarpb.AppCheck{Kind: "grpc"})
	c := startL7Remote(t, "127.0.0.4", "grpc", G, grpcApp(t, &testServer{tag: "c", unavailable: true}, "127.0.0.1", "127.0.0.4"), nil)
	eventually(t, "grpc app check", func() bool { return healthz(hp(b.ip, b.health), "grpc") == 200 })
	a := newDP(t, Default())
	egress := hp("127.0.0.2", freePort(t, "127.0.0.2"))
	cl := clusterOf("grpc", G, b.endpoint(), c.endpoint())
	cl.Retries = 1
	if err := a.Apply(context.Background(), egressSnap(1, egress, cl)); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, a, "grpc", b, c)
	conn, err := grpc.NewClient(egress, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testpb.NewTestServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Unary: c answers UNAVAILABLE; the retry hides it.
	for range 10 {
		r, err := client.UnaryCall(ctx, &testpb.SimpleRequest{})
		if err != nil || r.GetUsername() != "b" {
			t.Fatalf("unary: %v %v", r, err)
		}
	}
	if endpointState(a, "grpc", c.endpoint().Addr) != sidecarpb.EndpointHealth_STATE_EJECTED &&
		a.Stats().Clusters[0].Failures["grpc_unavailable"] == 0 {
		t.Fatal("UNAVAILABLE not counted")
	}
	// Client streaming.
	cs, err := client.StreamingInputCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := cs.Send(&testpb.StreamingInputCallRequest{Payload: &testpb.Payload{Body: make([]byte, 1000)}}); err != nil {
			t.Fatal(err)
		}
	}
	if r, err := cs.CloseAndRecv(); err != nil || r.GetAggregatedPayloadSize() != 5000 {
		t.Fatalf("client stream: %v %v", r, err)
	}
	// Full duplex: each message answered before the next is sent.
	fd, err := client.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		msg := fmt.Sprintf("m%d", i)
		if err := fd.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte(msg)}}); err != nil {
			t.Fatal(err)
		}
		r, err := fd.Recv()
		if err != nil || !strings.HasSuffix(string(r.GetPayload().GetBody()), ":"+msg) {
			t.Fatalf("duplex %d: %v %v", i, r, err)
		}
	}
	fd.CloseSend()
	if _, err := fd.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("end of stream: %v", err)
	}
}
