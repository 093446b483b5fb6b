package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/detourmesh/detour/naming-agent/config"
	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFlagsOverrideFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "agent.yaml")
	os.WriteFile(file, []byte("host_ip: 10.0.0.1\nregistry:\n  url: etcd://10.0.0.9:2379\ndata_dir: /from/file\n"), 0o644)
	f, err := parseFlags([]string{"--config", file, "--host-ip", "10.0.0.2", "--registry", "zookeeper://127.0.0.1:2181", "--http-listen", "127.0.0.1:9", "--grpc-listen", "127.0.0.1:10"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HostIP != "10.0.0.2" || cfg.Registry.URL != "zookeeper://127.0.0.1:2181" || cfg.DataDir != "/from/file" || cfg.HTTPListen != "127.0.0.1:9" || cfg.GRPCListen != "127.0.0.1:10" {
		t.Errorf("config = %+v", cfg)
	}
}

func TestBadConfigExits2(t *testing.T) {
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"--registry", "consul://x:1", "--data-dir", t.TempDir()}, io.Discard, &stderr, registries(), nil)
	if code != 2 || !strings.Contains(stderr.String(), "registry.url") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	if code := run(context.Background(), []string{"--nope"}, io.Discard, &bytes.Buffer{}, registries(), nil); code != 2 {
		t.Fatalf("unknown flag: exit %d", code)
	}
}

// TestCommandLineMistakes: a stray argument is a usage error that says
// so (it used to exit 2 without a word); -h is not an error.
func TestCommandLineMistakes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want []string // on stderr
	}{
		{[]string{"extra-arg"}, 2, []string{`naming-agent: unexpected argument "extra-arg"`, "Usage of naming-agent:", "-data-dir"}},
		{[]string{"--log-level", "warn", "serve", "now"}, 2, []string{`unexpected argument "serve"`, "-data-dir"}},
		{[]string{"--nope"}, 2, []string{"flag provided but not defined: -nope", "-data-dir"}},
		{[]string{"-h"}, 0, []string{"-data-dir"}},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tc.args, &stdout, &stderr, registries(), nil)
		if code != tc.code {
			t.Errorf("%q: exit %d, want %d; stderr %q", tc.args, code, tc.code, stderr.String())
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr.String(), w) {
				t.Errorf("%q: stderr %q lacks %q", tc.args, stderr.String(), w)
			}
		}
		if stdout.Len() != 0 {
			t.Errorf("%q: stdout %q", tc.args, stdout.String())
		}
	}
}

func TestVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--version"}, &stdout, &stderr, registries(), nil); code != 0 || stderr.Len() != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	if got := stdout.String(); !strings.HasPrefix(got, "naming-agent ") || strings.Count(got, "\n") != 1 {
		t.Fatalf("stdout %q, want one line naming-agent VERSION ...", got)
	}
}

func TestHosts(t *testing.T) {
	for url, want := range map[string]string{
		"etcd://a:1,b:2":                    "a:1,b:2",
		"zookeeper://127.0.0.1:2181":        "127.0.0.1:2181",
		"nacos://n:8848?namespace=x&group=": "n:8848",
	} {
		if got := strings.Join(hosts(url), ","); got != want {
			t.Errorf("hosts(%q) = %q, want %q", url, got, want)
		}
	}
}

// TestRunServesAndStops runs the whole binary's wiring on a fake registry.
func TestRunServesAndStops(t *testing.T) {
	srv := registrytest.NewFakeServer()
	kinds := map[string]newRegistry{
		"embedded": func(config.Config, *zap.Logger, registry.MalformedFunc, registry.SessionStore) (registry.Registry, error) {
			return srv.Client(nil), nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	var httpAddr string
	var once sync.Once
	ready := make(chan struct{})
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--data-dir", t.TempDir(), "--http-listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0", "--log-level", "warn"},
			io.Discard, &bytes.Buffer{}, kinds, func(h, g string) { once.Do(func() { httpAddr = h; close(ready) }) })
	}()
	<-ready
	resp, err := http.Post("http://"+httpAddr+"/v1/publish", "application/json", strings.NewReader(`{"service":"svc","port":8080}`))
	if err != nil {
		t.Fatal(err)
	}
	var pub map[string]any
	json.NewDecoder(resp.Body).Decode(&pub)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("publish: %d %v", resp.StatusCode, pub)
	}
	other := srv.Client(nil)
	defer other.Close()
	registrytest.Eventually(t, 10e9, "registered", func() bool {
		eps, _ := other.List(context.Background(), "svc")
		return len(eps) == 1
	})
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d", code)
	}
	// The registry client was closed: the registration is gone.
	eps, _ := other.List(context.Background(), "svc")
	if len(eps) != 0 {
		t.Errorf("registration left after shutdown: %v", eps)
	}
}

// TestDataDirRefused: a data dir that cannot be written, or that another
// agent holds, stops the agent at start with the path in the message.
func TestDataDirRefused(t *testing.T) {
	srv := registrytest.NewFakeServer()
	kinds := map[string]newRegistry{
		"embedded": func(config.Config, *zap.Logger, registry.MalformedFunc, registry.SessionStore) (registry.Registry, error) {
			return srv.Client(nil), nil
		},
	}
	args := func(dir string) []string {
		return []string{"--data-dir", dir, "--http-listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0", "--log-level", "warn"}
	}
	// Under a regular file: not writable even for root.
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	var stderr bytes.Buffer
	if code := run(context.Background(), args(filepath.Join(file, "data")), io.Discard, &stderr, kinds, nil); code != 1 || !strings.Contains(stderr.String(), file) {
		t.Fatalf("unwritable data dir: exit %d, stderr %q", code, stderr.String())
	}

	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, args(dir), io.Discard, &bytes.Buffer{}, kinds, func(string, string) { close(ready) })
	}()
	<-ready
	stderr.Reset()
	if code := run(context.Background(), args(dir), io.Discard, &stderr, kinds, nil); code != 1 || !strings.Contains(stderr.String(), "in use") {
		t.Fatalf("second agent on one data dir: exit %d, stderr %q", code, stderr.String())
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("first agent exit %d", code)
	}
}
