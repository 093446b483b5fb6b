// Package datadir opens the naming agent's data directory (port
// assignment, endpoint cache, mesh flags, embedded registry): created if
// missing, checked writable at once rather than at the first save, and
// locked, so that a second agent on the same directory fails at start
// instead of both handing out the same ports.
//
// The lock is flock(2) on DIR/lock, exclusive and non-blocking. The
// kernel drops it when the holder's process ends, however it ends, so a
// killed agent never leaves the directory locked; the file holds the
// holder's PID only to name it in the error.
package datadir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LockFile is the lock's name in the directory.
const LockFile = "lock"

// Dir is an open, locked data directory.
type Dir struct {
	path string
	lock *os.File // holds the flock while open
}

// Open creates dir if missing, checks that a file can be created, synced
// and removed in it, and takes its lock. The errors name the directory:
//
//	data dir /var/lib/detour: not writable: open /var/lib/detour/.write-probe-1234: permission denied
//	data dir /var/lib/detour is in use by another naming-agent (pid 1234)
func Open(dir string) (*Dir, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir %s: %w", dir, err)
	}
	if err := probe(dir); err != nil {
		return nil, fmt.Errorf("data dir %s: not writable: %w", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, LockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("data dir %s: lock: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := holderPID(f)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data dir %s is in use by another naming-agent (pid %s)", dir, holder)
		}
		return nil, fmt.Errorf("data dir %s: lock %s: %w", dir, f.Name(), err)
	}
	if err := writePID(f); err != nil {
		f.Close() // drops the lock
		return nil, fmt.Errorf("data dir %s: lock %s: %w", dir, f.Name(), err)
	}
	return &Dir{path: dir, lock: f}, nil
}

// Path is the directory.
func (d *Dir) Path() string { return d.path }

// Close releases the lock. The lock file stays: removing it would let a
// process that has it open lock a file no longer in the directory.
func (d *Dir) Close() error {
	if d.lock == nil {
		return nil
	}
	err := d.lock.Close() // closing the last descriptor drops the flock
	d.lock = nil
	return err
}

// probe creates, fsyncs and removes a file in dir.
func probe(dir string) error {
	f, err := os.CreateTemp(dir, ".write-probe-*")
	if err != nil {
		return err
	}
	_, err = f.Write([]byte("probe\n"))
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if rerr := os.Remove(f.Name()); err == nil {
		err = rerr
	}
	return err
}

// writePID replaces the lock file's content with this process's PID.
func writePID(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return err
}

// holderPID reads the holder's PID from the lock file, for the error; it
// is "unknown" while the holder has not written it yet.
func holderPID(f *os.File) string {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	pid := strings.TrimSpace(string(b[:n]))
	if _, err := strconv.Atoi(pid); err != nil {
		return "unknown"
	}
	return pid
}
