package admin

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

type source struct{ ready bool }

func (s source) Ready() bool                 { return s.ready }
func (s source) ConfigJSON() ([]byte, error) { return []byte(`{"version":3}`), nil }
func (s source) StatsAny() any               { return map[string]int{"requests": 7} }

func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "detour_sidecar_test_total", Help: "t"})
	reg.MustRegister(c)
	c.Inc()
	for _, tc := range []struct {
		ready      bool
		path       string
		code       int
		bodyPrefix string
	}{
		{false, "/ready", 503, "not ready"},
		{true, "/ready", 200, "ready"},
		{true, "/config", 200, `{"version":3}`},
		{true, "/stats", 200, "{\n  \"requests\": 7"},
		{true, "/metrics", 200, "# HELP detour_sidecar_test_total"},
		{true, "/nope", 404, ""},
	} {
		w := httptest.NewRecorder()
		Handler(source{tc.ready}, reg).ServeHTTP(w, httptest.NewRequest("GET", tc.path, nil))
		body, _ := io.ReadAll(w.Body)
		if w.Code != tc.code || !strings.HasPrefix(string(body), tc.bodyPrefix) {
			t.Errorf("%s (ready %v): %d %q", tc.path, tc.ready, w.Code, body)
		}
	}
}
