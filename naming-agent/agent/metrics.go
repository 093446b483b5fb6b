package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the agent's Prometheus metrics, in a registry of their own
// (never the global default one).
type Metrics struct {
	// Registry holds every metric below plus the Go and process
	// collectors; serve it at /metrics.
	Registry *prometheus.Registry

	sidecarUp          prometheus.Gauge
	fallbacks          prometheus.Counter
	nacks              prometheus.Counter
	snapshotVersion    prometheus.Gauge
	registryUp         prometheus.Gauge
	registryErrors     prometheus.Counter
	malformed          *prometheus.CounterVec
	publications       prometheus.Gauge
	registered         *prometheus.GaugeVec
	unhealthy          prometheus.Gauge
	subscriptions      prometheus.Gauge
	subscribers        prometheus.Gauge
	answerChanges      prometheus.Counter
	meshSubscriptions  prometheus.Gauge
	cachedSubscription prometheus.Gauge
}

// NewMetrics makes the metrics and their registry.
func NewMetrics() *Metrics {
	r := prometheus.NewRegistry()
	f := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "detour", Subsystem: "agent", Name: name, Help: help})
		r.MustRegister(g)
		return g
	}
	c := func(name, help string) prometheus.Counter {
		x := prometheus.NewCounter(prometheus.CounterOpts{Namespace: "detour", Subsystem: "agent", Name: name, Help: help})
		r.MustRegister(x)
		return x
	}
	m := &Metrics{
		Registry:           r,
		sidecarUp:          f("sidecar_up", "1 while the mesh carries traffic, 0 while the agent falls back around the sidecar."),
		fallbacks:          c("fallbacks_total", "Times the sidecar was declared down."),
		nacks:              c("snapshot_nacks_total", "Snapshots the sidecar rejected."),
		snapshotVersion:    f("snapshot_version", "Version of the current desired snapshot."),
		registryUp:         f("registry_up", "0 while the last registry call or watch failed."),
		registryErrors:     c("registry_errors_total", "Failed registry calls and watch errors."),
		publications:       f("publications", "Published services."),
		unhealthy:          f("publications_unhealthy", "Published services whose app fails its health check (withdrawn)."),
		subscriptions:      f("subscriptions", "Subscribed services (one registry watch each)."),
		subscribers:        f("subscribers", "Blocked resolve queries and Subscribe streams."),
		answerChanges:      c("answer_changes_total", "Answer revisions pushed to subscribers."),
		meshSubscriptions:  f("subscriptions_mesh", "Subscribed services whose answer is the local sidecar."),
		cachedSubscription: f("subscriptions_from_cache", "Subscribed services answered from the disk cache, not yet confirmed by the registry."),
		malformed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "detour", Subsystem: "agent", Name: "registry_malformed_entries_total",
			Help: "Registry entries skipped because they cannot be parsed.",
		}, []string{"service"}),
		registered: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "detour", Subsystem: "agent", Name: "registrations",
			Help: "Registrations the registry holds for this host, by mode (mesh: the sidecar's ingress; direct: the app's port).",
		}, []string{"mode"}),
	}
	r.MustRegister(m.malformed, m.registered,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Malformed is a registry.MalformedFunc that counts skipped entries.
func (m *Metrics) Malformed(service, key string, err error) {
	m.malformed.WithLabelValues(service).Inc()
}

// observe sets the gauges from the agent's state; a.mu is held.
func (m *Metrics) observe(a *Agent) {
	m.sidecarUp.Set(b2f(a.sc.up))
	m.registryUp.Set(b2f(a.regErr == nil))
	m.snapshotVersion.Set(float64(a.snap.Version))
	m.publications.Set(float64(len(a.pubs)))
	unhealthy := 0
	for _, p := range a.pubs {
		if !p.healthy {
			unhealthy++
		}
	}
	m.unhealthy.Set(float64(unhealthy))
	mesh, direct := 0, 0
	for _, ep := range a.registered {
		if ep.Metadata[MetaMesh] == "true" {
			mesh++
		} else {
			direct++
		}
	}
	m.registered.WithLabelValues("mesh").Set(float64(mesh))
	m.registered.WithLabelValues("direct").Set(float64(direct))
	m.subscriptions.Set(float64(len(a.subs)))
	meshSubs, cached := 0, 0
	for _, s := range a.subs {
		if s.answer.Mesh {
			meshSubs++
		}
		if s.fromCache {
			cached++
		}
	}
	m.meshSubscriptions.Set(float64(meshSubs))
	m.cachedSubscription.Set(float64(cached))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
