package config

import (
	"os"
	"strings"
	"testing"
)

func TestEtcdFrontendConfig(t *testing.T) {
	if Default().Frontends.Etcd.Listen != "" {
		t.Fatal("the etcd front end is on by default")
	}
	path := t.TempDir() + "/agent.yaml"
	os.WriteFile(path, []byte("frontends:\n  etcd:\n    listen: 127.0.0.1:2379\n    layouts: [{kind: consul}]\n"), 0o644)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "frontends.etcd.layouts[0].kind") {
		t.Fatalf("Validate = %v, want the field path frontends.etcd.layouts[0].kind", err)
	}
	c.Frontends.Etcd.Layouts = Default().Frontends.Etcd.Layouts
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.Registry.URL = "zookeeper://127.0.0.1:2181"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "frontends.etcd.listen") {
		t.Fatalf("Validate with ZooKeeper = %v, want frontends.etcd.listen refused", err)
	}
}
