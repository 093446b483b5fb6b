// Command lines-client sends lines at a steady rate to the example lines
// service over plain TCP, on --conns connections made with the SDK
// shim's Client.Dial, and prints what it sees once a second:
//
//	lines-client: ok=120 failed=0 mesh=true via=127.0.0.2:30001 from=127.0.0.3:7070 inflight=0
//
// A line is ok when its answer comes back within --timeout of its tick,
// its wait for a free connection included (the other examples' calls
// have their deadline from the tick too); lines wait in a queue as deep
// as --timeout's worth of ticks, so a stall of the connections shorter
// than --timeout fails no line. A connection
// that fails, or that was made before the mesh started or stopped
// carrying the service, is closed and made again; a line caught on a connection that
// broke is sent again on a new one, twice at most within --timeout (the
// line protocol is idempotent). The new connection goes to the real
// endpoint at once if the sidecar has just died.
// The counts are cumulative; the last line, "total ok=N failed=M", is
// printed on exit (after --duration, or on SIGINT/SIGTERM).
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/detourmesh/detour/examples/internal/load"
	"github.com/detourmesh/detour/internal/version"
	shim "github.com/detourmesh/detour/sdk-shim"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		log.Fatalf("lines-client: %v", err)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("lines-client", flag.ContinueOnError)
	service := fs.String("service", "lines", "service to call")
	agent := fs.String("agent", "127.0.0.1:7701", "the naming agent's gRPC address")
	rate := fs.Int("rate", 50, "lines per second, over all connections")
	conns := fs.Int("conns", 4, "connections to keep")
	duration := fs.Duration("duration", 0, "stop after this long (0: until SIGINT/SIGTERM)")
	timeout := fs.Duration("timeout", time.Second, "deadline of each line's answer, from its tick: the wait for a connection and reconnecting included")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *showVersion {
		fmt.Println(version.String("lines-client"))
		return nil
	}
	if *service == "" {
		return errors.New("--service: must not be empty")
	}
	if *rate < 1 || *rate > 10000 {
		return fmt.Errorf("--rate %d: must be 1-10000", *rate)
	}
	if *conns < 1 || *conns > 256 {
		return fmt.Errorf("--conns %d: must be 1-256", *conns)
	}
	if *duration < 0 {
		return fmt.Errorf("--duration %v: must be >= 0", *duration)
	}
	if *timeout <= 0 {
		return fmt.Errorf("--timeout %v: must be > 0", *timeout)
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

	f, err := load.Follow(ctx, c, *service)
	if err != nil {
		return err
	}
	var n load.Counts
	p := &pool{lines: make(chan line, queueDepth(*rate, *conns, *timeout)), timeout: *timeout}
	for range *conns {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			w := &worker{c: c, service: *service, f: f}
			defer w.close()
			for l := range p.lines {
				if from, err := w.send(l.i, l.deadline); err != nil {
					n.Fail("lines-client", err)
				} else {
					n.Succeed(from)
				}
			}
		}()
	}
	load.Run(ctx, os.Stdout, "lines-client", *rate, &n, f, p)
	return nil
}

// pool hands each tick's line to the first free connection.
type pool struct {
	lines   chan line
	timeout time.Duration
	wg      sync.WaitGroup
}

// line is one tick's line and the deadline of its answer.
type line struct {
	i        int
	deadline time.Time
}

// queueDepth is how many lines may wait for a connection: a timeout's
// worth of ticks (a line waiting longer would fail anyway), at least
// conns, at most 10,000.
func queueDepth(rate, conns int, timeout time.Duration) int {
	return int(max(int64(conns), min(int64(rate)*int64(timeout/time.Millisecond)/1000, 10000)))
}

func (p *pool) Issue(i int) bool {
	select {
	case p.lines <- line{i: i, deadline: time.Now().Add(p.timeout)}:
		return true
	default:
		return false
	}
}

func (p *pool) Wait() {
	close(p.lines)
	p.wg.Wait()
}

// maxAttempts bounds the sends of one line over broken connections.
const maxAttempts = 3

// worker is one connection to the service, made again after a failure
// and after a change of mesh mode: a connection lives where it was made,
// so one made to the real endpoint while the sidecar was down would
// otherwise bypass the sidecar once it is back.
type worker struct {
	c       *shim.Client
	service string
	f       *load.Follower // its changes of mesh mode make connections again
	conn    net.Conn
	r       *bufio.Reader
	made    int64 // switches when conn was made
}

// send sends line i, to be answered by deadline, and returns the server
// that answered.
func (w *worker) send(i int, deadline time.Time) (string, error) {
	if late := time.Since(deadline); late >= 0 {
		return "", fmt.Errorf("line %d: no connection free within --timeout (%v late)", i, late.Round(time.Millisecond))
	}
	line := fmt.Sprintf("line %d", i)
	if w.conn != nil && w.made != w.f.Switches() {
		w.close()
	}
	for attempt := 1; ; attempt++ {
		if w.conn == nil {
			w.made = w.f.Switches()
			ctx, cancel := context.WithDeadline(context.Background(), deadline)
			conn, err := w.c.Dial(ctx, w.service)
			cancel()
			if err != nil {
				return "", err
			}
			w.conn, w.r = conn, bufio.NewReader(conn)
		}
		from, err := w.exchange(line, deadline)
		if err == nil {
			return from, nil
		}
		w.close()
		// A connection that broke (the sidecar died, the server
		// restarted) is made again and the line sent again, twice at
		// most; a timeout is not.
		var ne net.Error
		if attempt == maxAttempts || (errors.As(err, &ne) && ne.Timeout()) {
			return "", err
		}
	}
}

func (w *worker) exchange(line string, deadline time.Time) (string, error) {
	if err := w.conn.SetDeadline(deadline); err != nil {
		return "", err
	}
	if _, err := fmt.Fprintln(w.conn, line); err != nil {
		return "", err
	}
	got, err := w.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	from, ok := strings.CutSuffix(strings.TrimSuffix(got, "\n"), ": "+strings.ToUpper(line))
	if !ok {
		return "", fmt.Errorf("unexpected answer %q to %q", got, line)
	}
	return from, nil
}

func (w *worker) close() {
	if w.conn != nil {
		w.conn.Close()
		w.conn = nil
	}
}
