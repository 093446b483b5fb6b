package shim_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	shim "github.com/detourmesh/detour/sdk-shim"
)

// lineServer is a plain TCP app: each line is answered with
// "ADDR: LINE" uppercased.
type lineServer struct {
	addr string
	l    net.Listener
	wg   sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func startLineServer(t *testing.T, ip string) *lineServer {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	s := &lineServer{addr: l.Addr().String(), l: l, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.close)
	return s
}

func (s *lineServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.l.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			sc := bufio.NewScanner(c)
			for sc.Scan() {
				if _, err := fmt.Fprintf(c, "%s: %s\n", s.addr, strings.ToUpper(sc.Text())); err != nil {
					return
				}
			}
		}()
	}
}

func (s *lineServer) close() {
	s.l.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// exchange sends line on conn and checks the answer came from the
// server at from.
func exchange(conn net.Conn, line, from string) error {
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return err
	}
	if _, err := fmt.Fprintln(conn, line); err != nil {
		return err
	}
	got, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if want := from + ": " + strings.ToUpper(line) + "\n"; got != want {
		return fmt.Errorf("answer %q, want %q", got, want)
	}
	return nil
}

// dialExchange dials svc, exchanges one line and closes.
func dialExchange(ctx context.Context, c *shim.Client, svc, from string) (remote string, err error) {
	conn, err := c.Dial(ctx, svc)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return conn.RemoteAddr().String(), exchange(conn, "hello", from)
}

// TestDial: plain TCP goes where the agent says, through the sidecar
// while the mesh carries the service; when the sidecar's data plane dies
// (the agent unaware), new connections go to the real endpoint at once,
// under load too; and back through the sidecar when the agent says mesh
// again.
func TestDial(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	svc := uniqueService(t)
	s := startLineServer(t, host(3))
	e.register(svc, s.addr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	if remote, err := dialExchange(ctx, c, svc, s.addr); err != nil || remote != s.addr {
		t.Fatalf("Dial without the mesh: remote %s, %v; want %s", remote, err, s.addr)
	}

	t.Log("mesh: through the sidecar")
	e.sidecarUp(svc)
	ans, err := c.Resolve(ctx, svc)
	if err != nil || !ans.Mesh || len(ans.Endpoints) != 1 {
		t.Fatalf("Resolve with the mesh = %+v, %v", ans, err)
	}
	egress := ans.Endpoints[0]
	eventually(t, "a connection through the sidecar", func() bool {
		remote, err := dialExchange(ctx, c, svc, s.addr)
		return err == nil && remote == egress
	})
	held, err := c.Dial(ctx, svc)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := exchange(held, "held", s.addr); err != nil || held.RemoteAddr().String() != egress {
		t.Fatalf("held connection to %s: %v; want it through %s", held.RemoteAddr(), err, egress)
	}

	t.Log("the sidecar dies, the agent unaware: the open connection breaks, a new one goes to the endpoint")
	e.sidecar.kill()
	if err := exchange(held, "caught", s.addr); err == nil {
		t.Fatal("a connection through the killed sidecar still answers")
	}
	if remote, err := dialExchange(ctx, c, svc, s.addr); err != nil || remote != s.addr {
		t.Fatalf("Dial after the kill: remote %s, %v; want %s at once", remote, err, s.addr)
	}
	if a, _ := e.a.Resolve(ctx, svc); !a.Mesh {
		t.Fatal("the agent noticed the kill: the test no longer shows the client's own switch")
	}

	t.Log("the agent says mesh again, then the sidecar dies under load")
	e.sidecarDown(svc)
	e.sidecarUp(svc)
	eventually(t, "connections through the sidecar again", func() bool {
		remote, err := dialExchange(ctx, c, svc, s.addr)
		return err == nil && remote == egress
	})
	killUnderLoad(t, e, svc, false, func(ctx context.Context) error {
		_, err := dialExchange(ctx, c, svc, s.addr)
		return err
	})
}

func TestDialErrors(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	if _, err := c.Dial(ctx, "shim.test-nobody"); err == nil {
		t.Error("Dial of a service without endpoints succeeded")
	}
	if _, err := c.Dial(ctx, "not a name!"); err == nil {
		t.Error("Dial of an invalid name succeeded")
	}
	c.Close()
	if _, err := c.Dial(ctx, "shim.test-nobody"); !errors.Is(err, shim.ErrClosed) {
		t.Errorf("Dial after Close: %v, want ErrClosed", err)
	}
}
