package l7

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

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

	pool               *connPool
	inflight, retrying atomic.Int64
}

// maxHeaderBytes bounds a request head.
const maxHeaderBytes = 1 << 20

// limitReader is the client connection's reader: limited while a request
// head is read, unlimited for bodies. While a body is read, gap > 0
// bounds each read: a body that stops coming for that long ends with a
// timeout (a deadline per read of up to 16 KiB, not per byte).
type limitReader struct {
	c      net.Conn
	remain int64
	gap    time.Duration
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.remain <= 0 {
		return 0, errors.New("request head too large")
	}
	if int64(len(p)) > l.remain {
		p = p[:l.remain]
	}
	if l.gap > 0 {
		l.c.SetReadDeadline(time.Now().Add(l.gap))
	}
	n, err := l.c.Read(p)
	l.remain -= int64(n)
	return n, err
}

// writeGap bounds each write to the client: one that cannot finish for
// gap (a client that stops reading its answer) fails, and the connection
// closes. Deadlines are per write, so a long answer that keeps moving is
// never cut.
type writeGap struct {
	c   net.Conn
	gap time.Duration
}

func (w writeGap) Write(p []byte) (int, error) {
	w.c.SetWriteDeadline(time.Now().Add(w.gap))
	return w.c.Write(p)
}

// serve runs the request loop on c until it closes, a request asks to,
// or drain says so. idle bounds the wait for the next request.
func (h *H1) serve(c net.Conn, br *bufio.Reader, lr *limitReader, idle time.Duration, state *atomic.Int32, draining func() bool) {
	var out io.Writer = c
	if idle > 0 {
		out = writeGap{c, idle}
	}
	var sniff *observe.Sniffer
	if h.Observe != nil {
		sniff = &observe.Sniffer{W: out}
		out = sniff
	}
	bw := bufio.NewWriterSize(out, 16<<10)
	gone := func() bool { // has the client closed its side?
		lr.gap = 0 // the body was sent whole before the wait for the answer
		c.SetReadDeadline(time.Now())
		_, err := br.Peek(1)
		c.SetReadDeadline(time.Time{})
		return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
	}
	var scratch reqScratch // a request lives until the next is read
	var remote string      // formatted once per connection, not per request
	if addr, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		remote = addr.String()
	}
	for first := true; ; first = false {
		state.Store(stateIdle)
		if draining() {
			return
		}
		if !first && idle > 0 { // the first head's deadline was set at accept
			c.SetReadDeadline(time.Now().Add(idle))
		}
		if draining() { // Drain may have cut the deadline before we set it
			return
		}
		lr.remain, lr.gap = maxHeaderBytes, 0
		if !first && br.Buffered() == 0 {
			if _, err := br.Peek(1); err != nil {
				return // idle, closed or drained: no request begun
			}
		}
		if !first && h.HeadTimeout > 0 && !headBuffered(br) {
			c.SetReadDeadline(time.Now().Add(h.HeadTimeout))
		}
		req, err := h.readRequest(&br, lr, &scratch)
		state.Store(stateActive)
		if err != nil {
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
			return
		}
		lr.remain = 1<<63 - 1
		if req.ContentLength != 0 {
			// A body is read from c: the idle deadline must not cut it, but
			// a body that stops coming for idle does (slow-body clients).
			// With none, only gone() reads c, under its own deadline; the
			// next loop sets the idle one again anyway.
			c.SetReadDeadline(time.Time{})
			lr.gap = idle
		}
		req.RemoteAddr = remote
		if sniff != nil {
			start := time.Now()
			sniff.Reset()
			sp := h.Observe.StartSpan(req.Header, req.Method, req.URL.Path)
			ok := h.handle(req, bw, gone)
			r := observe.Request{Method: req.Method, Path: req.URL.Path, Proto: req.Proto, Remote: remote, Status: sniff.Status()}
			observe.EndSpan(sp, r)
			h.Observe.Done(r, start)
			if !ok {
				return
			}
			continue
		}
		if !h.handle(req, bw, gone) {
			return
		}
	}
}

