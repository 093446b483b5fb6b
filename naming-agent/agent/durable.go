package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"go.uber.org/zap"

	"github.com/detourmesh/detour/naming-agent/internal/atomicfile"
	"github.com/detourmesh/detour/registry-adapters/registry"
)

// Publications outlive the agent's process. Every accepted publish and
// unpublish is written to DATA_DIR/publications.json (atomically, synced)
// before the caller gets its answer, and New publishes the file's content
// again, so a crash, a restart by systemd or an upgrade never ends a
// publication: only an explicit unpublish does. (The app's death ends its
// registration, not its publication: when its health check passes again
// it is registered again.)

// publicationsFile is the on-disk form: one record per service.
type publicationsFile struct {
	Publications []savedPublication `json:"publications"`
}

type savedPublication struct {
	Service  string            `json:"service"`
	Port     int               `json:"port"`
	Protocol string            `json:"protocol"`
	Metadata map[string]string `json:"metadata,omitempty"`
	Health   HealthSpec        `json:"health"`
	Host     string            `json:"host,omitempty"`
	Weight   uint32            `json:"weight,omitempty"`
	Owner    string            `json:"owner,omitempty"`
}

func publicationsPath(dataDir string) string { return filepath.Join(dataDir, "publications.json") }

// savePublicationsLocked writes next, the publications as they are about
// to become; the caller applies them only if this succeeds.
func (a *Agent) savePublicationsLocked(next map[string]PublishRequest) error {
	var f publicationsFile
	for _, svc := range slices.Sorted(maps.Keys(next)) {
		r := next[svc]
		f.Publications = append(f.Publications, savedPublication{
			Service: r.Service, Port: r.Port, Protocol: r.Protocol, Metadata: r.Metadata, Health: r.Health,
			Host: r.Host, Weight: r.Weight, Owner: r.Owner,
		})
	}
	return saveJSON(publicationsPath(a.cfg.DataDir), "publications", f)
}

// saveJSON writes v to path whole or not at all; what names it in errors.
// The one way the agent saves its state files.
func saveJSON(path, what string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("agent: %s: %w", what, err)
	}
	if err := atomicfile.Write(path, b, 0o644); err != nil {
		return fmt.Errorf("agent: save %s: %w", what, err)
	}
	return nil
}

// requestsLocked is the publications as requests, for savePublicationsLocked.
func (a *Agent) requestsLocked() map[string]PublishRequest {
	out := make(map[string]PublishRequest, len(a.pubs))
	for svc, p := range a.pubs {
		out[svc] = p.req
	}
	return out
}

// loadPublications reads the saved publications. A missing file is none;
// a record that no longer validates (hand-edited, or from a version with
// other rules) is skipped with a warning, and the rest restored. A file
// that is not JSON at all is an error: starting without the host's
// publications would withdraw them from the registry.
func loadPublications(path string, log *zap.Logger) ([]PublishRequest, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("agent: publications: %w", err)
	}
	var f publicationsFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("agent: publications %s: %w (move it aside to start without them)", path, err)
	}
	var out []PublishRequest
	seen := map[string]bool{}
	for _, s := range f.Publications {
		req, err := NormalizePublish(PublishRequest{Service: s.Service, Port: s.Port, Protocol: s.Protocol, Metadata: s.Metadata, Health: s.Health, Host: s.Host, Weight: s.Weight, Owner: s.Owner})
		if err == nil && seen[req.Service] {
			err = fmt.Errorf("service %q saved twice", req.Service)
		}
		if err != nil {
			log.Warn("saved publication skipped", zap.String("path", path), zap.String("service", s.Service), zap.Error(err))
			continue
		}
		seen[req.Service] = true
		out = append(out, req)
	}
	return out, nil
}

// adoptLocked takes over the registrations an earlier run left in the
// registry when the adapter took its session back (registry.Resumer):
// they count as registered, so the registrar keeps those still wanted
// as they are and removes the rest, and none disappears in between.
func (a *Agent) adoptLocked() {
	r, ok := a.reg.(registry.Resumer)
	if !ok {
		return
	}
	eps := r.Adopted()
	a.adopted = map[regKey]bool{}
	for _, ep := range eps {
		k := regKey{ep.Service, ep.Addr}
		a.registered[k], a.adopted[k] = ep, true
	}
	if len(eps) > 0 {
		a.log.Info("registry session taken back", zap.Int("registrations", len(eps)))
	}
}
