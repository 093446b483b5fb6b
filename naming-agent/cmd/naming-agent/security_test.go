package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"

	"github.com/detourmesh/detour/naming-agent/config"
	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

func fakeKinds() map[string]newRegistry {
	srv := registrytest.NewFakeServer()
	return map[string]newRegistry{
		"embedded": func(config.Config, *zap.Logger, registry.MalformedFunc, registry.SessionStore) (registry.Registry, error) {
			return srv.Client(nil), nil
		},
	}
}

// TestNonLoopbackNeedsToken: an API on every interface without a token
// stops the agent at start, naming the field and the fix.
func TestNonLoopbackNeedsToken(t *testing.T) {
	t.Setenv(config.TokenEnv, "")
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"--data-dir", t.TempDir(), "--http-listen", "0.0.0.0:0", "--grpc-listen", "127.0.0.1:0"},
		io.Discard, &stderr, fakeKinds(), nil)
	if code != 2 || !strings.Contains(stderr.String(), `http_listen: "0.0.0.0:0" is not a loopback address`) || !strings.Contains(stderr.String(), config.TokenEnv) {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}

// TestTokenFromEnvAndSecretFile runs the binary's wiring with the token
// in the environment: a publish without it is 401, with it 200; the
// per-boot sidecar secret is in the data dir, 0600; no log line holds
// the token.
func TestTokenFromEnvAndSecretFile(t *testing.T) {
	const token = "env-token-7f3a9c"
	t.Setenv(config.TokenEnv, token)
	dir := t.TempDir()
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	var httpAddr string
	ready := make(chan struct{})
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--data-dir", dir, "--http-listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0", "--log-level", "debug"},
			io.Discard, &logs, fakeKinds(), func(h, g string) { httpAddr = h; close(ready) })
	}()
	<-ready
	publish := func(tok string) int {
		req, _ := http.NewRequest("POST", "http://"+httpAddr+"/v1/publish", strings.NewReader(`{"service":"svc","port":8080}`))
		if tok != "" {
			req.Header.Set("X-Detour-Token", tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := publish(""); code != 401 {
		t.Errorf("publish without the token: %d", code)
	}
	if code := publish(token); code != 200 {
		t.Errorf("publish with the token: %d", code)
	}
	st, err := os.Stat(filepath.Join(dir, "sidecar.secret"))
	if err != nil || st.Mode().Perm() != 0o600 || st.Size() < 32 {
		t.Errorf("sidecar.secret: %v, %v", st, err)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d", code)
	}
	if strings.Contains(logs.String(), token) {
		t.Errorf("the token is in the log")
	}
	if !strings.Contains(logs.String(), `"api_token":true`) {
		t.Errorf("the start line does not say the API is protected: %s", logs.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
