package health

import (
	"net/http"
	"net/http/httptest"
	"strings"
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
	for _, tc := range []struct {
		name    string
		n       int
		chunked bool
	}{
		{"Content-Length over", MaxBodyBytes + 1, false},
		{"chunked over", MaxBodyBytes + 1, true},
		{"12 MB", httpbodytest.Big, false},
		{"12 MB chunked", httpbodytest.Big, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, msg := httpbodytest.Send(t, http.MethodGet, ts.URL+"/healthz/s", httpbodytest.Body(tc.n), tc.chunked)
			if code != 413 || !strings.Contains(msg, "request body too large") {
				t.Fatalf("%d %q; want 413", code, msg)
			}
		})
	}
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
