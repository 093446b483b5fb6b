package nacostestserver_test

import (
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/common/logger"
	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/detourmesh/detour/registry-adapters/nacos/nacostestserver"
)

func splitAddr(t *testing.T, addr string) (string, uint64) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		t.Fatal(err)
	}
	return host, p
}

// namingClient is the SDK's own naming client (clients.NewNamingClient),
// the client the test server is written for, with its cache and log files
// in a temporary directory.
func namingClient(t *testing.T, s *nacostestserver.Server) naming_client.INamingClient {
	t.Helper()
	host, port := splitAddr(t, s.Addr())
	dir := t.TempDir()
	c, err := clients.NewNamingClient(vo.NacosClientParam{
		ClientConfig: &constant.ClientConfig{
			TimeoutMs: 3000, CacheDir: dir, LogDir: dir, LogLevel: "error",
			NotLoadCacheAtStart: true, UpdateCacheWhenEmpty: true,
		},
		ServerConfigs: []constant.ServerConfig{{IpAddr: host, Port: port}},
	})
	if err != nil {
		t.Fatalf("NewNamingClient: %v", err)
	}
	t.Cleanup(func() {
		c.CloseClient()
		logger.SetLogger(quiet{}) // the client replaced the SDK's global logger with a file logger
	})
	return c
}

// TestNamingClient runs the SDK's naming client against the test server:
// register, batch register, the service list, select, subscribe with
// pushes, deregister.
func TestNamingClient(t *testing.T) {
	s := start(t)
	a, b := namingClient(t, s), namingClient(t, s)
	const svc = "greeter"

	var mu sync.Mutex
	var seen [][]string
	cb := func(insts []model.Instance, err error) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, addrs(insts))
	}
	if err := b.Subscribe(&vo.SubscribeParam{ServiceName: svc, SubscribeCallback: cb}); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	lastSeen := func(want ...string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(seen) > 0 && slices.Equal(seen[len(seen)-1], want)
		}
	}

	ok, err := a.RegisterInstance(vo.RegisterInstanceParam{
		ServiceName: svc, Ip: "10.0.0.1", Port: 80, Weight: 100, Enable: true, Healthy: true, Ephemeral: true,
		Metadata: map[string]string{"k": "v"},
	})
	if !ok || err != nil {
		t.Fatalf("RegisterInstance = %v, %v", ok, err)
	}
	eventually(t, "callback with the instance", lastSeen("10.0.0.1:80"))

	ok, err = a.BatchRegisterInstance(vo.BatchRegisterInstanceParam{ServiceName: svc, Instances: []vo.RegisterInstanceParam{
		{Ip: "10.0.0.1", Port: 80, Weight: 100, Enable: true, Healthy: true, Ephemeral: true},
		{Ip: "10.0.0.2", Port: 80, Weight: 100, Enable: true, Healthy: true, Ephemeral: true},
	}})
	if !ok || err != nil {
		t.Fatalf("BatchRegisterInstance = %v, %v", ok, err)
	}
	eventually(t, "callback with both", lastSeen("10.0.0.1:80", "10.0.0.2:80"))

	names, err := b.GetAllServicesInfo(vo.GetAllServiceInfoParam{PageNo: 1, PageSize: 10})
	if err != nil || names.Count != 1 || !slices.Equal(names.Doms, []string{svc}) {
		t.Fatalf("GetAllServicesInfo = %+v, %v", names, err)
	}

	insts, err := b.SelectAllInstances(vo.SelectAllInstancesParam{ServiceName: svc})
	if err != nil || !slices.Equal(addrs(insts), []string{"10.0.0.1:80", "10.0.0.2:80"}) {
		t.Fatalf("SelectAllInstances = %v, %v", addrs(insts), err)
	}

	ok, err = a.DeregisterInstance(vo.DeregisterInstanceParam{ServiceName: svc, Ip: "10.0.0.1", Port: 80, Ephemeral: true})
	if !ok || err != nil {
		t.Fatalf("DeregisterInstance = %v, %v", ok, err)
	}
	// Nacos 2.x semantics: the connection's whole publication goes.
	eventually(t, "callback with none", lastSeen())

	if err := b.Unsubscribe(&vo.SubscribeParam{ServiceName: svc, SubscribeCallback: cb}); err != nil {
		t.Fatalf("Unsubscribe: %v", err)
	}
}
