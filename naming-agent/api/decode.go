package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"strconv"
	"time"

	"github.com/detourmesh/detour/naming-agent/agent"
)

// The decoders below are strict: unknown fields, missing required fields,
// wrong types and trailing data are errors wrapping agent.ErrInvalid that
// say what is wrong. Oversized bodies never get here (httpbody.Limit).

type publishBody struct {
	Service  *string           `json:"service"`
	Port     *int64            `json:"port"`
	Protocol string            `json:"protocol"`
	Metadata map[string]string `json:"metadata"`
	Health   *struct {
		Type string `json:"type"`
		Path string `json:"path"`
	} `json:"health"`
	Host   string `json:"host"`
	Update bool   `json:"update"`
}

type unpublishBody struct {
	Service *string `json:"service"`
	Port    *int64  `json:"port"`
}

type meshBody struct {
	Enabled *bool `json:"enabled"`
}

// decodeStrict decodes one JSON object from b into v.
func decodeStrict(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return fmt.Errorf("%w: empty body, want a JSON object", agent.ErrInvalid)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) && ute.Field != "" {
			return fmt.Errorf("%w: field %q: want %s, got JSON %s", agent.ErrInvalid, ute.Field, ute.Type, ute.Value)
		}
		return fmt.Errorf("%w: bad JSON: %v", agent.ErrInvalid, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: trailing data after the JSON object", agent.ErrInvalid)
	}
	return nil
}

func requirePort(p *int64) (int, error) {
	if p == nil {
		return 0, fmt.Errorf("%w: missing field \"port\"", agent.ErrInvalid)
	}
	if *p < 0 || *p > math.MaxInt32 {
		// The range is the agent's rule; this only keeps the number an int.
		return 0, fmt.Errorf("%w: port %d: must be 1-65535", agent.ErrInvalid, *p)
	}
	return int(*p), nil
}

func requireService(s *string) (string, error) {
	if s == nil {
		return "", fmt.Errorf("%w: missing field \"service\"", agent.ErrInvalid)
	}
	return *s, nil
}

// decodePublish decodes a publish body: its shape. What the values mean
// (service name, port range, protocol, metadata) the agent checks.
func decodePublish(b []byte) (agent.PublishRequest, error) {
	var body publishBody
	if err := decodeStrict(b, &body); err != nil {
		return agent.PublishRequest{}, err
	}
	svc, err := requireService(body.Service)
	if err != nil {
		return agent.PublishRequest{}, err
	}
	port, err := requirePort(body.Port)
	if err != nil {
		return agent.PublishRequest{}, err
	}
	req := agent.PublishRequest{Service: svc, Port: port, Protocol: body.Protocol, Metadata: body.Metadata, Host: body.Host, Update: body.Update}
	if body.Health != nil {
		req.Health = agent.HealthSpec{Type: body.Health.Type, Path: body.Health.Path}
	}
	return req, nil
}

// decodeUnpublish decodes an unpublish body.
func decodeUnpublish(b []byte) (string, int, error) {
	var body unpublishBody
	if err := decodeStrict(b, &body); err != nil {
		return "", 0, err
	}
	svc, err := requireService(body.Service)
	if err != nil {
		return "", 0, err
	}
	port, err := requirePort(body.Port)
	return svc, port, err
}

// decodeMesh decodes a mesh flag body.
func decodeMesh(b []byte) (bool, error) {
	var body meshBody
	if err := decodeStrict(b, &body); err != nil {
		return false, err
	}
	if body.Enabled == nil {
		return false, fmt.Errorf("%w: missing field \"enabled\"", agent.ErrInvalid)
	}
	return *body.Enabled, nil
}

// resolveQuery is a parsed GET /v1/resolve.
type resolveQuery struct {
	service  string
	revision uint64
	wait     time.Duration // 0: answer at once
}

// parseResolve parses ?service=S[&revision=N][&wait=D]; wait is capped at
// maxWait (as Consul caps its blocking queries).
func parseResolve(q url.Values, maxWait time.Duration) (resolveQuery, error) {
	var out resolveQuery
	for k, v := range q {
		if len(v) != 1 {
			return out, fmt.Errorf("%w: query parameter %q given %d times", agent.ErrInvalid, k, len(v))
		}
		switch k {
		case "service", "revision", "wait":
		default:
			return out, fmt.Errorf("%w: unknown query parameter %q (service, revision, wait)", agent.ErrInvalid, k)
		}
	}
	if _, ok := q["service"]; !ok {
		return out, fmt.Errorf("%w: missing query parameter \"service\"", agent.ErrInvalid)
	}
	out.service = q.Get("service")
	if s, ok := q["revision"]; ok {
		r, err := strconv.ParseUint(s[0], 10, 64)
		if err != nil {
			return out, fmt.Errorf("%w: revision %q: not an unsigned integer", agent.ErrInvalid, s[0])
		}
		out.revision = r
	}
	if s, ok := q["wait"]; ok {
		if _, ok := q["revision"]; !ok {
			return out, fmt.Errorf("%w: wait without revision: say which answer you have", agent.ErrInvalid)
		}
		d, err := time.ParseDuration(s[0])
		if err != nil || d < 0 {
			return out, fmt.Errorf("%w: wait %q: want a duration such as 30s", agent.ErrInvalid, s[0])
		}
		out.wait = min(d, maxWait)
	}
	return out, nil
}
