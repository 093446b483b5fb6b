package dubbobench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/detourmesh/detour/internal/procstat"
	"github.com/detourmesh/detour/internal/testbed"
	"github.com/detourmesh/detour/sidecar/dubbo"
)

// BenchmarkDubbo: Dubbo calls (dubbo://, a hessian2 SayHello("world")
// request as Dubbo 2.0.2 writes it, and a short answer) from one client
// connection with dubboCallers calls in flight, as a Dubbo consumer
// multiplexes them, to a Go provider in this process, by these paths in
// the same run:
//
//   - path=direct: the provider itself;
//   - path=one-sidecar: B's ingress (B's sidecar, its own process);
//   - path=two-hops: A's egress, then B's ingress (the mesh path: each
//     call balanced, timed and matched back by A's sidecar);
//   - path=mosn-one-hop, only with DETOUR_BENCH_MOSN=/path/to/mosn: MOSN
//     (built outside the project) as one Dubbo proxy to the provider,
//     its `proxy` filter with downstream_protocol dubbo, log level ERROR.
//
// Each proxy runs with GOMAXPROCS=1 (the proxy at one core, as the
// data-path benchmarks run nginx's one worker). Metrics: calls/s, p50 and
// p99 of a call in microseconds, and cpu-us/call, the CPU time of the
// path's proxy processes (/proc/PID/stat; both sidecars on two-hops) per
// call; ratios to direct in the same run. The load generator and the
// provider share the rest of the machine.
func BenchmarkDubbo(b *testing.B) {
	fx := fixture(b)
	var direct float64
	paths := []struct {
		name, addr string
		pids       []int
	}{
		{"direct", fx.app, nil}, {"one-sidecar", fx.ingress, fx.sidecars[:1]}, {"two-hops", fx.egress, fx.sidecars},
	}
	if fx.mosn != nil {
		paths = append(paths, struct {
			name, addr string
			pids       []int
		}{"mosn-one-hop", fx.mosnAddr, []int{fx.mosn.Pid()}})
	}
	for _, p := range paths {
		b.Run("path="+p.name, func(b *testing.B) {
			r := fx.load(b, p.addr, p.pids, b.N)
			b.ReportMetric(r.rate, "calls/s")
			b.ReportMetric(float64(r.p50.Microseconds()), "p50-us")
			b.ReportMetric(float64(r.p99.Microseconds()), "p99-us")
			if p.name == "direct" {
				direct = r.rate
			} else {
				if r.cpu > 0 {
					b.ReportMetric(float64(r.cpu.Microseconds())/float64(b.N), "cpu-us/call")
				}
				if direct > 0 {
					b.ReportMetric(r.rate/direct, "rate-vs-direct")
				}
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

// dubboCallers is how many calls the client keeps in flight.
const dubboCallers = 32

type benchFixture struct {
	app, ingress, egress string
	sidecars             []int // B's, A's
	mosn                 *testbed.Proc
	mosnAddr             string
	hosts                []*testbed.Host
	net                  *testbed.Net
	dir                  string
	ln                   net.Listener
}

var (
	fxOnce sync.Once
	fx     *benchFixture
	fxErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if fx != nil {
		fx.close()
	}
	os.Exit(code)
}

func fixture(b *testing.B) *benchFixture {
	fxOnce.Do(func() { fx, fxErr = start() })
	if fxErr != nil {
		b.Fatal(fxErr)
	}
	return fx
}

const service = "bench.Dubbo"

func start() (_ *benchFixture, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	f := &benchFixture{}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	if f.net, err = testbed.ReserveNet(); err != nil {
		return nil, err
	}
	if f.dir, err = os.MkdirTemp("", "detour-dubbo-bench-"); err != nil {
		return nil, err
	}
	bin := filepath.Join(f.dir, "bin")
	if err := testbed.Build(ctx, bin, "github.com/detourmesh/detour/naming-agent/cmd/naming-agent", "github.com/detourmesh/detour/sidecar/cmd/sidecar"); err != nil {
		return nil, err
	}
	ipA, ipB := f.net.Host(2), f.net.Host(3)
	if f.ln, err = net.Listen("tcp", net.JoinHostPort(ipB, "0")); err != nil {
		return nil, err
	}
	f.app = f.ln.Addr().String()
	go provide(f.ln)

	hb, err := testbed.NewHost(bin, filepath.Join(f.dir, "B"), testbed.Spec{IP: ipB, Registry: "embedded"})
	if err != nil {
		return nil, err
	}
	ha, err := testbed.NewHost(bin, filepath.Join(f.dir, "A"), testbed.Spec{IP: ipA, Registry: hb.RegistryURL()})
	if err != nil {
		return nil, err
	}
	for _, h := range []*testbed.Host{hb, ha} {
		h.SidecarEnv = []string{"GOMAXPROCS=1"}
		f.hosts = append(f.hosts, h)
		if err := h.StartAgent(ctx); err != nil {
			return nil, err
		}
		if err := h.StartSidecar(); err != nil {
			return nil, err
		}
		if err := h.WaitSidecar(ctx, "up"); err != nil {
			return nil, err
		}
		f.sidecars = append(f.sidecars, h.Sidecar.Pid())
	}
	// The provider listens on B's address: the app's address is what the
	// ingress forwards to and checks.
	port := f.ln.Addr().(*net.TCPAddr).Port
	if err := hb.API().Do(ctx, http.MethodPost, "/v1/publish", map[string]any{
		"service": service, "port": port, "protocol": "dubbo",
	}, nil); err != nil {
		return nil, fmt.Errorf("publish on B: %w", err)
	}
	ans, err := ha.WaitAnswer(ctx, service, "A's egress", func(a testbed.Answer) bool { return a.Mesh && len(a.Endpoints) == 1 })
	if err != nil {
		return nil, err
	}
	f.egress = ans.Endpoints[0].Addr
	f.ingress, err = ingressOf(ctx, hb)
	if err != nil {
		return nil, err
	}
	// Both sidecars ready for calls: A's endpoint healthy, B's app checked.
	if err := testbed.Poll(ctx, 30*time.Second, "a call through both sidecars", func() bool {
		_, err := call(f.egress)
		return err == nil
	}); err != nil {
		return nil, err
	}
	if bin := os.Getenv("DETOUR_BENCH_MOSN"); bin != "" {
		if err := f.startMOSN(ctx, bin, ipB); err != nil {
			return nil, fmt.Errorf("mosn: %w", err)
		}
	}
	return f, nil
}

// ingressOf reads B's ingress for the service from its sidecar's /config.
func ingressOf(ctx context.Context, h *testbed.Host) (string, error) {
	var cfg struct {
		Snapshot struct {
			Ingress []struct {
				Service  string `json:"service"`
				Listen   string `json:"listen"`
				Protocol string `json:"protocol"`
			} `json:"ingress"`
		} `json:"snapshot"`
	}
	var addr string
	err := testbed.Poll(ctx, 30*time.Second, "B's ingress in its sidecar's /config", func() bool {
		c := &testbed.Client{Base: "http://" + h.AdminAddr()}
		if c.Do(ctx, http.MethodGet, "/config", nil, &cfg) != nil {
			return false
		}
		for _, l := range cfg.Snapshot.Ingress {
			if l.Service == service && l.Protocol == "PROTOCOL_DUBBO" {
				addr = l.Listen
			}
		}
		return addr != ""
	})
	return addr, err
}

func (f *benchFixture) close() {
	if f.mosn != nil {
		f.mosn.Kill()
	}
	if f.ln != nil {
		f.ln.Close()
	}
	for _, h := range f.hosts {
		h.Close()
	}
	if f.net != nil {
		f.net.Release()
	}
	if f.dir != "" {
		os.RemoveAll(f.dir)
	}
}

// reqBody is a call's body as Dubbo 2.0.2 writes it in hessian2: the
// framework version, service path, service version, method, parameter
// types, the argument and the attachments (an untyped map). MOSN reads
// the first four; detour reads none. respBody is the answer: a
// RESPONSE_VALUE flag (int 1) and a string.
var (
	reqBody = hmap(hstr(hstr(hstr(hstr(hstr(hstr(nil, "2.0.2"), service), "0.0.0"), "SayHello"), "Ljava/lang/String;"), "world"),
		"path", service, "interface", service, "version", "0.0.0", "timeout", "3000")
	respBody = hstr([]byte{0x91}, "hello, world, from the provider")
)

// hstr appends s (at most 31 bytes of ASCII) as a hessian2 short string.
func hstr(b []byte, s string) []byte { return append(append(b, byte(len(s))), s...) }

// hmap appends an untyped hessian2 map of string pairs.
func hmap(b []byte, kv ...string) []byte {
	b = append(b, 'H')
	for _, s := range kv {
		b = hstr(b, s)
	}
	return append(b, 'Z')
}

// provide is the provider: each two-way call answered with body.
func provide(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			rd := dubbo.NewReader(c, 32<<10, dubbo.DefaultMaxBody)
			w := newFrameWriter(c)
			for {
				h, _, err := rd.Next()
				if err != nil {
					return
				}
				if !h.IsRequest() || !h.TwoWay() {
					continue
				}
				flag := byte(dubbo.Hessian2)
				if h.Event() {
					flag |= dubbo.FlagEvent
				}
				if w.send(dubbo.Header{Flag: flag, Status: dubbo.StatusOK, ID: h.ID}, respBody, rd.Buffered() == 0) != nil {
					return
				}
			}
		}()
	}
}

// call makes one call on a fresh connection (readiness).
func call(addr string) (time.Duration, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	t := time.Now()
	if err := newFrameWriter(c).send(dubbo.Header{Flag: dubbo.FlagRequest | dubbo.FlagTwoWay | dubbo.Hessian2, ID: 1}, reqBody, true); err != nil {
		return 0, err
	}
	h, _, err := dubbo.NewReader(c, 4<<10, dubbo.DefaultMaxBody).Next()
	if err == nil && h.Status != dubbo.StatusOK {
		err = fmt.Errorf("status %d", h.Status)
	}
	return time.Since(t), err
}

type result struct {
	rate     float64
	p50, p99 time.Duration
	cpu      time.Duration
}

// load makes n calls to addr over one connection, dubboCallers at once,
// and measures the CPU time of pids meanwhile.
func (f *benchFixture) load(b *testing.B, addr string, pids []int, n int) result {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	w := newFrameWriter(c)
	var mu sync.Mutex
	waiting := map[uint64]chan uint8{}
	go func() {
		rd := dubbo.NewReader(c, 32<<10, dubbo.DefaultMaxBody)
		for {
			h, _, err := rd.Next()
			if err != nil {
				return
			}
			mu.Lock()
			ch := waiting[h.ID]
			delete(waiting, h.ID)
			mu.Unlock()
			if ch != nil {
				ch <- h.Status
			}
		}
	}()
	cpu0, cpuErr := procstat.CPU(pids)
	lat := make([][]time.Duration, dubboCallers)
	errs := make(chan error, dubboCallers)
	var wg sync.WaitGroup
	b.ResetTimer()
	t0 := time.Now()
	for i := range dubboCallers {
		calls := n / dubboCallers
		if i < n%dubboCallers {
			calls++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ch := make(chan uint8, 1)
			for k := range calls {
				id := uint64(i)<<32 | uint64(k)
				mu.Lock()
				waiting[id] = ch
				mu.Unlock()
				t := time.Now()
				if err := w.send(dubbo.Header{Flag: dubbo.FlagRequest | dubbo.FlagTwoWay | dubbo.Hessian2, ID: id}, reqBody, true); err != nil {
					errs <- err
					return
				}
				select {
				case st := <-ch:
					if st != dubbo.StatusOK {
						errs <- fmt.Errorf("call answered status %d", st)
						return
					}
				case <-time.After(10 * time.Second):
					errs <- fmt.Errorf("no answer to call %x in 10 s", id)
					return
				}
				lat[i] = append(lat[i], time.Since(t))
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
	cpu1, err := procstat.CPU(pids)
	all := slices.Concat(lat...)
	slices.Sort(all)
	r := result{rate: float64(n) / elapsed.Seconds(), p50: all[len(all)/2], p99: all[len(all)*99/100]}
	if len(pids) > 0 && cpuErr == nil && err == nil {
		r.cpu = cpu1 - cpu0
	}
	return r
}

// frameWriter writes frames with body from several goroutines.
type frameWriter struct {
	mu  sync.Mutex
	c   net.Conn
	buf []byte
}

func newFrameWriter(c net.Conn) *frameWriter { return &frameWriter{c: c} }

// send writes a frame of h and body, flushed now or when flush is
// first true (or 16 KiB are buffered).
func (w *frameWriter) send(h dubbo.Header, body []byte, flush bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var hdr [dubbo.HeaderLen]byte
	h.Len = len(body)
	h.Put(hdr[:])
	w.buf = append(append(w.buf, hdr[:]...), body...)
	if !flush && len(w.buf) < 16<<10 {
		return nil
	}
	_, err := w.c.Write(w.buf)
	w.buf = w.buf[:0]
	return err
}
