package shim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// TransportOption configures a Transport.
type TransportOption func(*transportOptions)

type transportOptions struct {
	base *http.Transport
}

// WithBaseTransport sets the http.Transport whose settings (timeouts,
// pool sizes, TLS) the Transport copies; its dialer and proxy are
// replaced. Default: http.DefaultTransport's.
func WithBaseTransport(t *http.Transport) TransportOption {
	return func(o *transportOptions) { o.base = t }
}

// Transport is an http.RoundTripper for "http://SERVICE/path": the URL's
// host names the service (its port is ignored) and the request goes where
// the agent says, with the Host header left as the service name. While
// the mesh carries the service it goes through the local sidecar; a
// refused egress dial goes to a fallback endpoint at once and switches
// the service to its fallback endpoints until the agent's next answer.
// Otherwise requests rotate over the endpoints, a connection each.
//
// A request that fails while the mesh carries the service makes the
// Transport dial the egress once: if it is refused the sidecar died under
// the request, the service switches to its fallback, and the request is
// sent again to a fallback endpoint if net/http would replay it itself
// (an idempotent method or an Idempotency-Key header, and a body it can
// read again). Other requests caught by the sidecar's death fail; ask
// Retries whether the app's own policy may send them again.
//
// Every host is taken as a service: use the Transport in an http.Client
// for mesh services only. Close it when done. After Client.Close it stops
// following the agent: services it knew keep their last answer, others
// fail.
type Transport struct {
	c    *Client
	base *http.Transport

	mu     sync.Mutex
	closed bool
	svcs   map[string]*svcTransport
}

// svcTransport is one service's pair of connection pools: through the
// sidecar, and to the endpoints directly. A request uses the one of the
// answer in force, so that a change of mode never reuses a connection of
// the other.
type svcTransport struct {
	w      *watch
	mesh   *http.Transport
	direct *http.Transport
	done   chan struct{}
}

// Transport returns a new Transport on the Client.
func (c *Client) Transport(opts ...TransportOption) *Transport {
	var o transportOptions
	for _, opt := range opts {
		opt(&o)
	}
	base := o.base
	if base == nil {
		base, _ = http.DefaultTransport.(*http.Transport)
	}
	if base == nil {
		base = &http.Transport{}
	}
	return &Transport{c: c, base: base, svcs: map[string]*svcTransport{}}
}

// RoundTrip sends req to the service named by its URL's host.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	st, err := t.service(req.URL.Hostname())
	var a Answer
	if err == nil {
		a, err = st.w.wait(req.Context())
	}
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	if !a.Mesh {
		return st.direct.RoundTrip(req)
	}
	resp, err := st.mesh.RoundTrip(req)
	if err == nil || req.Context().Err() != nil || len(a.Endpoints) == 0 {
		return resp, err
	}
	// Did the sidecar die under this request? Ask its egress, so that
	// the governance is right for a retry; and send the request again,
	// to the fallback, if net/http would replay it itself.
	if !st.w.probe(req.Context(), a) {
		return nil, err
	}
	replay, ok := replayable(req)
	if !ok {
		return nil, err
	}
	return st.direct.RoundTrip(replay)
}

// Retries returns how many times a retry wrapper may retry req: own, its
// own setting, unless the mesh carries the service (then 0: the sidecar
// has retried). Ask after a failure: a failure caused by the sidecar's
// death has switched the service to its fallback, and own applies.
func (t *Transport) Retries(req *http.Request, own int) int {
	g, ok := t.Governance(req.URL.Hostname())
	if !ok {
		return own
	}
	return g.RetriesFor(own)
}

// Governance returns the governance in force for service, if the
// Transport has an answer for it.
func (t *Transport) Governance(service string) (Governance, bool) {
	t.mu.Lock()
	st := t.svcs[service]
	t.mu.Unlock()
	if st == nil {
		return Governance{}, false
	}
	a, have, _ := st.w.view()
	return a.Governance, have
}

// CloseIdleConnections closes the idle connections of every service.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, st := range t.svcs {
		st.mesh.CloseIdleConnections()
		st.direct.CloseIdleConnections()
	}
}

