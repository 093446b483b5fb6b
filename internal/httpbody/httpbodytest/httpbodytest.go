// Package httpbodytest checks an HTTP surface against the body rule of
// package httpbody: with Go's client (Send) and with a client nobody here
// wrote, curl with its default options (Curl), on a busy machine.
package httpbodytest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Big is the size of the oversized body of the issue that brought the rule
// (issue 22): 12 MB.
const Big = 12_000_000

// Tries is how many times Curl sends each case.
const Tries = 20

// Body returns a JSON body of exactly n bytes (n >= 64): a valid publish
// request to the agent for service "big" on port 8080, padded in metadata.
// Other surfaces ignore what it says.
func Body(n int) []byte {
	const head, tail = `{"service":"big","port":8080,"metadata":{"pad":"`, `"}}`
	if n < len(head)+len(tail) {
		panic(fmt.Sprintf("httpbodytest.Body(%d): at least %d bytes", n, len(head)+len(tail)))
	}
	b := make([]byte, 0, n)
	b = append(b, head...)
	b = append(b, bytes.Repeat([]byte{'x'}, n-len(head)-len(tail))...)
	return append(b, tail...)
}

// Send sends body to url with Go's client, with a Content-Length or, when
// chunked, without one, and returns the status and the answer: for a 413,
// the "error" of the JSON answer it must be; otherwise the body as it is.
func Send(t testing.TB, method, url string, body []byte, chunked bool) (int, string) {
	t.Helper()
	var r io.Reader = bytes.NewReader(body)
	if chunked {
		r = io.MultiReader(r) // hides the length
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if chunked {
		req.ContentLength = -1
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("%s %s (%d bytes, chunked %v): %v", method, url, len(body), chunked, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, url, err)
	}
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		return resp.StatusCode, string(b)
	}
	msg, err := errorField(b)
	if err != nil {
		t.Fatalf("%s %s: %d %q: %v", method, url, resp.StatusCode, b, err)
	}
	return resp.StatusCode, msg
}

// Curl posts oversized bodies to url with curl, Tries times per case: Big
// bytes and limit+1 bytes, over HTTP/1.1 (curl adds "Expect: 100-continue"
// past 1 MB) and HTTP/1.0, and Big bytes chunked. Every try must be answered
// 413 with {"error": "request body too large..."}; curl must exit 0. It
// busies every CPU while it runs, and fails if the process's heap grew by
// more than a loose bound or if the bodies were held in memory.
//
// curl is looked up on PATH: without it the test fails when CI=true and is
// skipped otherwise.
func Curl(t *testing.T, url string, limit int64) {
	t.Helper()
	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("curl not found on PATH (%v): CI must have it (Debian: apt-get install curl)", err)
		}
		t.Skipf("curl not found on PATH (%v): install curl to run this test", err)
	}
	dir := t.TempDir()
	big, edge := filepath.Join(dir, "big.json"), filepath.Join(dir, "edge.json")
	for path, n := range map[string]int{big: Big, edge: int(limit) + 1} {
		if err := os.WriteFile(path, Body(n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name string
		args []string
	}{
		{"12 MB", []string{"--data-binary", "@" + big}},
		{"12 MB HTTP/1.0", []string{"--http1.0", "--data-binary", "@" + big}},
		{fmt.Sprintf("%d+1 bytes", limit), []string{"--data-binary", "@" + edge}},
		{fmt.Sprintf("%d+1 bytes HTTP/1.0", limit), []string{"--http1.0", "--data-binary", "@" + edge}},
		{"12 MB chunked", []string{"-H", "Transfer-Encoding: chunked", "--data-binary", "@" + big}},
	}

	stop := busy()
	before := heap()
	for _, tc := range cases {
		start := time.Now()
		ok := 0
		var failed []string
		for range Tries {
			if err := curlOnce(curl, url, tc.args); err != nil {
				failed = append(failed, err.Error())
				continue
			}
			ok++
		}
		t.Logf("%s: %d/%d answered 413 (%v)", tc.name, ok, Tries, time.Since(start).Round(time.Millisecond))
		if ok != Tries {
			t.Errorf("%s: %d/%d answered 413; the others: %s", tc.name, ok, Tries, strings.Join(failed, "; "))
		}
	}
	after := heap()
	stop()

	const heapSlack = 32 << 20
	if after.HeapInuse > before.HeapInuse+heapSlack {
		t.Errorf("heap in use grew from %d to %d bytes over %d refused bodies", before.HeapInuse, after.HeapInuse, len(cases)*Tries)
	}
	// A surface that held a 12 MB body would have allocated at least that
	// much per try; the handler, net/http and the agent's own work stay far
	// below this bound.
	perTry := (after.TotalAlloc - before.TotalAlloc) / uint64(len(cases)*Tries)
	t.Logf("heap in use %d -> %d bytes; %d bytes allocated per try", before.HeapInuse, after.HeapInuse, perTry)
	if perTry > Big/4 {
		t.Errorf("allocated %d bytes per refused body on average: a body is being held in memory", perTry)
	}
}

// curlOnce runs curl once with its default options (output aside) and says
// what was wrong with the answer, if anything.
func curlOnce(curl, url string, args []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args = append([]string{"-sS", "-w", "\n%{http_code}", "-H", "Content-Type: application/json"}, args...)
	cmd := exec.CommandContext(ctx, curl, append(args, url)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("curl: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	out := stdout.String()
	i := strings.LastIndexByte(out, '\n')
	body, code := out[:max(i, 0)], out[i+1:]
	if code != "413" {
		return fmt.Errorf("status %s, body %.100q", code, body)
	}
	msg, err := errorField([]byte(body))
	if err != nil {
		return err
	}
	if !strings.Contains(msg, "request body too large") {
		return fmt.Errorf("413 with error %q", msg)
	}
	return nil
}

// errorField returns the "error" of a JSON error answer.
func errorField(b []byte) (string, error) {
	var e struct {
		Error *string `json:"error"`
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return "", fmt.Errorf("answer %.100q is not JSON: %w", b, err)
	}
	if e.Error == nil {
		return "", errors.New(`answer has no "error"`)
	}
	return *e.Error, nil
}

// busy starts one goroutine per CPU that spins until the returned func is
// called, which waits for them to end.
func busy() (stop func()) {
	var done atomic.Bool
	var wg sync.WaitGroup
	for range runtime.NumCPU() {
		wg.Go(func() {
			x := 1
			for !done.Load() {
				x = x*31 + 7
			}
			_ = x
		})
	}
	return func() { done.Store(true); wg.Wait() }
}

func heap() runtime.MemStats {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}

// Refuses checks that method url answers every over-limit body (by
// Content-Length and chunked, one byte over and 12 MB) with 413 and the
// JSON error; after, if not nil, runs after each (a check that nothing
// changed).
func Refuses(t *testing.T, method, url string, limit int, after func(t *testing.T)) {
	t.Helper()
	for _, tc := range []struct {
		name    string
		n       int
		chunked bool
	}{
		{"Content-Length over", limit + 1, false},
		{"chunked over", limit + 1, true},
		{"12 MB", Big, false},
		{"12 MB chunked", Big, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, msg := Send(t, method, url, Body(tc.n), tc.chunked)
			if code != 413 || !strings.Contains(msg, "request body too large") {
				t.Fatalf("%d %q; want 413", code, msg)
			}
			if after != nil {
				after(t)
			}
		})
	}
}
