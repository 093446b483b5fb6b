package etcd

import (
	"os"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr []string // substrings; none means valid
	}{
		{"default", func(*Config) {}, nil},
		{"zero durations take defaults", func(c *Config) { *c = Config{Endpoints: []string{"h:1"}} }, nil},
		{"url endpoint", func(c *Config) { c.Endpoints = []string{"http://10.0.0.1:2379", "https://h:2379"} }, nil},
		{"nested prefix", func(c *Config) { c.Prefix = "a/b/c" }, nil},
		{"no endpoints", func(c *Config) { c.Endpoints = nil }, []string{"endpoints: must not be empty"}},
		{"empty endpoint", func(c *Config) { c.Endpoints = []string{"h:1", ""} }, []string{"endpoints[1]:"}},
		{"comma in endpoint", func(c *Config) { c.Endpoints = []string{"h:1,h:2"} }, []string{"endpoints[0]:"}},
		{"leading slash", func(c *Config) { c.Prefix = "/services" }, []string{"prefix:"}},
		{"trailing slash", func(c *Config) { c.Prefix = "services/" }, []string{"prefix:"}},
		{"empty segment", func(c *Config) { c.Prefix = "a//b" }, []string{"prefix:", "empty segment"}},
		{"space in prefix", func(c *Config) { c.Prefix = "a b" }, []string{"prefix:"}},
		{"negative dial", func(c *Config) { c.DialTimeout = -1 }, []string{"dial_timeout: must be > 0"}},
		{"sub-second ttl", func(c *Config) { c.LeaseTTL = 500 * time.Millisecond }, []string{"lease_ttl:"}},
		{"fractional ttl", func(c *Config) { c.LeaseTTL = 1500 * time.Millisecond }, []string{"lease_ttl:"}},
		{"negative request", func(c *Config) { c.RequestTimeout = -time.Second }, []string{"request_timeout: must be > 0"}},
		{"all at once", func(c *Config) {
			c.Endpoints, c.Prefix, c.LeaseTTL = nil, "/x", -time.Second
		}, []string{"endpoints:", "prefix:", "lease_ttl:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.edit(&c)
			err := c.Validate()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want error with %q", tt.wantErr)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Validate() = %q, want it to contain %q", err, want)
				}
			}
		})
	}
}

func TestConfigYAML(t *testing.T) {
	b, err := os.ReadFile("testdata/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c := Default()
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	want := Config{
		Endpoints:      []string{"10.0.0.1:2379", "10.0.0.2:2379"},
		Prefix:         "mesh/services",
		DialTimeout:    3 * time.Second,
		LeaseTTL:       15 * time.Second,
		RequestTimeout: 2500 * time.Millisecond,
	}
	if c.Prefix != want.Prefix || c.DialTimeout != want.DialTimeout || c.LeaseTTL != want.LeaseTTL ||
		c.RequestTimeout != want.RequestTimeout || strings.Join(c.Endpoints, ",") != strings.Join(want.Endpoints, ",") {
		t.Errorf("decoded %+v, want %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	_, err := New(Config{Prefix: "/bad"})
	if err == nil || !strings.Contains(err.Error(), "prefix:") || !strings.Contains(err.Error(), "endpoints:") {
		t.Fatalf("New = %v, want errors naming prefix and endpoints", err)
	}
}
