package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/detourmesh/detour/internal/testbed"
)

// TestBadInput: malformed API requests to a real agent and garbage in the
// registry. Each request gets a 4xx with a message saying what is wrong;
// the garbage is skipped and counted; nothing published or subscribed
// changes, down to the answer's revision.
func TestBadInput(t *testing.T) { every(t, false, badInput) }

func badInput(t *testing.T, be *backend) {
	be.host(t, ipA, "")
	b := be.host(t, ipB, "")
	c := be.host(t, ipC, "")
	reg := be.reader(t)
	port := echoServer(t, ipB)
	appAddr := fmt.Sprintf("%s:%d", ipB, port)
	b.publish("echo", port, "tcp")
	before := c.waitAnswer("echo", "the published instance", func(x testbed.Answer) bool {
		return slices.Equal(x.Addrs(), []string{appAddr})
	})

	big := `{"service":"x","port":1,"metadata":{"k":"` + strings.Repeat("v", 100<<10) + `"}}`
	requests := []struct{ method, path, body string }{
		{"POST", "/v1/publish", `{`},
		{"POST", "/v1/publish", `[]`},
		{"POST", "/v1/publish", `{"service":"","port":1}`},
		{"POST", "/v1/publish", `{"port":1}`},
		{"POST", "/v1/publish", `{"service":"a/b","port":1}`},
		{"POST", "/v1/publish", `{"service":"echo","port":0}`},
		{"POST", "/v1/publish", `{"service":"echo","port":70000}`},
		{"POST", "/v1/publish", `{"service":"echo","port":"80"}`},
		{"POST", "/v1/publish", `{"service":"echo","port":1,"protocol":"smtp"}`},
		{"POST", "/v1/publish", `{"service":"echo","port":1,"bogus":true}`},
		{"POST", "/v1/publish", big},
		{"POST", "/v1/unpublish", `{"service":"never-published","port":1}`},
		{"POST", "/v1/unpublish", `{"service":"echo","port":1}`},
		{"GET", "/v1/resolve", ""},
		{"GET", "/v1/resolve?service=a%2Fb", ""},
		{"GET", "/v1/resolve?service=echo&revision=abc&wait=1s", ""},
		{"GET", "/v1/resolve?service=echo&revision=1&wait=forever", ""},
		{"PUT", "/v1/services/a%2Fb/mesh", `{"enabled":false}`},
		{"PUT", "/v1/services/echo/mesh", `{"enabled":"no"}`},
		{"PUT", "/v1/services/echo/mesh", `{}`},
	}
	for _, h := range []*host{b, c} {
		for _, r := range requests {
			status, msg := rawRequest(t, h, r.method, r.path, r.body)
			if status < 400 || status > 499 || msg == "" {
				t.Errorf("%s %s %.60s on %s: %d %q, want a 4xx with an error message", r.method, r.path, r.body, h.IP, status, msg)
			}
		}
	}

	be.garbage(t, "echo")
	eventually(t, 20*time.Second, "C counts the malformed entry", func() bool {
		return strings.Contains(metrics(t, c), `detour_agent_registry_malformed_entries_total{service="echo"} 1`)
	})

	// Nothing changed: B's one publication, C's answer and its revision.
	eps := registered(t, reg, "echo")
	if len(eps) != 1 || eps[0].Addr != appAddr {
		t.Errorf("registry after bad input: %v, want only %s", eps, appAddr)
	}
	if st, err := b.API().Status(b.ctx); err != nil || len(st.Publications) != 1 || st.Publications[0].Port != port {
		t.Errorf("B's publications after bad input: %+v, %v", st.Publications, err)
	}
	after, err := c.API().Resolve(c.ctx, "echo")
	if err != nil {
		t.Fatal(err)
	}
	if after.Revision != before.Revision || !slices.Equal(after.Addrs(), before.Addrs()) {
		t.Errorf("C's answer changed: %+v -> %+v", before, after)
	}
}

// rawRequest sends body as is and returns the status and the "error"
// field of the answer.
func rawRequest(t *testing.T, h *host, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(h.ctx, method, h.API().Base+path, bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var e struct {
		Error string `json:"error"`
	}
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &e)
	return resp.StatusCode, e.Error
}

func metrics(t *testing.T, h *host) string {
	t.Helper()
	resp, err := http.Get(h.API().Base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
