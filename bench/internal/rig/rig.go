// Package rig starts everything the data-path benchmarks measure, on one
// machine: the apps (each in a process of its own), nginx and haproxy as
// the reference proxies, and two detour hosts (naming agent + sidecar),
// with every proxy pinned to the same CPUs and given the same number of
// workers (nginx processes, haproxy threads, GOMAXPROCS).
package rig

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/detourmesh/detour/internal/procstat"
	"github.com/detourmesh/detour/internal/testbed"
)

// Options say where things run.
type Options struct {
	Dir      string // working directory (configs, logs, binaries)
	Self     string // the detour-bench binary, which also serves the gRPC app
	ProxyCPU string // CPU list every proxy under test is pinned to
	AppCPU   string // CPU list of the apps
	// Workers is every proxy's worker count (nginx worker_processes,
	// haproxy nbthread, each sidecar's GOMAXPROCS); 0 means 1.
	Workers int
	// AppWorkers is the origin nginx's worker_processes and the gRPC
	// app's GOMAXPROCS; 0 means 1.
	AppWorkers int
	// Sidecar, if set, is the sidecar binary to measure instead of one
	// built from this checkout (a before/after comparison); the naming
	// agent is always built from the checkout.
	Sidecar string
}

// Path is one way from the load generator to the apps: direct, or through
// one of the proxies. An empty address means the path does not offer it.
type Path struct {
	Name           string
	HTTP, L4, Bulk string // host:port
	GRPC           string
	// ProxyPIDs lists the processes of the proxy under test; nil for the
	// direct path.
	ProxyPIDs func() []int
}

// Proxy says whether the path goes through a proxy under test.
func (p Path) Proxy() bool { return p.ProxyPIDs != nil }

// Rig is everything running.
type Rig struct {
	opt   Options
	net   *testbed.Net // the loopback block the rig holds
	ip    addrs
	procs []*testbed.Proc
	hosts []*testbed.Host
	paths []Path
	admin map[string]string // host → its sidecar's admin address
}

// SidecarAdmin is the admin address (/stats, /debug/pprof/) of host A's or
// B's sidecar.
func (r *Rig) SidecarAdmin(host string) string { return r.admin[host] }

// Paths are the rig's paths, direct first.
func (r *Rig) Paths() []Path { return r.paths }

// Start builds the detour binaries and starts everything. On error what
// was started is stopped.
func Start(ctx context.Context, o Options) (_ *Rig, err error) {
	r := &Rig{opt: o}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	// A loopback block of the run's own: another rig, a test run or the
	// demo on the same machine never shares an address with this one.
	if r.net, err = testbed.ReserveNet(); err != nil {
		return nil, err
	}
	r.ip = addrsIn(r.net)
	if err := r.preflight(); err != nil {
		return nil, err
	}
	r.opt.Workers, r.opt.AppWorkers = max(1, o.Workers), max(1, o.AppWorkers)
	bin := filepath.Join(o.Dir, "bin")
	if err := buildBinaries(ctx, bin, o.Sidecar); err != nil {
		return nil, err
	}
	ip := r.ip
	direct := Path{Name: "direct",
		HTTP: addr(ip.server, HTTPOriginPort), L4: addr(ip.server, HTTPOriginPort),
		Bulk: addr(ip.server, BulkOriginPort), GRPC: addr(ip.server, GRPCOriginPort)}
	if err := r.startApps(ctx); err != nil {
		return nil, err
	}
	ngx, err := r.startNginx(ctx, "nginx", proxyNginx(o.Dir, ip, r.opt.Workers), o.ProxyCPU,
		addr(ip.proxy, NginxHTTPPort), addr(ip.proxy, NginxL4Port), addr(ip.proxy, NginxBulkPort), addr(ip.proxy, NginxGRPCPort))
	if err != nil {
		return nil, err
	}
	hap, err := r.startHAProxy(ctx)
	if err != nil {
		return nil, err
	}
	one, two, err := r.startDetour(ctx, bin)
	if err != nil {
		return nil, err
	}
	r.paths = []Path{
		direct,
		{Name: "nginx", HTTP: addr(ip.proxy, NginxHTTPPort), L4: addr(ip.proxy, NginxL4Port),
			Bulk: addr(ip.proxy, NginxBulkPort), GRPC: addr(ip.proxy, NginxGRPCPort), ProxyPIDs: tree(ngx)},
		{Name: "haproxy", HTTP: addr(ip.proxy, HAProxyHTTPPort), L4: addr(ip.proxy, HAProxyL4Port),
			Bulk: addr(ip.proxy, HAProxyBulkPort), GRPC: addr(ip.proxy, HAProxyGRPCPort), ProxyPIDs: tree(hap)},
		one, two,
	}
	return r, nil
}

// Close stops everything, in reverse order of start.
func (r *Rig) Close() {
	for _, h := range r.hosts {
		h.Close()
	}
	for i := len(r.procs) - 1; i >= 0; i-- {
		_ = r.procs[i].Stop(5 * time.Second)
	}
	if r.net != nil {
		r.net.Release()
	}
}

func (r *Rig) startApps(ctx context.Context) error {
	server := r.ip.server
	if _, err := r.startNginx(ctx, "origin", originNginx(r.opt.Dir, r.ip, r.opt.AppWorkers), r.opt.AppCPU, addr(server, HTTPOriginPort)); err != nil {
		return err
	}
	if _, err := r.start(ctx, "iperf3-server", []string{addr(server, BulkOriginPort)}, nil,
		pinned(r.opt.AppCPU, "iperf3", "-s", "-B", server, "-p", strconv.Itoa(BulkOriginPort))...); err != nil {
		return err
	}
	_, err := r.start(ctx, "grpc-origin", []string{addr(server, GRPCOriginPort)}, []string{"GOMAXPROCS=" + strconv.Itoa(r.opt.AppWorkers)},
		pinned(r.opt.AppCPU, r.opt.Self, "grpc-origin", "--listen", addr(server, GRPCOriginPort))...)
	return err
}

