package l7

import (
	"errors"
	"io"
	"net/http"
	"sync"
)

var errStale = errors.New("request body: superseded by a retry")

// replay lets a request body be sent again on a retry: it keeps what the
// first attempt read, up to limit bytes. A retry is possible only while
// the kept bytes are all that was read and no read is in progress.
type replay struct {
	mu      sync.Mutex
	src     io.ReadCloser
	buf     []byte
	limit   int
	over    bool
	eof     bool
	reading bool
	gen     int
}

func newReplay(body io.ReadCloser, limit int) *replay {
	if body == nil || body == http.NoBody {
		return &replay{eof: true}
	}
	return &replay{src: body, limit: limit}
}

// replayable says whether a new attempt can see the whole body.
func (r *replay) replayable() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.over && !r.reading
}

// attempt returns the body for a new attempt; earlier ones go stale.
func (r *replay) attempt() io.ReadCloser {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gen++
	if r.src == nil {
		return http.NoBody
	}
	return &attemptBody{r: r, gen: r.gen}
}

type attemptBody struct {
	r   *replay
	gen int
	pos int
}

func (a *attemptBody) Read(p []byte) (int, error) {
	r := a.r
	r.mu.Lock()
	if a.gen != r.gen {
		r.mu.Unlock()
		return 0, errStale
	}
	if a.pos < len(r.buf) {
		n := copy(p, r.buf[a.pos:])
		a.pos += n
		r.mu.Unlock()
		return n, nil
	}
	if r.eof {
		r.mu.Unlock()
		return 0, io.EOF
	}
	r.reading = true
	r.mu.Unlock()
	n, err := r.src.Read(p)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reading = false
	if n > 0 && !r.over {
		if len(r.buf)+n > r.limit {
			r.over, r.buf = true, nil
		} else {
			r.buf = append(r.buf, p[:n]...)
			a.pos = len(r.buf)
		}
	}
	if errors.Is(err, io.EOF) {
		r.eof = true
	}
	return n, err
}

func (a *attemptBody) Close() error { return nil }
