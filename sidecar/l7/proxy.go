// Package l7 is the sidecar's HTTP/1.1 and h2c (gRPC) forwarding. Each
// request is load-balanced on its own over pooled, kept-alive upstream
// connections (HTTP/1.1 requests go out as HTTP/1.1, HTTP/2 and gRPC
// requests as h2c with prior knowledge). A request that fails to connect,
// or gets a retriable status (or gRPC UNAVAILABLE in a trailers-only
// answer), is retried once per allowed retry on another endpoint, within
// a retry budget. 5xx, gRPC UNAVAILABLE, connect failures and request
// timeouts count as outlier failures. Bodies and streams are copied as
// they come, both ways, so gRPC streaming works.
package l7

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/detourmesh/detour/sidecar/cluster"
	"github.com/detourmesh/detour/sidecar/coalesce"
	"github.com/detourmesh/detour/sidecar/stats"
)

// DialFunc dials an upstream.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Transports are the pooled upstream clients: HTTP/1.1 and h2c.
type Transports struct {
	H1, H2 *http.Transport
}

// NewTransports returns pooled transports dialling through dial, each
// connect bounded by connectTimeout.
func NewTransports(dial DialFunc, connectTimeout, idle time.Duration) *Transports {
	d := func(ctx context.Context, network, addr string) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(ctx, connectTimeout)
		defer cancel()
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, &net.OpError{Op: "dial", Net: network, Err: err}
		}
		return c, nil
	}
	// HTTP/2 flushes every frame; coalescing them saves most writes.
	d2 := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return coalesce.New(c), nil
	}
	mk := func(h2 bool) *http.Transport {
		p, dial := new(http.Protocols), d
		if h2 {
			p.SetUnencryptedHTTP2(true)
			dial = d2
		} else {
			p.SetHTTP1(true)
		}
		return &http.Transport{
			DialContext: dial, Protocols: p, DisableCompression: true,
			MaxIdleConns: 1024, MaxIdleConnsPerHost: 256, IdleConnTimeout: idle,
		}
	}
	return &Transports{H1: mk(false), H2: mk(true)}
}

// Close drops idle upstream connections.
func (t *Transports) Close() {
	t.H1.CloseIdleConnections()
	t.H2.CloseIdleConnections()
}

func (t *Transports) pick(r *http.Request, grpc bool) http.RoundTripper {
	if grpc || r.ProtoMajor == 2 {
		return t.H2
	}
	return t.H1
}

// Egress forwards requests to a cluster.
type Egress struct {
	Cluster    *cluster.Cluster
	Listener   *stats.Counters
	Transports *Transports
	Log        *zap.Logger
	GRPC       bool

	RequestTimeout time.Duration
	Retries        int
	Retriable      map[int]bool
	// BudgetPercent of requests in flight may be retries, and
	// MinRetries retries may always be.
	BudgetPercent, MinRetries int
	// MaxRequests bounds requests in flight; 0: no limit.
	MaxRequests int64
	// BodyLimit is how much request body is kept for a retry.
	BodyLimit int
	Pool      *sync.Pool // *[]byte copy buffers

	inflight, retrying atomic.Int64
}

var (
	errRequestTimeout = errors.New("request timeout")
	errNotReplayable  = errors.New("request body: not kept for a resend")
)

func (h *Egress) retryAllowed() bool {
	budget := max(int64(h.MinRetries), h.inflight.Load()*int64(h.BudgetPercent)/100)
	return h.retrying.Load() < budget
}

// ServeHTTP forwards one request.
func (h *Egress) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cl := h.Cluster
	h.Listener.Requests.Add(1)
	cl.Stats.Requests.Add(1)
	n := h.inflight.Add(1)
	defer h.inflight.Add(-1)
	if h.MaxRequests > 0 && n > h.MaxRequests {
		h.fail(stats.Overflow)
		http.Error(w, "sidecar: too many requests in flight", http.StatusServiceUnavailable)
		return
	}
	dec := cl.Routes().Decide(r.Header, r.URL.Path)
	if !faultH2(dec, w, r) {
		return
	}
	subset := dec.Subset
	body := newReplay(r.Body, h.BodyLimit)
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme = "http"
	out.Close = false
	outHeaders(out.Header, r)
	rt := h.Transports.pick(r, h.GRPC)

	var exclude *cluster.Endpoint
	for attempt := 0; ; attempt++ {
		ep, err := cl.PickSubset(subset, exclude)
		if err != nil {
			h.fail(stats.NoHealthy)
			http.Error(w, "sidecar: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		if attempt > 0 {
			cl.Stats.Retries.Add(1)
			h.Listener.Retries.Add(1)
		}
		ep.Begin()
		ep.Stats.Requests.Add(1)
		resp, kind, cancel, err := h.try(rt, out, ep, body)
		canRetry := attempt < h.Retries && body.replayable() && h.retryAllowed()
		if err != nil {
			h.Listener.Fail(kind)
			cl.Failure(ep, kind)
			ep.End()
			cancel()
			if isDial(err) && canRetry {
				exclude = ep
				h.retrying.Add(1)
				defer h.retrying.Add(-1)
				continue
			}
			code := upstreamStatus(kind)
			http.Error(w, "sidecar: upstream: "+err.Error(), code)
			return
		}
		grpcUnavailable := resp.Header.Get("Grpc-Status") == "14"
		if (h.Retriable[resp.StatusCode] || grpcUnavailable) && canRetry {
			h.verdict(ep, resp.StatusCode, grpcUnavailable)
			resp.Body.Close()
			ep.End()
			cancel()
			exclude = ep
			h.retrying.Add(1)
			defer h.retrying.Add(-1)
			continue
		}
		h.respond(w, resp, ep)
		ep.End()
		cancel()
		return
	}
}

