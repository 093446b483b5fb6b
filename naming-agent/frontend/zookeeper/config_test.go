package zookeeper

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   string // "" for valid
	}{
		{"default", func(*Config) {}, ""},
		{"no listen", func(c *Config) { c.Listen = "" }, "listen: "},
		{"listen without a port", func(c *Config) { c.Listen = "127.0.0.1" }, "listen: "},
		{"tick", func(c *Config) { c.TickTime = 0 }, "tick_time: must be > 0"},
		{"min timeout", func(c *Config) { c.MinSessionTimeout = 0 }, "min_session_timeout: "},
		{"max below min", func(c *Config) { c.MaxSessionTimeout = time.Second }, "max_session_timeout: must be at least min_session_timeout"},
		{"max too large", func(c *Config) { c.MaxSessionTimeout = 1000 * time.Hour }, "max_session_timeout: must fit"},
		{"connect timeout", func(c *Config) { c.ConnectTimeout = -1 }, "connect_timeout: "},
		{"max client conns", func(c *Config) { c.MaxClientConns = -1 }, "max_client_conns: "},
		{"max sessions", func(c *Config) { c.MaxSessions = -1 }, "max_sessions: "},
		{"server id", func(c *Config) { c.ServerID = 255 }, "server_id: "},
		{"queue", func(c *Config) { c.OutgoingQueueBytes = 1000 }, "outgoing_queue_bytes: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.change(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate = %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("New with a zero Config succeeded")
	}
}

func TestConfigYAML(t *testing.T) {
	c := Default()
	in := "listen: 127.0.0.1:2182\nmin_session_timeout: 2s\nmax_session_timeout: 1m\nmax_client_conns: 0\n"
	if err := yaml.Unmarshal([]byte(in), &c); err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:2182" || c.MinSessionTimeout != 2*time.Second || c.MaxSessionTimeout != time.Minute ||
		c.MaxClientConns != 0 || c.TickTime != 2*time.Second {
		t.Fatalf("decoded %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
