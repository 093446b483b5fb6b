package zookeeper_test

import (
	"fmt"
	"io"
	"net"

	"github.com/detourmesh/detour/naming-agent/frontend/zookeeper"
)

// A plain in-memory ZooKeeper on a loopback port, asked "ruok".
func ExampleServer() {
	cfg := zookeeper.Default()
	cfg.Listen = "127.0.0.1:0"
	srv, err := zookeeper.New(cfg)
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		panic(err)
	}
	go func() { _ = srv.Serve(l) }()

	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	_, _ = c.Write([]byte("ruok"))
	answer, _ := io.ReadAll(c)
	fmt.Println(string(answer))
	// Output: imok
}
