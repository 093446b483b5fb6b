package upgrade

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/detourmesh/detour/internal/testbed"
)

const swaps = 10

// counts is one client kind's tally.
type counts struct {
	ok, failed, refused, reset atomic.Int64
	lastErr                    atomic.Value
}

func (c *counts) record(err error) {
	if err == nil {
		c.ok.Add(1)
		return
	}
	c.failed.Add(1)
	c.lastErr.Store(time.Now().UTC().Format("15:04:05.000000") + " " + err.Error())
	switch {
	case errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "connection refused"):
		c.refused.Add(1)
	case errors.Is(err, syscall.ECONNRESET) || strings.Contains(err.Error(), "connection reset"):
		c.reset.Add(1)
	}
}

func (c *counts) String() string {
	s := fmt.Sprintf("ok %d, failed %d, refused %d, reset %d", c.ok.Load(), c.failed.Load(), c.refused.Load(), c.reset.Load())
	if e, _ := c.lastErr.Load().(string); e != "" {
		s += " (last error: " + e + ")"
	}
	return s
}

// TestUpgradeUnderLoad swaps the sidecar's binary ten times under load:
// nothing may fail, be refused or reset, and the agent may not fall back.
func TestUpgradeUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries and runs for about half a minute")
	}
	dir := t.TempDir()
	bin := build(t, dir)
	n, err := testbed.ReserveNet()
	if err != nil {
		t.Fatal(err)
	}
	defer n.Release()
	host := n.Host(2)

	// the apps: HTTP, gRPC (health service), TCP echo
	httpLn := listen(t, host)
	httpSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	go httpSrv.Serve(httpLn)
	defer httpSrv.Close()
	grpcLn := listen(t, host)
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go gs.Serve(grpcLn)
	defer gs.Stop()
	tcpLn := listen(t, host)
	go echo(tcpLn)
	defer tcpLn.Close()

	data := filepath.Join(dir, "data")
	conf := filepath.Join(dir, "agent.yaml")
	os.WriteFile(conf, []byte(fmt.Sprintf(`host_ip: %[1]s
http_listen: %[1]s:7700
grpc_listen: %[1]s:7701
data_dir: %[2]s
registry: {url: embedded, embedded: {client_listen: "%[1]s:2379", peer_listen: "%[1]s:2380"}}
ports: {egress_ip: %[1]s, app_ip: %[1]s, health: 7703}
sidecar: {admin: "%[1]s:7702"}
`, host, data)), 0o600)
	agent := start(t, dir, "agent", filepath.Join(bin, "naming-agent"), "--config", conf)
	defer agent.stop()
	api := "http://" + host + ":7700"
	waitFor(t, "agent API", func() bool { return get(api+"/v1/status") == nil })
	pidFile := filepath.Join(dir, "sidecar.pid")
	sidecarArgs := []string{"--agent", host + ":7701", "--admin", host + ":7702", "--host-ip", host,
		"--agent-secret-file", filepath.Join(data, "sidecar.secret"), "--pid-file", pidFile, "--drain-timeout", "5s", "--log-level", "debug"}
	sc := start(t, dir, "sidecar", filepath.Join(bin, "sidecar"), sidecarArgs...)
	defer func() {
		// the serving process is the last successor, not sc
		if pid := readPID(pidFile); pid > 0 {
			syscall.Kill(pid, syscall.SIGTERM)
		}
		sc.stop()
	}()

	egress := map[string]string{}
	for svc, p := range map[string]struct {
		ln    net.Listener
		proto string
	}{"up-http": {httpLn, "http"}, "up-grpc": {grpcLn, "grpc"}, "up-tcp": {tcpLn, "tcp"}} {
		port := p.ln.Addr().(*net.TCPAddr).Port
		body := fmt.Sprintf(`{"service":%q,"port":%d,"protocol":%q}`, svc, port, p.proto)
		if err := post(api+"/v1/publish", body); err != nil {
			t.Fatal(err)
		}
		waitFor(t, svc+" in the mesh", func() bool {
			var r struct {
				Mesh      bool `json:"mesh"`
				Endpoints []struct {
					Addr string `json:"addr"`
				} `json:"endpoints"`
			}
			if err := getJSON(api+"/v1/resolve?service="+svc, &r); err != nil || !r.Mesh || len(r.Endpoints) == 0 {
				return false
			}
			egress[svc] = r.Endpoints[0].Addr
			return true
		})
	}
	waitFor(t, "the mesh carries", func() bool { return metric(api, "detour_agent_sidecar_up") == 1 })
	fallbacks0 := metric(api, "detour_agent_fallbacks_total")

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var h, g, tc counts
	run := func(f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for ctx.Err() == nil {
				f()
				select {
				case <-tick.C:
				case <-ctx.Done():
				}
			}
		}()
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	for range 2 {
		run(func() { h.record(httpGet(hc, "http://"+egress["up-http"]+"/")) })
	}
	cc, err := grpc.NewClient(egress["up-grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	hcl := healthpb.NewHealthClient(cc)
	for range 2 {
		run(func() {
			c, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			_, err := hcl.Check(c, &healthpb.HealthCheckRequest{})
			if ctx.Err() == nil {
				g.record(err)
			}
		})
	}
	for range 2 {
		run(func() { tc.record(tcpRoundTrip(egress["up-tcp"])) })
	}

	waitN := func(d time.Duration) { <-time.After(d) }
	waitN(time.Second)
	var reloadTimes []time.Duration
	for i := range swaps {
		old := readPID(pidFile)
		t0 := time.Now()
		out, err := exec.Command(filepath.Join(bin, "sidecar"), "--reload", "--pid-file", pidFile).CombinedOutput()
		if err != nil {
			t.Fatalf("swap %d: sidecar --reload: %v: %s", i+1, err, out)
		}
		reloadTimes = append(reloadTimes, time.Since(t0))
		if now := readPID(pidFile); now == old || now == 0 {
			t.Fatalf("swap %d: pid file still %d", i+1, now)
		}
		waitN(700 * time.Millisecond)
	}
	waitN(time.Second)
	cancel()
	wg.Wait()
	// let the last old process finish draining, then read the figures
	waitFor(t, "old processes drained", func() bool { return drainedCount(dir) >= swaps })
	drains := drainTimes(dir)
	fallbacks := metric(api, "detour_agent_fallbacks_total") - fallbacks0
	t.Logf("swaps %d; reload (sidecar --reload until the new process serves): %v", swaps, reloadTimes)
	t.Logf("drain times of the old processes: %v", drains)
	t.Logf("HTTP/1.1 keep-alive: %s", &h)
	t.Logf("gRPC:                %s", &g)
	t.Logf("TCP (conn/request):  %s", &tc)
	t.Logf("agent fallbacks during the swaps: %v", fallbacks)
	for name, c := range map[string]*counts{"http": &h, "grpc": &g, "tcp": &tc} {
		if c.failed.Load() != 0 || c.ok.Load() == 0 {
			t.Errorf("%s: %s", name, c)
		}
	}
	if fallbacks != 0 {
		t.Errorf("the agent fell back %v times", fallbacks)
	}

	// A second sidecar started by hand is refused: the admin address is
	// the serving one's.
	out, err := exec.Command(filepath.Join(bin, "sidecar"), sidecarArgs...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "another sidecar") {
		t.Errorf("a second sidecar: %v: %s", err, out)
	}
	// A new binary that fails to start leaves the old one serving.
	serving := readPID(pidFile)
	real := filepath.Join(bin, "sidecar")
	os.Rename(real, real+".good")
	os.WriteFile(real, []byte("#!/bin/sh\necho broken >&2\nexit 1\n"), 0o755)
	out, err = exec.Command(real+".good", "--reload", "--pid-file", pidFile).CombinedOutput()
	os.Rename(real+".good", real)
	if err == nil || readPID(pidFile) != serving || syscall.Kill(serving, 0) != nil {
		t.Errorf("a failing new binary: --reload %v: %s; pid file %d, was %d", err, out, readPID(pidFile), serving)
	}
	t.Logf("failing new binary: %s", bytes.TrimSpace(out))
	if err := tcpRoundTrip(egress["up-tcp"]); err != nil {
		t.Errorf("after the failed upgrade: %v", err)
	}
}

func build(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(dir, "bin")
	cmd := exec.Command("go", "build", "-o", out+"/", "github.com/detourmesh/detour/naming-agent/cmd/naming-agent", "github.com/detourmesh/detour/sidecar/cmd/sidecar")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v: %s", err, b)
	}
	return out
}

