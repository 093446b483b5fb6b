package etcd

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

const (
	guardTimeout = 30 * time.Second      // a hang guard for one call, not a timing assertion
	otherPace    = 20 * time.Millisecond // between the other client's rounds
)

type otherRounds struct {
	n       int
	slowest time.Duration
}

// churnBeside opens and cancels n watches of a service prefix on app's
// one stream while other grants a lease and puts a key on it, round
// after round, through the same front end: every call of both must
// complete. It returns the churn's time and the other client's rounds.
func churnBeside(t *testing.T, ctx context.Context, app, other *clientv3.Client, n int) (time.Duration, otherRounds) {
	t.Helper()
	done := make(chan struct{})
	res := make(chan otherRounds, 1)
	errc := make(chan error, 1)
	go func() {
		var r otherRounds
		defer func() { res <- r }()
		for {
			select { // paced: the churn is the load, not this client
			case <-done:
				return
			case <-time.After(otherPace):
			}
			c, cancel := context.WithTimeout(ctx, guardTimeout)
			start := time.Now()
			l, err := other.Grant(c, 60)
			if err == nil {
				_, err = other.Put(c, "/beside/k", "v", clientv3.WithLease(l.ID))
			}
			cancel()
			if err != nil {
				errc <- err
				return
			}
			r.n++
			r.slowest = max(r.slowest, time.Since(start))
		}
	}()
	start := time.Now()
	for i := 0; i < n; i++ {
		c, cancel := context.WithTimeout(ctx, guardTimeout)
		app.Watch(c, "/churn/", clientv3.WithPrefix()) // returns once created
		err := c.Err()
		cancel()
		if err != nil {
			close(done)
			t.Fatalf("watch %d of the churn: not created: %v", i, err)
		}
		select {
		case err := <-errc:
			close(done)
			t.Fatalf("the other client, during the churn's watch %d: %v", i, err)
		default:
		}
	}
	took := time.Since(start)
	close(done)
	r := <-res
	select {
	case err := <-errc:
		t.Fatalf("the other client, at the churn's end: %v", err)
	default:
	}
	if r.n == 0 {
		t.Fatal("the other client completed no round during the churn")
	}
	return took, r
}
