package embedded

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
		{"defaults with a data dir", func(*Config) {}, nil},
		{"ports 0", func(c *Config) { c.ListenClient, c.ListenPeer = "127.0.0.1:0", "127.0.0.1:0" }, nil},
		{"no data dir", func(c *Config) { c.DataDir = "" }, []string{"data_dir: must be set"}},
		{"bad name", func(c *Config) { c.Name = "a=b" }, []string{"name:"}},
		{"client without port", func(c *Config) { c.ListenClient = "127.0.0.1" }, []string{"listen_client:"}},
		{"client without host", func(c *Config) { c.ListenClient = ":2379" }, []string{"listen_client:", "missing host"}},
		{"peer bad port", func(c *Config) { c.ListenPeer = "127.0.0.1:99999" }, []string{"listen_peer:"}},
		{"same ports", func(c *Config) { c.ListenPeer = c.ListenClient }, []string{"listen_peer:", "also listen_client"}},
		{"negative timeout", func(c *Config) { c.StartTimeout = -time.Second }, []string{"start_timeout:"}},
		{"negative quota", func(c *Config) { c.QuotaBackendBytes = -1 }, []string{"quota_backend_bytes:"}},
		{"negative retention", func(c *Config) { c.CompactionRetention = -time.Hour }, []string{"compaction_retention:"}},
		{"registry fields by path", func(c *Config) {
			c.Registry.Prefix, c.Registry.LeaseTTL = "/x/", 100*time.Millisecond
		}, []string{"registry.prefix:", "registry.lease_ttl:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			c.DataDir = "/var/lib/detour/etcd"
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
	if c.DataDir != "/var/lib/detour/etcd" || c.ListenClient != "10.0.0.5:2379" || c.CompactionRetention != 30*time.Minute ||
		c.Registry.LeaseTTL != 15*time.Second || c.Registry.Prefix != "detour/services" || c.ListenPeer != "127.0.0.1:2380" {
		t.Errorf("decoded %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}
