package config

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func writeFile(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadSecret(t *testing.T) {
	env := map[string]string{"T": "  from-env\n", "BAD": "a\x00b"}
	getenv := func(k string) string { return env[k] }
	tests := []struct {
		name, file, env, want, err string
	}{
		{name: "file", file: writeFile(t, "s3cret\n", 0o600), want: "s3cret"},
		{name: "file over env", file: writeFile(t, "f", 0o640), env: "T", want: "f"},
		{name: "env", env: "T", want: "from-env"},
		{name: "neither", want: ""},
		{name: "world-readable", file: writeFile(t, "s3cret", 0o644), err: "readable by every user"},
		{name: "empty", file: writeFile(t, " \n", 0o600), err: "empty"},
		{name: "control chars", file: writeFile(t, "a\rb", 0o600), err: "control characters"},
		{name: "env control chars", env: "BAD", err: "control characters"},
		{name: "too long", file: writeFile(t, strings.Repeat("x", 5000), 0o600), err: "longer than"},
		{name: "missing", file: "/nonexistent/token", err: "no such file"},
	}
	for _, tt := range tests {
		got, err := ReadSecret(tt.file, tt.env, getenv)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: %v, want error with %q", tt.name, err, tt.err)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Errorf("%s: error shows the secret: %v", tt.name, err)
			}
			continue
		}
		if err != nil || got.Reveal() != tt.want {
			t.Errorf("%s: %q, %v; want %q", tt.name, got.Reveal(), err, tt.want)
		}
	}
}

// TestSecretNeverPrints: the config with tokens, printed every way a log
// line or a status page could, never shows them.
func TestSecretNeverPrints(t *testing.T) {
	c := Default()
	c.API.Token = "tok-AAAA"
	c.API.ScopedTokens = []ScopedToken{{Token: "tok-BBBB", Services: []string{"x"}}}
	j, _ := json.Marshal(c)
	y, _ := yaml.Marshal(c)
	for _, s := range []string{fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprint(c.API.Token), string(j), string(y)} {
		if strings.Contains(s, "tok-") {
			t.Errorf("a token shows: %.300s", s[strings.Index(s, "tok-")-50:])
		}
	}
}

// TestListenNeedsToken: before, a config could put the unauthenticated
// API on every interface. Now a non-loopback API, gRPC or admin address
// is refused unless a token is set.
func TestListenNeedsToken(t *testing.T) {
	for _, f := range []struct {
		field string
		set   func(*Config, string)
	}{
		{"http_listen", func(c *Config, a string) { c.HTTPListen = a }},
		{"grpc_listen", func(c *Config, a string) { c.GRPCListen = a }},
		{"sidecar.admin", func(c *Config, a string) { c.Sidecar.Admin = a }},
	} {
		for _, addr := range []string{"0.0.0.0:7700", ":7700", "10.0.0.5:7700", "[::]:7700"} {
			c := Default()
			f.set(&c, addr)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), f.field+": ") || !strings.Contains(err.Error(), "api.token_file") {
				t.Errorf("%s %s without a token: %v", f.field, addr, err)
			}
			c.API.Token = "t"
			if err := c.Validate(); err != nil {
				t.Errorf("%s %s with a token: %v", f.field, addr, err)
			}
		}
		for _, addr := range []string{"127.0.0.1:7700", "127.0.0.9:7700", "[::1]:7700", "localhost:7700"} {
			c := Default()
			f.set(&c, addr)
			if err := c.Validate(); err != nil {
				t.Errorf("%s %s: %v", f.field, addr, err)
			}
		}
	}
}

func TestLoadTokens(t *testing.T) {
	c, err := Parse([]byte(fmt.Sprintf(`
http_listen: 0.0.0.0:7700
api:
  token_file: %s
  scoped_tokens:
    - token_file: %s
      services: ["orders-*"]
      ports: [{from: 8080, to: 8089}]
  allowed_ports: [{from: 8000, to: 9000}]
`, writeFile(t, "full", 0o600), writeFile(t, "scoped", 0o600))))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.LoadTokens(func(k string) string { return map[string]string{TokenEnv: "env"}[k] }); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.API.Token.Reveal() != "full" || c.API.ScopedTokens[0].Token.Reveal() != "scoped" {
		t.Fatalf("tokens not read")
	}
	s := c.API.ScopedTokens[0]
	for _, tt := range []struct {
		svc  string
		port int
		want bool
	}{{"orders-eu", 8080, true}, {"orders-eu", 0, true}, {"orders-eu", 9000, false}, {"orders", 8080, false}, {"billing", 8080, false}} {
		if got := s.Allows(tt.svc, tt.port); got != tt.want {
			t.Errorf("Allows(%s, %d) = %v", tt.svc, tt.port, got)
		}
	}

	bad := Default()
	bad.API.ScopedTokens = []ScopedToken{{TokenFile: writeFile(t, "x", 0o600), Services: []string{"["}, Ports: []PortRange{{From: 9, To: 1}}}}
	bad.API.AllowedPorts = []PortRange{{From: 0, To: 1}}
	err = bad.Validate()
	for _, want := range []string{"api.scoped_tokens[0].services", "api.scoped_tokens[0].ports[0].to", "api.allowed_ports[0].from"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
	missing := Default()
	missing.API.ScopedTokens = []ScopedToken{{Services: []string{"x"}}}
	if err := missing.LoadTokens(nil); err == nil || !strings.Contains(err.Error(), "api.scoped_tokens[0].token_file: must be set") {
		t.Errorf("scoped token without a file: %v", err)
	}
}

func TestTokenForReadsNeedsToken(t *testing.T) {
	c := Default()
	c.API.TokenForReads = true
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "api.token_for_reads: needs api.token_file") {
		t.Errorf("token_for_reads without a token: %v", err)
	}
	c.API.Token = "t"
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}
