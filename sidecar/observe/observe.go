// Package observe is the sidecar's request observability: a histogram
// of L7 request durations per service, direction and outcome, and an
// access log of JSON lines (per request at L7, per connection at L4),
// off, sampled or full.
package observe

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Access-log modes.
const (
	Off     = "off"
	Sampled = "sampled"
	Full    = "full"
)

// Outcomes, the histogram's outcome label.
var outcomes = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx", "grpc_error"}

// Observer holds the histogram and the access log. Safe for concurrent
// use; a nil *Observer observes nothing.
type Observer struct {
	hist   *prometheus.HistogramVec
	mode   string
	sample float64

	tracer  *Tracer    // nil: no traces
	mu      sync.Mutex // guards buf and w
	w       io.Writer
	buf     []byte // lines not yet written
	stop    chan struct{}
	stopped chan struct{}
}

// New returns an observer logging to w in mode (Off, Sampled: a share
// sample of the requests and connections, Full).
func New(w io.Writer, mode string, sample float64) (*Observer, error) {
	switch {
	case mode != Off && mode != Sampled && mode != Full:
		return nil, fmt.Errorf("access_log_mode: %q, want off, sampled or full", mode)
	case mode == Sampled && (sample <= 0 || sample > 1):
		return nil, fmt.Errorf("access_log_sample: %v, want (0, 1]", sample)
	case mode != Off && w == nil:
		return nil, fmt.Errorf("access log: no writer")
	}
	return &Observer{
		hist: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "detour_sidecar_request_duration_seconds",
			Help:    "L7 request duration at the sidecar, from the request head to the response's end, by service, direction (egress, ingress) and outcome (status class, a Dubbo call's in the HTTP class that means the same, or grpc_error).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"service", "direction", "outcome"}),
		mode: mode, sample: sample, w: w,
	}, nil
}

// Start flushes the access log every flushEvery until Close; without it
// lines are written when the buffer fills (and by Close).
func (o *Observer) Start() {
	if o.mode == Off || o.stop != nil {
		return
	}
	o.stop, o.stopped = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(o.stopped)
		t := time.NewTicker(flushEvery)
		defer t.Stop()
		for {
			select {
			case <-o.stop:
				return
			case <-t.C:
				o.Flush()
			}
		}
	}()
}

// Close stops the flusher and writes what is left.
func (o *Observer) Close() {
	if o.stop != nil {
		close(o.stop)
		<-o.stopped
		o.stop = nil
	}
	o.Flush()
}

// Collector is the histogram, for the sidecar's registry.
func (o *Observer) Collector() prometheus.Collector { return o.hist }

// Listener is one listener's view: its histogram children resolved once.
type Listener struct {
	o                  *Observer
	service, direction string
	obs                [len(outcomes)]prometheus.Observer
}

// Listener returns the observer of service's listener in direction.
func (o *Observer) Listener(service, direction string) *Listener {
	if o == nil {
		return nil
	}
	l := &Listener{o: o, service: service, direction: direction}
	for i, oc := range outcomes {
		l.obs[i] = o.hist.WithLabelValues(service, direction, oc)
	}
	return l
}

func (l *Listener) logs() bool {
	switch l.o.mode {
	case Full:
		return true
	case Sampled:
		return rand.Float64() < l.o.sample
	}
	return false
}

// Request is what is recorded of one L7 request.
type Request struct {
	Method, Path, Proto, Remote string
	Status                      int
	// GRPCStatus: the grpc-status the answer carried, "" if none.
	GRPCStatus string
}

// Done records a request that began at start.
func (l *Listener) Done(r Request, start time.Time) {
	if l == nil {
		return
	}
	d := time.Since(start)
	i := min(max(r.Status/100-1, 0), 4)
	if r.GRPCStatus != "" && r.GRPCStatus != "0" {
		i = 5
	}
	l.obs[i].Observe(d.Seconds())
	if l.logs() {
		l.o.line(func(b []byte) []byte {
			b = l.head(b, start, "request")
			b = str(b, "method", r.Method)
			b = str(b, "path", r.Path)
			b = str(b, "proto", r.Proto)
			if r.Remote != "" {
				b = str(b, "remote", r.Remote)
			}
			b = append(b, `,"status":`...)
			b = strconv.AppendInt(b, int64(r.Status), 10)
			if r.GRPCStatus != "" {
				b = str(b, "grpc_status", r.GRPCStatus)
			}
			return ms(b, d)
		})
	}
}

// Conn records an L4 connection that began at start.
func (l *Listener) Conn(c net.Conn, start time.Time) {
	if l == nil || !l.logs() {
		return
	}
	d := time.Since(start)
	l.o.line(func(b []byte) []byte {
		b = l.head(b, start, "connection")
		b = str(b, "remote", c.RemoteAddr().String())
		return ms(b, d)
	})
}

// Logs says whether the access log is on.
func (o *Observer) Logs() bool { return o != nil && o.mode != Off }
