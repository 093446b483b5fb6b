package dataplane

import (
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/detourmesh/detour/api/sidecarpb"
)

// TestConcurrencyLimitUnderBurst: 10 requests at once against
// max_concurrent 2 with a slow app: exactly 2 reach it, 8 get 429 at
// once; when the app answers, the 2 get 200.
func TestConcurrencyLimitUnderBurst(t *testing.T) {
	release := make(chan struct{})
	var reached atomic.Int64
	port := httpApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		<-release
	}), "127.0.0.1")
	d := newDP(t, Default())
	const ip = "127.0.0.3"
	listen := hp(ip, freePort(t, ip))
	if err := d.Apply(context.Background(), ingressSnap(1, ip, "web", listen, port, sidecarpb.Protocol_PROTOCOL_HTTP, &sidecarpb.InboundLimit{MaxConcurrent: 2})); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 0, DisableKeepAlives: true}}
	var wg sync.WaitGroup
	codes := make(chan int, 10)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Get("http://" + listen + "/")
			if err != nil {
				codes <- 0
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	n429 := 0
	for range 8 {
		if c := <-codes; c == http.StatusTooManyRequests {
			n429++
		} else {
			t.Fatalf("one of the first 8 answers: %d, want 429", c)
		}
	}
	eventually(t, "2 requests at the app", func() bool { return reached.Load() == 2 })
	close(release)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Fatalf("an admitted request got %d", c)
		}
	}
	eventually(t, "nothing in flight", func() bool { return d.Stats().Listeners[0].Limit.InFlight == 0 })
	if s := d.Stats().Listeners[0].Limit; s.ConcurrencyLimited != 8 || s.Admitted != 2 || reached.Load() != 2 {
		t.Fatalf("limit stats %+v, %d at the app", s, reached.Load())
	}
}