// try runs one attempt; the request timeout runs until the response
// headers arrive (the body, a stream maybe, is bounded by idle timeouts).
func (h *Egress) try(rt http.RoundTripper, out *http.Request, ep *cluster.Endpoint, body *replay) (*http.Response, int, context.CancelFunc, error) {
	ctx, cancel := context.WithCancelCause(out.Context())
	var timer *time.Timer
	if h.RequestTimeout > 0 {
		timer = time.AfterFunc(h.RequestTimeout, func() { cancel(errRequestTimeout) })
	}
	req := out.WithContext(ctx)
	u := *out.URL
	u.Host = ep.DialAddr()
	req.URL = &u
	req.Body = body.attempt()
	if out.Body == nil || out.Body == http.NoBody {
		req.Body = out.Body
	}
	// With GetBody the transport itself resends a request the upstream
	// never processed (HTTP/2 GOAWAY or a refused stream from a draining
	// sidecar) instead of failing it.
	req.GetBody = func() (io.ReadCloser, error) {
		if !body.replayable() {
			return nil, errNotReplayable
		}
		return body.attempt(), nil
	}
	resp, err := rt.RoundTrip(req)
	if timer != nil {
		timer.Stop()
	}
	stop := func() { cancel(nil) }
	if err != nil {
		if errors.Is(context.Cause(ctx), errRequestTimeout) {
			return nil, stats.RequestTimeout, stop, errRequestTimeout
		}
		if isDial(err) {
			return nil, stats.DialKind(err), stop, err
		}
		return nil, stats.Other, stop, err
	}
	return resp, 0, stop, nil
}

// upstreamStatus is the status the client gets when no upstream answered:
// 504 for a request timeout, 503 when no endpoint could be reached, 502
// otherwise.
func upstreamStatus(kind int) int {
	switch kind {
	case stats.RequestTimeout:
		return http.StatusGatewayTimeout
	case stats.ConnectRefused, stats.ConnectTimeout:
		return http.StatusServiceUnavailable
	}
	return http.StatusBadGateway
}

func isDial(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// verdict reports the outcome of a response to outlier detection.
func (h *Egress) verdict(ep *cluster.Endpoint, code int, grpcUnavailable bool) {
	switch {
	case grpcUnavailable:
		h.Listener.Fail(stats.GRPCUnavailable)
		h.Cluster.Failure(ep, stats.GRPCUnavailable)
	case code >= 500:
		h.Listener.Fail(stats.Status5xx)
		h.Cluster.Failure(ep, stats.Status5xx)
	default:
		h.Cluster.Success(ep)
	}
}

func (h *Egress) respond(w http.ResponseWriter, resp *http.Response, ep *cluster.Endpoint) {
	// The listener's bytes are counted on the client's connection
	// (stats.Conn); the cluster's and the endpoint's are the bodies.
	_, out := copyResponse(w, resp, h.Pool, h.GRPC)
	ep.Stats.BytesOut.Add(uint64(out))
	h.Cluster.Stats.BytesOut.Add(uint64(out))
	unavailable := resp.Header.Get("Grpc-Status") == "14" || resp.Trailer.Get("Grpc-Status") == "14"
	h.verdict(ep, resp.StatusCode, unavailable)
}

func (h *Egress) fail(k int) {
	h.Listener.Fail(k)
	h.Cluster.Stats.Fail(k)
}

// copyResponse writes resp to w, streaming (flushing each chunk) unless
// the length is known, then the trailers. It returns 0 and the bytes of
// body written.
func copyResponse(w http.ResponseWriter, resp *http.Response, pool *sync.Pool, stream bool) (int64, int64) {
	defer resp.Body.Close()
	copyResponseHeaders(w.Header(), resp.Header)
	w.WriteHeader(resp.StatusCode)
	flush := stream || resp.ContentLength < 0
	rc := http.NewResponseController(w)
	bp := pool.Get().(*[]byte)
	defer pool.Put(bp)
	buf := *bp
	var written int64
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				break
			}
			written += int64(n)
			if flush {
				rc.Flush()
			}
		}
		if err != nil {
			break
		}
	}
	for k, vv := range resp.Trailer {
		for _, v := range vv {
			w.Header().Add(http.TrailerPrefix+k, v)
		}
	}
	return 0, written
}
