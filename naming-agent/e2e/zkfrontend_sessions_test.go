package e2e

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/detourmesh/detour/internal/procstat"
	zkfe "github.com/detourmesh/detour/naming-agent/frontend/zookeeper"
)

// BenchmarkZooKeeperFrontend's memory figures: bare sessions, and what
// the serving processes hold for them.

func zkfeSessions() (int, error) {
	v := os.Getenv("DETOUR_BENCH_ZK_SESSIONS")
	if v == "" {
		return 1000, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("DETOUR_BENCH_ZK_SESSIONS=%q: want a positive number", v)
	}
	return n, nil
}

// measureSessions opens the sessions to server name's process and reads
// its RSS before and after; for the front end it then does the same in
// this process with a zookeeper.Server of its own and Go's own figures.
func (fx *zkfeFixture) measureSessions(b *testing.B, name string) (zkfeMem, error) {
	m := zkfeMem{heap: -1}
	n, err := zkfeSessions()
	if err != nil {
		return m, err
	}
	s := fx.side(b, name)
	if s.pid == 0 {
		return m, nil
	}
	// A round first, of as many sessions opened and closed: ZooKeeper
	// keeps its last 500 transactions in memory (commitLogCount), and
	// that log is to be full before and after, not filled by the
	// measured sessions.
	_, closeFirst, err := openSessions(s.addr, n)
	if err != nil {
		return m, err
	}
	closeFirst()
	// For the front end, this process's own growth is what the bare
	// client connections cost: it is taken off the in-process figure.
	jvm := name == zkfeZooKeeper
	var jvmBefore float64
	if jvm {
		if jvmBefore, err = jvmHeap(s.pid); err != nil {
			b.Logf("no heap figure for ZooKeeper: %v", err)
			jvm = false
		}
	}
	goBefore := goMem()
	rssBefore, err := procstat.RSS([]int{s.pid})
	if err != nil {
		return m, err
	}
	_, closeAll, err := openSessions(s.addr, n)
	if err != nil {
		return m, err
	}
	defer closeAll()
	rssAfter, err := procstat.RSS([]int{s.pid})
	if err != nil {
		return m, err
	}
	m.rss = float64(rssAfter-rssBefore) / float64(n)
	clientCost := goMem() - goBefore
	if jvm {
		after, err := jvmHeap(s.pid)
		if err != nil {
			return m, err
		}
		m.heap = (after - jvmBefore) / float64(n)
	}
	if name != zkfeFrontend {
		return m, nil
	}
	closeAll()
	heap, err := inProcessSessions(n)
	if err != nil {
		return m, err
	}
	m.heap = (heap - clientCost) / float64(n)
	return m, nil
}

// inProcessSessions is the growth of this process's Go heap and stacks
// with n sessions open to a zookeeper.Server in it (the clients' cost
// included).
func inProcessSessions(n int) (float64, error) {
	cfg := zkfe.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.MaxClientConns, cfg.MaxSessions = 0, 0
	cfg.MaxSessionTimeout = time.Minute
	srv, err := zkfe.New(cfg)
	if err != nil {
		return 0, err
	}
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		srv.Close()
		return 0, err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	defer func() {
		srv.Close()
		<-served // ErrClosed
	}()
	before := goMem()
	_, closeAll, err := openSessions(l.Addr().String(), n)
	if err != nil {
		return 0, err
	}
	grown := goMem() - before
	closeAll()
	return grown, nil
}

// goMem is this process's Go heap in use and goroutine stacks, after GC.
func goMem() float64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapInuse + ms.StackInuse)
}

// openSessions opens n sessions to addr, zkfeOpeners at a time, each a
// bare TCP connection that sent a ConnectRequest (60 s timeout) and read
// its response, and nothing else: no goroutine, no buffer on this side.
// closeAll (idempotent) ends them with closeSession.
func openSessions(addr string, n int) (conns []net.Conn, closeAll func(), err error) {
	conns = make([]net.Conn, n)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	next := make(chan int)
	for range zkfeOpeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c, err := openSession(addr)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				conns[i] = c
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	closeAll = sync.OnceFunc(func() {
		next := make(chan net.Conn)
		var wg sync.WaitGroup
		for range zkfeOpeners {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for c := range next {
					closeSession(c)
				}
			}()
		}
		for _, c := range conns {
			if c != nil {
				next <- c
			}
		}
		close(next)
		wg.Wait()
	})
	if firstErr != nil {
		closeAll()
		return nil, nil, firstErr
	}
	return conns, closeAll, nil
}

