package health

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	ghealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCheckers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	codes := map[string]int{"/ok": 200, "/bad": 500}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, ok := codes[r.URL.Path]; ok {
			w.WriteHeader(c)
			return
		}
		p := NewPort()
		p.SetFronted([]string{"up", "down"})
		p.SetApp("up", true, "")
		p.SetApp("down", false, "refused")
		p.ServeHTTP(w, r)
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	closed := func() string {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		a := l.Addr().String()
		l.Close()
		return a
	}()

	if err := (TCP{}).Check(ctx, addr); err != nil {
		t.Fatal(err)
	}
	if err := (TCP{}).Check(ctx, closed); err == nil {
		t.Fatal("tcp to a closed port")
	}
	if err := (HTTP{Path: "/ok"}).Check(ctx, addr); err != nil {
		t.Fatal(err)
	}
	if err := (HTTP{Path: "/bad"}).Check(ctx, addr); err == nil {
		t.Fatal("http 500 healthy")
	}
	if err := (Sidecar{Service: "up"}).Check(ctx, addr); err != nil {
		t.Fatal(err)
	}
	if err := (Sidecar{Service: "down"}).Check(ctx, addr); !errors.Is(err, ErrAppDown) {
		t.Fatalf("503: %v", err)
	}
	if err := (Sidecar{Service: "nope"}).Check(ctx, addr); !errors.Is(err, ErrAppDown) {
		t.Fatalf("404: %v", err)
	}
	if err := (Sidecar{Service: "up"}).Check(ctx, closed); !errors.Is(err, ErrSidecarDown) {
		t.Fatalf("no answer: %v", err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	hs := ghealth.NewServer()
	healthpb.RegisterHealthServer(g, hs)
	go g.Serve(l)
	defer g.Stop()
	if err := (GRPC{}).Check(ctx, l.Addr().String()); err != nil {
		t.Fatal(err)
	}
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	if err := (GRPC{}).Check(ctx, l.Addr().String()); err == nil {
		t.Fatal("NOT_SERVING healthy")
	}
}

func TestPortAnswers(t *testing.T) {
	p := NewPort()
	p.SetFronted([]string{"s"})
	code := func(path string) int {
		w := httptest.NewRecorder()
		p.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		return w.Code
	}
	if code("/healthz/s") != 503 {
		t.Fatal("not checked yet must be 503")
	}
	p.SetApp("s", true, "")
	if code("/healthz/s") != 200 || code("/healthz/other") != 503 || code("/elsewhere") != 404 {
		t.Fatal("answers")
	}
	p.Drain()
	if code("/healthz/s") != 503 {
		t.Fatal("draining must be 503")
	}
}

// TestPortNoEnumeration: a name not fronted here is answered exactly as
// a fronted one that is down (issue 17): same status, same body, and the
// name is not echoed, so names cannot be guessed through the port.
func TestPortNoEnumeration(t *testing.T) {
	p := NewPort()
	p.SetFronted([]string{"known"})
	p.SetApp("known", false, "dial tcp 127.0.0.1:8080: connection refused")
	answer := func(path string) (int, string) {
		w := httptest.NewRecorder()
		p.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		return w.Code, w.Body.String()
	}
	kc, kb := answer("/healthz/known")
	gc, gb := answer("/healthz/guessed-name")
	if kc != gc || kb != gb {
		t.Fatalf("known but down: %d %q; unknown: %d %q", kc, kb, gc, gb)
	}
	if strings.Contains(gb, "guessed") || strings.Contains(kb, "known") || strings.Contains(kb, "refused") {
		t.Fatalf("the answer tells a name or a reason: %q / %q", kb, gb)
	}
	p.SetApp("known", true, "")
	if c, _ := answer("/healthz/known"); c != 200 {
		t.Fatalf("healthy: %d", c)
	}
}

func FuzzPort(f *testing.F) {
	f.Add("/healthz/s")
	f.Add("/healthz/")
	f.Add("/healthz/../s")
	f.Fuzz(func(t *testing.T, path string) {
		p := NewPort()
		p.SetFronted([]string{"s"})
		p.SetApp("s", true, "")
		r, err := http.NewRequest("GET", "http://x/", nil)
		if err != nil {
			return
		}
		r.URL.Path = path
		w := httptest.NewRecorder()
		p.ServeHTTP(w, r)
		if w.Code == 200 && path != "/healthz/s" {
			t.Fatalf("%q answered 200", path)
		}
		switch b := w.Body.String(); b { // fixed answers: nothing of the path echoed
		case "ok\n", "unavailable\n", "404 page not found\n":
		default:
			t.Fatalf("%q answered %q", path, b)
		}
	})
}

// scripted returns results from a list, then the last forever.
type scripted struct {
	mu   sync.Mutex
	list []bool
}

func (s *scripted) next() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.list[0]
	if len(s.list) > 1 {
		s.list = s.list[1:]
	}
	return v
}

func TestMonitorThresholds(t *testing.T) {
	// good, bad, bad (not enough), good, bad×3 (→ bad), good, good (→ good)
	s := &scripted{list: []bool{true, false, false, true, false, false, false, true, true}}
	changes := make(chan bool, 10)
	m := NewMonitor()
	defer m.Close()
	m.Set([]Target{{
		Key:    "t",
		Config: Config{Interval: time.Millisecond, Timeout: time.Second, UnhealthyThreshold: 3, HealthyThreshold: 2},
		Probe: func(ctx context.Context) Result {
			if s.next() {
				return Result{State: 1, Good: true}
			}
			return Result{State: 0, Reason: "down"}
		},
		OnChange: func(r Result) { changes <- r.Good },
	}})
	for i, want := range []bool{true, false, true} {
		select {
		case got := <-changes:
			if got != want {
				t.Fatalf("change %d: %v, want %v", i, got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("change %d never came", i)
		}
	}
	m.Set(nil)
	select {
	case c := <-changes:
		t.Fatalf("unexpected change %v", c)
	default:
	}
}
