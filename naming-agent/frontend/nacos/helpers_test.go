package nacos

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/common/logger"
	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/detourmesh/detour/naming-agent/frontend"
)

// TestMain checks for leaked goroutines, polling a while since the SDK's
// clients stop theirs at their next wake-up. Ignored: two goroutines of
// the SDK's naming client it never stops (its UDP push receiver and its
// log-file cleaner).
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

// startServer serves a front end on core at a free loopback port pair.
// testServer is a served front end and its HTTP address (gRPC: + 1000).
type testServer struct {
	*Server
	addr string
}

func startServer(t *testing.T, core frontend.Core, edit ...func(*Config)) testServer {
	t.Helper()
	cfg := Default()
	cfg.Listen = "127.0.0.1:0"
	for _, e := range edit {
		e(&cfg)
	}
	hl, gl, err := Listen(cfg.Listen)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, core, WithLogger(zaptest.NewLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(hl, gl) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != ErrClosed {
			t.Errorf("Serve = %v, want ErrClosed", err)
		}
	})
	return testServer{s, hl.Addr().String()}
}

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

// namingClient is the SDK's own naming client on s.
func namingClient(t *testing.T, addr string) naming_client.INamingClient {
	t.Helper()
	host, port := splitAddr(t, addr)
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
		logger.SetLogger(quiet{})
	})
	return c
}

// eventually polls cond until it holds or 10 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for wait := time.Millisecond; !cond(); wait = min(2*wait, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-time.After(wait)
	}
}

func addrs(insts []model.Instance) []string {
	out := make([]string, 0, len(insts))
	for _, in := range insts {
		out = append(out, net.JoinHostPort(in.Ip, strconv.FormatUint(in.Port, 10)))
	}
	return out
}
