package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/detourmesh/detour/internal/testbed"
)

// callLoad is a client on a host that knows nothing of the mesh but the
// agent's HTTP API, as a non-Go app would: it follows the agent's answer
// for a lines service with blocking resolves, and sends rate calls a
// second, each one line on a connection of its own to the answer's first
// endpoint. A connection per call makes every call depend on the mesh as
// it is at that moment (the agent's answer, the client-side sidecar's
// endpoints from the registry, the server-side ingress, the app); a
// long-lived connection would carry on over a registry entry gone
// missing and hide it.
type callLoad struct {
	h       *host
	service string
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	answer  atomic.Pointer[testbed.Answer]

	ok, failed atomic.Int64
	mu         sync.Mutex // guards what follows; held by record and report
	from       string     // the server that answered last
	reasons    map[string]int
	firstFail  time.Time
	lastFail   time.Time
}

// startCallLoad starts the load once h has an answer for service.
func startCallLoad(t *testing.T, h *host, service string, rate int) *callLoad {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &callLoad{h: h, service: service, cancel: cancel, reasons: map[string]int{}}
	t.Cleanup(l.stop)
	l.wg.Add(1)
	go l.follow(ctx)
	eventually(t, 20*time.Second, "the load's first answer for "+service, func() bool { return l.answer.Load() != nil })
	l.wg.Add(1)
	go l.run(ctx, rate)
	return l
}

// follow keeps the newest answer: GET /v1/resolve with the last revision
// and a wait, so a change arrives at once.
func (l *callLoad) follow(ctx context.Context) {
	defer l.wg.Done()
	var rev uint64
	for ctx.Err() == nil {
		var a testbed.Answer
		path := fmt.Sprintf("/v1/resolve?service=%s&revision=%d&wait=5s", url.QueryEscape(l.service), rev)
		if err := l.h.API().Do(ctx, "GET", path, nil, &a); err != nil {
			// The agent restarting, or gone: ask again shortly, with
			// the last answer still in use, as an app would.
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		rev = a.Revision
		l.answer.Store(&a)
	}
}

func (l *callLoad) run(ctx context.Context, rate int) {
	defer l.wg.Done()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			from, err := l.call(i)
			l.record(from, err)
		}()
	}
}

// call sends line i on a new connection and returns the server that
// answered.
func (l *callLoad) call(i int) (string, error) {
	a := l.answer.Load()
	if len(a.Endpoints) == 0 {
		return "", errors.New("no endpoint in the agent's answer")
	}
	deadline := time.Now().Add(time.Second)
	c, err := net.DialTimeout("tcp", a.Endpoints[0].Addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(deadline)
	line := fmt.Sprintf("call %d", i)
	if _, err := fmt.Fprintln(c, line); err != nil {
		return "", err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("%s: reading the answer: %w", a.Endpoints[0].Addr, err)
	}
	from, ok := strings.CutSuffix(strings.TrimSuffix(got, "\n"), ": "+strings.ToUpper(line))
	if !ok {
		return "", fmt.Errorf("unexpected answer %q", got)
	}
	return from, nil
}

// ephemeral is the local end in an error text ("read tcp
// 127.0.0.1:35684->…"), which would make every reset a reason of its own.
var ephemeral = regexp.MustCompile(`[0-9.]+:[0-9]+->`)

func (l *callLoad) record(from string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		l.ok.Add(1)
		l.from = from
		return
	}
	l.failed.Add(1)
	l.reasons[ephemeral.ReplaceAllString(err.Error(), "")]++
	now := time.Now()
	if l.firstFail.IsZero() {
		l.firstFail = now
	}
	l.lastFail = now
}

// counts is the calls so far and the server that answered last.
func (l *callLoad) counts() (ok, failed int64, from string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok.Load(), l.failed.Load(), l.from
}

// stop ends the load and waits for the calls in flight. Idempotent.
func (l *callLoad) stop() {
	l.cancel()
	l.wg.Wait()
}

// failures describes the failed calls: when (relative to t0) and why,
// the most frequent reasons first.
func (l *callLoad) failures(t0 time.Time) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.firstFail.IsZero() {
		return nil
	}
	out := []string{fmt.Sprintf("failed calls from %+.1fs to %+.1fs:", l.firstFail.Sub(t0).Seconds(), l.lastFail.Sub(t0).Seconds())}
	reasons := make([]string, 0, len(l.reasons))
	for r := range l.reasons {
		reasons = append(reasons, r)
	}
	sort.Slice(reasons, func(i, j int) bool { return l.reasons[reasons[i]] > l.reasons[reasons[j]] })
	for _, r := range reasons[:min(len(reasons), 5)] {
		out = append(out, fmt.Sprintf("  %d× %s", l.reasons[r], r))
	}
	return out
}
