package zookeeper

import (
	"context"
	"errors"
	"testing"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

// TestNextOrdering drives the watcher's hand-over to Next directly, without
// a server: what Next returns after sets and outages in various orders.
func TestNextOrdering(t *testing.T) {
	a := []registry.Endpoint{{Service: "s", Addr: "10.0.0.1:1", Weight: 100}}
	b := []registry.Endpoint{{Service: "s", Addr: "10.0.0.2:1", Weight: 100}}
	outage := errors.New("outage")
	type step struct {
		publish []registry.Endpoint // or
		fail    bool                // or
		next    string              // "a", "b", "empty", "error", "nothing"
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"first Next returns the set, later only changes", []step{
			{publish: a}, {next: "a"}, {next: "nothing"}, {publish: a}, {next: "nothing"}, {publish: b}, {next: "b"},
		}},
		{"an outage is reported once, then the next listing even if unchanged", []step{
			{publish: a}, {next: "a"}, {fail: true}, {fail: true}, {next: "error"}, {next: "nothing"},
			{publish: a}, {next: "a"}, {next: "nothing"},
		}},
		{"a change older than the outage goes first", []step{
			{publish: a}, {next: "a"}, {publish: b}, {fail: true}, {next: "b"}, {next: "error"}, {next: "nothing"},
			{publish: b}, {next: "b"},
		}},
		{"an outage older than the listing goes first", []step{
			{publish: a}, {next: "a"}, {fail: true}, {publish: b}, {next: "error"}, {next: "b"}, {next: "nothing"},
		}},
		{"outage before any listing", []step{
			{fail: true}, {next: "error"}, {next: "nothing"}, {publish: nil}, {next: "empty"}, {publish: a}, {next: "a"},
		}},
		{"a second outage after recovery is reported again", []step{
			{publish: a}, {next: "a"}, {fail: true}, {publish: a}, {fail: true}, {next: "error"}, {next: "nothing"},
			{publish: a}, {next: "a"},
		}},
	}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := &watcher{service: "s", ready: make(chan struct{}), done: make(chan struct{}), notify: make(chan struct{})}
			for i, s := range tc.steps {
				switch {
				case s.next == "" && s.fail:
					w.outage(outage)
				case s.next == "":
					w.publish(s.publish)
				default:
					got, err := w.Next(done) // done: returns at once when nothing is pending
					var what string
					switch {
					case errors.Is(err, context.Canceled):
						what = "nothing"
					case errors.Is(err, outage):
						what = "error"
					case err != nil:
						t.Fatalf("step %d: Next: %v", i, err)
					case len(got) == 0:
						what = "empty"
					case registry.EqualSets(got, a):
						what = "a"
					case registry.EqualSets(got, b):
						what = "b"
					}
					if what != s.next {
						t.Fatalf("step %d: Next gave %s (%v, %v), want %s", i, what, got, err, s.next)
					}
				}
			}
		})
	}
}
