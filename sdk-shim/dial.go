package shim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
)

// GRPCDialer returns the dialer to hand to grpc.WithContextDialer
// (DialOptions does). A dial to a service's egress address that is
// refused dials one of its fallback endpoints instead, in the same call,
// and switches the service to its fallback endpoints; any other address
// is dialled as it is.
func (c *Client) GRPCDialer() func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		if w := c.egressWatch(addr); w != nil {
			return w.dialEgress(ctx, addr)
		}
		return c.dial(ctx, "tcp", addr)
	}
}

// Dial connects to service over TCP where the agent says: the local
// sidecar's egress while the mesh carries the service, one of its
// endpoints (in rotation) otherwise. The connection carries any protocol:
// the sidecar forwards TCP without reading it.
//
// A dial to the egress that is refused (the sidecar has just died) dials
// a fallback endpoint instead, in the same call, and switches the service
// to its fallback endpoints until the agent's next answer, as GRPCDialer
// and the Transport do. A connection already open through the sidecar
// when it dies breaks (a read or write error): dial again, and the new
// connection goes to the fallback. A connection made in the very instant
// of a SIGKILL may be accepted by the dying sidecar's listener and reset
// right after (the kernel resets the connections queued on it); the dial
// after that is refused and falls back. A connection stays where it was
// made: one made to a fallback endpoint does not move back through the
// sidecar when it returns; make it again when Watch says mesh.
//
// The first Dial of a service starts following it on the agent and waits
// for the agent's first answer (within ctx); the Client follows it until
// Close. ctx bounds the dial only, not the connection's life.
func (c *Client) Dial(ctx context.Context, service string) (net.Conn, error) {
	w, err := c.dialWatch(service)
	if err != nil {
		return nil, err
	}
	return w.dialService(ctx)
}

// dialWatch returns the watch Dial uses for service, acquired once and
// held until Close.
func (c *Client) dialWatch(service string) (*watch, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	w := c.dialed[service]
	c.mu.Unlock()
	if w != nil {
		return w, nil
	}
	w, err := c.acquire(service)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if x := c.dialed[service]; x != nil { // a concurrent first Dial won
		c.mu.Unlock()
		c.release(w)
		return x, nil
	}
	c.dialed[service] = w
	c.mu.Unlock()
	return w, nil
}

// dialEgress dials addr, the service's egress, if the answer in force
// says mesh; on a refusal it switches to the fallback and dials that.
// Without mesh it dials the endpoints in force.
func (w *watch) dialEgress(ctx context.Context, addr string) (net.Conn, error) {
	a, _, _ := w.view()
	if !a.Mesh {
		return w.dialAny(ctx, a.Endpoints, nil)
	}
	conn, err := w.c.dial(ctx, "tcp", addr)
	if err == nil || !isRefused(err) {
		return conn, err
	}
	w.flip(a.Revision, addr, err)
	return w.dialAny(ctx, a.Fallback, err)
}

// dialService dials the service as the answer in force says: its egress
// (falling back on a refusal) or one of its endpoints, in rotation.
func (w *watch) dialService(ctx context.Context) (net.Conn, error) {
	a, err := w.wait(ctx)
	if err != nil {
		return nil, err
	}
	if a.Mesh && len(a.Endpoints) > 0 {
		return w.dialEgress(ctx, a.Endpoints[0])
	}
	return w.dialAny(ctx, a.Endpoints, nil)
}

// dialAny dials addrs in rotation, starting after the last one this
// watch used, and returns the first connection made.
func (w *watch) dialAny(ctx context.Context, addrs []string, cause error) (net.Conn, error) {
	if len(addrs) == 0 {
		if cause != nil {
			return nil, fmt.Errorf("shim: %q: egress refused and no fallback endpoint: %w", w.service, cause)
		}
		return nil, fmt.Errorf("shim: %q: no endpoints", w.service)
	}
	w.mu.Lock()
	start := w.next
	w.next++
	w.mu.Unlock()
	var errs []error
	if cause != nil {
		errs = append(errs, cause)
	}
	for i := range addrs {
		addr := addrs[(start+i)%len(addrs)]
		conn, err := w.c.dial(ctx, "tcp", addr)
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("shim: %q: no endpoint answered: %w", w.service, errors.Join(errs...))
}

// isRefused: the dial found nothing listening. A connection reset while
// connecting counts too: it is what a listener that dies with connections
// in its accept queue leaves behind. Either way nothing was sent.
func isRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}
