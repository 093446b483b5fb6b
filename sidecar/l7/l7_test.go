package l7

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/detourmesh/detour/sidecar/cluster"
	"github.com/detourmesh/detour/sidecar/outlier"
	"github.com/detourmesh/detour/sidecar/stats"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestReplayBody(t *testing.T) {
	r := newReplay(io.NopCloser(strings.NewReader("hello world")), 64)
	first := r.attempt()
	buf := make([]byte, 5)
	io.ReadFull(first, buf)
	if !r.replayable() {
		t.Fatal("within the limit: replayable")
	}
	second := r.attempt()
	if _, err := first.Read(buf); !errors.Is(err, errStale) {
		t.Fatalf("stale attempt read: %v", err)
	}
	if got, _ := io.ReadAll(second); string(got) != "hello world" {
		t.Fatalf("replayed %q", got)
	}
	big := newReplay(io.NopCloser(bytes.NewReader(make([]byte, 100))), 10)
	io.ReadAll(big.attempt())
	if big.replayable() {
		t.Fatal("over the limit: not replayable")
	}
}

func TestOutHeaders(t *testing.T) {
	r := httptest.NewRequest("GET", "http://svc/x", nil)
	r.RemoteAddr = "10.0.0.7:5555"
	r.Header.Set("Connection", "close, X-Secret")
	r.Header.Set("X-Secret", "1")
	r.Header.Set("Te", "trailers")
	r.Header.Set("Keep-Alive", "300")
	r.Header.Set("X-Forwarded-For", "1.2.3.4")
	h := r.Header.Clone()
	outHeaders(h, r)
	if h.Get("X-Secret") != "" || h.Get("Keep-Alive") != "" || h.Get("Connection") != "" {
		t.Fatalf("hop-by-hop headers kept: %v", h)
	}
	if h.Get("Te") != "trailers" || h.Get("X-Forwarded-For") != "1.2.3.4, 10.0.0.7" || h.Get("X-Forwarded-Proto") != "http" || h.Get("X-Forwarded-Host") != "svc" {
		t.Fatalf("headers: %v", h)
	}
}

func FuzzOutHeaders(f *testing.F) {
	f.Add("close, X-A", "trailers", "1.2.3.4")
	f.Add(",,,", "deflate;q=1, trailers", "")
	f.Fuzz(func(t *testing.T, conn, te, xff string) {
		r := httptest.NewRequest("GET", "http://svc/", nil)
		h := http.Header{"Connection": {conn}, "Te": {te}, "X-Forwarded-For": {xff}, "Upgrade": {"x"}}
		outHeaders(h, r)
		for _, k := range hopHeaders {
			if k != "Te" && h.Get(k) != "" {
				t.Fatalf("%s kept", k)
			}
		}
	})
}

// front serves h on a loopback listener.
func front(tb testing.TB, h http.Handler) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return serveHTTP(tb, l, h)
}

// countedListener counts each accepted connection as listener.Manager
// does, for a sidecar handler served by a plain http.Server.
type countedListener struct {
	net.Listener
	c *stats.Counters
}

func (l countedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return stats.Accepted(c, l.c), nil
}

// sidecarFront is front for a sidecar handler: its connections counted.
func sidecarFront(tb testing.TB, h http.Handler, c *stats.Counters) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return serveHTTP(tb, countedListener{l, c}, h)
}

func serveHTTP(tb testing.TB, l net.Listener, h http.Handler) string {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: h, Protocols: p}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); srv.Serve(l) }()
	tb.Cleanup(func() { srv.Close(); wg.Wait() })
	return l.Addr().String()
}

func pool() *sync.Pool { return &sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }} }

