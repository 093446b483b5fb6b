package config

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
}

func TestLoadFull(t *testing.T) {
	c, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.HostIP != "10.0.0.5" || c.Registry.SessionTTL != 15*time.Second || c.Sidecar.ProbeInterval != 100*time.Millisecond {
		t.Errorf("fields not read: %+v", c)
	}
	// Fields the file leaves out keep their defaults.
	if c.Sidecar.DownThreshold != Default().Sidecar.DownThreshold || c.Outlier.ConsecutiveFailures != 5 {
		t.Errorf("defaults lost: %+v", c.Sidecar)
	}
	dubbo := c.ServiceSettings("org.apache.dubbo.demo.DemoService")
	if *dubbo.Mesh || dubbo.Timeout != 2*time.Second {
		t.Errorf("dubbo settings = %+v", dubbo)
	}
	g := c.ServiceSettings("greeter")
	if !*g.Mesh || g.Protocol != "grpc" || g.Timeout != 500*time.Millisecond || *g.Retries != 1 {
		t.Errorf("greeter settings = %+v", g)
	}
	other := c.ServiceSettings("other")
	if !*other.Mesh || other.Protocol != "tcp" || *other.Retries != 2 {
		t.Errorf("default settings = %+v", other)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"unknown key", "hostip: 1.2.3.4\n", "field hostip not found"},
		{"unknown nested key", "sidecar:\n  probe: 1s\n", "field probe not found"},
		{"bad duration", "sidecar:\n  probe_interval: soon\n", "soon"},
		{"two documents", "host_ip: 1.2.3.4\n---\nhost_ip: 1.2.3.5\n", "more than one"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if c, err := Parse(nil); err != nil || c.HostIP != Default().HostIP {
		t.Fatalf("Parse(empty) = %+v, %v", c, err)
	}
}

func TestValidateNamesFields(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"host ip", func(c *Config) { c.HostIP = "0.0.0.0" }, "host_ip:"},
		{"http listen", func(c *Config) { c.HTTPListen = "nowhere" }, "http_listen:"},
		{"data dir", func(c *Config) { c.DataDir = "" }, "data_dir:"},
		{"registry kind", func(c *Config) { c.Registry.URL = "consul://x:1" }, "registry.url:"},
		{"registry no port", func(c *Config) { c.Registry.URL = "etcd://x" }, "registry.url:"},
		{"session ttl", func(c *Config) { c.Registry.SessionTTL = 0 }, "registry.session_ttl: must be > 0"},
		{"ingress from", func(c *Config) { c.Ports.Ingress.From = 0 }, "ports.ingress.from:"},
		{"ingress to", func(c *Config) { c.Ports.Ingress.To = 70000 }, "ports.ingress.to:"},
		{"ingress reversed", func(c *Config) { c.Ports.Ingress = PortRange{From: 20010, To: 20000} }, "ports.ingress.to:"},
		{"overlap", func(c *Config) { c.Ports.Egress = PortRange{From: 20500, To: 21500} }, "ports.egress: overlaps"},
		{"health in range", func(c *Config) { c.Ports.Health = 20001 }, "ports.health:"},
		{"egress ip", func(c *Config) { c.Ports.EgressIP = "0.0.0.0" }, "ports.egress_ip:"},
		{"app ip", func(c *Config) { c.Ports.AppIP = "localhost" }, "ports.app_ip:"},
		{"probe interval", func(c *Config) { c.Sidecar.ProbeInterval = -time.Second }, "sidecar.probe_interval:"},
		{"ready threshold", func(c *Config) { c.Sidecar.ReadyThreshold = 0 }, "sidecar.ready_threshold:"},
		{"hc threshold", func(c *Config) { c.HealthCheck.UnhealthyThreshold = 0 }, "health_check.unhealthy_threshold:"},
		{"outlier cap", func(c *Config) { c.Outlier.MaxEjectionTime = time.Second }, "outlier.max_ejection_time:"},
		{"outlier percent", func(c *Config) { c.Outlier.MaxEjectionPercent = 101 }, "outlier.max_ejection_percent:"},
		{"body limit", func(c *Config) { c.API.MaxBodyBytes = 1 }, "api.max_body_bytes:"},
		{"service name", func(c *Config) { c.Services = map[string]Service{"a/b": {}} }, "services.a/b:"},
		{"service protocol", func(c *Config) { c.Services = map[string]Service{"s": {Protocol: "udp"}} }, "services.s.protocol:"},
		{"service retries", func(c *Config) { n := -1; c.Services = map[string]Service{"s": {Retries: &n}} }, "services.s.retries:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mutate(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestRegistryKind(t *testing.T) {
	for u, want := range map[string]string{
		"embedded":                            "embedded",
		"etcd://127.0.0.1:2379":               "etcd",
		"etcd://a:1,b:2":                      "etcd",
		"zookeeper://127.0.0.1:2181":          "zookeeper",
		"nacos://127.0.0.1:8848?namespace=ns": "nacos",
	} {
		if got, err := RegistryKind(u); err != nil || got != want {
			t.Errorf("RegistryKind(%q) = %q, %v; want %q", u, got, err, want)
		}
	}
	for _, u := range []string{"", "etcd", "etcd://", "etcd://a", "consul://a:1", "nacos://?namespace=x"} {
		if _, err := RegistryKind(u); err == nil {
			t.Errorf("RegistryKind(%q) accepted", u)
		}
	}
}

func TestFrontendsConfig(t *testing.T) {
	if Default().Frontends.ZooKeeper.Listen != "" {
		t.Fatal("the ZooKeeper front end is on by default")
	}
	dir := t.TempDir()
	path := dir + "/agent.yaml"
	os.WriteFile(path, []byte("frontends:\n  zookeeper:\n    listen: 127.0.0.1:2181\n    max_session_timeout: 1s\n"), 0o644)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	if err == nil || !strings.Contains(err.Error(), "frontends.zookeeper.max_session_timeout") {
		t.Fatalf("Validate = %v, want the field path frontends.zookeeper.max_session_timeout", err)
	}
	c.Frontends.ZooKeeper.MaxSessionTimeout = 40 * time.Second
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
