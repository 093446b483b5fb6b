package config

import (
	"os"
	"strings"
	"testing"
)

func TestNacosFrontendConfig(t *testing.T) {
	if Default().Frontends.Nacos.Listen != "" {
		t.Fatal("the Nacos front end is on by default")
	}
	path := t.TempDir() + "/agent.yaml"
	os.WriteFile(path, []byte("frontends:\n  nacos:\n    listen: 127.0.0.1:65000\n    setup_timeout: 0s\n"), 0o644)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	for _, field := range []string{"frontends.nacos.listen", "frontends.nacos.setup_timeout"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Fatalf("Validate = %v, want the field path %s", err, field)
		}
	}
	c.Frontends.Nacos.Listen = "127.0.0.1:8848"
	c.Frontends.Nacos.SetupTimeout = Default().Frontends.Nacos.SetupTimeout
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
