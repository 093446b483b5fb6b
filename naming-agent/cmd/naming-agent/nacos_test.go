package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"go.uber.org/zap"

	"github.com/detourmesh/detour/internal/nacoswire"
	"github.com/detourmesh/detour/internal/nacoswire/nacoswiretest"
	"github.com/detourmesh/detour/naming-agent/config"
	"github.com/detourmesh/detour/naming-agent/frontend/nacos"
	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

// TestNacosFrontend runs the binary's wiring with the Nacos front end on:
// an instance a Nacos client registers over gRPC (HTTP port + 1000) is
// registered in the registry with the app's weight and metadata; a query
// is the agent's answer in Nacos's shape; the connection's end withdraws
// it. A taken front-end port stops the agent before the registry is
// touched.
func TestNacosFrontend(t *testing.T) {
	srv := registrytest.NewFakeServer()
	built := 0
	kinds := map[string]newRegistry{
		"embedded": func(config.Config, *zap.Logger, registry.MalformedFunc, registry.SessionStore) (registry.Registry, error) {
			built++
			return srv.Client(nil), nil
		},
	}
	hl, gl, err := nacos.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr, grpcAddr := hl.Addr().String(), gl.Addr().String()
	hl.Close()
	gl.Close()
	args := []string{"--data-dir", t.TempDir(), "--http-listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0", "--log-level", "warn", "--nacos-listen", addr}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		done <- run(ctx, args, io.Discard, &stderr, kinds, func(string, string) { close(ready) })
	}()
	select {
	case <-ready:
	case code := <-done:
		t.Fatalf("agent exited %d: %s", code, stderr.String())
	}
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("exit %d", code)
		}
	}()

	c, err := nacoswiretest.Dial(grpcAddr, true)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reg := nacoswire.NamingRequest{ServiceName: "greeter", Type: "registerInstance", Instance: model.Instance{
		Ip: "127.0.0.1", Port: 8080, Weight: 2, Enable: true, Healthy: true, Ephemeral: true, Metadata: map[string]string{"k": "v"},
	}}
	if err := c.Do(nacoswire.TypeInstance, reg, nil); err != nil {
		t.Fatalf("register: %v", err)
	}
	other := srv.Client(nil)
	defer other.Close()
	registrytest.Eventually(t, 10*time.Second, "the instance registered", func() bool {
		eps, _ := other.List(context.Background(), "greeter")
		return len(eps) == 1 && eps[0].Weight == 200 && eps[0].Metadata["k"] == "v"
	})
	// No sidecar here: the app reads the real address.
	var q nacoswire.ServiceResponse
	if err := c.Do(nacoswire.TypeServiceQuery, nacoswire.NamingRequest{ServiceName: "greeter"}, &q); err != nil {
		t.Fatal(err)
	}
	if h := q.ServiceInfo.Hosts; len(h) != 1 || h[0].Ip != "127.0.0.1" || h[0].Port != 8080 || h[0].Weight != 2 {
		t.Fatalf("query = %+v", q.ServiceInfo)
	}
	c.Close()
	registrytest.Eventually(t, 10*time.Second, "withdrawn with its connection", func() bool {
		eps, _ := other.List(context.Background(), "greeter")
		return len(eps) == 0
	})

	// A second agent whose front-end port is taken exits before building
	// its registry; so does one whose gRPC port (+1000) is taken.
	before := built
	for _, taken := range []string{addr, freeGRPCPair(t)} {
		stderr.Reset()
		args2 := []string{"--data-dir", t.TempDir(), "--http-listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0", "--log-level", "warn", "--nacos-listen", taken}
		if code := run(context.Background(), args2, io.Discard, &stderr, kinds, nil); code != 1 || !bytes.Contains(stderr.Bytes(), []byte("frontends.nacos.listen")) {
			t.Fatalf("taken front-end port: exit %d, %q", code, stderr.String())
		}
	}
	if built != before {
		t.Error("the registry was built although the front end could not listen")
	}
}

// freeGRPCPair returns an address whose port is free and whose port +
// 1000 is held until the test ends.
func freeGRPCPair(t *testing.T) string {
	t.Helper()
	hl, gl, err := nacos.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl.Close()
	t.Cleanup(func() { gl.Close() })
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(hl.Addr().(*net.TCPAddr).Port))
}
