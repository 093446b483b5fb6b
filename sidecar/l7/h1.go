package l7

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/detourmesh/detour/sidecar/cluster"
	"github.com/detourmesh/detour/sidecar/limit"
	"github.com/detourmesh/detour/sidecar/observe"
	"github.com/detourmesh/detour/sidecar/route"
	"github.com/detourmesh/detour/sidecar/stats"
)

// H1 is the HTTP/1.1 fast path: one goroutine per client connection
// reads a request, forwards it on a pooled upstream connection and
// copies the answer back, with none of the server's or transport's
// goroutine hand-offs. The common request (no body) and answer (a
// Content-Length body) are parsed from the buffer (reqhead.go,
// resphead.go) and the common heads written straight into it (wire.go);
// everything else goes through net/http's parsers and writers. Each head
// and a small body leave in one write.
//
// Egress (Cluster set) balances each request, retries connect failures
// and retriable statuses on another endpoint within the budget, and
// reports outliers; ingress (Target set) forwards to its one target.
type H1 struct {
	Cluster  *cluster.Cluster
	Target   string
	Listener *stats.Counters

	RequestTimeout time.Duration
	Retries        int
	Retriable      map[int]bool
	BudgetPercent  int
	MinRetries     int
	MaxRequests    int64
	BodyLimit      int
	// HeadTimeout bounds the reading of a request head: from the
	// connection's accept for its first request, from the head's first
	// byte for the next ones (until then the idle timeout applies), as
	// nginx's client_header_timeout; 0: none.
	HeadTimeout time.Duration
	// UpstreamIdle closes pooled upstream connections idle this long;
	// 0: the listener's idle timeout.
	UpstreamIdle time.Duration
	// Limit, when set, caps what an ingress admits (429, Retry-After).
	Limit *limit.Limiter
	// Observe, when set, records each request (histogram, access log).
	Observe *observe.Listener

	pool *connPool
	// Moved by every request on every core: a cache line of their own,
	// not the one of the fields above that every request reads.
	_                  [64]byte
	inflight, retrying atomic.Int64
	conns              atomic.Uint64 // connections served: their pool shards
	_                  [40]byte
}

// maxHeaderBytes bounds a request head.
const maxHeaderBytes = 1 << 20

// serve runs the request loop on c until it closes, a request asks to,
// or drain says so. idle bounds the wait for the next request. Its
// deadlines are lazy (deadline.go): a keep-alive request moves none.
func (h *H1) serve(c net.Conn, br *bufio.Reader, lr *limitReader, idle time.Duration, state *atomic.Int32, draining func() bool) {
	lc := &lazyConn{Conn: c}
	if first := h.HeadTimeout; first > 0 { // what ServeConn armed at accept
		lc.rd = lazyDeadline{want: time.Now().Add(first), armed: time.Now().Add(first)}
	} else if idle > 0 {
		lc.rd = lazyDeadline{want: time.Now().Add(idle), armed: time.Now().Add(idle)}
	}
	// A drain cuts the deadline of a connection between requests: that
	// one must not be taken for one that fired early.
	drainable := true
	lc.stop = func() bool { return drainable && draining() }
	lr.c = lc
	var out io.Writer = lc
	if idle > 0 {
		out = writeGap{lc, idle}
	}
	var sniff *observe.Sniffer
	if h.Observe != nil {
		sniff = &observe.Sniffer{W: out}
		out = sniff
	}
	bw := bufio.NewWriterSize(out, 16<<10)
	gone := func() bool { // has the client closed its side?
		lr.gap = 0 // the body was sent whole before the wait for the answer
		lc.SetReadDeadline(time.Now())
		_, err := br.Peek(1)
		lc.SetReadDeadline(time.Time{})
		return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
	}
	var scratch reqScratch // a request lives until the next is read
	scratch.shard = int(h.conns.Add(1) % poolShards)
	var remote string // formatted once per connection, not per request
	if addr, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		remote = addr.String()
	}
	for first := true; ; first = false {
		state.Store(stateIdle)
		drainable = true
		if draining() {
			return
		}
		lr.remain, lr.gap = maxHeaderBytes, 0
		if !first { // the first head's deadline was set at accept
			var until time.Time
			now := time.Now()
			if idle > 0 {
				until = now.Add(idle)
			}
			lc.SetReadDeadline(until)
			if draining() { // a drain's cut may have been overwritten just now
				return
			}
			if br.Buffered() == 0 {
				if _, err := br.Peek(1); err != nil {
					return // idle, closed or drained: no request begun
				}
				now = time.Now()
			}
			if h.HeadTimeout > 0 { // armed only if the head needs another read
				lr.headBy = now.Add(h.HeadTimeout)
			}
		}
		req, err := h.readRequest(&br, lr, &scratch)
		lr.headBy = time.Time{}
		state.Store(stateActive)
		drainable = false
		if err != nil {
			h.refuse(err, bw, c, draining)
			return
		}
		lr.remain = 1<<63 - 1
		if req.ContentLength != 0 {
			// A body is read from c: the idle deadline must not cut it, but
			// a body that stops coming for idle does (slow-body clients).
			// With none, only gone() reads c, under its own deadline; the
			// next loop sets the idle one again anyway.
			lc.SetReadDeadline(time.Time{})
			lr.gap = idle
		}
		req.RemoteAddr = remote
		var start time.Time
		var sp trace.Span
		if sniff != nil {
			start = time.Now()
			sniff.Reset()
			sp = h.Observe.StartSpan(req.Header, req.Method, req.URL.Path)
		}
		ok := h.handle(req, bw, gone, &scratch)
		if sniff != nil {
			r := observe.Request{Method: req.Method, Path: req.URL.Path, Proto: req.Proto, Remote: remote, Status: sniff.Status()}
			observe.EndSpan(sp, r)
			h.Observe.Done(r, start)
		}
		if !ok {
			return
		}
	}
}

