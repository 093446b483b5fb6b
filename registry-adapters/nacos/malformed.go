package nacos

import (
	"cmp"
	"slices"
	"sync"

	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"go.uber.org/zap"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

// badInstance is an instance endpointOf refused.
type badInstance struct {
	key string
	err error
}

// reporter tells the log and the MalformedFunc about each bad instance
// once per distinct instance ID and reason, however often it is read
// again. Every read of a service is a full listing (a query, a
// subscription answer, a push), so it remembers only the bad instances of
// the latest listing of each service: one removed and written again is
// reported again, and memory stays bounded by what Nacos holds.
type reporter struct {
	log *zap.Logger
	fn  registry.MalformedFunc

	mu   sync.Mutex
	seen map[string]map[string]string // service -> instance key -> reason
}

func newReporter(log *zap.Logger, fn registry.MalformedFunc) *reporter {
	return &reporter{log: log, fn: fn, seen: map[string]map[string]string{}}
}

// listed records the bad instances of a full listing of service and
// reports those not reported before.
func (r *reporter) listed(service string, bad []badInstance) {
	r.mu.Lock()
	old := r.seen[service]
	next := make(map[string]string, len(bad))
	var fresh []badInstance
	for _, b := range bad {
		reason := b.err.Error()
		if prev, ok := old[b.key]; !ok || prev != reason {
			fresh = append(fresh, b)
		}
		next[b.key] = reason
	}
	if len(next) == 0 {
		delete(r.seen, service)
	} else {
		r.seen[service] = next
	}
	r.mu.Unlock()
	for _, b := range fresh {
		r.log.Warn("skipping malformed instance", zap.String("service", service), zap.String("key", b.key), zap.Error(b.err))
		if r.fn != nil {
			r.fn(service, b.key, b.err)
		}
	}
}

// endpoints maps the serving instances of a full listing of service to a
// sorted endpoint set, skipping and reporting the ones that cannot be
// mapped. Two instances with one address (in two clusters, or from two
// clients) give one endpoint: the one with the lowest instance ID.
func (r *reporter) endpoints(group, service string, hosts []model.Instance) []registry.Endpoint {
	hosts = slices.Clone(hosts)
	slices.SortFunc(hosts, func(a, b model.Instance) int {
		return cmp.Compare(instanceKey(group, service, a), instanceKey(group, service, b))
	})
	eps := make([]registry.Endpoint, 0, len(hosts))
	seen := make(map[string]bool, len(hosts))
	var bad []badInstance
	for _, in := range hosts {
		if !serving(in) {
			continue
		}
		ep, err := endpointOf(service, in)
		if err != nil {
			bad = append(bad, badInstance{key: instanceKey(group, service, in), err: err})
			continue
		}
		if !seen[ep.Addr] {
			seen[ep.Addr] = true
			eps = append(eps, ep)
		}
	}
	r.listed(service, bad)
	registry.Sort(eps)
	return eps
}
