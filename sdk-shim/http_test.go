package shim_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	shim "github.com/detourmesh/detour/sdk-shim"
)

// web is an HTTP app: GET /hello answers "hello from ADDR (Host)";
// GET and POST /slow answer when released or when their connection dies.
type web struct {
	addr    string
	calls   atomic.Int64
	slow    atomic.Int64
	release chan struct{}
	once    sync.Once
	srv     *http.Server
	done    chan struct{}
}

// releaseSlow lets every slow request, now and later, answer.
func (w *web) releaseSlow() { w.once.Do(func() { close(w.release) }) }

func startWeb(t *testing.T, ip string) *web {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	w := &web{addr: l.Addr().String(), release: make(chan struct{}), done: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(rw http.ResponseWriter, r *http.Request) {
		w.calls.Add(1)
		fmt.Fprintf(rw, "hello from %s (%s)", w.addr, r.Host)
	})
	slow := func(rw http.ResponseWriter, r *http.Request) {
		w.slow.Add(1)
		select {
		case <-r.Context().Done():
		case <-w.release:
			fmt.Fprint(rw, "slow")
		}
	}
	mux.HandleFunc("POST /slow", slow)
	mux.HandleFunc("GET /slow", slow)
	w.srv = &http.Server{Handler: mux}
	go func() { defer close(w.done); w.srv.Serve(l) }()
	t.Cleanup(func() {
		w.releaseSlow()
		w.srv.Close()
		<-w.done
	})
	return w
}

func get(ctx context.Context, hc *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %s", resp.Status)
	}
	return string(b), err
}

// TestHTTPTransport: requests go where the agent says, the governance
// tells a retry wrapper what to do, and a refused egress switches to the
// fallback at once, under load, and back when the agent says mesh.
func TestHTTPTransport(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	svc := uniqueService(t)
	w := startWeb(t, host(3))
	e.register(svc, w.addr)
	tr := c.Transport()
	defer tr.Close()
	hc := &http.Client{Transport: tr}
	url := "http://" + svc + "/hello"
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	body, err := get(ctx, hc, url)
	if want := fmt.Sprintf("hello from %s (%s)", w.addr, svc); err != nil || body != want {
		t.Fatalf("GET = %q, %v; want %q", body, err, want)
	}
	if n := tr.Retries(req, 3); n != 3 {
		t.Errorf("Retries without the mesh = %d, want 3", n)
	}

	t.Log("mesh: through the sidecar, no retries")
	e.sidecarUp(svc)
	eventually(t, "requests through the sidecar", func() bool {
		_, err := get(ctx, hc, url)
		return err == nil && e.sidecar.accepted.Load() > 0
	})
	if n := tr.Retries(req, 3); n != 0 {
		t.Errorf("Retries with the mesh = %d, want 0", n)
	}

	t.Log("the sidecar dies under load")
	killUnderLoad(t, e, svc, false, func(ctx context.Context) error { _, err := get(ctx, hc, url); return err })
	if n := tr.Retries(req, 3); n != 3 {
		t.Errorf("Retries after the switch = %d, want 3", n)
	}

	t.Log("the agent says fallback, then mesh again: back through the sidecar")
	through := e.sidecar.accepted.Load()
	e.sidecarDown(svc)
	e.sidecarUp(svc)
	eventually(t, "requests through the sidecar again", func() bool {
		_, err := get(ctx, hc, url)
		return err == nil && e.sidecar.accepted.Load() > through && tr.Retries(req, 3) == 0
	})

	t.Log("a request in flight when the sidecar dies fails; the governance then allows a retry")
	slow := make(chan error, 1)
	go func() {
		r, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+svc+"/slow", strings.NewReader("x"))
		resp, err := hc.Do(r)
		if err == nil {
			resp.Body.Close()
		}
		slow <- err
	}()
	eventually(t, "the slow request at the app", func() bool { return w.slow.Load() > 0 })
	e.sidecar.kill()
	if err := <-slow; err == nil {
		t.Error("the request in flight through the killed sidecar succeeded")
	}
	if n := tr.Retries(req, 3); n != 3 {
		t.Errorf("Retries right after a failure caused by the sidecar's death = %d, want 3", n)
	}
	if _, err := get(ctx, hc, url); err != nil {
		t.Errorf("the next request: %v", err)
	}

	t.Log("back to the mesh; the sidecar dies again and the agent notices too")
	e.sidecarDown(svc)
	e.sidecarUp(svc)
	eventually(t, "mesh again", func() bool { _, err := get(ctx, hc, url); return err == nil && tr.Retries(req, 3) == 0 })
	killUnderLoad(t, e, svc, true, func(ctx context.Context) error { _, err := get(ctx, hc, url); return err })
}

func TestHTTPTransportErrors(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	tr := c.Transport(shim.WithBaseTransport(&http.Transport{}))
	hc := &http.Client{Transport: tr}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := get(ctx, hc, "http://no_such-service!/"); err == nil {
		t.Error("a request to an invalid service name succeeded")
	}
	if _, err := get(ctx, hc, "http://"+uniqueService(t)+"/"); err == nil || !strings.Contains(err.Error(), "no endpoints") {
		t.Errorf("a request to a service without endpoints = %v", err)
	}
	tr.Close()
	if _, err := get(ctx, hc, "http://"+uniqueService(t)+"/"); err == nil {
		t.Error("a request after Close succeeded")
	}
}

// TestHTTPReplay: a GET in flight when the sidecar dies is sent again to
// the fallback, as net/http would replay it itself.
func TestHTTPReplay(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	svc := uniqueService(t)
	w := startWeb(t, host(3))
	e.register(svc, w.addr)
	e.sidecarUp(svc)
	tr := c.Transport()
	defer tr.Close()
	hc := &http.Client{Transport: tr}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	eventually(t, "requests through the sidecar", func() bool {
		_, err := get(ctx, hc, "http://"+svc+"/hello")
		return err == nil && e.sidecar.accepted.Load() > 0
	})

	type reply struct {
		body string
		err  error
	}
	done := make(chan reply, 1)
	go func() {
		body, err := get(ctx, hc, "http://"+svc+"/slow")
		done <- reply{body, err}
	}()
	eventually(t, "the GET at the app", func() bool { return w.slow.Load() == 1 })
	e.sidecar.kill()
	eventually(t, "the GET sent again", func() bool { return w.slow.Load() == 2 })
	w.releaseSlow()
	if r := <-done; r.err != nil || r.body != "slow" {
		t.Errorf("GET in flight at the kill = %q, %v; want it replayed", r.body, r.err)
	}
}
