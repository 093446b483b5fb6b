package admin

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/detourmesh/detour/internal/httpbody/httpbodytest"
)

// The admin server refuses a body over MaxBodyBytes with 413 on any path;
// a body of exactly the limit is ignored.
func TestBodyLimit(t *testing.T) {
	ts := httptest.NewServer(Handler(source{true}, prometheus.NewRegistry()))
	defer ts.Close()
	httpbodytest.Refuses(t, http.MethodGet, ts.URL+"/ready", MaxBodyBytes, nil)
	for _, chunked := range []bool{false, true} {
		if code, msg := httpbodytest.Send(t, http.MethodGet, ts.URL+"/ready", httpbodytest.Body(MaxBodyBytes), chunked); code != 200 || msg != "ready\n" {
			t.Fatalf("%d bytes (chunked %v): %d %q; want 200 ready", MaxBodyBytes, chunked, code, msg)
		}
	}
}

// curl, with its default options, always reads the admin server's 413, on
// a busy machine.
func TestBodyLimitCurl(t *testing.T) {
	ts := httptest.NewServer(Handler(source{true}, prometheus.NewRegistry()))
	defer ts.Close()
	httpbodytest.Curl(t, ts.URL+"/ready", MaxBodyBytes)
}
