package zookeeper

import "sync"

// notifier makes the Observer's calls from one goroutine, in the order
// transactions committed. push never blocks (it runs under Server.mu),
// so its queue is unbounded; it holds only what the Observer has not
// yet been told.
type notifier struct {
	obs      Observer
	mu       sync.Mutex // guards queue and stopping
	queue    []note
	stopping bool
	wake     chan struct{} // cap 1: something was pushed, or stop
	done     chan struct{} // closed when run returns
}

func newNotifier(obs Observer) *notifier {
	return &notifier{obs: obs, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

func (n *notifier) push(notes ...note) {
	if n == nil || len(notes) == 0 {
		return
	}
	n.mu.Lock()
	n.queue = append(n.queue, notes...)
	n.mu.Unlock()
	n.kick()
}

func (n *notifier) kick() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// run delivers until stop, then delivers what was queued before it.
func (n *notifier) run() {
	defer close(n.done)
	for range n.wake {
		n.mu.Lock()
		batch, stopping := n.queue, n.stopping
		n.queue = nil
		n.mu.Unlock()
		for _, nt := range batch {
			nt.deliver(n.obs)
		}
		if stopping {
			n.mu.Lock()
			empty := len(n.queue) == 0
			n.mu.Unlock()
			if empty {
				return
			}
			n.kick()
		}
	}
}

// stop makes run return once the queue is empty, and waits for it.
func (n *notifier) stop() {
	if n == nil {
		return
	}
	n.mu.Lock()
	n.stopping = true
	n.mu.Unlock()
	n.kick()
	<-n.done
}
