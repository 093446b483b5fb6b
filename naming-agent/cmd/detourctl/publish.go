package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/detourmesh/detour/api/agentjson"
)

// publishRequest is the body of POST /v1/publish. Empty fields are left
// out, so the agent's defaults apply; update is sent only when set, so
// an agent that predates it still takes a plain publish.
type publishRequest struct {
	Service  string            `json:"service"`
	Port     int               `json:"port"`
	Protocol string            `json:"protocol,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	Health   *healthSpec       `json:"health,omitempty"`
	Update   bool              `json:"update,omitempty"`
}

type healthSpec struct {
	Type string `json:"type"`
	Path string `json:"path,omitempty"`
}

func (c *ctl) publish(req publishRequest) error {
	var pub agentjson.Publication
	raw, err := c.call(http.MethodPost, "/v1/publish", req, &pub)
	var ae *agentError
	if errors.As(err, &ae) && ae.code == http.StatusConflict && !req.Update {
		return fmt.Errorf("%w\n(%s is already published differently on this host: add --update to replace that publication)", err, req.Service)
	}
	if err != nil || c.asJSON {
		return jsonOr(c, raw, err)
	}
	fmt.Fprintf(c.out, "published %s: app port %d, %s, health %s\n", pub.Service, pub.Port, pub.Protocol, healthString(pub.Health))
	if pub.Mesh {
		fmt.Fprintf(c.out, "registered as %s (the sidecar's ingress port %d)\n", dash(pub.RegisteredAddr), pub.IngressPort)
	} else {
		fmt.Fprintf(c.out, "registered as %s (the app itself: the mesh is off for it)\n", dash(pub.RegisteredAddr))
	}
	if pub.RegistryError != "" {
		fmt.Fprintf(c.out, "registry:   %s (the agent keeps trying)\n", pub.RegistryError)
	}
	return nil
}

func healthString(h agentjson.HealthSpec) string {
	if h.Path != "" {
		return h.Type + ":" + h.Path
	}
	return dash(h.Type)
}

func (c *ctl) unpublish(service string, port int) error {
	var out struct {
		Service string `json:"service"`
		Port    int    `json:"port"`
	}
	raw, err := c.call(http.MethodPost, "/v1/unpublish", map[string]any{"service": service, "port": port}, &out)
	if err != nil || c.asJSON {
		return jsonOr(c, raw, err)
	}
	fmt.Fprintf(c.out, "unpublished %s (app port %d): deregistered\n", out.Service, out.Port)
	return nil
}

func (c *ctl) unsubscribe(service string) error {
	var out struct {
		Service string `json:"service"`
	}
	raw, err := c.call(http.MethodDelete, "/v1/services/"+url.PathEscape(service)+"/subscription", nil, &out)
	if err != nil || c.asJSON {
		return jsonOr(c, raw, err)
	}
	fmt.Fprintf(c.out, "unsubscribed %s: this agent no longer watches it\n", out.Service)
	return nil
}

func (c *ctl) mesh(service string, enabled bool) error {
	var out struct {
		Service string `json:"service"`
		Enabled bool   `json:"enabled"`
	}
	raw, err := c.call(http.MethodPut, "/v1/services/"+url.PathEscape(service)+"/mesh", map[string]bool{"enabled": enabled}, &out)
	if err != nil || c.asJSON {
		return jsonOr(c, raw, err)
	}
	state := "out of"
	if out.Enabled {
		state = "in"
	}
	fmt.Fprintf(c.out, "%s is now %s the mesh on this host\n", out.Service, state)
	return nil
}
