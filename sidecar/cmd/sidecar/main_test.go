package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"

	"github.com/detourmesh/detour/naming-agent/agent"
	"github.com/detourmesh/detour/naming-agent/api"
	"github.com/detourmesh/detour/naming-agent/config"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func freePort(t *testing.T, ip string) int {
	t.Helper()
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		<-time.After(10 * time.Millisecond) // polling interval
	}
}

func echo(t *testing.T, ip string) int {
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { l.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

func roundTrip(addr string) string {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err.Error()
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	c.Write([]byte("ping"))
	buf := make([]byte, 4)
	n, _ := io.ReadFull(c, buf)
	return string(buf[:n])
}

// TestWithTheRealAgent runs the naming agent in process (Fake registry)
// and the sidecar's run() against it: the agent's snapshot is applied and
// acknowledged, the agent takes the sidecar as up, traffic flows through
// the egress, the sidecar's own ingress, to the app; then a drain.
func TestWithTheRealAgent(t *testing.T) {
	const ip = "127.0.0.7"
	c := config.Default()
	c.HostIP = ip
	c.DataDir = t.TempDir()
	base := 40000 + (time.Now().Nanosecond()/1000)%20000
	c.Ports.Ingress = config.PortRange{From: base, To: base + 50}
	c.Ports.Egress = config.PortRange{From: base + 51, To: base + 100}
	c.Ports.Health = freePort(t, ip)
	c.Sidecar.ProbeInterval = 20 * time.Millisecond
	c.HealthCheck.Interval = 50 * time.Millisecond
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	reg := registrytest.NewFakeServer().Client(nil)
	a, err := agent.New(c, reg, agent.WithLogger(zaptest.NewLogger(t).Named("agent")))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	g := grpc.NewServer()
	api.RegisterGRPC(g, a)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(l)
	defer g.Stop()

	admin := "127.0.0.1:" + strconv.Itoa(freePort(t, "127.0.0.1"))
	ctx, cancel := context.WithCancel(context.Background())
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"--agent", l.Addr().String(), "--host-ip", ip, "--admin", admin, "--log-level", "warn", "--drain-timeout", "5s"}, io.Discard, io.Discard)
	}()
	defer func() {
		cancel()
		<-code
	}()

	app := echo(t, "127.0.0.1")
	if _, err := a.Publish(agent.PublishRequest{Service: "echo", Port: app}); err != nil {
		t.Fatal(err)
	}
	var egress string
	eventually(t, "the mesh carries echo", func() bool {
		ans, err := a.Resolve(context.Background(), "echo")
		if err != nil || !ans.Mesh || len(ans.Endpoints) != 1 {
			return false
		}
		egress = ans.Endpoints[0].Addr
		return a.Status().Sidecar.State == "up"
	})
	eventually(t, "egress → ingress → app", func() bool { return roundTrip(egress) == "ping" })

	resp, err := http.Get("http://" + admin + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Ready     bool
		Listeners []struct{ Kind, Service string }
		Apps      []struct{ Healthy bool }
	}
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if !st.Ready || len(st.Listeners) != 2 || len(st.Apps) != 1 || !st.Apps[0].Healthy {
		t.Fatalf("stats: %+v", st)
	}
	for _, path := range []string{"/ready", "/config", "/metrics"} {
		resp, err := http.Get("http://" + admin + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", path, resp, err)
		}
		resp.Body.Close()
	}

	// The agent's server goes away: the sidecar keeps serving, redials,
	// and is taken back once the server returns.
	g.Stop()
	eventually(t, "stream seen broken", func() bool { return !a.Status().Sidecar.Connected })
	if got := roundTrip(egress); got != "ping" {
		t.Fatalf("with the agent away: %q", got)
	}
	l2, err := net.Listen("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	g2 := grpc.NewServer()
	api.RegisterGRPC(g2, a)
	go g2.Serve(l2)
	defer g2.Stop()
	eventually(t, "reconnected and up", func() bool {
		st := a.Status().Sidecar
		return st.Connected && st.State == "up"
	})

	cancel() // SIGTERM
	if c := <-code; c != 0 {
		t.Fatalf("exit code %d", c)
	}
	code <- 0
	eventually(t, "the agent falls back", func() bool { return a.Status().Sidecar.State == "down" })
}

// TestCommandLineMistakes: a stray argument says so and shows the usage;
// -h is not an error.
func TestCommandLineMistakes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want []string // on stderr
	}{
		{[]string{"extra-arg"}, 2, []string{`sidecar: unexpected argument "extra-arg"`, "Usage of sidecar:", "-admin"}},
		{[]string{"--nope"}, 2, []string{"flag provided but not defined: -nope", "-admin"}},
		{[]string{"--admin", "nonsense"}, 2, []string{"sidecar: --admin:"}},
		{[]string{"--head-timeout", "-1s"}, 2, []string{"sidecar: head_timeout: must be >= 0"}},
		{[]string{"--listener-max-connections", "-1"}, 2, []string{"sidecar: listener_max_connections: must be >= 0"}},
		{[]string{"-h"}, 0, []string{"-admin"}},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tc.args, &stdout, &stderr)
		if code != tc.code {
			t.Errorf("%q: exit %d, want %d; stderr %q", tc.args, code, tc.code, stderr.String())
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr.String(), w) {
				t.Errorf("%q: stderr %q lacks %q", tc.args, stderr.String(), w)
			}
		}
		if stdout.Len() != 0 {
			t.Errorf("%q: stdout %q", tc.args, stdout.String())
		}
	}
}

func TestVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--version"}, &stdout, &stderr); code != 0 || stderr.Len() != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	if got := stdout.String(); !strings.HasPrefix(got, "sidecar ") || strings.Count(got, "\n") != 1 {
		t.Fatalf("stdout %q, want one line sidecar VERSION ...", got)
	}
}
