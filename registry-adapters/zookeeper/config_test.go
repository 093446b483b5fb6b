package zookeeper

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   []string // substrings of the error, one per bad field
	}{
		{"no servers", func(c *Config) { c.Servers = nil }, []string{"servers: must not be empty"}},
		{"bad servers", func(c *Config) { c.Servers = []string{"zk1:2181", "", "zk3:99999", ":2181", "zk4"} },
			[]string{"servers[1]:", "servers[2]:", "servers[3]:"}},
		{"relative root", func(c *Config) { c.Root = "dubbo" }, []string{"root:"}},
		{"slash root", func(c *Config) { c.Root = "/" }, []string{"root:"}},
		{"trailing slash", func(c *Config) { c.Root = "/dubbo/" }, []string{"root:"}},
		{"dot segment", func(c *Config) { c.Root = "/a/../b" }, []string{"root:"}},
		{"timeouts", func(c *Config) { c.SessionTimeout = time.Millisecond; c.RequestTimeout = 0 },
			[]string{"session_timeout: must be at least 100ms", "request_timeout: must be > 0"}},
		{"protocol", func(c *Config) { c.Protocol = "dub bo" }, []string{"protocol:"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Default()
			tc.change(&cfg)
			err := cfg.Validate()
			if err == nil {
				t.Fatal("Validate() = nil, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to mention %q", err, w)
				}
			}
			if n := strings.Count(err.Error(), "\n") + 1; n != len(tc.want) {
				t.Errorf("Validate() reported %d problems, want %d: %q", n, len(tc.want), err)
			}
		})
	}
	ok := Default()
	ok.Servers = []string{"zk1", "zk2:2182", "[::1]:2181"}
	ok.Root = "/my-group/nested"
	ok.Protocol = "tri"
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate(%+v) = %v", ok, err)
	}
}

func TestConfigYAML(t *testing.T) {
	in := `
servers: ["zk1:2181", "zk2:2181"]
root: /dubbo-prod
session_timeout: 30s
request_timeout: 5s
protocol: tri
`
	cfg := Default()
	if err := yaml.Unmarshal([]byte(in), &cfg); err != nil {
		t.Fatal(err)
	}
	want := Config{Servers: []string{"zk1:2181", "zk2:2181"}, Root: "/dubbo-prod",
		SessionTimeout: 30 * time.Second, RequestTimeout: 5 * time.Second, Protocol: "tri"}
	if !slicesEqual(cfg.Servers, want.Servers) || cfg.Root != want.Root || cfg.SessionTimeout != want.SessionTimeout ||
		cfg.RequestTimeout != want.RequestTimeout || cfg.Protocol != want.Protocol {
		t.Errorf("decoded %+v, want %+v", cfg, want)
	}
	// Fields left out keep their defaults.
	cfg = Default()
	if err := yaml.Unmarshal([]byte("servers: [zk:2181]"), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Root != "/dubbo" || cfg.SessionTimeout != Default().SessionTimeout {
		t.Errorf("defaults lost: %+v", cfg)
	}
}

func slicesEqual(a, b []string) bool { return strings.Join(a, "\x00") == strings.Join(b, "\x00") }
