package l7

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"

	"github.com/detourmesh/detour/sidecar/stats"
)

// roundTrip sends req on a pooled connection to addr and reads the
// response head. A reused connection the upstream had closed is retried
// once on a fresh one when the request can be sent again.
func (h *H1) roundTrip(addr string, req *http.Request, body []byte, replayable bool, gone func() bool, hint int) (*http.Response, *upConn, int, error) {
	for {
		uc, err := h.pool.get(addr, hint)
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
		uc.SetDeadline(deadline) // lazy (deadline.go): seldom a timer operation
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
		uc.SetDeadline(time.Time{})
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
// client connection stays open. resp may live in uc (readHead): neither
// is touched once uc is back in the pool.
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
