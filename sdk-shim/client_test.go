package shim_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	shim "github.com/detourmesh/detour/sdk-shim"
)

// next reads the channel until an update satisfies cond.
func next(t *testing.T, ch <-chan shim.Update, what string, cond func(shim.Update) bool) shim.Update {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case u, ok := <-ch:
			if !ok {
				t.Fatalf("watch closed waiting for: %s", what)
			}
			if cond(u) {
				return u
			}
		case <-timeout:
			t.Fatalf("timed out waiting for: %s", what)
		}
	}
}

func endpointsAre(want ...string) func(shim.Update) bool {
	return func(u shim.Update) bool { return u.Err == nil && slices.Equal(u.Answer.Endpoints, want) }
}

func TestResolveAndWatch(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	svc := uniqueService(t)
	app3, app4 := net.JoinHostPort(host(3), "9001"), net.JoinHostPort(host(4), "9001")
	e.register(svc, app3)
	ctx := context.Background()

	ans, err := c.Resolve(ctx, svc)
	if err != nil || ans.Mesh || !slices.Equal(ans.Endpoints, []string{app3}) || ans.Governance.Mesh {
		t.Fatalf("Resolve = %+v, %v", ans, err)
	}

	wctx, cancel := context.WithCancel(ctx)
	ch, err := c.Watch(wctx, svc)
	if err != nil {
		t.Fatal(err)
	}
	next(t, ch, "first answer", endpointsAre(app3))
	e.register(svc, app4)
	next(t, ch, "second endpoint", endpointsAre(app3, app4))

	e.sidecarUp(svc)
	u := next(t, ch, "mesh answer", func(u shim.Update) bool { return u.Answer.Mesh })
	a := u.Answer
	if len(a.Endpoints) != 1 || !slices.Equal(a.Fallback, []string{app3, app4}) {
		t.Errorf("mesh answer = %+v", a)
	}
	if g := a.Governance; !g.Mesh || g.Retries != 0 || g.Timeout != 700*time.Millisecond || g.RetriesFor(3) != 0 {
		t.Errorf("mesh governance = %+v", g)
	}
	e.sidecarDown(svc)
	u = next(t, ch, "fallback answer", func(u shim.Update) bool { return !u.Answer.Mesh })
	if g := u.Answer.Governance; g.Mesh || g.RetriesFor(3) != 3 {
		t.Errorf("fallback governance = %+v", g)
	}
	cancel()
	for range ch { // closed once ctx ends
	}
}

func TestErrors(t *testing.T) {
	l, err := net.Listen("tcp", net.JoinHostPort(host(2), "0"))
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens: the agent is down

	cfg := shim.Default()
	cfg.Agent = addr
	c, err := shim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := c.Resolve(ctx, "greeter"); err == nil {
		t.Error("Resolve with the agent down: no error")
	}
	ch, err := c.Watch(ctx, "greeter")
	if err != nil {
		t.Fatal(err)
	}
	next(t, ch, "the watch's failure", func(u shim.Update) bool { return u.Err != nil })

	pctx, pcancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer pcancel()
	if _, err := c.Publish(pctx, shim.PublishRequest{Service: "greeter", Port: 8080}); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("Publish with the agent down = %v, want the context's deadline", err)
	}

	if err := c.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	for range ch { // closed by Close
	}
	if _, err := c.Resolve(ctx, "greeter"); !errors.Is(err, shim.ErrClosed) {
		t.Errorf("Resolve after Close = %v", err)
	}
	if _, err := c.Watch(ctx, "greeter"); !errors.Is(err, shim.ErrClosed) {
		t.Errorf("Watch after Close = %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*shim.Config)
		want string
	}{
		{"default", func(*shim.Config) {}, ""},
		{"agent", func(c *shim.Config) { c.Agent = "nope" }, "agent:"},
		{"dial_timeout", func(c *shim.Config) { c.DialTimeout = 0 }, "dial_timeout:"},
		{"close_timeout", func(c *shim.Config) { c.CloseTimeout = -1 }, "close_timeout:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := shim.Default()
			tc.edit(&c)
			err := c.Validate()
			if (err == nil) != (tc.want == "") || (err != nil && !strings.HasPrefix(err.Error(), tc.want)) {
				t.Errorf("Validate = %v, want %q", err, tc.want)
			}
			c2, nerr := shim.New(c)
			if (nerr == nil) != (tc.want == "") {
				t.Errorf("New = %v", nerr)
			}
			if c2 != nil {
				c2.Close()
			}
		})
	}
}