func listen(t *testing.T, host string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func echo(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() { defer c.Close(); io.Copy(c, c) }()
	}
}

type proc struct {
	cmd *exec.Cmd
}

func start(t *testing.T, dir, name, bin string, args ...string) *proc {
	t.Helper()
	log, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			if keep := os.Getenv("UPGRADE_TEST_LOGS"); keep != "" {
				os.WriteFile(filepath.Join(keep, name+".log"), b, 0o644)
			}
			if len(b) > 8000 {
				b = b[len(b)-8000:]
			}
			t.Logf("%s log:\n%s", name, b)
		}
	})
	return &proc{cmd: cmd}
}

func (p *proc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for !ok() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func get(url string) error {
	r, err := http.Get(url)
	if err != nil {
		return err
	}
	defer r.Body.Close()
	io.Copy(io.Discard, r.Body)
	if r.StatusCode != 200 {
		return fmt.Errorf("%s: %s", url, r.Status)
	}
	return nil
}

func getJSON(url string, v any) error {
	r, err := http.Get(url)
	if err != nil {
		return err
	}
	defer r.Body.Close()
	if r.StatusCode != 200 {
		return fmt.Errorf("%s: %s", url, r.Status)
	}
	return json.NewDecoder(r.Body).Decode(v)
}

func post(url, body string) error {
	r, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	if r.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s %s", url, body, r.Status, b)
	}
	return nil
}

