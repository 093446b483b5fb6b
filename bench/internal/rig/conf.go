package rig

import (
	"fmt"
	"path/filepath"

	"github.com/detourmesh/detour/internal/testbed"
)

// addrs are the rig's loopback addresses, in the block the run holds
// (testbed.ReserveNet): each simulated host has its own, the reference
// proxies one of their own.
type addrs struct {
	client string // host A: the client side (egress)
	server string // host B: the server side (ingress, the apps)
	proxy  string // nginx and haproxy
}

func addrsIn(n *testbed.Net) addrs {
	return addrs{client: n.Host(2), server: n.Host(3), proxy: n.Host(9)}
}

// Ports of the rig, fixed: the addresses are the run's own.
const (
	HTTPOriginPort = 18080 // nginx `return 200`, the HTTP (and L4-over-HTTP) app
	BulkOriginPort = 15201 // iperf3 -s, the bulk-transfer app
	GRPCOriginPort = 18090 // the greeter service

	NginxHTTPPort, NginxL4Port, NginxBulkPort       = 19001, 19000, 19002
	HAProxyHTTPPort, HAProxyL4Port, HAProxyBulkPort = 19101, 19100, 19102
	NginxGRPCPort, HAProxyGRPCPort                  = 19003, 19103
)

// Services the sidecar carries, as the agent's config declares them.
const agentServices = `services:
  web: {protocol: http, timeout: 60s}
  webtcp: {protocol: tcp, timeout: 60s}
  blob: {protocol: tcp, timeout: 60s}
  greeter: {protocol: grpc, timeout: 60s}
`

// originNginx is the HTTP app: a separate nginx with workers of its own,
// so no proxy under test shares a process with the app.
func originNginx(dir string, ip addrs, workers int) string {
	return fmt.Sprintf(`worker_processes %[4]d;
pid %[1]s/origin.pid;
error_log %[1]s/origin-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/tmp;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  server { listen %[2]s:%[3]d; location / { return 200 "hello world\n"; } }
}
`, filepath.Join(dir, "origin"), ip.server, HTTPOriginPort, workers)
}

// proxyNginx is the nginx under test: workers processes, keep-alive to
// the apps, HTTP, gRPC (grpc_pass over an http2 listener) and stream (L4)
// proxies.
func proxyNginx(dir string, ip addrs, workers int) string {
	return fmt.Sprintf(`load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes %[11]d;
pid %[1]s/proxy.pid;
error_log %[1]s/proxy-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/tmp;
  proxy_temp_path %[1]s/tmp;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  upstream app { server %[3]s:%[4]d; keepalive 64; keepalive_requests 1000000; }
  upstream grpcapp { server %[3]s:%[9]d; keepalive 64; keepalive_requests 1000000; }
  server { listen %[2]s:%[5]d;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; } }
  server { listen %[2]s:%[10]d http2;
    location / { grpc_pass grpc://grpcapp; } }
}
stream {
  server { listen %[2]s:%[6]d; proxy_pass %[3]s:%[4]d; }
  server { listen %[2]s:%[7]d; proxy_pass %[3]s:%[8]d; proxy_timeout 60s; }
}
`, filepath.Join(dir, "nginx"), ip.proxy, ip.server, HTTPOriginPort, NginxHTTPPort, NginxL4Port, NginxBulkPort, BulkOriginPort,
		GRPCOriginPort, NginxGRPCPort, workers)
}

// haproxyConf is haproxy under test: threads threads, keep-alive and
// connection reuse to the apps, HTTP, gRPC (proto h2 on both sides) and
// TCP proxies.
func haproxyConf(dir string, ip addrs, threads int) string {
	return fmt.Sprintf(`global
  nbthread %[11]d
  maxconn 8000
  pidfile %[1]s/haproxy.pid
defaults
  timeout connect 5s
  timeout client 60s
  timeout server 60s
listen http
  mode http
  bind %[2]s:%[5]d
  http-reuse always
  server app %[3]s:%[4]d
listen grpc
  mode http
  bind %[2]s:%[10]d proto h2
  http-reuse always
  server app %[3]s:%[9]d proto h2
listen tcp
  mode tcp
  bind %[2]s:%[6]d
  server app %[3]s:%[4]d
listen bulk
  mode tcp
  bind %[2]s:%[7]d
  server app %[3]s:%[8]d
`, filepath.Join(dir, "haproxy"), ip.proxy, ip.server, HTTPOriginPort, HAProxyHTTPPort, HAProxyL4Port, HAProxyBulkPort, BulkOriginPort,
		GRPCOriginPort, HAProxyGRPCPort, threads)
}