// refuse answers a request head that could not be read, as it deserves.
func (h *H1) refuse(err error, bw *bufio.Writer, c net.Conn, draining func() bool) {
	var he *headError
	switch {
	case errors.As(err, &he):
		h.Listener.Fail(stats.BadFrame)
		writeError(bw, he.code, "sidecar: "+he.msg)
		lingerClose(c)
	case errors.Is(err, os.ErrDeadlineExceeded):
		if !draining() && h.HeadTimeout > 0 {
			h.Listener.Fail(stats.HeadTimeout)
		}
	case !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, net.ErrClosed):
		h.Listener.Fail(stats.BadFrame)
		writeError(bw, http.StatusBadRequest, "bad request")
	}
}

// readRequest reads the next request head from *br once it is whole, in
// one pass that checks it (scanHead) and parses the common request; any
// other that passes goes to http.ReadRequest.
func (h *H1) readRequest(br **bufio.Reader, lr io.Reader, s *reqScratch) (*http.Request, error) {
	n, err := peekHead(br, lr, &s.ends)
	if err != nil {
		return nil, err
	}
	req, err := s.take(*br, n)
	if req == nil && err == nil {
		req, err = http.ReadRequest(*br)
	}
	return req, err
}

// lingerClose lets a client that is still sending read the refusal just
// written: closed at once with unread bytes, the connection would be
// reset and the answer lost. It reads what comes for a short while (a
// bounded amount), as nginx's lingering_close does.
func lingerClose(c net.Conn) {
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	c.SetReadDeadline(time.Now().Add(lingerTime))
	io.CopyN(io.Discard, c, lingerBytes)
}

const (
	lingerTime  = 500 * time.Millisecond
	lingerBytes = 256 << 10
)

const (
	stateIdle int32 = iota
	stateActive
)

func writeError(bw *bufio.Writer, code int, msg string) {
	bw.WriteString("HTTP/1.1 " + strconv.Itoa(code) + " " + http.StatusText(code) + "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " + strconv.Itoa(len(msg)+1) + "\r\n\r\n" + msg + "\n")
	bw.Flush()
}

func (h *H1) pick(subset string, exclude *cluster.Endpoint) (string, *cluster.Endpoint, error) {
	if h.Cluster == nil {
		return h.Target, nil, nil
	}
	ep, err := h.Cluster.PickSubset(subset, exclude)
	if err != nil {
		return "", nil, err
	}
	return ep.DialAddr(), ep, nil
}

func (h *H1) fail(k int, ep *cluster.Endpoint) {
	h.Listener.Fail(k)
	if h.Cluster == nil {
		return
	}
	if ep != nil {
		h.Cluster.Failure(ep, k)
	} else {
		h.Cluster.Stats.Fail(k)
	}
}

