package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/model"

	"github.com/detourmesh/detour/internal/nacoswire"
	"github.com/detourmesh/detour/internal/nacoswire/nacoswiretest"
	"github.com/detourmesh/detour/internal/procstat"
	"github.com/detourmesh/detour/internal/testbed"
	"github.com/detourmesh/detour/naming-agent/frontend/frontendtest"
	nacosfe "github.com/detourmesh/detour/naming-agent/frontend/nacos"
	"github.com/detourmesh/detour/registry-adapters/nacos/nacostestserver"
	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

// Servers of BenchmarkNacosFrontend, in this order (ratios are to the
// first).
const (
	nfeTestServer = "nacos-test-server" // the in-repo Nacos test server, in this process
	nfeFrontend   = "frontend"          // the naming-agent binary's Nacos front end (registry: etcd)
	nfeClients    = 8                   // connections querying at once
	nfeInstances  = 10                  // instances of the queried service
)

// BenchmarkNacosFrontend sets the agent's Nacos front end beside the
// in-repo Nacos test server (a stand-in built on nacos-sdk-go's stubs,
// not Nacos) in the same run, with the same bare 2.x gRPC clients
// (internal/nacoswire/nacoswiretest) in this process. The front end is
// the naming-agent binary as its own process, its registry an etcd
// server in this process, no sidecar (answers carry the real instances).
//
//   - push: b.N times a registrar connection registers, then
//     deregisters, an instance of a service another connection
//     subscribes to; the clock runs from the request to the
//     NotifySubscriberRequest that shows the change (p50-us, p99-us). On
//     the front end that is the whole path: publication, etcd, the
//     agent's watch, the view, the push. ack-p50-us and ack-p99-us run
//     to the register's answer instead: on the front end, the agent's
//     publication (written to its data dir, synced, before the answer)
//     and the registry's write.
//   - query: 8 connections each send b.N ServiceQueryRequests of a
//     service of 10 instances, one at a time: ops/s, and for the front
//     end req/cpu-s, requests per CPU-second of the agent process.
//   - conns: DETOUR_BENCH_NACOS_CONNS (default 500) connections set up
//     (server check, bi-stream, ConnectionSetupRequest) and held, once
//     per run: heap-B/conn is the growth of Go's heap and stacks with a
//     server in this process (the test server, or nacos.Server on a
//     fake core), less what the same clients cost this process against
//     the agent's front end; rss-B/conn (front end only) the agent
//     process's VmRSS growth.
//
// Front-end rows carry ratios to the test server's: p50-vs-test,
// p99-vs-test, ops/s-vs-test, heap-vs-test.
func BenchmarkNacosFrontend(b *testing.B) {
	fx := newNFEFixture(b)
	for _, sub := range []struct {
		name string
		fn   func(*testing.B, string)
	}{{"push", fx.benchPush}, {"query", fx.benchQuery}, {"conns", fx.benchConns}} {
		b.Run(sub.name, func(b *testing.B) {
			for _, name := range []string{nfeTestServer, nfeFrontend} {
				b.Run("server="+name, func(b *testing.B) { sub.fn(b, name) })
			}
		})
	}
}

type nfeFixture struct {
	top     *testing.B // what it sets up lives as long
	etcd    []string
	agent   *testbed.Proc
	feGRPC  string // the agent's front end, gRPC
	ts      *nacostestserver.Server
	run     string
	base    map[string]float64 // the test server's figures, for the ratios
	queried map[string]bool    // servers whose queried service is set up
	mem     map[string][2]float64
}