func (r *Rig) startNginx(ctx context.Context, name, conf, cpu string, listens ...string) (*testbed.Proc, error) {
	dir := filepath.Join(r.opt.Dir, name)
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return nil, err
	}
	// The config files are named for what they run, so nginx -c of the
	// origin and of the proxy under test are easy to tell apart in ps.
	path := filepath.Join(r.opt.Dir, name+".conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	nginx, err := lookPath("nginx")
	if err != nil {
		return nil, err
	}
	return r.start(ctx, name, listens, nil,
		pinned(cpu, nginx, "-c", path, "-e", filepath.Join(dir, "error.log"), "-g", "daemon off;")...)
}

func (r *Rig) startHAProxy(ctx context.Context) (*testbed.Proc, error) {
	if err := os.MkdirAll(filepath.Join(r.opt.Dir, "haproxy"), 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(r.opt.Dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(haproxyConf(r.opt.Dir, r.ip, r.opt.Workers)), 0o644); err != nil {
		return nil, err
	}
	hap, err := lookPath("haproxy")
	if err != nil {
		return nil, err
	}
	return r.start(ctx, "haproxy",
		[]string{addr(r.ip.proxy, HAProxyHTTPPort), addr(r.ip.proxy, HAProxyL4Port), addr(r.ip.proxy, HAProxyBulkPort), addr(r.ip.proxy, HAProxyGRPCPort)}, nil,
		pinned(r.opt.ProxyCPU, hap, "-f", path, "-db")...)
}

// preflight fails when one of the rig's addresses is taken: whatever
// holds it (a process of an older checkout, of someone else's) would
// otherwise answer in place of the rig being started.
func (r *Rig) preflight() error {
	ip := r.ip
	all := []string{addr(ip.server, HTTPOriginPort), addr(ip.server, BulkOriginPort), addr(ip.server, GRPCOriginPort),
		addr(ip.proxy, NginxHTTPPort), addr(ip.proxy, NginxL4Port), addr(ip.proxy, NginxBulkPort),
		addr(ip.proxy, HAProxyHTTPPort), addr(ip.proxy, HAProxyL4Port), addr(ip.proxy, HAProxyBulkPort),
		addr(ip.proxy, NginxGRPCPort), addr(ip.proxy, HAProxyGRPCPort),
		addr(ip.server, testbed.EtcdPort), addr(ip.server, testbed.EtcdPort+1)}
	for _, h := range []string{ip.client, ip.server} {
		for _, p := range []int{testbed.AgentHTTPPort, testbed.AgentGRPCPort, testbed.AdminPort, testbed.HealthPort} {
			all = append(all, addr(h, p))
		}
	}
	for _, a := range all {
		l, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("%s is taken: %w", a, err)
		}
		l.Close()
	}
	return nil
}

// start runs argv and waits until every address in listens accepts.
func (r *Rig) start(ctx context.Context, name string, listens, env []string, argv ...string) (*testbed.Proc, error) {
	p, err := testbed.StartEnv(name, argv[0], filepath.Join(r.opt.Dir, name+".log"), env, argv[1:]...)
	if err != nil {
		return nil, err
	}
	r.procs = append(r.procs, p)
	for _, a := range listens {
		if err := waitListen(ctx, p, a); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func waitListen(ctx context.Context, p *testbed.Proc, a string) error {
	return testbed.Poll(ctx, 20*time.Second, p.Name+" listens on "+a, func() bool {
		select {
		case <-p.Done():
			return false
		default:
		}
		c, err := net.DialTimeout("tcp", a, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// Pin moves every thread of pid to cpu (threads it starts later inherit
// it).
func Pin(pid int, cpu string) error {
	if cpu == "" {
		return nil
	}
	out, err := exec.Command("taskset", "-a", "-p", "-c", cpu, strconv.Itoa(pid)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("taskset %d: %w: %s", pid, err, out)
	}
	return nil
}

// buildBinaries builds the naming agent and the sidecar into bin; with
// sidecar set, that binary is copied in place of the one built.
func buildBinaries(ctx context.Context, bin, sidecar string) error {
	pkgs := []string{"github.com/detourmesh/detour/naming-agent/cmd/naming-agent"}
	if sidecar == "" {
		pkgs = append(pkgs, "github.com/detourmesh/detour/sidecar/cmd/sidecar")
	}
	if err := testbed.Build(ctx, bin, pkgs...); err != nil {
		return err
	}
	if sidecar == "" {
		return nil
	}
	b, err := os.ReadFile(sidecar)
	if err != nil {
		return fmt.Errorf("the sidecar to measure: %w", err)
	}
	return os.WriteFile(filepath.Join(bin, "sidecar"), b, 0o755)
}

func pinned(cpu string, argv ...string) []string {
	if cpu == "" {
		return argv
	}
	return append([]string{"taskset", "-c", cpu}, argv...)
}

func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	// root's PATH usually has /usr/sbin, a CI runner's may not.
	p := filepath.Join("/usr/sbin", name)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	return "", errors.New(name + " is not installed: run scripts/bench-deps.sh")
}

func addr(ip string, port int) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }

// tree is the process tree of p (nginx's master and its worker).
func tree(p *testbed.Proc) func() []int {
	return func() []int { return procstat.Tree(p.Pid()) }
}
