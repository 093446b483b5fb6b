package nacos

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want []string // field paths named in the error; none: valid
	}{
		{"default", func(*Config) {}, nil},
		{"zero fields take defaults", func(c *Config) { *c = Config{Servers: []string{"nacos:8848"}} }, nil},
		{"ipv6 server", func(c *Config) { c.Servers = []string{"[fd00::1]:8848"} }, nil},
		{"no servers", func(c *Config) { c.Servers = nil }, []string{"servers:"}},
		{"bad servers", func(c *Config) { c.Servers = []string{"nacos", "h:0", "h:65000", "h:x"} },
			[]string{"servers[0]", "servers[1]", "servers[2]", "servers[3]"}},
		{"namespace", func(c *Config) { c.Namespace = "a/b" }, []string{"namespace:"}},
		{"group", func(c *Config) { c.Group = "with space" }, []string{"group:"}},
		{"cluster", func(c *Config) { c.Cluster = "a_b" }, []string{"cluster:"}},
		{"request timeout", func(c *Config) { c.RequestTimeout = time.Millisecond }, []string{"request_timeout:"}},
		{"password alone", func(c *Config) { c.Password = "x" }, []string{"password:"}},
		{"sdk log level", func(c *Config) { c.SDKLogLevel = "loud" }, []string{"sdk_log_level:"}},
		{"several at once", func(c *Config) { c.Group = "?"; c.Cluster = "?" }, []string{"group:", "cluster:"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.edit(&c)
			err := c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate = nil, want errors naming %v", tc.want)
			}
			for _, field := range tc.want {
				if !strings.Contains(err.Error(), field) {
					t.Errorf("Validate = %q, does not name %q", err, field)
				}
			}
		})
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	if _, err := New(Config{}); err == nil || !strings.Contains(err.Error(), "servers") {
		t.Fatalf("New(Config{}) = %v, want an error naming servers", err)
	}
}

func TestConfigYAML(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c Config
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	want := Config{
		Servers:        []string{"10.0.0.1:8848", "10.0.0.2:8848"},
		Namespace:      "prod",
		Group:          "detour",
		Cluster:        "zone-a",
		RequestTimeout: 2500 * time.Millisecond,
		Username:       "nacos",
		Password:       "secret",
		SDKLogLevel:    "error",
	}
	if !equalConfig(c, want) {
		t.Fatalf("decoded %+v\nwant    %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func equalConfig(a, b Config) bool {
	return strings.Join(a.Servers, ",") == strings.Join(b.Servers, ",") &&
		a.Namespace == b.Namespace && a.Group == b.Group && a.Cluster == b.Cluster &&
		a.RequestTimeout == b.RequestTimeout && a.Username == b.Username &&
		a.Password == b.Password && a.SDKLogLevel == b.SDKLogLevel
}
