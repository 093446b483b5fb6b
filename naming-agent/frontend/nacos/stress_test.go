package nacos

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/model"

	"github.com/detourmesh/detour/internal/nacoswire"
	"github.com/detourmesh/detour/naming-agent/frontend/frontendtest"
)

// TestManyConnects: 2,000 connections that never speak are closed after
// the setup timeout; 10,000 connects that close at once leave nothing
// behind; the server serves a real client all along.
func TestManyConnects(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 connections")
	}
	core := frontendtest.NewFakeCore()
	s := startServer(t, core, func(c *Config) { c.SetupTimeout = 500 * time.Millisecond; c.MaxConnections = 0 })
	addr := grpcAddr(t, s)
	good := dial(t, s, true)
	in := model.Instance{Ip: "127.0.0.1", Port: 80, Weight: 1, Enable: true, Ephemeral: true}
	if err := good.Do(nacoswire.TypeInstance, nacoswire.NamingRequest{ServiceName: "s", Type: "registerInstance", Instance: in}, nil); err != nil {
		t.Fatal(err)
	}

	silent := make([]net.Conn, 0, 2000)
	for range 2000 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		silent = append(silent, c)
	}
	// Every silent connection is closed by the server.
	for _, c := range silent {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 512)
		for {
			if _, err := c.Read(buf); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatal("a connection without setup still open after 10 s")
				}
				break
			}
		}
		c.Close()
	}

	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for range 10000 {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if c, err := net.Dial("tcp", addr); err == nil {
				c.Close()
			}
		}()
	}
	wg.Wait()
	eventually(t, "only the real client's connection left", func() bool { return s.ConnCount() == 1 })
	var q nacoswire.ServiceResponse
	if err := good.Do(nacoswire.TypeServiceQuery, nacoswire.NamingRequest{ServiceName: "s"}, &q); err != nil {
		t.Fatalf("the real client after 12,000 connects: %v", err)
	}
	if _, ok := core.Pub("s"); !ok {
		t.Fatal("the real client's publication is gone")
	}
}
