package health

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/detourmesh/detour/internal/httpbody/httpbodytest"
)

func healthyPort() *Port {
	p := NewPort()
	p.SetFronted([]string{"s"})
	p.SetApp("s", true, "")
	return p
}

// The health port refuses a body over MaxBodyBytes with 413 whatever the
// method; a body of exactly the limit is ignored.
func TestPortBodyLimit(t *testing.T) {
	ts := httptest.NewServer(healthyPort())
	defer ts.Close()
	httpbodytest.Refuses(t, http.MethodGet, ts.URL+"/healthz/s", MaxBodyBytes, nil)
	for _, chunked := range []bool{false, true} {
		if code, msg := httpbodytest.Send(t, http.MethodGet, ts.URL+"/healthz/s", httpbodytest.Body(MaxBodyBytes), chunked); code != 200 || msg != "ok\n" {
			t.Fatalf("%d bytes (chunked %v): %d %q; want 200 ok", MaxBodyBytes, chunked, code, msg)
		}
	}
}

// curl, with its default options, always reads the health port's 413, on a
// busy machine.
func TestPortBodyLimitCurl(t *testing.T) {
	ts := httptest.NewServer(healthyPort())
	defer ts.Close()
	httpbodytest.Curl(t, ts.URL+"/healthz/s", MaxBodyBytes)
}
