package nacostestserver_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/common/http_agent"
	"github.com/nacos-group/nacos-sdk-go/v2/common/logger"
	"github.com/nacos-group/nacos-sdk-go/v2/common/nacos_server"
	"github.com/nacos-group/nacos-sdk-go/v2/common/remote/rpc"
	"github.com/nacos-group/nacos-sdk-go/v2/common/remote/rpc/rpc_request"
	"github.com/nacos-group/nacos-sdk-go/v2/common/remote/rpc/rpc_response"
	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"go.uber.org/goleak"

	"github.com/detourmesh/detour/registry-adapters/nacos/nacostestserver"
)

// TestMain checks for leaked goroutines, polling a while since the SDK's
// clients stop theirs at their next wake-up. Two are ignored, both left
// by the SDK's naming client (TestNamingClient), which never stops them:
// its UDP push receiver blocks in ReadFromUDP for ever, since CloseClient
// does not close its socket; and its file logger (lumberjack) starts a
// log-file cleaner the SDK has no way to stop.
func TestMain(m *testing.M) {
	logger.SetLogger(quiet{})
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(15 * time.Second)
		for {
			err := goleak.Find(
				goleak.IgnoreAnyFunction("github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client/naming_http.(*PushReceiver).startServer.func1"),
				goleak.IgnoreAnyFunction("gopkg.in/natefinch/lumberjack%2ev2.(*Logger).millRun"),
			)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				fmt.Fprintln(os.Stderr, err)
				code = 1
				break
			}
			<-time.After(100 * time.Millisecond)
		}
	}
	os.Exit(code)
}

// quiet is an SDK logger that drops everything.
type quiet struct{}

func (quiet) Info(...any)           {}
func (quiet) Warn(...any)           {}
func (quiet) Error(...any)          {}
func (quiet) Debug(...any)          {}
func (quiet) Infof(string, ...any)  {}
func (quiet) Warnf(string, ...any)  {}
func (quiet) Errorf(string, ...any) {}
func (quiet) Debugf(string, ...any) {}

func start(t *testing.T) *nacostestserver.Server {
	t.Helper()
	s, err := nacostestserver.Start()
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// eventually polls cond until it holds or 10 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for wait := time.Millisecond; !cond(); wait = min(2*wait, 100*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-time.After(wait)
	}
}

// rawClient is the SDK's bare gRPC client on a test server, with the
// pushes it received.
type rawClient struct {
	c *rpc.RpcClient

	mu     sync.Mutex
	pushes []model.Service
}