// Close closes the idle connections and stops following the services.
func (t *Transport) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for name, st := range t.svcs {
		close(st.done)
		st.mesh.CloseIdleConnections()
		st.direct.CloseIdleConnections()
		delete(t.svcs, name)
	}
	return nil
}

func (t *Transport) service(name string) (*svcTransport, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, fmt.Errorf("shim: transport closed")
	}
	if st := t.svcs[name]; st != nil {
		return st, nil
	}
	w, err := t.c.acquire(name)
	if err != nil {
		return nil, err
	}
	st := &svcTransport{w: w, done: make(chan struct{})}
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) { return w.dialService(ctx) }
	st.mesh, st.direct = t.base.Clone(), t.base.Clone()
	for _, h := range []*http.Transport{st.mesh, st.direct} {
		h.Proxy = nil
		h.DialContext = dial
		h.DialTLSContext = nil
	}
	t.svcs[name] = st
	sig := w.listen()
	t.c.goLoop(func() { st.follow(sig) })
	return st, nil
}

// follow closes the idle connections of the mode left at each change of
// mode, until the Transport or the Client closes.
func (st *svcTransport) follow(sig chan struct{}) {
	defer st.w.c.release(st.w)
	defer st.w.unlisten(sig)
	defer st.mesh.CloseIdleConnections()
	defer st.direct.CloseIdleConnections()
	mesh, known := false, false
	for {
		select {
		case <-sig:
		case <-st.done:
			return
		case <-st.w.c.ctx.Done():
			return
		}
		a, have, _ := st.w.view()
		if !have || (known && a.Mesh == mesh) {
			continue
		}
		if known {
			// Leaving the mesh: its connections are dead or were made
			// to a fallback at the switch. Back to it: the direct ones
			// must not linger.
			st.mesh.CloseIdleConnections()
			st.direct.CloseIdleConnections()
		}
		mesh, known = a.Mesh, true
	}
}

// probe dials the egress of a, the answer in force when a request
// failed: refused means the sidecar is gone, and the service switches to
// its fallback. It reports whether the sidecar is gone.
//
// A sidecar killed with SIGKILL can still accept a probe: the kernel
// queues connections on its listening socket until the dying process's
// descriptors are closed, and then resets them. So an accepted probe is
// watched for resetWindow: reset or closed before it has sent anything
// means gone as well; a live listener never does that to a silent client.
func (w *watch) probe(ctx context.Context, a Answer) bool {
	conn, err := w.c.dial(ctx, "tcp", a.Endpoints[0])
	if err == nil {
		gone := resetAtOnce(conn, resetWindow)
		conn.Close()
		if !gone {
			return false
		}
		err = fmt.Errorf("egress %s accepted a probe and reset it: the sidecar is exiting", a.Endpoints[0])
	} else if !isRefused(err) {
		return false
	}
	w.flip(a.Revision, a.Endpoints[0], err)
	return true
}

// resetWindow is how long a probe watches an accepted connection. The
// kernel resets a dying process's queued connections within
// milliseconds; only failed calls pay this wait.
const resetWindow = 30 * time.Millisecond

// resetAtOnce reports whether conn is reset or closed by the peer within
// d without a byte being read.
func resetAtOnce(conn net.Conn, d time.Duration) bool {
	if err := conn.SetReadDeadline(time.Now().Add(d)); err != nil {
		return false
	}
	var b [1]byte
	n, err := conn.Read(b[:])
	return n == 0 && (errors.Is(err, io.EOF) || isRefused(err))
}

// replayable returns req ready to be sent again if net/http itself would
// replay it after a broken connection: an idempotent method (or an
// Idempotency-Key header) and a body it can read again.
func replayable(req *http.Request) (*http.Request, bool) {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
	default:
		if _, ok := req.Header["Idempotency-Key"]; !ok {
			if _, ok := req.Header["X-Idempotency-Key"]; !ok {
				return nil, false
			}
		}
	}
	if req.Body == nil || req.Body == http.NoBody {
		return req, true
	}
	if req.GetBody == nil {
		return nil, false
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, false
	}
	r := req.Clone(req.Context())
	r.Body = body
	return r, true
}
