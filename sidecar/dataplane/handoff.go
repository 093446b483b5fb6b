package dataplane

import (
	"context"
	"net"

	"github.com/detourmesh/detour/sidecar/listener"
)

// WithListen replaces net.Listen for the data path's listeners: a sidecar
// that takes over from a running one passes the sockets it inherited.
func WithListen(f func(network, addr string) (net.Listener, error)) Option {
	return func(d *Dataplane) { d.lmOpt = append(d.lmOpt, listener.WithListen(f)) }
}

// HandOff is Shutdown for a sidecar whose listening sockets now belong to
// a new process (an upgrade): it stops accepting and lets connections and
// requests finish until ctx ends, but does not mark the sidecar not ready
// nor its health port 503, because the new process serves both and the
// agent must not send traffic around the host.
func (d *Dataplane) HandOff(ctx context.Context) error {
	err := d.lm.Shutdown(ctx)
	d.mon.Close()
	d.check.CloseIdleConnections()
	d.mu.Lock()
	if !d.closed {
		d.closed = true
		close(d.stop)
	}
	d.mu.Unlock()
	<-d.stopped
	return err
}
