package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dubbogo/go-zookeeper/zk"

	"github.com/detourmesh/detour/internal/testbed"
	"github.com/detourmesh/detour/naming-agent/agent"
	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
	"github.com/detourmesh/detour/registry-adapters/zookeeper/dubbourl"
	"github.com/detourmesh/detour/registry-adapters/zookeeper/dubbourl/dubbourltest"
)

// Shape of BenchmarkZooKeeperFrontend.
const (
	zkfeClients  = 8  // sessions reading at once
	zkfeChildren = 10 // providers in each directory
	zkfeOpeners  = 16 // sessions opened at once for the memory figures
)

// The servers a sub-benchmark runs against, in this order (ratios are to
// the first).
const (
	zkfeZooKeeper = "zookeeper"      // the real ZooKeeper, DETOUR_ZK_ADDR
	zkfeFrontend  = "frontend"       // the agent's front end, a plain path
	zkfeDubbo     = "frontend-dubbo" // the agent's front end, /dubbo/S/providers from the agent's view
)

// zkfeFixture is BenchmarkZooKeeperFrontend's world: an etcd server in
// this process (the agent's registry), the naming-agent binary as a
// process of its own with its ZooKeeper front end on, and, per server,
// the sessions and directories of the sub-benchmarks. It outlives the
// sub-benchmark runs (each runs with b.N=1, then the real b.N).
type zkfeFixture struct {
	top     *testing.B // the top-level benchmark: what it sets up lives as long
	dir     string
	etcd    []string // client endpoints
	agent   *testbed.Proc
	feAddr  string // the agent's ZooKeeper front end
	apiBase string // the agent's HTTP API
	run     string // unique per fixture: directory and service names
	sides   map[string]*zkfeSide

	// The real ZooKeeper's figures of this run, for the ratios: "ops",
	// "cpu" (requests per CPU-second), "p50", "p99".
	base map[string]float64
	mem  map[string]zkfeMem // per server, measured once
}

// zkfeSide is one server as the sub-benchmarks use it.
type zkfeSide struct {
	name     string
	addr     string
	pid      int        // the serving process (0: not found; no CPU or RSS figures)
	ops      []*zk.Conn // zkfeClients sessions for getChildren2
	watcher  *zk.Conn   // sets the child watch
	changer  *zk.Conn   // changes the plain tree
	opsDir   string     // read by ops
	watchDir string     // watched by watcher
	added    bool       // the watched directory has its extra child now
	ready    bool       // set up; false after a failed set-up
	// change adds (add) or removes the extra child of watchDir: through
	// changer (plain tree) or a registry client (the agent's view).
	change func(ctx context.Context, add bool) error
	close  []func()
}

type zkfeMem struct {
	rss, heap float64 // bytes per session; heap < 0: not measured
}