// readRequest reads the next request head from *br once it is whole
// and has passed checkRequestHead.
func (h *H1) readRequest(br **bufio.Reader, lr io.Reader, scratch *reqScratch) (*http.Request, error) {
	n, err := peekHead(br, lr)
	if err != nil {
		return nil, err
	}
	head, _ := (*br).Peek(n)
	if err := checkRequestHead(head); err != nil {
		return nil, err
	}
	req, err := readRequestHead(*br, scratch)
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

// headBuffered reports whether br holds a whole head already (the
// common case: it came in one segment), so no head deadline is needed.
func headBuffered(br *bufio.Reader) bool {
	buf, _ := br.Peek(br.Buffered())
	return bytes.Contains(buf, crlf2)
}

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
func (h *H1) handle(req *http.Request, bw *bufio.Writer, gone func() bool) bool {
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
	outHeaders(req.Header, req)
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
		resp, uc, kind, err := h.roundTrip(addr, req, body, replayable, gone)
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
		ok := h.respond(resp, uc, addr, keep, bw)
		h.verdict(ep, resp.StatusCode)
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

// roundTrip sends req on a pooled connection to addr and reads the
// response head. A reused connection the upstream had closed is retried
// once on a fresh one when the request can be sent again.
func (h *H1) roundTrip(addr string, req *http.Request, body []byte, replayable bool, gone func() bool) (*http.Response, *upConn, int, error) {
	for {
		uc, err := h.pool.get(addr)
		if err != nil {
			return nil, nil, stats.DialKind(err), err
		}
		if body != nil {
			req.Body = io.NopCloser(bytes.NewReader(body))
		}
		var deadline time.Time
		if h.RequestTimeout > 0 {
			deadline = time.Now().Add(h.RequestTimeout)
		}
		if !deadline.IsZero() || uc.timed { // each SetDeadline updates a runtime timer
			uc.SetDeadline(deadline)
			uc.timed = !deadline.IsZero()
		}
		if fastRequest(req) {
			err = writeRequest(uc.w, req)
		} else {
			err = req.Write(uc.w)
		}
		if err == nil {
			err = uc.w.Flush()
		}
		if err == nil {
			err = waitFirstByte(uc, deadline, gone)
		}
		var resp *http.Response
		if err == nil {
			if resp = readHead(uc, req); resp == nil {
				resp, err = http.ReadResponse(uc.r, req)
			}
			for err == nil && resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
				resp, err = http.ReadResponse(uc.r, req) // 1xx informational: skipped
			}
		}
		if err == nil && resp.StatusCode == http.StatusSwitchingProtocols {
			err = errors.New("upgrade not supported")
		}
		if err == nil && !checkHeader(resp.Header) {
			err = errBadResponse
		}
		if err != nil {
			uc.Close()
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil, nil, stats.RequestTimeout, errRequestTimeout
			}
			// A reset or broken pipe is the same race as EOF: the
			// upstream closed the idle connection as the request went
			// out (a draining sidecar handing over, say).
			if uc.reused && replayable && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
				errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)) {
				continue
			}
			return nil, nil, stats.Other, err
		}
		if uc.timed {
			uc.SetDeadline(time.Time{})
			uc.timed = false
		}
		return resp, uc, 0, nil
	}
}

// checkEvery is how often a request waiting for its answer checks that
// its client is still there.
const checkEvery = time.Second

var errClientGone = errors.New("client went away")

// waitFirstByte waits for the upstream's answer to begin, until
// deadline (zero: none), checking every checkEvery that the client has
// not gone away meanwhile (no goroutine watches the client).
func waitFirstByte(uc *upConn, deadline time.Time, gone func() bool) error {
	for {
		slice := time.Now().Add(checkEvery)
		if !deadline.IsZero() && deadline.Before(slice) {
			slice = deadline
		}
		uc.SetReadDeadline(slice)
		_, err := uc.r.Peek(1)
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			uc.SetReadDeadline(deadline)
			return err
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return err
		}
		if gone() {
			return errClientGone
		}
	}
}

// respond writes resp to the client, streaming if its length is unknown,
// returns uc to the pool when it can be reused, and reports whether the
// client connection stays open.
func (h *H1) respond(resp *http.Response, uc *upConn, addr string, keep bool, bw *bufio.Writer) bool {
	upKeep := !resp.Close
	for _, k := range hopHeaders {
		if k != "Trailer" {
			delete(resp.Header, k) // hopHeaders are canonical
		}
	}
	untilClose := resp.ContentLength < 0 && !(len(resp.TransferEncoding) > 0 && resp.TransferEncoding[0] == "chunked")
	resp.Close = !keep || untilClose
	var w io.Writer = bw
	if resp.ContentLength < 0 {
		w = flushWriter{bw}
	}
	// The listener's bytes are counted on the connection (stats.Conn).
	var err error
	if fastResponse(resp) {
		_, err = writeResponse(bw, resp)
	} else {
		err = resp.Write(w)
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil && upKeep {
		h.pool.put(addr, uc)
	} else {
		uc.Close()
	}
	return err == nil && keep && !untilClose
}

type flushWriter struct{ w *bufio.Writer }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err == nil {
		err = f.w.Flush()
	}
	return n, err
}
