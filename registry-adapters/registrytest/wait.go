package registrytest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

// Eventually polls cond until it holds or d passes, then fails t with what.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for wait := time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", d, what)
		}
		<-time.After(wait)
	}
}

// EventuallyList polls r.List(service) until it returns exactly want.
func EventuallyList(t testing.TB, h Harness, r registry.Registry, service string, want []registry.Endpoint) {
	t.Helper()
	var last []registry.Endpoint
	var lastErr error
	deadline := time.Now().Add(h.timeout())
	for wait := time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), h.timeout())
		last, lastErr = r.List(ctx, service)
		cancel()
		if lastErr == nil && registry.EqualSets(last, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("List(%q) after %v:\n got  %s (err %v)\n want %s", service, h.timeout(), Format(last), lastErr, Format(want))
		}
		<-time.After(wait)
	}
}

// NextUntil calls w.Next until it returns exactly want. Intermediate sets
// are allowed (a registry may show a change in steps); an error other than
// a transient ErrUnavailable fails the test.
func NextUntil(t testing.TB, h Harness, w registry.Watcher, want []registry.Endpoint) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), h.timeout())
	defer cancel()
	var seen []string
	for {
		got, err := w.Next(ctx)
		switch {
		case errors.Is(err, registry.ErrUnavailable):
			seen = append(seen, "error: "+err.Error())
			continue
		case err != nil:
			t.Fatalf("Next: %v\n want %s\n seen %v", err, Format(want), seen)
		}
		if registry.EqualSets(got, want) {
			return
		}
		seen = append(seen, Format(got))
	}
}

// Format prints an endpoint set compactly for failure messages.
func Format(eps []registry.Endpoint) string {
	s := "["
	for i, ep := range eps {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s w=%d md=%v", ep, ep.Weight, ep.Metadata)
	}
	return s + "]"
}

// MalformedCounter records MalformedFunc calls, for tests that check bad
// entries are reported, and reported once.
type MalformedCounter struct {
	mu   sync.Mutex
	keys map[string][]string // service -> keys reported, with repeats
}

// NewMalformedCounter returns an empty counter.
func NewMalformedCounter() *MalformedCounter {
	return &MalformedCounter{keys: map[string][]string{}}
}

// Func is the registry.MalformedFunc to hand the adapter.
func (c *MalformedCounter) Func(service, key string, _ error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.keys[service] = append(c.keys[service], key)
}

// Count is how many reports service got, repeats included.
func (c *MalformedCounter) Count(service string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.keys[service])
}

// Keys are the keys reported for service, sorted, repeats included.
func (c *MalformedCounter) Keys(service string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := append([]string(nil), c.keys[service]...)
	sort.Strings(k)
	return k
}
