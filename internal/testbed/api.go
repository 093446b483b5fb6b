package testbed

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// Client speaks the agent's HTTP API, as a non-Go app would.
type Client struct {
	Base string // http://HOST:PORT
}

// Status is the part of GET /v1/status the testbed reads.
type Status struct {
	Registry struct {
		URL string `json:"url"`
		OK  bool   `json:"ok"`
	} `json:"registry"`
	Sidecar struct {
		State string `json:"state"`
	} `json:"sidecar"`
	Publications []struct {
		Service        string `json:"service"`
		Port           int    `json:"port"`
		IngressPort    int    `json:"ingress_port"`
		RegisteredAddr string `json:"registered_addr"`
		Mesh           bool   `json:"mesh"`
	} `json:"publications"`
}

// Answer is GET /v1/resolve's answer.
type Answer struct {
	Service   string `json:"service"`
	Mesh      bool   `json:"mesh"`
	Endpoints []Addr `json:"endpoints"`
	Fallback  []Addr `json:"fallback"`
	// Governance: retries and timeout_ms are present only while the mesh
	// carries the service.
	Governance struct {
		Mesh      bool   `json:"mesh"`
		Retries   *int   `json:"retries"`
		TimeoutMS *int64 `json:"timeout_ms"`
	} `json:"governance"`
	Revision uint64 `json:"revision"`
}

// Addr is one endpoint of an Answer.
type Addr struct {
	Addr string `json:"addr"`
}

// Addrs lists the endpoints' addresses.
func (a Answer) Addrs() []string {
	out := make([]string, 0, len(a.Endpoints))
	for _, e := range a.Endpoints {
		out = append(out, e.Addr)
	}
	return out
}

// Status is GET /v1/status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.Do(ctx, http.MethodGet, "/v1/status", nil, &st)
	return st, err
}

// Resolve is GET /v1/resolve?service=S.
func (c *Client) Resolve(ctx context.Context, service string) (Answer, error) {
	var a Answer
	err := c.Do(ctx, http.MethodGet, "/v1/resolve?service="+url.QueryEscape(service), nil, &a)
	return a, err
}

// Publish is POST /v1/publish.
func (c *Client) Publish(ctx context.Context, service string, port int, protocol string) error {
	return c.Do(ctx, http.MethodPost, "/v1/publish", map[string]any{"service": service, "port": port, "protocol": protocol}, nil)
}

// SetMesh is PUT /v1/services/S/mesh.
func (c *Client) SetMesh(ctx context.Context, service string, enabled bool) error {
	return c.Do(ctx, http.MethodPut, "/v1/services/"+url.PathEscape(service)+"/mesh", map[string]bool{"enabled": enabled}, nil)
}

// Do sends body as JSON and decodes a 2xx answer into out; another status
// is an error carrying the agent's message.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, rd)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// SidecarStats is the part of a sidecar's admin /stats the testbed reads.
type SidecarStats struct {
	Ready     bool `json:"ready"`
	Listeners []struct {
		Listen      string `json:"listen"`
		Kind        string `json:"kind"`
		Service     string `json:"service"`
		ConnsTotal  uint64 `json:"connections_total"`
		ConnsActive int64  `json:"connections_active"`
		Requests    uint64 `json:"requests"`
		BytesIn     uint64 `json:"bytes_in"`
		BytesOut    uint64 `json:"bytes_out"`
	} `json:"listeners"`
	Clusters []struct {
		Service   string `json:"service"`
		Endpoints []struct {
			Addr       string `json:"addr"`
			AppAddr    string `json:"app_addr"`
			Health     string `json:"health"`
			Ejected    bool   `json:"ejected"`
			Bypassed   uint64 `json:"bypassed"`
			Active     int64  `json:"active"`
			ConnsTotal uint64 `json:"connections_total"`
			Requests   uint64 `json:"requests"`
			BytesIn    uint64 `json:"bytes_in"`
			BytesOut   uint64 `json:"bytes_out"`
		} `json:"endpoints"`
	} `json:"clusters"`
}

// Counters are what the testbed reads of a listener or an endpoint:
// connections (L4 and L7), requests (L7), bytes from the client (In)
// and towards it (Out), and the connections open now (Active). An L4
// connection's bytes are counted when its splice returns: at least every
// second, so they lag by up to a second.
type Counters struct {
	Conns, Requests uint64
	In, Out         uint64
	Active          int64
}

// Listener sums the counters of the listeners of kind ("egress",
// "ingress") for service.
func (s SidecarStats) Listener(kind, service string) Counters {
	var c Counters
	for _, l := range s.Listeners {
		if l.Kind == kind && l.Service == service {
			c.Conns += l.ConnsTotal
			c.Requests += l.Requests
			c.In += l.BytesIn
			c.Out += l.BytesOut
			c.Active += l.ConnsActive
		}
	}
	return c
}

// Endpoint is the counters of the cluster of service towards addr.
func (s SidecarStats) Endpoint(service, addr string) Counters {
	for _, c := range s.Clusters {
		if c.Service != service {
			continue
		}
		for _, e := range c.Endpoints {
			if e.Addr == addr {
				return Counters{Conns: e.ConnsTotal, Requests: e.Requests, In: e.BytesIn, Out: e.BytesOut, Active: e.Active}
			}
		}
	}
	return Counters{}
}
