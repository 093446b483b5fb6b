package dataplane

import (
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/detourmesh/detour/sidecar/listener"
	"github.com/detourmesh/detour/sidecar/observe"
)

// WithAccessLogWriter sends the access log to w instead of cfg.AccessLog
// (tests, the benchmark).
func WithAccessLogWriter(w io.Writer) Option { return func(d *Dataplane) { d.logW = w } }

// initObserver opens the access log (when on) and makes the histograms.
func (d *Dataplane) initObserver() error {
	mode := d.cfg.AccessLogMode
	if mode == "" {
		mode = observe.Off
	}
	w := d.logW
	if w == nil && mode != observe.Off {
		switch d.cfg.AccessLog {
		case "-", "":
			w = os.Stdout
		default:
			f, err := os.OpenFile(d.cfg.AccessLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
			if err != nil {
				return fmt.Errorf("access_log: %w", err)
			}
			w, d.logClose = f, f.Close
		}
	}
	o, err := observe.New(w, mode, d.cfg.AccessLogSample)
	if err != nil {
		return err
	}
	if d.cfg.OTLPEndpoint != "" {
		t, err := observe.NewTracer(d.cfg.OTLPEndpoint, d.cfg.TraceSample, d.cfg.HostIP)
		if err != nil {
			return err
		}
		o.SetTracer(t)
		d.tracer = t
	}
	d.obs = o
	o.Start()
	return nil
}

// observedConn logs each L4 connection its handler serves.
type observedConn struct {
	listener.Handler
	l *observe.Listener
}

func (h observedConn) ServeConn(c net.Conn) {
	start := time.Now()
	h.Handler.ServeConn(c)
	h.l.Conn(c, start)
}

// observeL4 wraps an L4 handler when the access log is on.
func (d *Dataplane) observeL4(h listener.Handler, service, direction string) listener.Handler {
	if !d.obs.Logs() {
		return h
	}
	return observedConn{h, d.obs.Listener(service, direction)}
}
