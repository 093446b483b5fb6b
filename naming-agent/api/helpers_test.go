package api

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/detourmesh/detour/naming-agent/agent"
	"github.com/detourmesh/detour/naming-agent/config"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const wait = 10 * time.Second

type env struct {
	srv   *registrytest.FakeServer
	other *registrytest.Fake
	a     *agent.Agent
	cfg   config.Config
	ready *atomic.Bool
}

func newEnv(t *testing.T) *env { t.Helper(); return newEnvWith(t, nil) }

// newEnvWith is newEnv with mutate applied to the config.
func newEnvWith(t *testing.T, mutate func(*config.Config)) *env {
	t.Helper()
	e := &env{srv: registrytest.NewFakeServer(), ready: &atomic.Bool{}}
	c := config.Default()
	c.DataDir = t.TempDir()
	c.Sidecar.ProbeInterval = 10 * time.Millisecond
	c.Sidecar.ProbeTimeout = 50 * time.Millisecond
	c.HealthCheck.Interval = time.Hour // apps here do not listen; no check withdraws them
	c.API.MaxBodyBytes = 4096
	c.API.MaxWait = 5 * time.Second
	if mutate != nil {
		mutate(&c)
	}
	e.cfg = c
	cli := e.srv.Client(nil)
	e.other = e.srv.Client(nil)
	a, err := agent.New(c, cli,
		agent.WithLogger(zaptest.NewLogger(t)),
		agent.WithPortProbe(func(string, int) bool { return true }),
		agent.WithReadyProbe(func(context.Context, string) error {
			if e.ready.Load() {
				return nil
			}
			return errors.New("refused")
		}))
	if err != nil {
		t.Fatal(err)
	}
	e.a = a
	t.Cleanup(func() { a.Close(); cli.Close(); e.other.Close() })
	return e
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	registrytest.Eventually(t, wait, what, cond)
}
