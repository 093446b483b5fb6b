package nacos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/common/remote/rpc/rpc_request"
	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/detourmesh/detour/registry-adapters/nacos/nacostestserver"
	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

// testEnv is the server the tests run against: a real Nacos when
// NACOS_ADDR names one (host:port of its HTTP port; NACOS_NAMESPACE
// optionally picks a namespace that exists there), otherwise the
// in-process test server, which is always available.
type testEnv struct {
	addr      string                  // what Config.Servers holds
	srv       *nacostestserver.Server // nil against a real Nacos
	namespace string
	group     string

	mu      sync.Mutex
	proxies map[*Registry]*tcpProxy // real Nacos: the cuttable path of each client
}

func newEnv(t testing.TB) *testEnv {
	t.Helper()
	e := &testEnv{namespace: DefaultNamespace, group: DefaultGroup, proxies: map[*Registry]*tcpProxy{}}
	if addr := os.Getenv("NACOS_ADDR"); addr != "" {
		e.addr = addr
		if ns := os.Getenv("NACOS_NAMESPACE"); ns != "" {
			e.namespace = ns
		}
		// A group of its own keeps runs against a shared Nacos apart.
		var b [4]byte
		_, _ = rand.Read(b[:])
		e.group = "detour-test-" + hex.EncodeToString(b[:])
		t.Logf("running against the Nacos at %s, namespace %s, group %s", addr, e.namespace, e.group)
		return e
	}
	srv, err := nacostestserver.Start()
	if err != nil {
		t.Fatalf("nacostestserver: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	e.addr, e.srv = srv.Addr(), srv
	return e
}

// testServer returns the in-process test server, for tests that need its
// controls; against a real Nacos they get one of their own.
func testServer(t testing.TB) *testEnv {
	t.Helper()
	srv, err := nacostestserver.Start()
	if err != nil {
		t.Fatalf("nacostestserver: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return &testEnv{addr: srv.Addr(), srv: srv, namespace: DefaultNamespace, group: DefaultGroup, proxies: map[*Registry]*tcpProxy{}}
}

func (e *testEnv) config() Config {
	c := Default()
	c.Servers = []string{e.addr}
	c.Namespace = e.namespace
	c.Group = e.group
	return c
}

// grpcAddr is where the server's gRPC port is.
func (e *testEnv) grpcAddr(t testing.TB) string {
	host, port, err := net.SplitHostPort(e.addr)
	if err != nil {
		t.Fatalf("server address %q: %v", e.addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("server address %q: %v", e.addr, err)
	}
	return net.JoinHostPort(host, strconv.Itoa(p+GRPCPortOffset))
}

// newRegistry returns a client closed at the end of t. With viaProxy (and
// always against a real Nacos) it reaches the server through a tcpProxy,
// which proxyOf returns.
func (e *testEnv) newRegistry(t testing.TB, cfg Config, viaProxy bool, opts ...Option) *Registry {
	t.Helper()
	var p *tcpProxy
	if viaProxy || e.srv == nil {
		p = startProxy(t, e.grpcAddr(t))
		opts = append(opts, withGRPCAddr(p.Addr()))
	}
	opts = append([]Option{WithLogger(zaptest.NewLogger(t, zaptest.Level(zapcore.InfoLevel)))}, opts...)
	r, err := New(cfg, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	if p != nil {
		e.mu.Lock()
		e.proxies[r] = p
		e.mu.Unlock()
	}
	return r
}

func (e *testEnv) proxyOf(r *Registry) *tcpProxy {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.proxies[r]
}

func (e *testEnv) harness() registrytest.Harness {
	return registrytest.Harness{
		New: func(t testing.TB, onMalformed registry.MalformedFunc) registry.Registry {
			return e.newRegistry(t, e.config(), false, WithMalformedFunc(onMalformed))
		},
		WriteMalformed: e.writeMalformed,
		LoseSession:    e.loseSession,
	}
}

// writeMalformed writes an instance the adapter must skip. The test
// server stores one with port 0 as it is; a real Nacos gets, from a
// client of its own, one whose metadata has the reserved key "weight".
func (e *testEnv) writeMalformed(t testing.TB, service string) string {
	t.Helper()
	in := model.Instance{Ip: "127.0.0.9", Weight: 1, Healthy: true, Enable: true, Ephemeral: true}
	if e.srv != nil {
		return e.srv.PutRawInstance(e.namespace, e.group, service, in)
	}
	in.Port = 9999
	in.ClusterName = DefaultCluster
	in.Metadata = map[string]string{registry.ReservedWeightKey: "5"}
	raw := e.newRegistry(t, e.config(), false)
	req := rpc_request.NewInstanceRequest(e.namespace, service, e.group, "registerInstance", in)
	if _, err := raw.do(req, nil); err != nil {
		t.Fatalf("raw register: %v", err)
	}
	return in.Ip + "#" + strconv.FormatUint(in.Port, 10) + "#" + in.ClusterName + "#" + e.group + "@@" + service
}

// loseSession makes the server drop r's connection: the test server by
// its DropConnection, a real Nacos by the proxy cutting the TCP
// connection (Nacos drops a connection's instances when it closes).
func (e *testEnv) loseSession(t testing.TB, reg registry.Registry) {
	t.Helper()
	r := reg.(*Registry)
	if e.srv == nil {
		if e.proxyOf(r).Cut() == 0 {
			t.Fatalf("LoseSession: client %s has no connection to cut", r.id)
		}
		return
	}
	registrytest.Eventually(t, 10*time.Second, "client "+r.id+" connected", func() bool {
		return len(e.connsOf(r)) > 0
	})
	for _, id := range e.connsOf(r) {
		if err := e.srv.DropConnection(id); err != nil {
			t.Fatalf("DropConnection: %v", err)
		}
	}
}

// connsOf returns the IDs of r's set-up connections on the test server.
func (e *testEnv) connsOf(r *Registry) []string {
	var ids []string
	for _, c := range e.srv.Connections() {
		if c.Setup && c.Labels[ConnLabel] == r.id {
			ids = append(ids, c.ID)
		}
	}
	return ids
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestConformance(t *testing.T) {
	registrytest.Run(t, newEnv(t).harness())
}

// BenchmarkPropagation: go test -run '^$' -bench Propagation -benchtime 500x
func BenchmarkPropagation(b *testing.B) {
	registrytest.BenchmarkPropagation(b, newEnv(b).harness())
}
