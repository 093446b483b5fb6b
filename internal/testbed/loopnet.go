package testbed

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// NetEnv is the environment variable that pins the loopback block of a
// test run: DETOUR_TEST_NET=127.0.40 makes the first process take
// 127.0.40.0/24 (hosts 127.0.40.2, .3, …) and every other process
// running at the same time the next free block (127.0.41, 127.0.42, …).
// Unset, each process takes a free block at random in 127.64-254.x.
const NetEnv = "DETOUR_TEST_NET"

// Net is a block of loopback addresses, 127.A.B.0/24, that one process
// holds: its simulated hosts are 127.A.B.2, .3, … (Linux routes all of
// 127/8 to lo). The block is held by an flock on a file under
// os.TempDir(), so two runs on one machine never take the same one, and
// it is checked before it is taken: the testbed's fixed ports must be
// free on its first hosts. The lock goes with the process, even one
// killed; Release removes the file too.
type Net struct {
	prefix string // "127.A.B"
	path   string
	lock   *os.File
}

// Host is the address of host i of the block (2 to 254).
func (n *Net) Host(i int) string { return n.prefix + "." + strconv.Itoa(i) }

// Prefix is "127.A.B".
func (n *Net) Prefix() string { return n.prefix }

func (n *Net) String() string { return n.prefix + ".0/24" }

// Release gives the block back. It is idempotent.
func (n *Net) Release() {
	if n.lock == nil {
		return
	}
	// Unlinked while still locked: a process that opened the file before
	// finds, once it holds the lock, that the path no longer names it,
	// and tries again (see claim).
	_ = os.Remove(n.path)
	_ = n.lock.Close()
	n.lock = nil
}

// ReserveNet takes a free block for this process: from $DETOUR_TEST_NET
// upward when it is set, else at random.
func ReserveNet() (*Net, error) {
	if pin := os.Getenv(NetEnv); pin != "" {
		a, b, err := parsePrefix(pin)
		if err != nil {
			return nil, fmt.Errorf("%s=%s: %w", NetEnv, pin, err)
		}
		var errs []error
		for ; b <= 255 && len(errs) < 32; b++ {
			n, err := ClaimNet(fmt.Sprintf("127.%d.%d", a, b))
			if err == nil {
				return n, nil
			}
			if errors.Is(err, errNotUsable) {
				return nil, err
			}
			errs = append(errs, err)
		}
		return nil, fmt.Errorf("%s=%s: no free block from there: %w", NetEnv, pin, errors.Join(errs...))
	}
	var errs []error
	for range 32 {
		n, err := ClaimNet(fmt.Sprintf("127.%d.%d", 64+rand.IntN(191), rand.IntN(256)))
		if err == nil {
			return n, nil
		}
		if errors.Is(err, errNotUsable) {
			return nil, err
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("no free loopback block in 32 tries (set %s=127.A.B to choose one): %w", NetEnv, errors.Join(errs...))
}

// errNotUsable: the machine cannot bind the block's addresses at all
// (only 127.0.0.1 configured, as on macOS): trying another block will not
// help.
var errNotUsable = errors.New("loopback address not usable")

// ClaimNet takes exactly the block prefix ("127.A.B"), or says why not:
// another process holds it, or one of the testbed's fixed ports is taken
// on one of its first hosts (a run of an older checkout, a process of
// someone else's).
func ClaimNet(prefix string) (*Net, error) {
	if _, _, err := parsePrefix(prefix); err != nil {
		return nil, fmt.Errorf("%s: %w", prefix, err)
	}
	n := &Net{prefix: prefix, path: filepath.Join(os.TempDir(), "detour-net-"+prefix+".lock")}
	if err := n.lockFile(); err != nil {
		return nil, err
	}
	if err := n.checkFree(); err != nil {
		n.Release()
		return nil, err
	}
	_ = n.lock.Truncate(0)
	_, _ = n.lock.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return n, nil
}

// lockFile opens and flocks the block's file. The file is removed on
// Release while locked, so the lock counts only if the path still names
// the file locked.
func (n *Net) lockFile() error {
	for range 10 {
		f, err := os.OpenFile(n.path, os.O_RDWR|os.O_CREATE, 0o666)
		if err != nil {
			return fmt.Errorf("%s: lock file: %w", n, err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			holder, _ := os.ReadFile(n.path)
			f.Close()
			if pid := strings.TrimSpace(string(holder)); pid != "" {
				return fmt.Errorf("%s is held by another run (pid %s, %s)", n, pid, n.path)
			}
			return fmt.Errorf("%s is held by another run (%s)", n, n.path)
		}
		held, err1 := f.Stat()
		named, err2 := os.Stat(n.path)
		if err1 == nil && err2 == nil && os.SameFile(held, named) {
			n.lock = f
			return nil
		}
		f.Close() // released and removed meanwhile: a new file, again
	}
	return fmt.Errorf("%s: could not lock %s", n, n.path)
}

// The testbed's fixed ports on a host, checked on checkedHosts before a
// block is taken.
var (
	fixedPorts   = []int{AgentHTTPPort, AgentGRPCPort, AdminPort, HealthPort, ZooKeeperPort, EtcdPort, EtcdPort + 1}
	checkedHosts = []int{2, 3, 4, 5, 9}
)

func (n *Net) checkFree() error {
	for _, h := range checkedHosts {
		for _, p := range fixedPorts {
			addr := net.JoinHostPort(n.Host(h), strconv.Itoa(p))
			l, err := net.Listen("tcp", addr)
			if errors.Is(err, syscall.EADDRNOTAVAIL) {
				return fmt.Errorf("%w: %s: %w", errNotUsable, addr, err)
			}
			if err != nil {
				return fmt.Errorf("%s: %s is taken: %w", n, addr, err)
			}
			l.Close()
		}
	}
	return nil
}

func parsePrefix(s string) (a, b int, err error) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || parts[0] != "127" {
		return 0, 0, errors.New(`want "127.A.B" (the block 127.A.B.0/24)`)
	}
	a, errA := strconv.Atoi(parts[1])
	b, errB := strconv.Atoi(parts[2])
	if errA != nil || errB != nil || a < 0 || a > 255 || b < 0 || b > 255 {
		return 0, 0, errors.New(`want "127.A.B" with A and B in 0-255`)
	}
	return a, b, nil
}
