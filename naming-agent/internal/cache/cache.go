// Package cache keeps the last known endpoints of every subscribed
// service on disk, so that an agent started while the registry is
// unreachable still answers. The file is written atomically; a file that
// cannot be parsed is ignored (and reported), never fatal.
package cache

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/detourmesh/detour/naming-agent/internal/atomicfile"
	"github.com/detourmesh/detour/registry-adapters/registry"
)

// Entry is what is kept of one service.
type Entry struct {
	Endpoints []Endpoint `json:"endpoints"`
	// Updated is when the registry last gave this set.
	Updated time.Time `json:"updated"`
}

// Endpoint is registry.Endpoint as stored.
type Endpoint struct {
	Addr     string            `json:"addr"`
	Weight   uint32            `json:"weight,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

type fileFormat struct {
	Version  int              `json:"version"`
	Services map[string]Entry `json:"services"`
}

// Load reads the cache at path. A missing file is an empty cache. A file
// that cannot be parsed, or entries that are not valid, come back as an
// error wrapping ErrCorrupt together with whatever could be read (nothing,
// for a file that is not JSON): the caller warns and goes on.
func Load(path string) (map[string]Entry, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]Entry{}, nil
	}
	if err != nil {
		return map[string]Entry{}, fmt.Errorf("cache: %w: %w", ErrCorrupt, err)
	}
	var f fileFormat
	if err := json.Unmarshal(b, &f); err != nil {
		return map[string]Entry{}, fmt.Errorf("cache %s: %w: %w", path, ErrCorrupt, err)
	}
	if f.Version != 1 {
		return map[string]Entry{}, fmt.Errorf("cache %s: %w: version %d, want 1", path, ErrCorrupt, f.Version)
	}
	out := map[string]Entry{}
	var bad []error
	for svc, e := range f.Services {
		if err := validEntry(svc, e); err != nil {
			bad = append(bad, err)
			continue
		}
		out[svc] = e
	}
	if len(bad) > 0 {
		return out, fmt.Errorf("cache %s: %w: %w", path, ErrCorrupt, errors.Join(bad...))
	}
	return out, nil
}

// ErrCorrupt marks a cache file, or entries of it, that cannot be used.
var ErrCorrupt = errors.New("corrupt endpoint cache")

func validEntry(svc string, e Entry) error {
	if err := registry.ValidateService(svc); err != nil {
		return err
	}
	for _, ep := range e.Endpoints {
		if _, err := ep.Registry(svc).Normalized(); err != nil {
			return fmt.Errorf("service %q: %w", svc, err)
		}
	}
	return nil
}

// Save writes entries to path atomically.
func Save(path string, entries map[string]Entry) error {
	b, err := json.MarshalIndent(fileFormat{Version: 1, Services: entries}, "", "  ")
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	if err := atomicfile.Write(path, b, 0o644); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	return nil
}

// FromRegistry converts a registry set for storing.
func FromRegistry(eps []registry.Endpoint) []Endpoint {
	out := make([]Endpoint, 0, len(eps))
	for _, ep := range eps {
		out = append(out, Endpoint{Addr: ep.Addr, Weight: ep.Weight, Metadata: ep.Metadata})
	}
	return out
}

// Registry converts a stored endpoint back.
func (e Endpoint) Registry(service string) registry.Endpoint {
	return registry.Endpoint{Service: service, Addr: e.Addr, Weight: e.Weight, Metadata: e.Metadata}
}
