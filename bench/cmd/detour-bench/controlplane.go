package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/detourmesh/detour/bench/internal/report"
)

// goJob is one `go test -bench` run of the control-plane benchmarks.
type goJob struct {
	Title   string
	Pkgs    string
	Bench   string
	Full    string   // -benchtime of the full run
	Quick   string   // -benchtime of the quick form
	Env     []string // added for the full run only
	Flags   []string // more go test flags
	Explain string   // what it measures, for the report

	Args    []string // as run
	Results []report.Bench
	Wall    time.Duration
}

func goJobs() []*goJob {
	return []*goJob{
		{Title: "Registry change → app notified through the agent, per registry", Pkgs: "./naming-agent/e2e", Bench: "Notify",
			Full: "200x", Quick: "10x",
			Explain: "An app subscribed through the agent's API to a service whose mesh is off (so the answer carries the real endpoints); another client changes the service's endpoints in the registry; the clock stops when the app's subscription delivers the new answer. `nacos` is the in-repo Nacos **test server**."},
		{Title: "Registry change → watcher, per adapter", Pkgs: "./registry-adapters/...", Bench: "Propagation",
			Full: "200x", Quick: "10x",
			Explain: "Client A registers an endpoint again with a new metadata value; the clock stops when client B's watch returns it (`registrytest.BenchmarkPropagation`). `nacos` is the in-repo Nacos **test server**, not a real Nacos."},
		{Title: "Sidecar SIGKILL → every subscriber on the real endpoints", Pkgs: "./naming-agent/e2e", Bench: "Fallback",
			Full: "200x", Quick: "20x",
			Explain: "A stand-in sidecar process speaking the real control stream is SIGKILLed; the clock stops when all subscribers (gRPC Subscribe streams and HTTP blocking queries) have received the real endpoints. One kill per iteration."},
		{Title: "Resolve from the agent's cache", Pkgs: "./naming-agent/e2e", Bench: "Resolve",
			Full: "5000x", Quick: "100x",
			Explain: "One resolve of an already-subscribed service, answered from the agent's cache, over its HTTP API and its gRPC API, one after another from one client."},
		{Title: "ZooKeeper front end beside the real ZooKeeper", Pkgs: "./naming-agent/e2e", Bench: "ZooKeeperFrontend",
			Full: "5000x", Quick: "10x",
			Explain: "Same run, same clients (dubbo-go's go-zookeeper, in the benchmark's process). `zookeeper` is Debian's ZooKeeper (`scripts/zookeeper.sh`, a JVM); `frontend` is the naming-agent binary's front end (`--zookeeper-listen`, its own process, registry: etcd) on a plain directory; `frontend-dubbo` is its `/dubbo/S/providers` answered from the agent's view of S. 10 providers per directory, named as dubbo-go registers them; no pinning, so clients and servers share the machine's cores. **getChildrenW**: 8 sessions each send b.N `getChildren2` with a watch, one at a time: ops/s, and requests per CPU-second of the serving process (`/proc/PID/stat`). **watchEvent**: a child watch set, then a provider added or removed (plain tree: another session's create/delete; `frontend-dubbo`: another etcd client's register/deregister, so the whole path a provider takes to a consumer); p50/p99 from the change's request to the event, `ack-` from its ack. **sessions**: 1,000 bare sessions: live heap per session after a full GC (the JVM's by `jcmd`; Go heap+stacks of an in-process `zookeeper.Server`), and the server process's RSS growth (not comparable: the JVM reuses heap it reserved at start). `-vs-zk` columns: the front end's figure over ZooKeeper's in the same run."},
		{Title: "Nacos front end beside the Nacos test server", Pkgs: "./naming-agent/e2e", Bench: "NacosFrontend",
			Full: "2000x", Quick: "10x",
			Explain: "Same run, same bare 2.x gRPC clients (`internal/nacoswire/nacoswiretest`, in the benchmark's process). `nacos-test-server` is the in-repo Nacos **test server** (in-process, not Nacos); `frontend` is the naming-agent binary's Nacos front end (`--nacos-listen`, its own process, registry: etcd, no sidecar). **push**: register, then deregister, an instance of a subscribed service; p50/p99 from the request to the push showing it (on the front end: publication, etcd, the agent's watch, the view, the push). **query**: 8 connections each send b.N `ServiceQueryRequest`s of a 10-instance service: ops/s, and req/cpu-s of the agent process. **conns**: 500 set-up connections held: Go heap+stacks per connection of an in-process server less the clients' own cost, and the agent process's RSS growth. `-vs-test` columns: the front end's figure over the test server's."},
		{Title: "etcd front end beside a real etcd", Pkgs: "./naming-agent/frontend/etcd", Bench: "EtcdFrontend",
			Full: "2000x", Quick: "10x",
			Explain: "Same run, same clientv3 clients, both servers in the benchmark's process: `etcd` is etcd's embed server; `frontend` is the agent's etcd front end (`naming-agent/frontend/etcd` on a fake core) over an etcd of its own. **range/put**: 8 goroutines each send b.N Gets (Puts) of a pass-through key: ops/s, p99. **watchEvent**: a Put to its event on an open prefix watch, p50/p99; `frontend-view`: a view change of a watched service to its event (the rendering's upstream write included). **clients/watches**: 200 connected clients, 1,000 prefix watches on one client: Go heap+stacks growth per client and per watch (clients' own cost included in both rows). `-vs-etcd` columns: the front end's figure over etcd's."},
		{Title: "Scale: one agent, N endpoints (N/10 services × 10), all subscribed", Pkgs: "./naming-agent/e2e", Bench: "Scale",
			Full: "20x", Quick: "5x", Env: []string{"DETOUR_BENCH_ENDPOINTS=1000,10000,50000,100000"},
			Explain: "The naming-agent binary as its own process against an etcd server, the registry populated with N/10 services of 10 endpoints each, every service subscribed by the benchmark (the app): time to subscribe them all, the agent's RSS and Go heap, start-up with the registry unreachable until every service resolves from the on-disk cache, start-up with the registry up, resolve p50/p99 over random services, and 1,000 concurrent watchers of one service: time until one change reached all of them. 100,000 endpoints is the issue's 10,000 services × 10."},
		{Title: "Dubbo calls: direct, through one sidecar, through two", Pkgs: "./bench/dubbo", Bench: "Dubbo",
			Full: "200000x", Quick: "10x",
			Explain: "Dubbo's own protocol (`dubbo://`, a hessian2 `SayHello(\"world\")` request as Dubbo 2.0.2 writes it) from one client connection with 32 calls in flight, as a Dubbo consumer multiplexes them, to a Go provider in the benchmark's process: `direct`, `one-sidecar` (B's ingress), `two-hops` (A's egress → B's ingress, each call balanced, timed and matched back), and `mosn-one-hop` when `DETOUR_BENCH_MOSN` names a MOSN binary built outside the project. Proxies run with `GOMAXPROCS=1`; the sidecars are the real binaries driven by their agents. calls/s, p50/p99 of a call, and `cpu-us/call`, the path's proxies' CPU time (`/proc/PID/stat`, both sidecars on two-hops) per call."},
		{Title: "Traffic governance beside the plain sidecar", Pkgs: "./bench/governance", Bench: ".",
			Full: "50000x", Quick: "10x",
			Explain: "HTTP/1.1 through two sidecars in the benchmark's process (egress → one of two ingresses, 32 requests in flight), four rigs measured in turns (5 rounds, the median round's req/s, p99 over all rounds): `plain` (no rules; the duration histograms are always on), `split-2way` (50/50 by `version`), `limit-high` (an inbound limit far above the load on both ingresses), `accesslog-full` (every request logged on all three sidecars to a file); `-x` columns are ratios to `plain` (goal: rate ≥ 0.95×). **RateLimit**: 200 req/s offered for 5 s against one ingress limited to 100 req/s (burst 10): admitted/s and 429/s. The per-request cost of each feature alone is in the sidecar micro-benchmarks (`BenchmarkDecide`, `BenchmarkAcquire`, `BenchmarkDone`)."},
		{Title: "Sidecar micro-benchmarks", Pkgs: "./sidecar/...", Bench: ".", Full: "2s", Quick: "10x", Flags: []string{"-benchmem"},
			Explain: "In-process: a load-balancer pick, an L4 connection and bulk streaming through the proxy, an HTTP/1.1 request through the L7 path. Allocation counts include the test's own client and app; compare each with its `direct` line."},
	}
}

func runGoBenches(ctx context.Context, c config) ([]*goJob, error) {
	jobs := goJobs()
	for _, j := range jobs {
		bt := j.Full
		if c.quick {
			bt = j.Quick
		}
		j.Args = append([]string{"go", "test", "-run", "^$", "-bench", j.Bench, "-benchtime", bt, "-count", "1", "-timeout", "20m"}, j.Flags...)
		j.Args = append(j.Args, j.Pkgs)
		logf("control plane: %s", strings.Join(j.Args, " "))
		cmd := exec.CommandContext(ctx, j.Args[0], j.Args[1:]...)
		cmd.Env = os.Environ()
		if !c.quick {
			cmd.Env = append(cmd.Env, j.Env...)
		}
		t := time.Now()
		out, err := cmd.CombinedOutput()
		j.Wall = time.Since(t)
		if err != nil {
			return nil, fmt.Errorf("%s: %w\n%s", strings.Join(j.Args, " "), err, out)
		}
		if j.Results, err = report.ParseGoBench(string(out)); err != nil {
			return nil, err
		}
		if len(j.Results) == 0 {
			return nil, fmt.Errorf("%s: no benchmark ran\n%s", strings.Join(j.Args, " "), out)
		}
	}
	return jobs, nil
}
