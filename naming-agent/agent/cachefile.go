package agent

import (
	"maps"
	"path/filepath"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/detourmesh/detour/naming-agent/internal/cache"
)

func (a *Agent) cachePath() string { return filepath.Join(a.cfg.DataDir, "endpoints.json") }

// loadCacheLocked subscribes to every service in the cache with its
// cached endpoints, so answers are ready before the registry is.
func (a *Agent) loadCacheLocked() {
	entries, err := cache.Load(a.cachePath())
	if err != nil {
		a.log.Warn("endpoint cache unusable, ignored", zap.String("path", a.cachePath()), zap.Error(err))
	}
	for _, svc := range slices.Sorted(maps.Keys(entries)) {
		s := a.subscribeLocked(svc)
		for _, ep := range entries[svc].Endpoints {
			s.eps = append(s.eps, ep.Registry(svc))
		}
		s.known, s.fromCache = true, true
		if len(s.eps) > 0 {
			s.emptySince = time.Time{}
		}
	}
}

// cacheLoop writes the cache after every endpoint change.
func (a *Agent) cacheLoop() {
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-a.saveWake:
		}
		start := time.Now()
		n, err := a.saveCache()
		if err != nil {
			a.log.Warn("endpoint cache not written", zap.Error(err))
		}
		// The file holds every service: while changes pour in (thousands
		// of services subscribing), rewriting it after each would be
		// O(services²). With many services, resting 3× as long as the
		// write took bounds it to a quarter of the time; the changes
		// meanwhile go in the next write, and Close writes the last
		// state. A small cache is written at once every time, so what an
		// agent just learned is on disk should it be killed right after.
		if n < restMinServices {
			continue
		}
		t := time.NewTimer(restFactor * time.Since(start))
		select {
		case <-a.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// restMinServices is the cache size from which its writes rest.
const restMinServices = 1000

// saveCache writes the endpoint cache and returns how many services it
// holds.
func (a *Agent) saveCache() (int, error) {
	a.mu.Lock()
	entries := map[string]cache.Entry{}
	now := a.opts.now().UTC()
	for svc, s := range a.subs {
		if s.known {
			entries[svc] = cache.Entry{Endpoints: cache.FromRegistry(s.eps), Updated: now}
		}
	}
	a.mu.Unlock()
	return len(entries), cache.Save(a.cachePath(), entries)
}