func openSession(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(wait))
	// ConnectRequest: protocolVersion, lastZxidSeen, timeOut, sessionId,
	// passwd (16 zero bytes), readOnly.
	req := binary.BigEndian.AppendUint32(nil, 45)
	req = binary.BigEndian.AppendUint32(req, 0)
	req = binary.BigEndian.AppendUint64(req, 0)
	req = binary.BigEndian.AppendUint32(req, 60000)
	req = binary.BigEndian.AppendUint64(req, 0)
	req = binary.BigEndian.AppendUint32(req, 16)
	req = append(req, make([]byte, 16)...)
	req = append(req, 0)
	if _, err := c.Write(req); err != nil {
		c.Close()
		return nil, err
	}
	resp, err := readFrame(c)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("connect response: %w", err)
	}
	// protocolVersion, timeOut, sessionId
	if len(resp) < 16 || binary.BigEndian.Uint32(resp[4:]) == 0 || binary.BigEndian.Uint64(resp[8:]) == 0 {
		c.Close()
		return nil, fmt.Errorf("session refused (response %x)", resp)
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// closeSession sends closeSession, reads its reply and closes c.
func closeSession(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(wait))
	req := binary.BigEndian.AppendUint32(nil, 8)
	req = binary.BigEndian.AppendUint32(req, 1)
	req = binary.BigEndian.AppendUint32(req, uint32(0xfffffff5)) // -11, closeSession
	if _, err := c.Write(req); err == nil {
		_, _ = readFrame(c)
	}
}

func readFrame(r io.Reader) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	l := binary.BigEndian.Uint32(n[:])
	if l > 1<<20 {
		return nil, fmt.Errorf("frame of %d bytes", l)
	}
	body := make([]byte, l)
	_, err := io.ReadFull(r, body)
	return body, err
}

// zkPID is the process of this user listening on addr's port, 0 if none
// is found: it reads /proc/net/tcp for the socket's inode, then the fds
// of every process it may read.
func zkPID(addr string) int {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return 0
	}
	var inode string
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			fs := strings.Fields(line)
			// local_address is HEXIP:HEXPORT; st 0A is LISTEN.
			if len(fs) > 9 && fs[3] == "0A" && strings.HasSuffix(fs[1], fmt.Sprintf(":%04X", p)) {
				inode = fs[9]
			}
		}
	}
	if inode == "" {
		return 0
	}
	procs, _ := os.ReadDir("/proc")
	for _, d := range procs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		fds, _ := os.ReadDir(filepath.Join("/proc", d.Name(), "fd"))
		for _, fd := range fds {
			if l, err := os.Readlink(filepath.Join("/proc", d.Name(), "fd", fd.Name())); err == nil && l == "socket:["+inode+"]" {
				return pid
			}
		}
	}
	return 0
}

// jvmHeap is the heap a JVM uses after a full GC, by the JDK's jcmd
// beside its java binary (GC.run, then GC.heap_info: the sum of its
// generations' "used").
func jvmHeap(pid int) (float64, error) {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return 0, err
	}
	jcmd := filepath.Join(filepath.Dir(exe), "jcmd")
	if out, err := exec.Command(jcmd, strconv.Itoa(pid), "GC.run").CombinedOutput(); err != nil {
		return 0, fmt.Errorf("%s GC.run: %w: %s", jcmd, err, out)
	}
	out, err := exec.Command(jcmd, strconv.Itoa(pid), "GC.heap_info").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("%s GC.heap_info: %w: %s", jcmd, err, out)
	}
	var used float64
	ms := heapUsedRE.FindAllStringSubmatch(string(out), -1)
	for _, m := range ms {
		kb, _ := strconv.ParseFloat(m[1], 64)
		used += kb * 1024
	}
	if len(ms) == 0 {
		return 0, fmt.Errorf("%s GC.heap_info: no \"total NK, used NK\" in %q", jcmd, out)
	}
	return used, nil
}

// heapUsedRE matches a heap or generation line of GC.heap_info (serial,
// parallel and G1 collectors); Metaspace lines have no "total".
var heapUsedRE = regexp.MustCompile(`total \d+K, used (\d+)K`)
