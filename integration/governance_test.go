package integration

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/detourmesh/detour/internal/testbed"
)

// tagServer is an HTTP app on ip answering its tag.
func tagServer(t *testing.T, ip, tag string) int {
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, tag) })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// TestGovernanceLive (issue 19) with the real binaries on embedded etcd:
// web published on B (version 1) and C (version 2); A's operator shifts
// 5 % to version 2 through A's agent API, sends testers there by header,
// shifts back; B's operator caps B's inbound rate. Each change is live.
func TestGovernanceLive(t *testing.T) {
	be := etcdBackend(t)
	a, b := be.hosts(t)
	c := be.host(t, ipC, "")
	for _, s := range []struct {
		h   *host
		tag string
	}{{b, "1"}, {c, "2"}} {
		port := tagServer(t, s.h.IP, s.tag)
		if err := s.h.API().Do(s.h.ctx, http.MethodPost, "/v1/publish", map[string]any{
			"service": "web", "port": port, "protocol": "http", "metadata": map[string]string{"version": s.tag}}, nil); err != nil {
			t.Fatal(err)
		}
		s.h.startSidecar()
	}
	a.startSidecar()
	for _, h := range []*host{a, b, c} {
		h.waitSidecar("up")
	}
	ans := a.waitAnswer("web", "mesh answer", func(x testbed.Answer) bool { return x.Mesh && len(x.Endpoints) == 1 })
	url := "http://" + ans.Endpoints[0].Addr + "/"
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	send := func(header string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if header != "" {
			req.Header.Set("X-Canary", header)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	eventually(t, 30*time.Second, "both versions answer through A's egress", func() bool {
		seen := map[string]bool{}
		for range 20 {
			if code, v := send(""); code == 200 {
				seen[v] = true
			}
		}
		return seen["1"] && seen["2"]
	})

	routes := func(split1, split2 int) map[string]any {
		return map[string]any{
			"subsets": []map[string]any{{"name": "v1", "labels": map[string]string{"version": "1"}}, {"name": "v2", "labels": map[string]string{"version": "2"}}},
			"default": "v1",
			"split":   []map[string]any{{"subset": "v1", "weight": split1}, {"subset": "v2", "weight": split2}},
			"rules": []map[string]any{{"name": "testers", "match": map[string]any{"headers": []map[string]string{{"name": "x-canary", "exact": "1"}}},
				"split": []map[string]any{{"subset": "v2", "weight": 100}}}},
		}
	}
	put := func(h *host, what string, body any) error {
		return h.API().Do(h.ctx, http.MethodPut, "/v1/services/web/"+what, body, nil)
	}

	// 5 % to version 2, testers by header: live within a snapshot.
	set := time.Now()
	if err := put(a, "routes", routes(95, 5)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the header rule in force", func() bool {
		for range 20 {
			if code, v := send("1"); code != 200 || v != "2" {
				return false
			}
		}
		return true
	})
	t.Logf("figure: PUT routes on A -> in force at A's sidecar in %v", time.Since(set).Round(time.Millisecond))
	n2 := 0
	const n = 1000
	for range n {
		code, v := send("")
		if code != 200 {
			t.Fatalf("%d %s", code, v)
		}
		if v == "2" {
			n2++
		}
	}
	t.Logf("figure: 95/5 split through the real sidecars: version 2 got %d of %d (%.1f %%)", n2, n, float64(n2)*100/n)
	if n2 < 20 || n2 > 90 {
		t.Fatalf("version 2 got %d of %d, want about 5 %%", n2, n)
	}

	// Refused: nothing changes.
	err := put(a, "routes", routes(90, 5))
	if err == nil || !strings.Contains(err.Error(), "routes.split: weights sum to 95, not 100") {
		t.Fatalf("bad weights: %v", err)
	}

	// Back to version 1.
	set = time.Now()
	if err := put(a, "routes", routes(100, 0)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "all on version 1", func() bool {
		for range 100 {
			if code, v := send(""); code != 200 || v != "1" {
				return false
			}
		}
		return true
	})
	t.Logf("figure: shift back to 100/0 in force in %v", time.Since(set).Round(time.Millisecond))

	// B caps its inbound rate: A's calls (all on B now) get 429.
	if err := put(b, "limits", map[string]any{"rps": 1, "burst": 1}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "B's limit in force", func() bool {
		limited := 0
		for range 20 {
			if code, _ := send(""); code == http.StatusTooManyRequests {
				limited++
			}
		}
		return limited >= 15
	})
	if err := b.API().Do(b.ctx, http.MethodDelete, "/v1/services/web/limits", nil, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "B's limit lifted", func() bool {
		for range 20 {
			if code, _ := send(""); code != 200 {
				return false
			}
		}
		return true
	})
}
