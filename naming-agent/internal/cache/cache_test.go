package cache

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

func TestSaveLoadRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "endpoints.json")
	in := map[string]Entry{
		"greeter": {Endpoints: FromRegistry([]registry.Endpoint{
			{Service: "greeter", Addr: "10.0.0.1:20000", Weight: 100, Metadata: map[string]string{"detour.mesh": "true", "detour.port": "8080"}},
		}), Updated: time.Unix(1700000000, 0).UTC()},
		"empty": {Endpoints: []Endpoint{}},
	}
	if err := Save(path, in); err != nil {
		t.Fatal(err)
	}
	out, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	g := out["greeter"]
	if len(g.Endpoints) != 1 || g.Endpoints[0].Metadata["detour.port"] != "8080" || !g.Updated.Equal(in["greeter"].Updated) {
		t.Fatalf("round trip: %+v", out)
	}
	if _, ok := out["empty"]; !ok {
		t.Error("empty service lost")
	}
	if ep := g.Endpoints[0].Registry("greeter"); ep.Service != "greeter" || ep.Addr != "10.0.0.1:20000" {
		t.Errorf("Registry() = %v", ep)
	}
}

func TestLoadMissingIsEmpty(t *testing.T) {
	out, err := Load(filepath.Join(t.TempDir(), "none.json"))
	if err != nil || len(out) != 0 {
		t.Fatalf("Load(missing) = %v, %v", out, err)
	}
}

func TestLoadCorrupt(t *testing.T) {
	tests := []struct {
		name, body string
		keep       int
	}{
		{"not json", "{\"version\":1,", 0},
		{"truncated to nothing", "", 0},
		{"wrong version", `{"version":7,"services":{}}`, 0},
		{"bad service name", `{"version":1,"services":{"a/b":{"endpoints":[]},"ok":{"endpoints":[{"addr":"1.2.3.4:5"}]}}}`, 1},
		{"bad addr", `{"version":1,"services":{"s":{"endpoints":[{"addr":"nope"}]}}}`, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "endpoints.json")
			os.WriteFile(path, []byte(tc.body), 0o644)
			out, err := Load(path)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Load = %v, want ErrCorrupt", err)
			}
			if len(out) != tc.keep {
				t.Errorf("kept %d entries, want %d", len(out), tc.keep)
			}
		})
	}
}

func FuzzLoad(f *testing.F) {
	f.Add([]byte(`{"version":1,"services":{"s":{"endpoints":[{"addr":"1.2.3.4:5","metadata":{"k":"v"}}]}}}`))
	f.Add([]byte(`{"version":1,"services":{"":{}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		path := filepath.Join(t.TempDir(), "c.json")
		if err := os.WriteFile(path, body, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := Load(path)
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error %v does not wrap ErrCorrupt", err)
		}
		for svc, e := range out {
			if validEntry(svc, e) != nil {
				t.Fatalf("invalid entry %q returned", svc)
			}
		}
	})
}
