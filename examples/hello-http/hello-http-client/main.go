// Command hello-http-client calls the example hello-http service at a
// steady rate through the SDK shim's Transport (http://SERVICE/hello) and
// prints what it sees once a second:
//
//	hello-http-client: ok=120 failed=0 mesh=true via=127.0.0.2:30000 from=127.0.0.3:8080 inflight=0
//
// The counts are cumulative; the last line, "total ok=N failed=M", is
// printed on exit (after --duration, or on SIGINT/SIGTERM). Its own retry
// loop (--retries) applies only while the mesh does not carry the
// service: Transport.Retries says so, and the sidecar retries otherwise.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/detourmesh/detour/examples/internal/load"
	"github.com/detourmesh/detour/internal/version"
	shim "github.com/detourmesh/detour/sdk-shim"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		log.Fatalf("hello-http-client: %v", err)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("hello-http-client", flag.ContinueOnError)
	service := fs.String("service", "hello-http", "service to call")
	agent := fs.String("agent", "127.0.0.1:7701", "the naming agent's gRPC address")
	rate := fs.Int("rate", 50, "calls per second")
	duration := fs.Duration("duration", 0, "stop after this long (0: until SIGINT/SIGTERM)")
	timeout := fs.Duration("timeout", time.Second, "deadline of each call, retries included")
	retries := fs.Int("retries", 2, "the app's own retries, used while the mesh does not carry the service")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *showVersion {
		fmt.Println(version.String("hello-http-client"))
		return nil
	}
	if *service == "" {
		return errors.New("--service: must not be empty")
	}
	if *rate < 1 || *rate > 10000 {
		return fmt.Errorf("--rate %d: must be 1-10000", *rate)
	}
	if *duration < 0 {
		return fmt.Errorf("--duration %v: must be >= 0", *duration)
	}
	if *timeout <= 0 {
		return fmt.Errorf("--timeout %v: must be > 0", *timeout)
	}
	if *retries < 0 || *retries > 10 {
		return fmt.Errorf("--retries %d: must be 0-10", *retries)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}

	cfg := shim.Default()
	cfg.Agent = *agent
	c, err := shim.New(cfg, shim.WithToken(os.Getenv(shim.TokenEnv))) // for an agent with api.token_for_reads
	if err != nil {
		return err
	}
	defer c.Close()
	tr := c.Transport()
	defer tr.Close()
	hc := &http.Client{Transport: tr}

	f, err := load.Follow(ctx, c, *service)
	if err != nil {
		return err
	}
	var n load.Counts
	load.Run(ctx, os.Stdout, "hello-http-client", *rate, &n, f, load.NewConcurrent(256, func(i int) {
		call(ctx, hc, tr, *service, *retries, *timeout, &n, i)
	}))
	return nil
}

// call makes one call, with the app's own retry loop: tr.Retries is 0
// while the sidecar retries for it, own otherwise.
func call(ctx context.Context, hc *http.Client, tr *shim.Transport, service string, own int, timeout time.Duration, n *load.Counts, i int) {
	// The call gets its own deadline, not the run's: calls started before
	// the end finish and count.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	u := "http://" + service + "/hello?name=" + url.QueryEscape(fmt.Sprintf("call-%d", i))
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, u, nil)
	if err != nil {
		n.Fail("hello-http-client", err)
		return
	}
	for attempt := 0; ; attempt++ {
		from, err := get(hc, req)
		if err == nil {
			n.Succeed(from)
			return
		}
		if attempt >= tr.Retries(req, own) || cctx.Err() != nil {
			n.Fail("hello-http-client", err)
			return
		}
	}
}

// get sends req and returns the server that answered (X-Served-By).
func get(hc *http.Client, req *http.Request) (string, error) {
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", req.URL.Path, resp.Status)
	}
	return resp.Header.Get("X-Served-By"), nil
}
