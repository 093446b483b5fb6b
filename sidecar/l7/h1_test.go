package l7

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/detourmesh/detour/sidecar/cluster"
	"github.com/detourmesh/detour/sidecar/outlier"
	"github.com/detourmesh/detour/sidecar/stats"
)

// TestH1Framing: chunked uploads, streamed answers (each chunk reaches
// the client before the next is produced), HEAD, and Connection: close.
func TestH1Framing(t *testing.T) {
	next := make(chan struct{})
	app := front(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/upload":
			b, _ := io.ReadAll(r.Body)
			w.Write([]byte("got " + string(b)))
		case "/stream":
			for i := range 3 {
				w.Write([]byte{'a' + byte(i), '\n'})
				w.(http.Flusher).Flush()
				<-next
			}
		default:
			w.Header().Set("X-Len", "5")
			w.Write([]byte("hello"))
		}
	}))
	s := NewServer(&net.TCPAddr{}, &H1{Target: app, Listener: &stats.Counters{}, BodyLimit: 1 << 10}, http.NotFoundHandler(), (&net.Dialer{}).DialContext, time.Second, time.Minute)
	addr := serveH1(t, s)
	c := &http.Client{}
	defer c.CloseIdleConnections()

	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte("part1 "))
		pw.Write([]byte("part2"))
		pw.Close()
	}()
	resp, err := c.Post("http://"+addr+"/upload", "text/plain", pr) // chunked: unknown length
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != "got part1 part2" {
		t.Fatalf("upload: %q", b)
	}
	resp.Body.Close()

	resp, err = c.Get("http://" + addr + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(resp.Body)
	for i := range 3 {
		line, err := r.ReadString('\n')
		if err != nil || line != string([]byte{'a' + byte(i), '\n'}) {
			t.Fatalf("chunk %d: %q %v", i, line, err)
		}
		next <- struct{}{} // the next chunk is produced only now
	}
	resp.Body.Close()

	resp, err = c.Head("http://" + addr + "/")
	if err != nil || resp.Header.Get("X-Len") != "5" || resp.ContentLength != 5 {
		t.Fatalf("head: %v %v", resp, err)
	}
	resp.Body.Close()

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
	all, err := io.ReadAll(conn) // ends: the sidecar closes after the answer
	if err != nil || !strings.HasSuffix(string(all), "hello") || !strings.Contains(string(all), "Connection: close") {
		t.Fatalf("close: %q %v", all, err)
	}
	conn2, _ := net.Dial("tcp", addr)
	defer conn2.Close()
	conn2.SetDeadline(time.Now().Add(5 * time.Second))
	conn2.Write([]byte("NOT HTTP\r\n\r\n"))
	if b, _ := io.ReadAll(conn2); !strings.Contains(string(b), "400") {
		t.Fatalf("garbage: %q", b)
	}
}

// TestH1RetryBudget: with a budget of zero no retry is made; with one,
// every 503 of the failing endpoint is hidden.
func TestH1RetryBudget(t *testing.T) {
	failing := front(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
	good := front(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	for _, tc := range []struct {
		minRetries int
		want503    bool
	}{{0, true}, {3, false}} {
		cfg := cluster.Config{Policy: cluster.RoundRobin, Outlier: outlier.Default()}
		cfg.Outlier.ConsecutiveFailures = 0 // no ejection: only retries matter here
		cl := cluster.New("c", cfg, time.Now)
		cl.Update(cfg, []cluster.Spec{{Addr: failing, AppAddr: failing, Weight: 1}, {Addr: good, AppAddr: good, Weight: 1}})
		for _, e := range cl.Endpoints() {
			cl.SetHealth(e, cluster.Healthy)
		}
		h := &H1{Cluster: cl, Listener: &stats.Counters{}, Retries: 1, Retriable: map[int]bool{503: true}, MinRetries: tc.minRetries, BodyLimit: 1 << 10}
		addr := serveH1(t, NewServer(&net.TCPAddr{}, h, http.NotFoundHandler(), (&net.Dialer{}).DialContext, time.Second, time.Minute))
		saw503 := false
		for range 10 {
			resp, err := http.Get("http://" + addr + "/")
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			saw503 = saw503 || resp.StatusCode == 503
		}
		if saw503 != tc.want503 {
			t.Fatalf("min retries %d: saw 503 = %v", tc.minRetries, saw503)
		}
	}
}
