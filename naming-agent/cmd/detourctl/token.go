package main

import (
	"net/http"
	"strings"
)

// envToken is where detourctl takes the agent's API token from: never a
// flag, which would show in ps.
const envToken = "DETOUR_API_TOKEN"

// tokenTransport adds the API token to every request, when there is one.
type tokenTransport struct {
	token string
	base  http.RoundTripper
}

func (t tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.token == "" {
		return t.base.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	r.Header.Set("X-Detour-Token", t.token)
	return t.base.RoundTrip(r)
}

// withToken is client sending token (surrounding whitespace trimmed).
func withToken(c *http.Client, token string) *http.Client {
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	out := *c
	out.Transport = tokenTransport{token: strings.TrimSpace(token), base: base}
	return &out
}