func newZKFEFixture(b *testing.B) *zkfeFixture {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := b.TempDir()
	if err := testbed.Build(ctx, bin, "github.com/detourmesh/detour/naming-agent/cmd/naming-agent"); err != nil {
		b.Fatal(err)
	}
	fx := &zkfeFixture{
		top:   b,
		dir:   b.TempDir(),
		run:   strconv.FormatInt(time.Now().UnixNano(), 36),
		sides: map[string]*zkfeSide{}, base: map[string]float64{}, mem: map[string]zkfeMem{},
	}
	fx.etcd = startEtcd(b, filepath.Join(fx.dir, "etcd"), freePort(b), freePort(b)).Endpoints()
	fx.feAddr = hostPort("127.0.0.1", freePort(b))
	fx.apiBase = "http://" + hostPort("127.0.0.1", freePort(b))
	cfg := fmt.Sprintf(`host_ip: 127.0.0.1
http_listen: %s
grpc_listen: %s
data_dir: %s
registry:
  url: etcd://%s
sidecar:
  admin: %s
frontends:
  zookeeper:
    listen: %s
    max_client_conns: 0
    max_sessions: 0
    max_session_timeout: 60s
`, strings.TrimPrefix(fx.apiBase, "http://"), hostPort("127.0.0.1", freePort(b)), filepath.Join(fx.dir, "data"),
		strings.TrimPrefix(fx.etcd[0], "http://"), hostPort("127.0.0.1", freePort(b)), fx.feAddr)
	conf := filepath.Join(fx.dir, "agent.yaml")
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	p, err := testbed.Start("naming-agent", filepath.Join(bin, "naming-agent"), filepath.Join(fx.dir, "agent.log"), "--config", conf)
	if err != nil {
		b.Fatal(err)
	}
	fx.agent = p
	b.Cleanup(func() {
		for _, s := range fx.sides {
			for i := len(s.close) - 1; i >= 0; i-- {
				s.close[i]()
			}
		}
		_ = p.Stop(10 * time.Second)
	})
	hc := &http.Client{}
	defer hc.CloseIdleConnections()
	err = testbed.Poll(ctx, time.Minute, "agent API and ZooKeeper front end up", func() bool {
		var st agent.Status
		if getJSON(ctx, hc, fx.apiBase+"/v1/status", &st) != nil {
			return false
		}
		c, err := net.Dial("tcp", fx.feAddr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	if err != nil {
		log, _ := os.ReadFile(p.Log)
		b.Fatalf("%v\nagent log:\n%s", err, log)
	}
	return fx
}

// side returns server name's side, set up at its first use: its
// sessions, and its two directories of zkfeChildren providers each.
func (fx *zkfeFixture) side(b *testing.B, name string) *zkfeSide {
	if s := fx.sides[name]; s != nil {
		if !s.ready {
			b.Fatalf("%s: its set-up failed in an earlier run", name)
		}
		return s
	}
	s := &zkfeSide{name: name, addr: fx.feAddr, pid: fx.agent.Pid()}
	if name == zkfeZooKeeper {
		s.addr = registrytest.RequireEnv(b, "DETOUR_ZK_ADDR", zkHow)
		s.pid = zkPID(s.addr)
		if s.pid == 0 {
			b.Logf("no process of this user listens on %s: no CPU or memory figures for ZooKeeper", s.addr)
		}
	}
	fx.sides[name] = s // closed at the end, even half set up
	for range zkfeClients {
		s.ops = append(s.ops, s.connect(b))
	}
	s.watcher, s.changer = s.connect(b), s.connect(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if name == zkfeDubbo {
		fx.dubboDirs(ctx, b, s)
	} else {
		fx.plainDirs(b, s)
	}
	s.warmUp(ctx, b)
	// Both directories hold their providers before anything is timed.
	for _, d := range []string{s.opsDir, s.watchDir} {
		registrytest.Eventually(b, time.Minute, d+" has its providers", func() bool {
			kids, _, err := s.watcher.Children(d)
			return err == nil && len(kids) == zkfeChildren
		})
	}
	s.ready = true
	return s
}

// Untimed work before the first measurement, the same on every server,
// so the JVM's JIT has compiled the paths measured.
const (
	zkfeWarmReads   = 250 // per ops session
	zkfeWarmChanges = 20  // even: the watched directory ends as it was
)

func (s *zkfeSide) warmUp(ctx context.Context, b *testing.B) {
	var wg sync.WaitGroup
	errs := make(chan error, len(s.ops))
	for _, c := range s.ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range zkfeWarmReads {
				if _, _, err := c.Children(s.opsDir); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatalf("%s: warm-up read: %v", s.name, err)
	}
	for i := range zkfeWarmChanges {
		if err := s.change(ctx, i%2 == 0); err != nil {
			b.Fatalf("%s: warm-up change: %v", s.name, err)
		}
	}
}

// plainDirs makes two providers directories in the tree, at a depth the
// Dubbo rewriter does not serve (plain nodes on the front end too).
func (fx *zkfeFixture) plainDirs(b *testing.B, s *zkfeSide) {
	root := "/detour-bench-" + fx.run
	s.opsDir = root + "/dubbo/org.detour.bench.Ops/providers"
	s.watchDir = root + "/dubbo/org.detour.bench.Watch/providers"
	for _, d := range []string{s.opsDir, s.watchDir} {
		for _, p := range ancestors(d) {
			if _, err := s.changer.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
				b.Fatalf("%s: create %s: %v", s.name, p, err)
			}
		}
		for i := range zkfeChildren {
			if _, err := s.changer.Create(d+"/"+providerName(i), nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
				b.Fatalf("%s: create provider: %v", s.name, err)
			}
		}
	}
	extra := s.watchDir + "/" + providerName(zkfeChildren)
	s.change = func(_ context.Context, add bool) error {
		if add {
			_, err := s.changer.Create(extra, nil, 0, zk.WorldACL(zk.PermAll))
			return err
		}
		return s.changer.Delete(extra, -1)
	}
	if s.name == zkfeZooKeeper { // the real server outlives this run
		s.close = append(s.close, func() { deleteTree(s.changer, root) })
	}
}

// dubboDirs registers zkfeChildren providers of two services in etcd
// through a registry client of their own; the front end serves both
// services' /dubbo/S/providers from the agent's view. The extra provider
// of the watched service comes and goes through another client.
func (fx *zkfeFixture) dubboDirs(ctx context.Context, b *testing.B, s *zkfeSide) {
	ops, watch := "org.detour.bench.Ops"+fx.run, "org.detour.bench.Watch"+fx.run
	s.opsDir, s.watchDir = "/dubbo/"+ops+"/providers", "/dubbo/"+watch+"/providers"
	providers, other := etcdClient(fx.top, fx.etcd), etcdClient(fx.top, fx.etcd)
	for _, svc := range []string{ops, watch} {
		for i := range zkfeChildren {
			if err := providers.Register(ctx, providerEndpoint(svc, i)); err != nil {
				b.Fatal(err)
			}
		}
	}
	extra := providerEndpoint(watch, zkfeChildren)
	s.change = func(ctx context.Context, add bool) error {
		if add {
			return other.Register(ctx, extra)
		}
		return other.Deregister(ctx, extra.Service, extra.Addr)
	}
}

// connect opens a go-zookeeper session (dubbo-go's client) and waits for
// it to be established.
func (s *zkfeSide) connect(b *testing.B) *zk.Conn {
	c, events, err := zk.Connect([]string{s.addr}, 20*time.Second, zk.WithLogger(quietZK{}))
	if err != nil {
		b.Fatal(err)
	}
	s.close = append(s.close, c.Close)
	timeout := time.After(wait)
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				return c
			}
		case <-timeout:
			b.Fatalf("%s: no session within %v", s.name, wait)
		}
	}
}

