package nobrowser

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestRefuse(t *testing.T) {
	h := Refuse(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	for _, tt := range []struct {
		hdr  map[string]string
		want int
	}{
		{nil, 204},
		{map[string]string{"Sec-Fetch-Site": "none"}, 204},
		{map[string]string{"Origin": "http://evil.example"}, 403},
		{map[string]string{"Origin": "null"}, 403},
		{map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{map[string]string{"Sec-Fetch-Site": "same-origin"}, 403},
		{map[string]string{"Sec-Fetch-Site": "same-site"}, 403},
	} {
		r := httptest.NewRequest("POST", "/", nil)
		for k, v := range tt.hdr {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tt.want {
			t.Errorf("%v: %d, want %d", tt.hdr, w.Code, tt.want)
		}
	}
}