func TestIngressOnlyReachesTarget(t *testing.T) {
	hit := make(chan string, 10)
	target := front(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hit <- "target"; w.Write([]byte("target")) }))
	other := front(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hit <- "other"; w.Write([]byte("other")) }))
	tr := NewTransports((&net.Dialer{}).DialContext, time.Second, time.Minute)
	defer tr.Close()
	in := front(t, &Ingress{Target: target, Listener: &stats.Counters{}, Transports: tr, Pool: pool()})
	// An absolute URL or a Host naming another port changes nothing.
	conn, err := net.Dial("tcp", in)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("GET http://" + other + "/ HTTP/1.1\r\nHost: " + other + "\r\nConnection: close\r\n\r\n"))
	got, _ := io.ReadAll(conn)
	if !bytes.HasSuffix(got, []byte("target")) {
		t.Fatalf("answer %q", got)
	}
	if h := <-hit; h != "target" || len(hit) != 0 {
		t.Fatal("ingress reached another port")
	}
}

// BenchmarkRequest is one HTTP/1.1 request on a kept-alive connection,
// direct and through the egress handler (pooled upstream connections).
// Allocations include the client's and the app's: compare the two.
func BenchmarkRequest(b *testing.B) {
	app := front(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello")) }))
	cl := cluster.New("bench", cluster.Config{Policy: cluster.LeastRequest, Outlier: outlier.Default()}, time.Now)
	cl.Update(cluster.Config{Policy: cluster.LeastRequest, Outlier: outlier.Default()}, []cluster.Spec{{Addr: app, AppAddr: app, Weight: 1}})
	cl.SetHealth(cl.Endpoints()[0], cluster.Healthy)
	tr := NewTransports((&net.Dialer{}).DialContext, time.Second, time.Minute)
	b.Cleanup(tr.Close)
	ls := &stats.Counters{}
	eg := sidecarFront(b, &Egress{
		Cluster: cl, Listener: ls, Transports: tr, Log: zap.NewNop(),
		RequestTimeout: 5 * time.Second, Retries: 1, Retriable: map[int]bool{503: true},
		BudgetPercent: 20, MinRetries: 3, BodyLimit: 64 << 10, Pool: pool(),
	}, ls)
	for _, tc := range []struct{ name, addr string }{{"direct", app}, {"egress", eg}} {
		b.Run(tc.name, func(b *testing.B) {
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			defer c.CloseIdleConnections()
			b.ReportAllocs()
			for b.Loop() {
				req, _ := http.NewRequestWithContext(context.Background(), "GET", "http://"+tc.addr+"/", nil)
				resp, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}

// serveH1 serves a Server (the listener's handler) on a loopback
// listener, counting each connection as listener.Manager does.
func serveH1(tb testing.TB, s *Server) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.ServeConn(stats.Accepted(c, s.h1.Listener))
		}
	}()
	tb.Cleanup(func() { l.Close(); <-done; s.Close() })
	return l.Addr().String()
}

// BenchmarkH1 is one HTTP/1.1 request on a kept-alive connection through
// the fast path (the listener's real handler), egress and ingress.
func BenchmarkH1(b *testing.B) {
	app := front(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello")) }))
	cl := cluster.New("bench", cluster.Config{Policy: cluster.LeastRequest, Outlier: outlier.Default()}, time.Now)
	cl.Update(cluster.Config{Policy: cluster.LeastRequest, Outlier: outlier.Default()}, []cluster.Spec{{Addr: app, AppAddr: app, Weight: 1}})
	cl.SetHealth(cl.Endpoints()[0], cluster.Healthy)
	dial := (&net.Dialer{}).DialContext
	for _, tc := range []struct {
		name string
		h1   *H1
	}{
		{"egress", &H1{Cluster: cl, Listener: &stats.Counters{}, RequestTimeout: 5 * time.Second, Retries: 1, Retriable: map[int]bool{503: true}, BudgetPercent: 20, MinRetries: 3, BodyLimit: 64 << 10}},
		{"ingress", &H1{Target: app, Listener: &stats.Counters{}, BodyLimit: 64 << 10}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			addr := serveH1(b, NewServer(&net.TCPAddr{}, tc.h1, http.NotFoundHandler(), dial, time.Second, time.Minute))
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			defer c.CloseIdleConnections()
			b.ReportAllocs()
			for b.Loop() {
				resp, err := c.Get("http://" + addr + "/")
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
