package registrytest

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

// testSessionResume: a client that crashes and is started again within
// its session's TTL, with the same SessionStore, takes the session back.
// A watcher on another client sees nothing at all meanwhile; the new
// client owns the old registrations (Adopted), and registering one again
// unchanged changes nothing, with other metadata replaces it without it
// going missing, Deregister and Close remove them.
func testSessionResume(t *testing.T, h Harness) {
	ctx := ctxFor(t, h)
	obs := h.New(t, nil)
	svc := Service(t)
	path := filepath.Join(t.TempDir(), "session")
	first := NewFileStore(path)
	a := h.NewWithStore(t, first)
	if got := adopted(t, a); len(got) != 0 {
		t.Fatalf("Adopted of a client whose store was empty = %s, want none", Format(got))
	}
	kept := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000", Metadata: map[string]string{"v": "1"}}
	changed := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9001", Weight: 20, Metadata: map[string]string{"v": "1"}}
	dropped := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9002"}
	closed := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9003", Metadata: map[string]string{"detour.port": "8080"}}
	all := []registry.Endpoint{kept, changed, dropped, closed}
	for _, ep := range all {
		mustRegister(t, ctx, a, ep)
	}
	w, err := obs.Watch(ctx, svc)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	defer w.Close()
	NextUntil(t, h, w, set(all...))

	rec := record(w)
	crashed := time.Now()
	h.Crash(t, a)
	first.Freeze()
	// The process is down for a while before it is started again, as an
	// agent that is restarted is (not a wait for anything to happen).
	<-time.After(h.SessionTTL / 2)
	b := h.NewWithStore(t, NewFileStore(path))
	if got := adopted(t, b); !registry.EqualSets(got, set(all...)) {
		t.Errorf("Adopted after the restart:\n got  %s\n want %s", Format(got), Format(set(all...)))
	}
	mustRegister(t, ctx, b, kept) // unchanged: nothing happens
	// Watch on until the crashed session would have ended, twice over.
	<-time.After(time.Until(crashed.Add(2 * h.SessionTTL)))
	if seen := rec.stop(); len(seen) > 0 {
		t.Errorf("the watcher of another client saw %d changes while the client crashed, was started again and registered an endpoint again unchanged; want none:\n%s",
			len(seen), strings.Join(seen, "\n"))
	}
	EventuallyList(t, h, obs, svc, set(all...))

	// Registered again with other metadata: replaced, never missing.
	changed.Metadata = map[string]string{"v": "2"}
	mustRegister(t, ctx, b, changed)
	nextUntilKeeping(t, h, w, set(kept, changed, dropped, closed), kept.Addr, changed.Addr, dropped.Addr, closed.Addr)

	// An adopted registration that was never registered again, and one
	// that was, are the new client's to remove.
	if err := b.Deregister(ctx, svc, dropped.Addr); err != nil {
		t.Fatalf("Deregister of an adopted registration: %v", err)
	}
	NextUntil(t, h, w, set(kept, changed, closed))
	if err := b.Deregister(ctx, svc, kept.Addr); err != nil {
		t.Fatalf("Deregister of an adopted registration registered again: %v", err)
	}
	NextUntil(t, h, w, set(changed, closed))
	if err := b.Deregister(ctx, svc, dropped.Addr); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("second Deregister = %v, want ErrNotFound", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	NextUntil(t, h, w, nil)

	// Close ended the session: a client started with the store now has
	// nothing to take back.
	c := h.NewWithStore(t, NewFileStore(path))
	if got := adopted(t, c); len(got) != 0 {
		t.Errorf("Adopted after the previous client closed = %s, want none", Format(got))
	}
}

// testSessionResumeExpired: a client started with the store of a client
// whose session has ended meanwhile (it crashed longer ago than the TTL)
// starts a session of its own, adopts nothing and works.
func testSessionResumeExpired(t *testing.T, h Harness) {
	ctx := ctxFor(t, h)
	obs := h.New(t, nil)
	svc := Service(t)
	path := filepath.Join(t.TempDir(), "session")
	first := NewFileStore(path)
	a := h.NewWithStore(t, first)
	e1 := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000"}
	e2 := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9001"}
	mustRegister(t, ctx, a, e1)
	w, err := obs.Watch(ctx, svc)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	defer w.Close()
	NextUntil(t, h, w, set(e1))
	h.Crash(t, a)
	first.Freeze()
	NextUntil(t, h, w, nil) // the server ended the session

	b := h.NewWithStore(t, NewFileStore(path))
	if got := adopted(t, b); len(got) != 0 {
		t.Errorf("Adopted with the store of an ended session = %s, want none", Format(got))
	}
	mustRegister(t, ctx, b, e1)
	mustRegister(t, ctx, b, e2)
	NextUntil(t, h, w, set(e1, e2))
	if err := b.Deregister(ctx, svc, e1.Addr); err != nil {
		t.Fatalf("Deregister: %v", err)
	}
	NextUntil(t, h, w, set(e2))
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	NextUntil(t, h, w, nil)
}

// adopted returns r's Adopted, sorted.
func adopted(t testing.TB, r registry.Registry) []registry.Endpoint {
	t.Helper()
	res, ok := r.(registry.Resumer)
	if !ok {
		t.Fatalf("the client of NewWithStore (%T) does not implement registry.Resumer", r)
	}
	got := slices.Clone(res.Adopted())
	registry.Sort(got)
	return got
}

// recorder keeps everything a watcher's Next returns until stop.
type recorder struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	seen   []string
}

// record calls w.Next in a goroutine until stop, recording each result.
// The last set w returned must be the current one.
func record(w registry.Watcher) *recorder {
	ctx, cancel := context.WithCancel(context.Background())
	r := &recorder{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for {
			got, err := w.Next(ctx)
			if ctx.Err() != nil {
				return
			}
			r.mu.Lock()
			if err != nil {
				r.seen = append(r.seen, "error: "+err.Error())
			} else {
				r.seen = append(r.seen, Format(got))
			}
			r.mu.Unlock()
			if err != nil && !errors.Is(err, registry.ErrUnavailable) {
				return
			}
		}
	}()
	return r
}

// stop ends the recording and returns what Next returned meanwhile.
func (r *recorder) stop() []string {
	r.cancel()
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen
}

// nextUntilKeeping is NextUntil that also fails if a set on the way lacks
// one of addrs.
func nextUntilKeeping(t testing.TB, h Harness, w registry.Watcher, want []registry.Endpoint, addrs ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), h.timeout())
	defer cancel()
	for {
		got, err := w.Next(ctx)
		if err != nil {
			t.Fatalf("Next: %v\n want %s", err, Format(want))
		}
		for _, addr := range addrs {
			if !slices.ContainsFunc(got, func(ep registry.Endpoint) bool { return ep.Addr == addr }) {
				t.Fatalf("the watcher saw %s go missing: %s", addr, Format(got))
			}
		}
		if registry.EqualSets(got, want) {
			return
		}
	}
}
