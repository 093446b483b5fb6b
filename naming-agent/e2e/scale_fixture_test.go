package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/detourmesh/detour/internal/testbed"
	"github.com/detourmesh/detour/naming-agent/agent"
	"github.com/detourmesh/detour/registry-adapters/embedded"
	"github.com/detourmesh/detour/registry-adapters/etcd"
)

// scaleFixture is BenchmarkScale's world for one N: an etcd server in
// this process, a raw client of it, and the naming-agent process. Its
// errors are returned, not reported: it outlives the sub-benchmark run
// that made it.
type scaleFixture struct {
	n, services int
	bin, dir    string

	etcdDir            string
	etcdPort, peerPort int
	etcd               *embedded.Server
	kv                 *clientv3.Client
	agent              *testbed.Proc
	httpAddr, grpcAddr string
	starts             int
	http               *http.Client

	subscribeAll, startupCache, startup, startupRegistry time.Duration
	rssMB, heapMB                                        float64
}

func scaleService(i int) string { return fmt.Sprintf("scale.svc-%05d", i) }

func scaleAddr(svc, ep int) string {
	return fmt.Sprintf("10.%d.%d.%d:9000", svc>>8, svc&255, ep+1)
}

func (fx *scaleFixture) base() string { return "http://" + fx.httpAddr }

func (fx *scaleFixture) agentLog() string {
	return filepath.Join(fx.dir, fmt.Sprintf("agent-%d.log", fx.starts))
}

func (fx *scaleFixture) setUp() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	fx.etcdDir = filepath.Join(fx.dir, "etcd")
	fx.http = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: scaleWorkers}}
	var err error
	if fx.etcdPort, err = freePortErr(); err != nil {
		return err
	}
	if fx.peerPort, err = freePortErr(); err != nil {
		return err
	}
	if err := fx.startEtcd(); err != nil {
		return err
	}
	if fx.kv, err = clientv3.New(clientv3.Config{Endpoints: fx.etcd.Endpoints(), DialTimeout: 5 * time.Second}); err != nil {
		return err
	}
	if err := fx.populate(ctx); err != nil {
		return fmt.Errorf("populate etcd: %w", err)
	}
	if err := fx.writeConfig(); err != nil {
		return err
	}

	if err := fx.startAgent(ctx); err != nil {
		return err
	}
	t0 := time.Now()
	if err := fx.resolveAll(ctx); err != nil {
		return fmt.Errorf("subscribe all: %w", err)
	}
	fx.subscribeAll = time.Since(t0)
	if fx.rssMB, err = rssMB(fx.agent.Pid()); err != nil {
		return err
	}
	if fx.heapMB, err = fx.heapInUseMB(ctx); err != nil {
		return err
	}

	// Registry down: the answers come from endpoints.json.
	if err := fx.agent.Stop(10 * time.Second); err != nil {
		return fmt.Errorf("agent stop: %w", err)
	}
	fx.etcd.Close()
	fx.etcd = nil
	t0 = time.Now()
	if err := fx.startAgent(ctx); err != nil {
		return err
	}
	if err := fx.resolveAll(ctx); err != nil {
		return fmt.Errorf("resolve all from the cache: %w", err)
	}
	fx.startupCache = time.Since(t0)

	// etcd back, then a restart with it up.
	if err := fx.startEtcd(); err != nil {
		return err
	}
	if err := fx.agent.Stop(10 * time.Second); err != nil {
		return fmt.Errorf("agent stop: %w", err)
	}
	t0 = time.Now()
	if err := fx.startAgent(ctx); err != nil {
		return err
	}
	if err := fx.resolveAll(ctx); err != nil {
		return fmt.Errorf("resolve all after a restart: %w", err)
	}
	fx.startup = time.Since(t0)
	err = testbed.Poll(ctx, 5*time.Minute, "every answer confirmed by etcd", func() bool {
		var st agent.Status
		return getJSON(ctx, fx.http, fx.base()+"/v1/status", &st) == nil &&
			len(st.Subscriptions) == fx.services && !anyFromCache(st)
	})
	fx.startupRegistry = time.Since(t0)
	return err
}

func anyFromCache(st agent.Status) bool {
	for _, s := range st.Subscriptions {
		if s.FromCache || s.Error != "" {
			return true
		}
	}
	return false
}

