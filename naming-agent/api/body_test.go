package api

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"go.uber.org/zap"

	"github.com/detourmesh/detour/internal/httpbody/httpbodytest"
	"github.com/detourmesh/detour/naming-agent/config"
)

// The agent's API refuses a body over api.max_body_bytes with 413 and
// publishes nothing; a body of exactly the limit is taken.
func TestHTTPBodyLimit(t *testing.T) {
	e := newEnv(t)
	ts := httptest.NewServer(HTTPHandler(e.a, e.cfg.API, zap.NewNop()))
	defer ts.Close()
	limit := int(e.cfg.API.MaxBodyBytes)
	httpbodytest.Refuses(t, http.MethodPost, ts.URL+"/v1/publish", limit, func(t *testing.T) {
		if p := e.a.Status().Publications; len(p) != 0 {
			t.Fatalf("published %v", p)
		}
	})
	for _, chunked := range []bool{false, true} {
		if code, msg := httpbodytest.Send(t, http.MethodPost, ts.URL+"/v1/publish", httpbodytest.Body(limit), chunked); code != 200 {
			t.Fatalf("%d bytes (chunked %v): %d %q; want 200", limit, chunked, code, msg)
		}
		if p := e.a.Status().Publications; len(p) != 1 || p[0].Service != "big" {
			t.Fatalf("publications %v; want big", p)
		}
		if code, msg := do(t, ts, "POST", "/v1/unpublish", `{"service":"big","port":8080}`); code != 200 {
			t.Fatalf("unpublish: %d %v", code, msg)
		}
	}
}

// curl, with its default options, always reads the agent's 413, on a busy
// machine, at the default limit; nothing is published.
func TestHTTPBodyLimitCurl(t *testing.T) {
	e := newEnv(t)
	cfg := e.cfg.API
	cfg.MaxBodyBytes = config.Default().API.MaxBodyBytes
	ts := httptest.NewServer(HTTPHandler(e.a, cfg, zap.NewNop()))
	defer ts.Close()
	httpbodytest.Curl(t, ts.URL+"/v1/publish", cfg.MaxBodyBytes)
	if p := e.a.Status().Publications; len(p) != 0 {
		t.Fatalf("published %v", p)
	}
}
