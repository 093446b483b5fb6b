package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/dubbogo/go-zookeeper/zk"
	"go.uber.org/zap"

	"github.com/detourmesh/detour/naming-agent/config"
	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
	"github.com/detourmesh/detour/registry-adapters/zookeeper/dubbourl"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestZooKeeperFrontend runs the binary's wiring with the ZooKeeper front
// end on: a provider node a ZooKeeper client creates is registered in
// the registry as the app's own record; a consumer's read of the
// providers is the agent's answer in Dubbo's shape; the node's deletion
// withdraws it. A taken front-end port stops the agent before the
// registry is touched.
func TestZooKeeperFrontend(t *testing.T) {
	srv := registrytest.NewFakeServer()
	built := 0
	kinds := map[string]newRegistry{
		"embedded": func(config.Config, *zap.Logger, registry.MalformedFunc, registry.SessionStore) (registry.Registry, error) {
			built++
			return srv.Client(nil), nil
		},
	}
	zkAddr := freeAddr(t)
	args := []string{"--data-dir", t.TempDir(), "--http-listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0", "--log-level", "warn", "--zookeeper-listen", zkAddr}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, args, io.Discard, &bytes.Buffer{}, kinds, func(string, string) { close(ready) })
	}()
	<-ready
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("exit %d", code)
		}
	}()

	c, _, err := zk.Connect([]string{zkAddr}, 10*time.Second, zk.WithLogger(zkLogger{t}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const svc = "org.detour.Greeter"
	provider := "dubbo://127.0.0.1:20880/" + svc + "?interface=" + svc + "&side=provider&weight=0&serialization=hessian2&timestamp=1"
	for _, p := range []string{"/dubbo", "/dubbo/" + svc, "/dubbo/" + svc + "/providers"} {
		if _, err := c.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && err != zk.ErrNodeExists {
			t.Fatal(err)
		}
	}
	node := "/dubbo/" + svc + "/providers/" + url.QueryEscape(provider)
	if _, err := c.Create(node, nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	other := srv.Client(nil)
	defer other.Close()
	registrytest.Eventually(t, 10*time.Second, "the provider registered", func() bool {
		eps, _ := other.List(context.Background(), svc)
		return len(eps) == 1 && eps[0].Addr == "127.0.0.1:20880" && eps[0].Metadata["serialization"] == "hessian2"
	})
	// No sidecar here: consumers read the real address, in Dubbo's shape.
	kids, _, err := c.Children("/dubbo/" + svc + "/providers")
	if err != nil || len(kids) != 1 {
		t.Fatalf("children = %v, %v", kids, err)
	}
	u, err := dubbourl.ParseNodeName(kids[0])
	if err != nil || u.Host != "127.0.0.1" || u.Port != 20880 || u.Params["serialization"] != "hessian2" || u.Protocol != "dubbo" {
		t.Fatalf("consumer's provider URL = %+v, %v", u, err)
	}
	if err := c.Delete(node, -1); err != nil {
		t.Fatal(err)
	}
	registrytest.Eventually(t, 10*time.Second, "withdrawn with its node", func() bool {
		eps, _ := other.List(context.Background(), svc)
		return len(eps) == 0
	})

	// A second agent whose front-end port is taken exits before building
	// its registry.
	before := built
	var stderr bytes.Buffer
	args2 := []string{"--data-dir", t.TempDir(), "--http-listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0", "--log-level", "warn", "--zookeeper-listen", zkAddr}
	if code := run(context.Background(), args2, io.Discard, &stderr, kinds, nil); code != 1 || !bytes.Contains(stderr.Bytes(), []byte("frontends.zookeeper.listen")) {
		t.Fatalf("taken front-end port: exit %d, %q", code, stderr.String())
	}
	if built != before {
		t.Error("the registry was built although the front end could not listen")
	}
}

type zkLogger struct{ t *testing.T }

func (l zkLogger) Printf(format string, args ...any) { l.t.Logf("go-zookeeper: "+format, args...) }