func newNFEFixture(b *testing.B) *nfeFixture {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, dir := b.TempDir(), b.TempDir()
	if err := testbed.Build(ctx, bin, "github.com/detourmesh/detour/naming-agent/cmd/naming-agent"); err != nil {
		b.Fatal(err)
	}
	fx := &nfeFixture{top: b, run: strconv.FormatInt(time.Now().UnixNano(), 36), base: map[string]float64{},
		queried: map[string]bool{}, mem: map[string][2]float64{}}
	fx.etcd = startEtcd(b, filepath.Join(dir, "etcd"), freePort(b), freePort(b)).Endpoints()
	hl, gl, err := nacosfe.Listen("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	feAddr := hl.Addr().String()
	fx.feGRPC = gl.Addr().String()
	hl.Close()
	gl.Close()
	cfg := fmt.Sprintf(`host_ip: 127.0.0.1
http_listen: %s
grpc_listen: %s
data_dir: %s
registry:
  url: etcd://%s
sidecar:
  admin: %s
frontends:
  nacos:
    listen: %s
    max_connections: 0
`, hostPort("127.0.0.1", freePort(b)), hostPort("127.0.0.1", freePort(b)), filepath.Join(dir, "data"),
		strings.TrimPrefix(fx.etcd[0], "http://"), hostPort("127.0.0.1", freePort(b)), feAddr)
	conf := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	if fx.agent, err = testbed.Start("naming-agent", filepath.Join(bin, "naming-agent"), filepath.Join(dir, "agent.log"), "--config", conf); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = fx.agent.Stop(10 * time.Second) })
	if fx.ts, err = nacostestserver.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { fx.ts.Close() })
	err = testbed.Poll(ctx, time.Minute, "the agent's Nacos front end up", func() bool {
		c, err := nacoswiretest.Dial(fx.feGRPC, true)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	if err != nil {
		log, _ := os.ReadFile(fx.agent.Log)
		b.Fatalf("%v\nagent log:\n%s", err, log)
	}
	return fx
}

func (fx *nfeFixture) grpcAddr(name string) string {
	if name == nfeFrontend {
		return fx.feGRPC
	}
	return fx.ts.GRPCAddr()
}

func (fx *nfeFixture) dial(b *testing.B, name string) *nacoswiretest.Client {
	b.Helper()
	c, err := nacoswiretest.Dial(fx.grpcAddr(name), true)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	return c
}

// ratio reports v, and v over the test server's figure for key on the
// front end's row.
func (fx *nfeFixture) ratio(b *testing.B, name, key string, v float64, unit string) {
	if name == nfeTestServer {
		fx.base[key] = v
		return
	}
	if base := fx.base[key]; base > 0 {
		b.ReportMetric(v/base, unit)
	}
}

func (fx *nfeFixture) benchPush(b *testing.B, name string) {
	service := "push-" + fx.run
	sub, reg := fx.dial(b, name), fx.dial(b, name)
	if err := sub.Do(nacoswire.TypeSubscribeService, nacoswire.NamingRequest{ServiceName: service, Subscribe: true}, nil); err != nil {
		b.Fatal(err)
	}
	seen := len(sub.Pushes())
	// waitHosts waits for a push showing n hosts.
	waitHosts := func(n int) {
		deadline := time.After(30 * time.Second)
		for {
			pushes := sub.Pushes()
			for ; seen < len(pushes); seen++ {
				var p nacoswire.NotifyRequest
				if nacoswire.Decode(pushes[seen], &p) == nil && len(p.ServiceInfo.Hosts) == n {
					seen++
					return
				}
			}
			select {
			case <-sub.Pushed():
			case <-deadline:
				b.Fatalf("%s: no push with %d hosts in 30 s", name, n)
			}
		}
	}
	in := model.Instance{Ip: "127.0.0.1", Port: 20880, Weight: 1, Enable: true, Healthy: true, Ephemeral: true}
	var lat, ack latencies
	b.ResetTimer()
	for i := range b.N {
		op, n := "registerInstance", 1
		if i%2 == 1 {
			op, n = "deregisterInstance", 0
		}
		t0 := time.Now()
		if err := reg.Do(nacoswire.TypeInstance, nacoswire.NamingRequest{ServiceName: service, Type: op, Instance: in}, nil); err != nil {
			b.Fatal(err)
		}
		ack = append(ack, time.Since(t0))
		waitHosts(n)
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	if b.N%2 == 1 { // leave the service empty for the next run
		_ = reg.Do(nacoswire.TypeInstance, nacoswire.NamingRequest{ServiceName: service, Type: "deregisterInstance", Instance: in}, nil)
		waitHosts(0)
	}
	p50, p99 := lat.percentile(50), lat.percentile(99)
	b.ReportMetric(p50, "p50-us")
	b.ReportMetric(p99, "p99-us")
	b.ReportMetric(ack.percentile(50), "ack-p50-us")
	b.ReportMetric(ack.percentile(99), "ack-p99-us")
	fx.ratio(b, name, "p50", p50, "p50-vs-test")
	fx.ratio(b, name, "p99", p99, "p99-vs-test")
}

// setUpQueried writes nfeInstances instances of the queried service:
// into etcd for the front end, raw into the test server.
func (fx *nfeFixture) setUpQueried(b *testing.B, name, service string) {
	if fx.queried[name] {
		return
	}
	fx.queried[name] = true
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var r registry.Registry
	if name == nfeFrontend {
		r = etcdClient(fx.top, fx.etcd) // closed at the end of the whole run
	}
	for i := range nfeInstances {
		ip := "10.0.0." + strconv.Itoa(i+1)
		if r == nil {
			fx.ts.PutRawInstance("", "", service, model.Instance{Ip: ip, Port: 20880, Weight: 1, Healthy: true, Enable: true, Ephemeral: true})
		} else if err := r.Register(ctx, registry.Endpoint{Service: service, Addr: hostPort(ip, 20880)}); err != nil {
			b.Fatal(err)
		}
	}
}

func (fx *nfeFixture) benchQuery(b *testing.B, name string) {
	service := "query-" + fx.run
	fx.setUpQueried(b, name, service)
	conns := make([]*nacoswiretest.Client, nfeClients)
	for i := range conns {
		conns[i] = fx.dial(b, name)
	}
	registrytest.Eventually(b, time.Minute, "the queried service's instances", func() bool {
		var r nacoswire.ServiceResponse
		err := conns[0].Do(nacoswire.TypeServiceQuery, nacoswire.NamingRequest{ServiceName: service}, &r)
		return err == nil && len(r.ServiceInfo.Hosts) == nfeInstances
	})
	pids := []int{fx.agent.Pid()}
	cpu0, _ := procstat.CPU(pids)
	b.ResetTimer()
	t0 := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, len(conns))
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range b.N {
				var r nacoswire.ServiceResponse
				if err := c.Do(nacoswire.TypeServiceQuery, nacoswire.NamingRequest{ServiceName: service}, &r); err != nil || len(r.ServiceInfo.Hosts) != nfeInstances {
					errs <- fmt.Errorf("query: %v, %d hosts", err, len(r.ServiceInfo.Hosts))
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(t0)
	b.StopTimer()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	ops := float64(nfeClients*b.N) / elapsed.Seconds()
	b.ReportMetric(ops, "ops/s")
	fx.ratio(b, name, "ops", ops, "ops/s-vs-test")
	if cpu1, err := procstat.CPU(pids); name == nfeFrontend && err == nil && cpu1-cpu0 >= 200*time.Millisecond {
		b.ReportMetric(float64(nfeClients*b.N)/(cpu1-cpu0).Seconds(), "req/cpu-s")
	}
}

// nfeConns is how many connections the conns figures hold.
func nfeConns() int {
	if n, err := strconv.Atoi(os.Getenv("DETOUR_BENCH_NACOS_CONNS")); err == nil && n > 0 {
		return n
	}
	return 500
}

func (fx *nfeFixture) benchConns(b *testing.B, name string) {
	m, ok := fx.mem[name]
	if !ok {
		var err error
		if m, err = fx.measureConns(name, nfeConns()); err != nil {
			b.Fatal(err)
		}
		fx.mem[name] = m
	}
	if m[1] > 0 {
		b.ReportMetric(m[1], "rss-B/conn")
	}
	b.ReportMetric(m[0], "heap-B/conn")
	fx.ratio(b, name, "heap", m[0], "heap-vs-test")
	b.ReportMetric(0, "ns/op")
}

// measureConns returns the heap (and, for the front end, the agent's
// RSS) per connection.
func (fx *nfeFixture) measureConns(name string, n int) ([2]float64, error) {
	// The clients' own cost, against the agent (another process).
	pids := []int{fx.agent.Pid()}
	rss0, _ := procstat.RSS(pids)
	before := goMem()
	closeAll, err := openNacosConns(fx.feGRPC, n)
	if err != nil {
		return [2]float64{}, err
	}
	clientCost := goMem() - before
	rss1, _ := procstat.RSS(pids)
	closeAll()
	var rss float64
	if name == nfeFrontend && rss1 > rss0 {
		rss = float64(rss1-rss0) / float64(n)
	}
	// The same clients against a server in this process.
	var addr string
	var stop func()
	if name == nfeTestServer {
		ts, err := nacostestserver.Start()
		if err != nil {
			return [2]float64{}, err
		}
		addr, stop = ts.GRPCAddr(), func() { ts.Close() }
	} else {
		cfg := nacosfe.Default()
		cfg.MaxConnections = 0
		srv, err := nacosfe.New(cfg, frontendtest.NewFakeCore())
		if err != nil {
			return [2]float64{}, err
		}
		hl, gl, err := nacosfe.Listen("127.0.0.1:0")
		if err != nil {
			return [2]float64{}, err
		}
		done := make(chan error, 1)
		go func() { done <- srv.Serve(hl, gl) }()
		addr, stop = gl.Addr().String(), func() { srv.Close(); <-done }
	}
	defer stop()
	before = goMem()
	closeAll, err = openNacosConns(addr, n)
	if err != nil {
		return [2]float64{}, err
	}
	grown := goMem() - before
	closeAll()
	return [2]float64{(grown - clientCost) / float64(n), rss}, nil
}

// openNacosConns opens n set-up connections to a Nacos gRPC address, 16
// at a time.
func openNacosConns(addr string, n int) (closeAll func(), err error) {
	conns := make([]*nacoswiretest.Client, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	sem := make(chan struct{}, 16)
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, e := nacoswiretest.Dial(addr, true)
			mu.Lock()
			defer mu.Unlock()
			if e != nil && err == nil {
				err = e
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	closeAll = func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}
	if err != nil {
		closeAll()
		return nil, err
	}
	// A health check on each: the setup has reached the server.
	for _, c := range conns {
		if e := c.Do(nacoswire.TypeHealthCheck, nacoswire.NamingRequest{}, nil); e != nil {
			closeAll()
			return nil, e
		}
	}
	return closeAll, nil
}