type quietZK struct{}

func (quietZK) Printf(string, ...any) {}

// providerName is the node name of a dubbo-go Triple provider, i-th host.
func providerName(i int) string {
	u, err := dubbourl.Parse(dubbourltest.DubboGo)
	if err != nil {
		panic(err)
	}
	u.Host = fmt.Sprintf("10.9.0.%d", i+1)
	return u.NodeName()
}

// providerEndpoint is providerName(i) as a registry endpoint: the URL's
// parameters as metadata, its scheme as the protocol.
func providerEndpoint(service string, i int) registry.Endpoint {
	u, err := dubbourl.Parse(dubbourltest.DubboGo)
	if err != nil {
		panic(err)
	}
	md := maps.Clone(u.Params)
	for _, k := range []string{"anyhost", "interface", "side", "timestamp", "weight"} {
		delete(md, k)
	}
	md[agent.MetaProtocol] = u.Protocol
	return registry.Endpoint{Service: service, Addr: hostPort(fmt.Sprintf("10.9.0.%d", i+1), u.Port), Metadata: md}
}

func ancestors(p string) []string {
	var out []string
	for i := 1; i <= len(p); i++ {
		if i == len(p) || p[i] == '/' {
			out = append(out, p[:i])
		}
	}
	return out
}

func deleteTree(c *zk.Conn, p string) {
	kids, _, err := c.Children(p)
	if err != nil {
		return
	}
	for _, k := range kids {
		deleteTree(c, p+"/"+k)
	}
	_ = c.Delete(p, -1)
}
