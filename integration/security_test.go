package integration

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/detourmesh/detour/internal/testbed"
)

// TestTokenEndToEnd: two hosts whose agents ask for an API token
// (api.token_file). Their sidecars come up (they prove themselves with
// the agent's per-boot secret), the greeter server publishes with the
// token from its environment and the client calls it through both
// sidecars. A publish without the token is 401; the sidecar's admin port
// is 403 even with it.
func TestTokenEndToEnd(t *testing.T) {
	const token = "e2e-token-5d1c"
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	extra := fmt.Sprintf("api: {token_file: %q}\n", file)
	be := etcdBackend(t)
	a, b := be.host(t, ipA, extra), be.host(t, ipB, extra)
	a.startSidecar()
	b.startSidecar()
	a.waitSidecar("up")
	b.waitSidecar("up")

	if err := b.API().Publish(b.ctx, "evil", freePort(t, b.IP), "tcp"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("publish without the token: %v, want 401", err)
	}
	req, _ := http.NewRequest("POST", "http://"+b.IP+":"+strconv.Itoa(testbed.AgentHTTPPort)+"/v1/publish",
		strings.NewReader(fmt.Sprintf(`{"service":"admin","port":%d}`, testbed.AdminPort)))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("publish of the sidecar's admin port with the token: %d, want 403", resp.StatusCode)
	}

	env := []string{"DETOUR_API_TOKEN=" + token}
	serverAddr := fmt.Sprintf("%s:%d", b.IP, freePort(t, b.IP))
	startApp(t, "greeter-server", env, "--listen", serverAddr, "--agent", b.AgentGRPC())
	a.waitAnswer("greeter", "mesh answer", func(x testbed.Answer) bool { return x.Mesh && len(x.Endpoints) == 1 })
	g := &exampleMesh{a: a, b: b, rate: 20, serverAddr: serverAddr}
	g.client = startApp(t, "greeter-client", env, "--agent", a.AgentGRPC(), "--rate", "20", "--duration", (20 * time.Second).String())
	g.waitCalls(t, 20, "calls through the mesh", func(r testbed.Report) bool { return r.Mesh && r.From == serverAddr })
}

// startApp is app with env added to the app's environment.
func startApp(t *testing.T, name string, env []string, args ...string) *testbed.Proc {
	t.Helper()
	p, err := testbed.StartEnv(name, filepath.Join(bin, name), filepath.Join(t.TempDir(), name+".log"), env, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Kill()
		if t.Failed() {
			out, _ := os.ReadFile(p.Log)
			if len(out) > 4000 {
				out = out[len(out)-4000:]
			}
			t.Logf("--- %s log (tail) ---\n%s", name, out)
		}
	})
	return p
}
