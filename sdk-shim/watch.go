package shim

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/detourmesh/detour/api/agentpb"
)

// Backoff between attempts to (re)open a watch on the agent.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// watch is the Client's one subscription to a service, shared by every
// resolver, Transport and Watch of that service. It holds the agent's
// last answer and whether this client fell back on its own (the egress
// refused) since that answer.
type watch struct {
	c       *Client
	service string
	refs    int // under c.mu
	cancel  context.CancelFunc
	kick    chan struct{} // buffered 1: retry at once

	mu        sync.Mutex
	ans       Answer
	have      bool
	err       error // the last failure, nil once the agent answers again
	flipped   bool  // the egress refused while ans said mesh
	ready     chan struct{}
	isReady   bool
	listeners map[chan struct{}]struct{}
	next      int // rotation over endpoints
}

// acquire returns the watch of service, starting it if needed. Each
// acquire is paired with a release.
func (c *Client) acquire(service string) (*watch, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if w := c.watches[service]; w != nil {
		w.refs++
		return w, nil
	}
	ctx, cancel := context.WithCancel(c.ctx)
	w := &watch{
		c: c, service: service, refs: 1, cancel: cancel, kick: make(chan struct{}, 1),
		ready: make(chan struct{}), listeners: map[chan struct{}]struct{}{},
	}
	c.watches[service] = w
	c.goLoop(func() { w.run(ctx) })
	return w, nil
}

func (c *Client) release(w *watch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w.refs--
	if w.refs > 0 {
		return
	}
	w.cancel()
	if c.watches[w.service] == w {
		delete(c.watches, w.service)
	}
	for addr, x := range c.egress {
		if x == w {
			delete(c.egress, addr)
		}
	}
}

// egressWatch returns the watch whose service has addr as its egress.
// The mapping stays for the life of the watch, so that a connection
// attempt grpc makes on an address it has not yet replaced is recognised.
func (c *Client) egressWatch(addr string) *watch {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.egress[addr]
}

func (c *Client) noteEgress(w *watch, a Answer) {
	if !a.Mesh {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.watches[w.service] == w {
		for _, e := range a.Endpoints {
			c.egress[e] = w
		}
	}
}

// run follows the service on the agent until ctx ends. Every (re)open
// asks for the current answer; a failure is handed to the listeners and
// retried with backoff, but for an invalid service name.
func (w *watch) run(ctx context.Context) {
	delay := minBackoff
	for {
		stream, err := w.c.api.Subscribe(ctx, &agentpb.SubscribeRequest{Service: w.service})
		for err == nil {
			var a *agentpb.Answer
			if a, err = stream.Recv(); err == nil {
				w.update(answerFromPB(a))
				delay = minBackoff
			}
		}
		if ctx.Err() != nil {
			return
		}
		if err == io.EOF {
			err = fmt.Errorf("the agent ended the stream")
		}
		w.fail(fmt.Errorf("shim: watch %q: %w", w.service, err))
		if status.Code(err) == codes.InvalidArgument {
			return // an invalid service name stays invalid
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-w.kick:
		case <-ctx.Done():
		}
		t.Stop()
		if ctx.Err() != nil {
			return
		}
		delay = min(2*delay, maxBackoff)
	}
}

func (w *watch) update(a Answer) {
	w.c.noteEgress(w, a) // before anyone can be told to dial it
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.have && w.err == nil && a.Revision == w.ans.Revision && a.sameContent(w.ans) {
		return
	}
	wasMesh := w.have && w.ans.Mesh && !w.flipped
	if a.Revision != w.ans.Revision {
		// A newer answer decides again: mesh means the sidecar is back.
		w.flipped = false
	}
	w.ans, w.have, w.err = a, true, nil
	if a.Mesh != wasMesh {
		w.c.log.Info("the agent's answer", zap.String("service", w.service), zap.Bool("mesh", a.Mesh),
			zap.Strings("endpoints", a.Endpoints), zap.Uint64("revision", a.Revision))
	}
	w.readyLocked()
	w.notifyLocked()
}

func (w *watch) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.c.log.Warn("agent watch failed", zap.String("service", w.service), zap.Error(err))
	}
	w.err = err
	w.readyLocked()
	w.notifyLocked()
}

// flip switches the service to its fallback endpoints until the agent's
// next answer, if the answer at revision rev still says mesh.
func (w *watch) flip(rev uint64, addr string, cause error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.flipped || !w.ans.Mesh || w.ans.Revision != rev {
		return
	}
	w.flipped = true
	w.c.log.Warn("egress refused: switching to the fallback endpoints until the agent's next answer",
		zap.String("service", w.service), zap.String("addr", addr), zap.Strings("fallback", w.ans.Fallback), zap.Error(cause))
	w.notifyLocked()
}

func (w *watch) readyLocked() {
	if !w.isReady {
		w.isReady = true
		close(w.ready)
	}
}

func (w *watch) notifyLocked() {
	for ch := range w.listeners {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// view is the answer in force: the agent's, or its fallback form after
// the egress refused. have is false until the agent first answered; err
// is the watch's current failure.
func (w *watch) view() (a Answer, have bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	a = w.ans
	if w.flipped {
		a = a.fellBack()
	}
	return a, w.have, w.err
}

// wait returns the answer in force once the agent first answered (or
// the watch first failed: then the failure).
func (w *watch) wait(ctx context.Context) (Answer, error) {
	select {
	case <-w.ready:
	case <-ctx.Done():
		return Answer{}, fmt.Errorf("shim: waiting for the agent's answer for %q: %w", w.service, ctx.Err())
	}
	a, have, err := w.view()
	if !have {
		return Answer{}, err
	}
	return a, nil
}

// listen returns a channel signalled (without blocking, at most one
// pending) whenever the view changes, and at once if there is one.
func (w *watch) listen() chan struct{} {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.listeners[ch] = struct{}{}
	if w.isReady {
		ch <- struct{}{}
	}
	return ch
}

func (w *watch) unlisten(ch chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.listeners, ch)
}

// retryNow cuts the current backoff short.
func (w *watch) retryNow() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Update is one state of a watched service: the answer in force, or the
// failure of the watch (Answer then holds the last answer, if any).
type Update struct {
	Answer Answer
	Err    error
}

// Watch follows service: the returned channel holds the newest Update
// (the current answer first, then each change; a reader that falls
// behind gets the newest state, never a backlog). The answer is the one
// in force for this client: after the egress refused it has Mesh false
// and the real endpoints until the agent's next answer. The channel is
// closed when ctx ends or the Client closes.
func (c *Client) Watch(ctx context.Context, service string) (<-chan Update, error) {
	w, err := c.acquire(service)
	if err != nil {
		return nil, err
	}
	out := make(chan Update, 1)
	sig := w.listen()
	c.goLoop(func() {
		defer close(out)
		defer c.release(w)
		defer w.unlisten(sig)
		var last Update
		sent := false
		for {
			select {
			case <-sig:
			case <-ctx.Done():
				return
			case <-c.ctx.Done():
				return
			}
			a, _, err := w.view()
			u := Update{Answer: a, Err: err}
			if sent && last.Err == u.Err && last.Answer.Revision == a.Revision && last.Answer.sameContent(a) {
				continue
			}
			select { // replace an unread update
			case <-out:
			default:
			}
			out <- u
			last, sent = u, true
		}
	})
	return out, nil
}
