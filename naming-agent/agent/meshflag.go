package agent

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

// The mesh flag of a service is the config file's (services.S.mesh, else
// service_defaults.mesh) until set at run time through the API; a run-time
// setting is kept in the data dir (mesh.json) and outlives restarts, so an
// operator's "disable" is not undone by a restart.

func meshFlagsPath(dataDir string) string { return filepath.Join(dataDir, "mesh.json") }

func loadMeshFlags(dataDir string, log *zap.Logger) map[string]bool {
	flags := map[string]bool{}
	b, err := os.ReadFile(meshFlagsPath(dataDir))
	if errors.Is(err, os.ErrNotExist) {
		return flags
	}
	if err == nil {
		err = json.Unmarshal(b, &flags)
	}
	if err != nil {
		log.Warn("ignoring the saved mesh flags", zap.String("path", meshFlagsPath(dataDir)), zap.Error(err))
		return map[string]bool{}
	}
	for svc := range flags {
		if registry.ValidateService(svc) != nil {
			delete(flags, svc)
		}
	}
	return flags
}

func (a *Agent) meshEnabledLocked(service string) bool {
	if on, ok := a.meshFlag[service]; ok {
		return on
	}
	return *a.cfg.ServiceSettings(service).Mesh
}

// SetMesh puts service in (enabled) or out of the mesh on this host, in
// both directions, live: its subscribers get the new answer and its
// publication is registered again. A service this host neither publishes
// nor follows, nor names in its config or its saved flags, is
// ErrUnknownService: a typo must not be saved as a setting forever (name
// it under services: in the config to set it ahead).
func (a *Agent) SetMesh(service string, enabled bool) error {
	if err := registry.ValidateService(service); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	if _, saved := a.meshFlag[service]; !saved && !a.knownLocked(service) {
		return errUnknown(service)
	}
	next := make(map[string]bool, len(a.meshFlag)+1)
	for k, v := range a.meshFlag {
		next[k] = v
	}
	next[service] = enabled
	if err := saveJSON(meshFlagsPath(a.cfg.DataDir), "mesh flags", next); err != nil {
		return err
	}
	a.meshFlag = next
	a.log.Info("mesh flag set", zap.String("service", service), zap.Bool("enabled", enabled))
	a.updateLocked()
	return nil
}