func dial(t *testing.T, s *nacostestserver.Server, label string) *rawClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	host, port := splitAddr(t, s.Addr())
	servers := []constant.ServerConfig{{IpAddr: host, Port: port, GrpcPort: port + nacostestserver.GRPCPortOffset}}
	ns, err := nacos_server.NewNacosServer(ctx, servers, constant.ClientConfig{}, &http_agent.HttpAgent{}, 3000, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	ic, err := rpc.CreateClient(ctx, t.Name()+"-"+label, rpc.GRPC, map[string]string{"test": label}, ns, &constant.TLSConfig{Appointed: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rc := &rawClient{c: ic.GetRpcClient()}
	rc.c.RegisterServerRequestHandler(func() rpc_request.IRequest {
		return &rpc_request.NotifySubscriberRequest{NamingRequest: &rpc_request.NamingRequest{Request: &rpc_request.Request{}}}
	}, rc)
	rc.c.Start()
	t.Cleanup(func() {
		// A reconnect that succeeds after Shutdown and cancel blocks its
		// goroutine for ever (an SDK bug): let one on its way finish.
		waitRunning(rc.c, time.Second)
		rc.c.Shutdown()
		cancel()
	})
	if !rc.c.IsRunning() {
		t.Fatal("client did not connect")
	}
	return rc
}

// waitRunning polls c's status for up to d.
func waitRunning(c *rpc.RpcClient, d time.Duration) {
	deadline := time.Now().Add(d)
	for !c.IsRunning() && time.Now().Before(deadline) {
		<-time.After(10 * time.Millisecond)
	}
}

func (rc *rawClient) Name() string { return "test" }

func (rc *rawClient) RequestReply(req rpc_request.IRequest, _ *rpc.RpcClient) rpc_response.IResponse {
	n := req.(*rpc_request.NotifySubscriberRequest)
	rc.mu.Lock()
	rc.pushes = append(rc.pushes, n.ServiceInfo)
	rc.mu.Unlock()
	return &rpc_response.NotifySubscriberResponse{Response: &rpc_response.Response{ResultCode: 200, Success: true}}
}

func (rc *rawClient) lastPush() (model.Service, int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.pushes) == 0 {
		return model.Service{}, 0
	}
	return rc.pushes[len(rc.pushes)-1], len(rc.pushes)
}

func (rc *rawClient) do(t *testing.T, req rpc_request.IRequest) rpc_response.IResponse {
	t.Helper()
	resp, err := rc.c.Request(req, 3000)
	if err != nil {
		t.Fatalf("%s: %v", req.GetRequestType(), err)
	}
	if !resp.IsSuccess() {
		t.Fatalf("%s: refused: %s", req.GetRequestType(), resp.GetMessage())
	}
	return resp
}

func instance(ip string, port uint64) model.Instance {
	return model.Instance{Ip: ip, Port: port, Weight: 100, Healthy: true, Enable: true, Ephemeral: true, Metadata: map[string]string{"k": "v"}}
}

func addrs(insts []model.Instance) []string {
	var out []string
	for _, in := range insts {
		out = append(out, in.Ip+":"+strconv.FormatUint(in.Port, 10))
	}
	slices.Sort(out)
	return out
}

func TestAddrsArePortPair(t *testing.T) {
	s := start(t)
	_, http := splitAddr(t, s.Addr())
	_, grpc := splitAddr(t, s.GRPCAddr())
	if grpc != http+nacostestserver.GRPCPortOffset {
		t.Fatalf("Addr %s, GRPCAddr %s: want gRPC on HTTP port + 1000", s.Addr(), s.GRPCAddr())
	}
}

func TestRegisterReplacesAndDeregisterRemovesAll(t *testing.T) {
	s := start(t)
	a := dial(t, s, "a")
	ns, g, svc := "public", "DEFAULT_GROUP", "svc"

	a.do(t, rpc_request.NewInstanceRequest(ns, svc, g, "registerInstance", instance("10.0.0.1", 80)))
	a.do(t, rpc_request.NewInstanceRequest(ns, svc, g, "registerInstance", instance("10.0.0.2", 80)))
	if got := addrs(s.Instances(ns, g, svc)); !slices.Equal(got, []string{"10.0.0.2:80"}) {
		t.Fatalf("after two registerInstance = %v, want the second only (Nacos 2.x replaces)", got)
	}
	a.do(t, rpc_request.NewBatchInstanceRequest(ns, svc, g, "batchRegisterInstance",
		[]model.Instance{instance("10.0.0.1", 80), instance("10.0.0.3", 80)}))
	if got := addrs(s.Instances(ns, g, svc)); !slices.Equal(got, []string{"10.0.0.1:80", "10.0.0.3:80"}) {
		t.Fatalf("after batch = %v", got)
	}
	got := s.Instances(ns, g, svc)[0]
	if got.InstanceId != "10.0.0.1#80#DEFAULT#DEFAULT_GROUP@@svc" || got.ServiceName != "DEFAULT_GROUP@@svc" {
		t.Errorf("instance ID %q, service %q: want Nacos's defaults", got.InstanceId, got.ServiceName)
	}
	a.do(t, rpc_request.NewInstanceRequest(ns, svc, g, "deregisterInstance", instance("10.0.0.3", 80)))
	if got := s.Instances(ns, g, svc); len(got) != 0 {
		t.Fatalf("after deregisterInstance = %v, want none (Nacos 2.x removes the connection's whole publication)", addrs(got))
	}
}

func TestQueryFilters(t *testing.T) {
	s := start(t)
	a := dial(t, s, "a")
	ns, g, svc := "public", "DEFAULT_GROUP", "svc"
	disabled := instance("10.0.0.2", 80)
	disabled.Enable = false
	sick := instance("10.0.0.3", 80)
	sick.Healthy = false
	other := instance("10.0.0.4", 80)
	other.ClusterName = "other"
	a.do(t, rpc_request.NewBatchInstanceRequest(ns, svc, g, "batchRegisterInstance",
		[]model.Instance{instance("10.0.0.1", 80), disabled, sick, other}))
	for _, tc := range []struct {
		cluster     string
		healthyOnly bool
		want        []string
	}{
		{"", false, []string{"10.0.0.1:80", "10.0.0.3:80", "10.0.0.4:80"}},
		{"", true, []string{"10.0.0.1:80", "10.0.0.4:80"}},
		{"other", false, []string{"10.0.0.4:80"}},
		{"DEFAULT,other", true, []string{"10.0.0.1:80", "10.0.0.4:80"}},
	} {
		resp := a.do(t, rpc_request.NewServiceQueryRequest(ns, svc, g, tc.cluster, tc.healthyOnly, 0))
		info := resp.(*rpc_response.QueryServiceResponse).ServiceInfo
		if got := addrs(info.Hosts); !slices.Equal(got, tc.want) {
			t.Errorf("query cluster=%q healthyOnly=%v = %v, want %v", tc.cluster, tc.healthyOnly, got, tc.want)
		}
	}
	bad := instance("10.0.0.5", 80)
	bad.Weight = 10001
	resp, err := a.c.Request(rpc_request.NewInstanceRequest(ns, svc, g, "registerInstance", bad), 3000)
	if err == nil && resp.IsSuccess() {
		t.Error("weight 10001 accepted, want refused as Nacos does")
	}
}

func TestSubscribePushesAndDropForgets(t *testing.T) {
	s := start(t)
	a, b := dial(t, s, "a"), dial(t, s, "b")
	ns, g, svc := "public", "DEFAULT_GROUP", "svc"

	resp := b.do(t, rpc_request.NewSubscribeServiceRequest(ns, svc, g, "", true))
	first := resp.(*rpc_response.SubscribeServiceResponse).ServiceInfo
	if len(first.Hosts) != 0 || first.Name != svc || first.GroupName != g {
		t.Fatalf("subscribe answer = %+v", first)
	}
	a.do(t, rpc_request.NewInstanceRequest(ns, svc, g, "registerInstance", instance("10.0.0.1", 80)))
	eventually(t, "push with the instance", func() bool {
		p, _ := b.lastPush()
		return slices.Equal(addrs(p.Hosts), []string{"10.0.0.1:80"})
	})
	p1, n1 := b.lastPush()
	if p1.LastRefTime <= first.LastRefTime {
		t.Errorf("push lastRefTime %d not after the subscribe answer's %d", p1.LastRefTime, first.LastRefTime)
	}

	// The connection carries its labels; dropping it forgets its instance
	// and tells the subscriber.
	var id string
	for _, c := range s.Connections() {
		if c.Labels["test"] == "a" && c.Setup {
			id = c.ID
		}
	}
	if id == "" {
		t.Fatalf("connection of a not found in %+v", s.Connections())
	}
	if err := s.DropConnection(id); err != nil {
		t.Fatal(err)
	}
	if got := s.Instances(ns, g, svc); len(got) != 0 {
		t.Fatalf("after DropConnection the server still has %v", addrs(got))
	}
	eventually(t, "push without the instance", func() bool {
		p, n := b.lastPush()
		return n > n1 && len(p.Hosts) == 0 && p.LastRefTime > p1.LastRefTime
	})
	if err := s.DropConnection(id); !errors.Is(err, nacostestserver.ErrUnknownConnection) {
		t.Errorf("second DropConnection = %v, want ErrUnknownConnection", err)
	}
	// a's client notices and reconnects with a new connection.
	eventually(t, "a reconnected", func() bool {
		for _, c := range s.Connections() {
			if c.Labels["test"] == "a" && c.Setup && c.ID != id {
				return a.c.IsRunning()
			}
		}
		return false
	})
	a.do(t, rpc_request.NewInstanceRequest(ns, svc, g, "registerInstance", instance("10.0.0.1", 81)))
	eventually(t, "push after a reconnected", func() bool {
		p, _ := b.lastPush()
		return slices.Equal(addrs(p.Hosts), []string{"10.0.0.1:81"})
	})
}

func TestRawInstances(t *testing.T) {
	s := start(t)
	b := dial(t, s, "b")
	ns, g, svc := "", "", "svc"
	b.do(t, rpc_request.NewSubscribeServiceRequest("public", svc, "DEFAULT_GROUP", "", true))
	bad := model.Instance{Ip: "not an ip", Port: 0, Weight: -1, Healthy: true, Enable: true, Metadata: map[string]string{"weight": "x"}}
	id := s.PutRawInstance(ns, g, svc, bad)
	if id != "not an ip#0#DEFAULT#DEFAULT_GROUP@@svc" {
		t.Errorf("raw instance ID = %q", id)
	}
	eventually(t, "push of the raw instance", func() bool {
		p, _ := b.lastPush()
		return len(p.Hosts) == 1 && p.Hosts[0].Ip == "not an ip" && p.Hosts[0].Weight == -1
	})
	if !s.RemoveRawInstance(ns, g, svc, id) || s.RemoveRawInstance(ns, g, svc, id) {
		t.Error("RemoveRawInstance: want true, then false")
	}
	eventually(t, "push without the raw instance", func() bool {
		p, _ := b.lastPush()
		return len(p.Hosts) == 0
	})
}

func TestDropConnectionsAndClose(t *testing.T) {
	s := start(t)
	a, b := dial(t, s, "a"), dial(t, s, "b")
	a.do(t, rpc_request.NewInstanceRequest("public", "svc", "DEFAULT_GROUP", "registerInstance", instance("10.0.0.1", 80)))
	b.do(t, rpc_request.NewInstanceRequest("public", "svc", "DEFAULT_GROUP", "registerInstance", instance("10.0.0.2", 80)))
	if n := s.DropConnections(); n < 2 {
		t.Errorf("DropConnections = %d, want at least 2", n)
	}
	if got := s.Instances("public", "DEFAULT_GROUP", "svc"); len(got) != 0 {
		t.Errorf("after DropConnections the server still has %v", addrs(got))
	}
	eventually(t, "both clients reconnected", func() bool {
		n := 0
		for _, c := range s.Connections() {
			if c.Setup {
				n++
			}
		}
		return n == 2 && a.c.IsRunning() && b.c.IsRunning()
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
