package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/detourmesh/detour/naming-agent/config"
	"github.com/detourmesh/detour/registry-adapters/nacos/nacostestserver"
	"github.com/detourmesh/detour/registry-adapters/registry"
)

// TestRegistryPasswordNotInURL: before, "nacos://user:pass@h:p" failed
// with "registry: nacos config: nacos config: servers[0]: ..." and the
// password in the message. Now every kind refuses a password in the URL
// at validation, says where it goes instead, and never shows it.
func TestRegistryPasswordNotInURL(t *testing.T) {
	for _, u := range []string{
		"nacos://detour:hunter2@127.0.0.1:8848",
		"nacos://127.0.0.1:8848?username=detour&password=hunter2",
		"etcd://root:hunter2@127.0.0.1:2379",
		"zookeeper://detour:hunter2@127.0.0.1:2181",
	} {
		_, err := loadConfig(flags{registry: u, set: map[string]bool{"registry": true}})
		if err == nil || !strings.Contains(err.Error(), "registry.password_file") || strings.Contains(err.Error(), "hunter2") ||
			strings.Count(err.Error(), "config:") != 1 {
			t.Errorf("%s: %v", u, err)
		}
	}
}

// TestNacosWithAuth: the agent's Nacos registry logs in with the URL's
// user and the password from $DETOUR_REGISTRY_PASSWORD (or
// registry.password_file) and registers on a Nacos with auth on.
func TestNacosWithAuth(t *testing.T) {
	srv, err := nacostestserver.Start(nacostestserver.WithAuth("detour", "nacos-pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	core, logs := observer.New(zapcore.DebugLevel)
	try := func(setup func(*config.Config)) error {
		cfg := config.Default()
		cfg.Registry.URL = "nacos://detour@" + srv.Addr()
		cfg.Registry.RequestTimeout = time.Second
		setup(&cfg)
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		r, err := newNacos(cfg, zap.New(zapcore.NewTee(core, zaptest.NewLogger(t).Core())), nil, nil)
		if err != nil {
			return err
		}
		defer r.Close()
		return r.Register(ctx, registry.Endpoint{Service: "greeter", Addr: "10.0.0.1:8080"})
	}
	t.Setenv(config.RegistryPasswordEnv, "nacos-pw")
	if err := try(func(c *config.Config) {
		if err := c.LoadTokens(os.Getenv); err != nil {
			t.Fatal(err)
		}
	}); err != nil {
		t.Fatalf("password from the environment: %v", err)
	}
	file := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(file, []byte("wrong-pw-Zq81\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := try(func(c *config.Config) {
		c.Registry.PasswordFile = file
		if err := c.LoadTokens(os.Getenv); err != nil {
			t.Fatal(err)
		}
	}); err == nil || strings.Contains(err.Error(), "Zq81") {
		t.Fatalf("a wrong password from the file: %v", err)
	}
	for _, e := range logs.All() {
		line := e.Message + fmt.Sprint(e.ContextMap())
		if strings.Contains(line, "Zq81") || strings.Contains(line, "nacos-pw") {
			t.Errorf("a password is in the log: %s", line)
		}
	}
	if logs.Len() == 0 {
		t.Log("nothing logged")
	}
}
