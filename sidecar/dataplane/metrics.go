package dataplane

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/detourmesh/detour/sidecar/stats"
)

// StatsAny is Stats for the admin server.
func (d *Dataplane) StatsAny() any { return d.Stats() }

// Collector exposes the counters to Prometheus, read at scrape time: the
// hot path only touches its atomics.
func (d *Dataplane) Collector() prometheus.Collector { return collector{d} }

type collector struct{ d *Dataplane }

var (
	descConns    = prometheus.NewDesc("detour_sidecar_connections_total", "Connections accepted (listener) or opened (cluster, endpoint).", []string{"scope", "name", "endpoint"}, nil)
	descActive   = prometheus.NewDesc("detour_sidecar_connections_active", "Connections open now.", []string{"scope", "name", "endpoint"}, nil)
	descRequests = prometheus.NewDesc("detour_sidecar_requests_total", "L7 requests.", []string{"scope", "name", "endpoint"}, nil)
	descRetries  = prometheus.NewDesc("detour_sidecar_retries_total", "Retries (connects or requests).", []string{"scope", "name", "endpoint"}, nil)
	descBytes    = prometheus.NewDesc("detour_sidecar_bytes_total", "Bytes forwarded.", []string{"scope", "name", "endpoint", "direction"}, nil)
	descFailures = prometheus.NewDesc("detour_sidecar_failures_total", "Failures by kind.", []string{"scope", "name", "endpoint", "kind"}, nil)
	descEject    = prometheus.NewDesc("detour_sidecar_ejections_total", "Outlier ejections.", []string{"name", "endpoint"}, nil)
	descHealthy  = prometheus.NewDesc("detour_sidecar_endpoint_state", "1 for the endpoint's current state.", []string{"name", "endpoint", "state"}, nil)
	descApp      = prometheus.NewDesc("detour_sidecar_app_healthy", "Stage-1 app health.", []string{"name"}, nil)
	descReady    = prometheus.NewDesc("detour_sidecar_ready", "1 when a snapshot is applied and the sidecar is not draining.", nil, nil)
	descVersion  = prometheus.NewDesc("detour_sidecar_applied_version", "The applied snapshot's version.", nil, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConns, descActive, descRequests, descRetries, descBytes, descFailures, descEject, descHealthy, descApp, descReady, descVersion} {
		ch <- d
	}
	c.d.obs.Collector().Describe(ch)
}

func counters(ch chan<- prometheus.Metric, v stats.View, labels ...string) {
	ch <- prometheus.MustNewConstMetric(descConns, prometheus.CounterValue, float64(v.ConnsTotal), labels...)
	ch <- prometheus.MustNewConstMetric(descActive, prometheus.GaugeValue, float64(v.ConnsActive), labels...)
	ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(v.Requests), labels...)
	ch <- prometheus.MustNewConstMetric(descRetries, prometheus.CounterValue, float64(v.Retries), labels...)
	ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(v.BytesIn), append(labels, "in")...)
	ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(v.BytesOut), append(labels, "out")...)
	for k, n := range v.Failures {
		ch <- prometheus.MustNewConstMetric(descFailures, prometheus.CounterValue, float64(n), append(labels, k)...)
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	c.d.obs.Collector().Collect(ch)
	s := c.d.Stats()
	ready := 0.0
	if s.Ready {
		ready = 1
	}
	ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, ready)
	ch <- prometheus.MustNewConstMetric(descVersion, prometheus.GaugeValue, float64(s.Version))
	for _, l := range s.Listeners {
		counters(ch, l.View, "listener", l.Kind+":"+l.Service, l.Listen)
	}
	for _, cl := range s.Clusters {
		counters(ch, cl.View, "cluster", cl.Service, "")
		for _, e := range cl.Endpoints {
			counters(ch, e.View, "endpoint", cl.Service, e.Addr)
			ch <- prometheus.MustNewConstMetric(descEject, prometheus.CounterValue, float64(e.Ejections), cl.Service, e.Addr)
			state := e.Health
			if e.Ejected {
				state = "ejected"
			}
			ch <- prometheus.MustNewConstMetric(descHealthy, prometheus.GaugeValue, 1, cl.Service, e.Addr, state)
		}
	}
	for _, a := range s.Apps {
		h := 0.0
		if a.Healthy {
			h = 1
		}
		ch <- prometheus.MustNewConstMetric(descApp, prometheus.GaugeValue, h, a.Service)
	}
}
