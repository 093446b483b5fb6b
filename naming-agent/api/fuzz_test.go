package api

import (
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/detourmesh/detour/naming-agent/agent"
)

func FuzzDecodePublish(f *testing.F) {
	for _, s := range []string{
		`{"service":"s","port":80}`,
		`{"service":"s","port":80,"protocol":"http","metadata":{"a":"b"},"health":{"type":"http","path":"/h"}}`,
		`{"service":"","port":0}`, `{"port":1e9}`, `[]`, `null`, `{"service":"s","port":1}{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := decodePublish(b)
		if err != nil {
			if !errors.Is(err, agent.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		// The shape passed; the meaning is the agent's to judge, and its
		// verdict is either a valid request or ErrInvalid.
		norm, err := agent.NormalizePublish(req)
		if err != nil {
			if !errors.Is(err, agent.ErrInvalid) {
				t.Fatalf("agent error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if norm.Service != req.Service || norm.Port < 1 || norm.Port > 65535 {
			t.Fatalf("%q normalized to %+v", b, norm)
		}
	})
}

func FuzzDecodeUnpublish(f *testing.F) {
	f.Add([]byte(`{"service":"s","port":80}`))
	f.Add([]byte(`{"service":"s"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, port, err := decodeUnpublish(b)
		if err != nil {
			if !errors.Is(err, agent.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if port < 0 {
			t.Fatalf("accepted port %d", port)
		}
	})
}

func FuzzDecodeMesh(f *testing.F) {
	f.Add([]byte(`{"enabled":true}`))
	f.Add([]byte(`{"enabled":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := decodeMesh(b); err != nil && !errors.Is(err, agent.ErrInvalid) {
			t.Fatalf("error %v does not wrap ErrInvalid", err)
		}
	})
}

func FuzzParseResolve(f *testing.F) {
	f.Add("service=s&revision=3&wait=10s")
	f.Add("service=s&wait=-1s&revision=x")
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		r, err := parseResolve(q, time.Minute)
		if err != nil {
			if !errors.Is(err, agent.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if r.wait < 0 || r.wait > time.Minute {
			t.Fatalf("wait %v outside 0-1m", r.wait)
		}
	})
}
