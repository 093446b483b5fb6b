package rig

import (
	"fmt"
	"path/filepath"
)

// Addresses of the rig. Each simulated host has its own loopback address;
// the reference proxies get one of their own.
const (
	ClientIP = "127.0.20.2" // host A: the client side (egress)
	ServerIP = "127.0.20.3" // host B: the server side (ingress, the apps)
	ProxyIP  = "127.0.20.9" // nginx and haproxy

	HTTPOriginPort = 18080 // nginx `return 200`, the HTTP (and L4-over-HTTP) app
	BulkOriginPort = 15201 // iperf3 -s, the bulk-transfer app
	GRPCOriginPort = 18090 // the greeter service

	NginxHTTPPort, NginxL4Port, NginxBulkPort       = 19001, 19000, 19002
	HAProxyHTTPPort, HAProxyL4Port, HAProxyBulkPort = 19101, 19100, 19102
)

// Services the sidecar carries, as the agent's config declares them.
const agentServices = `services:
  web: {protocol: http, timeout: 60s}
  webtcp: {protocol: tcp, timeout: 60s}
  blob: {protocol: tcp, timeout: 60s}
  greeter: {protocol: grpc, timeout: 60s}
`

// originNginx is the HTTP app: a separate nginx with one worker, so no
// proxy under test shares a process with the app.
func originNginx(dir string) string {
	return fmt.Sprintf(`worker_processes 1;
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
`, filepath.Join(dir, "origin"), ServerIP, HTTPOriginPort)
}

// proxyNginx is the nginx under test: one worker, keep-alive to the app,
// HTTP and stream (L4) proxies.
func proxyNginx(dir string) string {
	return fmt.Sprintf(`load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1;
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
  server { listen %[2]s:%[5]d;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
stream {
  server { listen %[2]s:%[6]d; proxy_pass %[3]s:%[4]d; }
  server { listen %[2]s:%[7]d; proxy_pass %[3]s:%[8]d; proxy_timeout 60s; }
}
`, filepath.Join(dir, "nginx"), ProxyIP, ServerIP, HTTPOriginPort, NginxHTTPPort, NginxL4Port, NginxBulkPort, BulkOriginPort)
}

// haproxyConf is haproxy under test: one thread, keep-alive and
// connection reuse to the app, HTTP and TCP proxies.
func haproxyConf(dir string) string {
	return fmt.Sprintf(`global
  nbthread 1
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
listen tcp
  mode tcp
  bind %[2]s:%[6]d
  server app %[3]s:%[4]d
listen bulk
  mode tcp
  bind %[2]s:%[7]d
  server app %[3]s:%[8]d
`, filepath.Join(dir, "haproxy"), ProxyIP, ServerIP, HTTPOriginPort, HAProxyHTTPPort, HAProxyL4Port, HAProxyBulkPort, BulkOriginPort)
}
