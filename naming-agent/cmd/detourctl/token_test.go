package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestTokenSent: with $DETOUR_API_TOKEN set, detourctl's requests carry
// it; without, none is sent.
func TestTokenSent(t *testing.T) {
	var got []string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("X-Detour-Token"))
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"service":"s","enabled":false}`))
	}))
	defer ts.Close()
	for _, tok := range []string{"t0ken\n", ""} {
		var out, errOut bytes.Buffer
		run([]string{"mesh", "disable", "s", "--agent", ts.URL}, &out, &errOut, "", withToken(ts.Client(), tok))
	}
	if len(got) != 2 || got[0] != "t0ken" || got[1] != "" {
		t.Fatalf("tokens sent = %q", got)
	}
}