func httpGet(c *http.Client, url string) error {
	r, err := c.Get(url)
	if err != nil {
		return err
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	if r.StatusCode != 200 || string(b) != "ok" {
		return fmt.Errorf("status %s body %q", r.Status, b)
	}
	return nil
}

func tcpRoundTrip(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	msg := []byte("ping " + strconv.FormatInt(time.Now().UnixNano(), 10) + "\n")
	if _, err := c.Write(msg); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		return err
	}
	if !bytes.Equal(line, msg) {
		return fmt.Errorf("echo %q, want %q", line, msg)
	}
	return nil
}

var metricLine = regexp.MustCompile(`(?m)^(\S+) (\S+)$`)

func metric(api, name string) float64 {
	r, err := http.Get(api + "/metrics")
	if err != nil {
		return -1
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	for _, m := range metricLine.FindAllStringSubmatch(string(b), -1) {
		if m[1] == name {
			v, _ := strconv.ParseFloat(m[2], 64)
			return v
		}
	}
	return -1
}

func readPID(path string) int {
	b, _ := os.ReadFile(path)
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

var drainField = regexp.MustCompile(`"msg":"hand-over: drained".*?"drain":([0-9.e+-]+)`)

func drainTimes(dir string) []time.Duration {
	b, _ := os.ReadFile(filepath.Join(dir, "sidecar.log"))
	var out []time.Duration
	for _, m := range drainField.FindAllStringSubmatch(string(b), -1) {
		s, _ := strconv.ParseFloat(m[1], 64)
		out = append(out, time.Duration(s*float64(time.Second)).Round(time.Millisecond))
	}
	return out
}

func drainedCount(dir string) int { return len(drainTimes(dir)) }
