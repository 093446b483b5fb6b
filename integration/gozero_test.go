package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/detourmesh/detour/internal/testbed"
)

// goZeroBin is gozero-app ($GOZERO_BIN; scripts/gozero.sh builds it, make
// test sets it). Missing, the test skips, or fails when CI=true.
func goZeroBin(t *testing.T) string {
	p := os.Getenv("GOZERO_BIN")
	if p == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("GOZERO_BIN is not set (GOZERO_BIN=$(bash scripts/gozero.sh build bin/gozero))")
		}
		t.Skip("GOZERO_BIN is not set (GOZERO_BIN=$(bash scripts/gozero.sh build bin/gozero))")
	}
	return p
}

// TestGoZeroFrontEnds: go-zero v1.10.3's zrpc, unmodified, with only
// Etcd.Hosts pointing at the agents: a server on B (go-zero's publisher:
// KEY/LEASE = host:port on its lease, through B's front end) and a
// client on A (go-zero's etcd discovery through A's front end) calling at
// 100 calls/s across both sidecars. A's and B's sidecars SIGKILLed and
// started again, with failed calls and the time to A's front end's watch
// event; the server SIGKILLed: its key goes within its lease's TTL.
func TestGoZeroFrontEnds(t *testing.T) {
	gz := goZeroBin(t)
	be := etcdBackend(t)
	const key = "greet.rpc"
	a := be.host(t, ipA, "", "--etcd-listen", etcdFrontAddr(ipA))
	b := be.host(t, ipB, "", "--etcd-listen", etcdFrontAddr(ipB))
	a.startSidecar()
	b.startSidecar()
	a.waitSidecar("up")
	b.waitSidecar("up")
	appAddr := net.JoinHostPort(b.IP, strconv.Itoa(freePort(t, b.IP)))
	server := appIn(t, filepath.Dir(gz), filepath.Base(gz), "-server", "-etcd", etcdFrontAddr(b.IP), "-key", key, "-listen", appAddr)
	reader := be.reader(t)
	eventually(t, 30*time.Second, "B's ingress in the registry", func() bool {
		eps := registered(t, reader, key)
		return len(eps) == 1 && strings.HasPrefix(eps[0].Addr, b.IP+":") && eps[0].Addr != appAddr
	})
	ans := a.waitAnswer(key, "A's mesh answer", func(x testbed.Answer) bool { return x.Mesh && len(x.Endpoints) == 1 })
	egress := ans.Endpoints[0].Addr
	seen := watchValues(t, etcdClient(t, etcdFrontAddr(a.IP)), key+"/")

	client := appIn(t, filepath.Dir(gz), filepath.Base(gz), "-client", "-etcd", etcdFrontAddr(a.IP), "-key", key, "-rate", "100")
	counts := func() goZeroCounts { return lastGoZeroCounts(t, client.Log) }
	eventually(t, 30*time.Second, "go-zero's calls through A's egress", func() bool { return counts().Peer == egress })
	c0 := counts()
	eventually(t, 10*time.Second, "a second of calls", func() bool { return counts().OK >= c0.OK+100 })
	if c1 := counts(); c1.Failed != c0.Failed {
		t.Errorf("%d calls failed through the mesh with nothing changing", c1.Failed-c0.Failed)
	}
	if e, in := sidecarStats(t, a).Listener("egress", key), sidecarStats(t, b).Listener("ingress", key); e.Requests < 100 || in.Requests < 100 {
		t.Errorf("calls did not cross both sidecars: A's egress %d requests, B's ingress %d", e.Requests, in.Requests)
	}
	// cleanSecond: a second in which the failed count did not move.
	cleanSecond := func(what string) time.Time {
		t.Helper()
		var at time.Time
		last := counts()
		lastChange := time.Now()
		eventually(t, 30*time.Second, "a second without failed calls: "+what, func() bool {
			c := counts()
			if c.Failed != last.Failed {
				last, lastChange = c, time.Now()
			}
			at = lastChange
			return time.Since(lastChange) > time.Second
		})
		return at
	}
	phase := func(what string, act func(), want string) {
		t.Helper()
		c0 := counts()
		at := time.Now()
		act()
		ev := seen.waitFor(t, at, want, what)
		eventually(t, 30*time.Second, what+": calls to "+want, func() bool { return counts().Peer == want })
		cleanSecond(what)
		c1 := counts()
		t.Logf("figure: go-zero, %s at 100 calls/s: A's front end's watch event with %s %v after; %d calls failed",
			what, want, ev.Sub(at).Round(time.Millisecond), c1.Failed-c0.Failed)
	}
	phase("A's sidecar SIGKILL", a.killSidecar, appAddr)
	phase("A's sidecar started again", a.startSidecar, egress)
	c0 = counts()
	b.killSidecar()
	cleanSecond("B's sidecar down")
	b.startSidecar()
	b.waitSidecar("up")
	cleanSecond("B's sidecar back")
	c1 := counts()
	t.Logf("figure: go-zero, B's sidecar SIGKILL and start at 100 calls/s: %d calls failed", c1.Failed-c0.Failed)
	t.Logf("figure: go-zero total %d calls ok, %d failed", c1.OK, c1.Failed)

	// The server SIGKILLed: its lease (go-zero's 10 s TTL) runs out.
	killed := time.Now()
	if err := server.Kill(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the server gone from the registry", func() bool { return len(registered(t, reader, key)) == 0 })
	ev := seen.waitFor(t, killed, "", "A's watch with no instance")
	// The agent's health check withdraws it first (its port refuses);
	// the key itself, kept on go-zero's lease, goes when the lease ends.
	bc := etcdClient(t, etcdFrontAddr(b.IP))
	eventually(t, 30*time.Second, "the server's key gone with its lease", func() bool {
		g, err := bc.Get(b.ctx, "detour/etcdfe/"+b.IP+"/keys/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err == nil && g.Count == 0
	})
	t.Logf("figure: go-zero server SIGKILLed: gone from the registry and A's watch %v after (the agent's health check); its key with its lease (TTL 10 s) %v after",
		ev.Sub(killed).Round(time.Millisecond), time.Since(killed).Round(100*time.Millisecond))
}

type goZeroCounts struct {
	OK     int    `json:"ok"`
	Failed int    `json:"failed"`
	Peer   string `json:"peer"`
}

// lastGoZeroCounts reads the client's last counts line.
func lastGoZeroCounts(t *testing.T, log string) goZeroCounts {
	out, _ := os.ReadFile(log)
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		var c goZeroCounts
		if json.Unmarshal(lines[i], &c) == nil {
			return c
		}
	}
	return goZeroCounts{}
}

// watchValues records the values under prefix, joined, at each change,
// as a go-zero subscriber sees them.
func watchValues(t *testing.T, c *clientv3.Client, prefix string) *endpointsSeen {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s := &endpointsSeen{}
	g, err := c.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	cur := map[string]string{}
	for _, kv := range g.Kvs {
		cur[string(kv.Key)] = string(kv.Value)
	}
	var mu sync.Mutex
	go func() {
		for wr := range c.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(g.Header.Revision+1)) {
			mu.Lock()
			for _, e := range wr.Events {
				if e.Type == clientv3.EventTypeDelete {
					delete(cur, string(e.Kv.Key))
				} else {
					cur[string(e.Kv.Key)] = string(e.Kv.Value)
				}
			}
			var vals []string
			for _, v := range cur {
				vals = append(vals, v)
			}
			mu.Unlock()
			sort.Strings(vals)
			s.mu.Lock()
			s.states = append(s.states, addrAt{strings.Join(vals, ","), time.Now()})
			s.mu.Unlock()
		}
	}()
	return s
}