func (fx *scaleFixture) close() {
	fx.http.CloseIdleConnections()
	if fx.agent != nil {
		fx.agent.Kill()
	}
	if fx.kv != nil {
		fx.kv.Close()
	}
	if fx.etcd != nil {
		fx.etcd.Close()
	}
	os.RemoveAll(fx.dir)
}

func freePortErr() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (fx *scaleFixture) startEtcd() error {
	cfg := embedded.Default()
	cfg.DataDir = fx.etcdDir
	cfg.ListenClient = hostPort("127.0.0.1", fx.etcdPort)
	cfg.ListenPeer = hostPort("127.0.0.1", fx.peerPort)
	cfg.UnsafeNoFsync = true
	srv, err := embedded.StartServer(cfg)
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	fx.etcd = srv
	return nil
}

// populate writes every endpoint in the etcd adapter's layout, 100 keys
// per transaction (etcd allows 128).
func (fx *scaleFixture) populate(ctx context.Context) error {
	var ops []clientv3.Op
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		_, err := fx.kv.Txn(ctx).Then(ops...).Commit()
		ops = ops[:0]
		return err
	}
	for s := range fx.services {
		prefix := etcd.DefaultPrefix + "/" + scaleService(s) + "/"
		for e := range scaleEndpointsPerSvc {
			addr := scaleAddr(s, e)
			ops = append(ops, clientv3.OpPut(prefix+addr, `{"Addr":"`+addr+`"}`))
			if len(ops) == 100 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}

func (fx *scaleFixture) writeConfig() error {
	hp, err := freePortErr()
	if err != nil {
		return err
	}
	gp, err := freePortErr()
	if err != nil {
		return err
	}
	admin, err := freePortErr()
	if err != nil {
		return err
	}
	fx.httpAddr, fx.grpcAddr = hostPort("127.0.0.1", hp), hostPort("127.0.0.1", gp)
	cfg := fmt.Sprintf(`host_ip: 127.0.0.1
http_listen: %s
grpc_listen: %s
data_dir: %s
registry:
  url: etcd://%s
sidecar:
  admin: %s
ports: {egress: {from: 30000, to: 45000}}
`, fx.httpAddr, fx.grpcAddr, filepath.Join(fx.dir, "data"), hostPort("127.0.0.1", fx.etcdPort), hostPort("127.0.0.1", admin))
	return os.WriteFile(filepath.Join(fx.dir, "agent.yaml"), []byte(cfg), 0o644)
}

func (fx *scaleFixture) startAgent(ctx context.Context) error {
	fx.starts++
	p, err := testbed.Start("naming-agent", filepath.Join(fx.bin, "naming-agent"), fx.agentLog(),
		"--config", filepath.Join(fx.dir, "agent.yaml"))
	if err != nil {
		return err
	}
	fx.agent = p
	return testbed.Poll(ctx, time.Minute, "agent API up", func() bool {
		var st agent.Status
		return getJSON(ctx, fx.http, fx.base()+"/v1/status", &st) == nil
	})
}

// resolveAll resolves every service, scaleWorkers at a time, until each
// answers with all its endpoints.
func (fx *scaleFixture) resolveAll(ctx context.Context) error {
	c := fx.http
	next := make(chan int)
	errs := make(chan error, scaleWorkers)
	var wg sync.WaitGroup
	for range scaleWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range next {
				u := fx.base() + "/v1/resolve?service=" + scaleService(s)
				err := testbed.Poll(ctx, time.Minute, u, func() bool {
					ans, err := httpGetAnswer(ctx, c, u)
					return err == nil && len(ans.Endpoints) == scaleEndpointsPerSvc
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var err error
feed:
	for s := range fx.services {
		select {
		case next <- s:
		case err = <-errs:
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	return err
}

func rssMB(pid int) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024, err
		}
	}
	return 0, errors.New("no VmRSS in /proc/PID/status")
}

func (fx *scaleFixture) heapInUseMB(ctx context.Context) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fx.base()+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := fx.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_inuse_bytes "); ok {
			b, err := strconv.ParseFloat(v, 64)
			return b / (1 << 20), err
		}
	}
	return 0, errors.New("no go_memstats_heap_inuse_bytes in /metrics")
}
