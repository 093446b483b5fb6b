// Command gozero-app is a go-zero zrpc app for detour's tests, built with
// go-zero v1.10.3 and nothing of detour's: with -server it serves gRPC's
// health service on -listen and registers in etcd under -key (go-zero's
// publisher: KEY/LEASE = host:port on its lease); with -client it dials
// the key through go-zero's etcd discovery (zrpc.RpcClientConf.Etcd) and
// calls Health.Check -rate times a second, printing a JSON line of
// counts every 100 ms: {"ok":N,"failed":M,"peer":"ADDR"}.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/zeromicro/go-zero/core/discov"
	"github.com/zeromicro/go-zero/core/logx"
	"github.com/zeromicro/go-zero/core/service"
	"github.com/zeromicro/go-zero/zrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
)

func main() {
	server := flag.Bool("server", false, "serve and register")
	client := flag.Bool("client", false, "discover and call")
	etcd := flag.String("etcd", "127.0.0.1:2379", "etcd hosts, comma-separated (Etcd.Hosts)")
	key := flag.String("key", "greet.rpc", "Etcd.Key")
	listen := flag.String("listen", "127.0.0.1:8080", "ListenOn (server)")
	rate := flag.Int("rate", 100, "calls a second (client)")
	flag.Parse()
	logx.DisableStat()
	sc := service.ServiceConf{Name: *key, Log: logx.LogConf{Mode: "console", Level: "error", Encoding: "plain"}}
	ec := discov.EtcdConf{Hosts: strings.Split(*etcd, ","), Key: *key}
	switch {
	case *server:
		s := zrpc.MustNewServer(zrpc.RpcServerConf{ServiceConf: sc, ListenOn: *listen, Etcd: ec}, func(g *grpc.Server) {
			healthpb.RegisterHealthServer(g, health.NewServer())
		})
		fmt.Println("serving", *listen)
		s.Start()
	case *client:
		c := zrpc.MustNewClient(zrpc.RpcClientConf{Etcd: ec, NonBlock: true, Timeout: 1000})
		calls(healthpb.NewHealthClient(c.Conn()), *rate)
	default:
		fmt.Fprintln(os.Stderr, "gozero-app: -server or -client")
		os.Exit(2)
	}
}

func calls(hc healthpb.HealthClient, rate int) {
	var mu sync.Mutex
	var counts struct {
		OK     int    `json:"ok"`
		Failed int    `json:"failed"`
		Peer   string `json:"peer"`
	}
	go func() {
		for range time.Tick(100 * time.Millisecond) {
			mu.Lock()
			b, _ := json.Marshal(counts)
			mu.Unlock()
			fmt.Println(string(b))
		}
	}()
	for range time.Tick(time.Second / time.Duration(rate)) {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			var p peer.Peer
			_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				counts.Failed++
				return
			}
			counts.OK++
			if p.Addr != nil {
				counts.Peer = p.Addr.String()
			}
		}()
	}
}
