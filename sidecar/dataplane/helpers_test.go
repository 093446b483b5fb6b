package dataplane

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/detourmesh/detour/api/sidecarpb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// freePort returns a port free on every given IP.
func freePort(t *testing.T, ips ...string) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", ips[0]+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		ok := true
		for _, ip := range ips[1:] {
			l2, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				ok = false
				break
			}
			l2.Close()
		}
		l.Close()
		if ok {
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

func hp(ip string, port int) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }

// tcpApp is a real TCP server on one port of several IPs; its mode says
// what it does with a connection.
type tcpApp struct {
	port  int
	lns   []net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
	hung  bool
	n     int
}

// startEcho serves on ips (the same port on each): echo, prefixed by tag.
func startApp(t *testing.T, tag string, hung bool, ips ...string) *tcpApp {
	t.Helper()
	a := &tcpApp{port: freePort(t, ips...), hung: hung}
	for _, ip := range ips {
		l, err := net.Listen("tcp", hp(ip, a.port))
		if err != nil {
			t.Fatal(err)
		}
		a.lns = append(a.lns, l)
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				a.mu.Lock()
				a.conns = append(a.conns, c)
				a.n++
				a.mu.Unlock()
				if a.hung {
					continue
				}
				a.wg.Add(1)
				go func() {
					defer a.wg.Done()
					defer c.Close()
					buf := make([]byte, 4096)
					for {
						n, err := c.Read(buf)
						if n > 0 {
							c.Write(append([]byte(tag+":"), buf[:n]...))
						}
						if err != nil {
							return
						}
					}
				}()
			}
		}()
	}
	t.Cleanup(a.stop)
	return a
}

func (a *tcpApp) accepted() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n
}

func (a *tcpApp) stop() {
	for _, l := range a.lns {
		l.Close()
	}
	a.mu.Lock()
	for _, c := range a.conns {
		c.Close()
	}
	a.mu.Unlock()
	a.wg.Wait()
}

// healthServer answers /healthz/* with a settable status, as a remote
// sidecar's health port would.
type healthServer struct {
	srv  *http.Server
	mu   sync.Mutex
	code int
	port int
}

func startHealth(t *testing.T, addr string, code int) *healthServer {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	h := &healthServer{code: code, port: l.Addr().(*net.TCPAddr).Port}
	h.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		defer h.mu.Unlock()
		w.WriteHeader(h.code)
	})}
	go h.srv.Serve(l)
	t.Cleanup(func() { h.srv.Close() })
	return h
}

func fastCheck() *sidecarpb.HealthCheck {
	return &sidecarpb.HealthCheck{
		Interval: durationpb.New(20 * time.Millisecond), Timeout: durationpb.New(200 * time.Millisecond),
		UnhealthyThreshold: 1, HealthyThreshold: 1,
	}
}

func newDP(t *testing.T, cfg Config, opts ...Option) *Dataplane {
	t.Helper()
	d, err := New(cfg, append([]Option{WithLogger(zaptest.NewLogger(t))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d.Shutdown(ctx)
	})
	return d
}

// eventually polls cond until it holds or 10 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		<-time.After(5 * time.Millisecond) // polling interval
	}
}

// roundTrip dials addr, sends msg, and reads one answer.
func roundTrip(addr, msg string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if n > 0 {
		return string(buf[:n]), nil
	}
	if err == nil {
		err = errors.New("empty read")
	}
	return "", err
}

func endpointState(d *Dataplane, service, addr string) sidecarpb.EndpointHealth_State {
	for _, e := range d.Status().GetEndpoints() {
		if e.GetService() == service && e.GetAddr() == addr {
			return e.GetState()
		}
	}
	return -1
}

func clusterOf(service string, proto sidecarpb.Protocol, eps ...*sidecarpb.Endpoint) *sidecarpb.Cluster {
	return &sidecarpb.Cluster{
		Service: service, Protocol: proto, Endpoints: eps,
		ConnectTimeout: durationpb.New(500 * time.Millisecond),
		RequestTimeout: durationpb.New(2 * time.Second),
		HealthCheck:    fastCheck(),
		Outlier: &sidecarpb.Outlier{
			ConsecutiveFailures: 3, BaseEjectionTime: durationpb.New(time.Minute), MaxEjectionTime: durationpb.New(5 * time.Minute),
			MaxEjectionPercent: 100, PanicThreshold: 30,
		},
	}
}

func meshEP(ip string, ingress, app, health int) *sidecarpb.Endpoint {
	return &sidecarpb.Endpoint{Addr: hp(ip, ingress), AppAddr: hp(ip, app), Weight: 100, HealthPort: uint32(health), Mesh: true}
}