// handle forwards one request and reports whether the client connection
// stays open.
func (h *H1) handle(req *http.Request, bw *bufio.Writer, gone func() bool, s *reqScratch) bool {
	h.Listener.Requests.Add(1)
	if h.Cluster != nil {
		h.Cluster.Stats.Requests.Add(1)
	}
	n := h.inflight.Add(1)
	defer h.inflight.Add(-1)
	keep := !req.Close
	unread := req.ContentLength != 0 // the body is still on the wire
	if h.MaxRequests > 0 && n > h.MaxRequests {
		h.fail(stats.Overflow, nil)
		writeError(bw, http.StatusServiceUnavailable, "sidecar: too many requests in flight")
		return keep && !unread
	}
	if ok, ra := h.Limit.Acquire(); !ok {
		refuseH1(bw, ra)
		return keep && !unread
	}
	defer h.Limit.Release()
	if e := req.Header["Expect"]; len(e) > 0 && e[0] == "100-continue" {
		delete(req.Header, "Expect")
		bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		bw.Flush()
	}
	var dec route.Decision
	if h.Cluster != nil {
		dec = h.Cluster.Routes().Decide(req.Header, req.URL.Path)
		if !h.fault(dec, bw) {
			return keep && !unread
		}
	}
	subset := dec.Subset
	outHeadersInto(req.Header, req, &s.fwd)
	if _, ok := req.Header["User-Agent"]; !ok {
		req.Header["User-Agent"] = []string{""} // Request.Write must not add its own
	}
	req.Close = false
	var body []byte
	replayable := req.ContentLength == 0
	if req.ContentLength > 0 && req.ContentLength <= int64(h.BodyLimit) && h.Retries > 0 {
		body = make([]byte, req.ContentLength)
		if _, err := io.ReadFull(req.Body, body); err != nil {
			return false
		}
		replayable, unread = true, false
	}

	var exclude *cluster.Endpoint
	var cb *clientBody
	for attempt := 0; ; attempt++ {
		addr, ep, err := h.pick(subset, exclude)
		if err != nil {
			h.fail(stats.NoHealthy, nil)
			writeError(bw, http.StatusServiceUnavailable, "sidecar: "+err.Error())
			return keep && !unread
		}
		if attempt > 0 {
			h.Listener.Retries.Add(1)
			h.Cluster.Stats.Retries.Add(1)
		}
		if ep != nil {
			ep.Begin()
			ep.Stats.Requests.Add(1)
		}
		if body == nil && req.Body != http.NoBody && cb == nil {
			cb = &clientBody{rc: req.Body}
			req.Body = cb
		}
		resp, uc, kind, err := h.roundTrip(addr, req, body, replayable, gone, s.shard)
		canRetry := h.Cluster != nil && attempt < h.Retries && replayable && h.retryAllowed()
		if err != nil && cb != nil && cb.err != nil {
			// The client's body was bad (malformed chunks) or cut short:
			// the client's fault, not the upstream's (no outlier report).
			h.Listener.Fail(stats.BadFrame)
			if ep != nil {
				ep.End()
			}
			code := http.StatusBadRequest
			if errors.Is(cb.err, os.ErrDeadlineExceeded) {
				code = http.StatusRequestTimeout
			}
			writeError(bw, code, "sidecar: request body: "+cb.err.Error())
			return false
		}
		if err != nil {
			h.fail(kind, ep)
			if ep != nil {
				ep.End()
			}
			if isDial(err) && canRetry {
				exclude = ep
				h.retrying.Add(1)
				defer h.retrying.Add(-1)
				continue
			}
			code := upstreamStatus(kind)
			writeError(bw, code, "sidecar: upstream: "+err.Error())
			return keep && !unread
		}
		if h.Retriable[resp.StatusCode] && canRetry {
			h.verdict(ep, resp.StatusCode)
			uc.Close()
			ep.End()
			exclude = ep
			h.retrying.Add(1)
			defer h.retrying.Add(-1)
			continue
		}
		code := resp.StatusCode // resp lives in uc: another request's once respond pools uc
		ok := h.respond(resp, uc, addr, keep, bw)
		h.verdict(ep, code)
		if ep != nil {
			ep.End()
		}
		return ok
	}
}

func (h *H1) retryAllowed() bool {
	budget := max(int64(h.MinRetries), h.inflight.Load()*int64(h.BudgetPercent)/100)
	return h.retrying.Load() < budget
}

func (h *H1) verdict(ep *cluster.Endpoint, code int) {
	if ep == nil {
		return
	}
	if code >= 500 {
		h.Listener.Fail(stats.Status5xx)
		h.Cluster.Failure(ep, stats.Status5xx)
		return
	}
	h.Cluster.Success(ep)
}
