package datadir

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// holdEnv makes the test binary a process that holds a data dir: it
// opens the dir named in it, prints "locked", and waits to be killed
// (reading stdin, so it also ends if the test dies and closes the pipe).
const holdEnv = "DATADIR_TEST_HOLD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(holdEnv); dir != "" {
		if _, err := Open(dir); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println("locked")
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestOpenCreatesAndLocks(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Path() != dir {
		t.Errorf("Path() = %q", d.Path())
	}
	b, err := os.ReadFile(filepath.Join(dir, LockFile))
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("lock file holds %q, %v; want our pid %d", b, err, os.Getpid())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("dir holds %v, want the lock file only (no probe left)", entries)
	}
}

// TestNotWritable: the tests run as root in CI, and root ignores mode
// bits, so a chmod 0555 directory is writable to it. What fails for root
// too: a pseudo file system that has no files to create (sysfs answers
// EACCES, procfs ENOENT, whoever asks), and a path under a regular file
// (ENOTDIR, already at mkdir). chmod 0555 runs where the tests are not
// root.
func TestNotWritable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	readOnly := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(readOnly, 0o555); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, dir, want string
		skip            string // why the case cannot run here
	}{
		{name: "sysfs", dir: "/sys/kernel", want: "data dir /sys/kernel: not writable: open /sys/kernel/.write-probe-", skip: notMounted("/sys/kernel", sysfsMagic)},
		{name: "procfs", dir: "/proc/self", want: "data dir /proc/self: not writable: open /proc/self/.write-probe-", skip: notMounted("/proc/self", procMagic)},
		{name: "under a file", dir: filepath.Join(file, "sub"), want: "data dir " + filepath.Join(file, "sub") + ": mkdir " + file + ": not a directory"},
		{name: "a file", dir: file, want: "data dir " + file + ": mkdir " + file + ": not a directory"},
		{name: "chmod 0555", dir: readOnly, want: "data dir " + readOnly + ": not writable: open " + readOnly + "/.write-probe-", skip: rootSkip()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.skip != "" {
				t.Skip(tc.skip)
			}
			d, err := Open(tc.dir)
			if err == nil {
				d.Close()
				t.Fatalf("Open(%s) succeeded", tc.dir)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to start %q", err, tc.want)
			}
			t.Log(err)
		})
	}
}

const (
	sysfsMagic = 0x62656572
	procMagic  = 0x9fa0
)

// notMounted says why dir is not on the file system with magic, or "".
func notMounted(dir string, magic int64) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil || int64(st.Type) != magic {
		return fmt.Sprintf("%s is not on the expected pseudo file system (%v)", dir, err)
	}
	return ""
}

func rootSkip() string {
	if os.Geteuid() == 0 {
		return "running as root, which mode bits do not stop (the sysfs and procfs cases stand in)"
	}
	return ""
}

func TestSecondOpenFailsWithPID(t *testing.T) {
	dir := t.TempDir()
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("data dir %s is in use by another naming-agent (pid %d)", dir, os.Getpid())
	if d2, err := Open(dir); err == nil || err.Error() != want {
		if d2 != nil {
			d2.Close()
		}
		t.Fatalf("second Open: %v, want %q", err, want)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d3, err := Open(dir)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	d3.Close()
}

// TestLockDiesWithHolder: another process holds the dir (re-executing
// this test binary); while it lives Open names its pid, once it is
// killed the dir opens.
func TestLockDiesWithHolder(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	in, err := cmd.StdinPipe() // kept open: the holder waits on it
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "locked\n" {
		t.Fatalf("holder said %q", line)
	}
	want := fmt.Sprintf("data dir %s is in use by another naming-agent (pid %d)", dir, cmd.Process.Pid)
	if d, err := Open(dir); err == nil || err.Error() != want {
		if d != nil {
			d.Close()
		}
		t.Fatalf("Open while held: %v, want %q", err, want)
	}
	cmd.Process.Kill() // SIGKILL: no Close, no cleanup of its own
	cmd.Wait()
	killed = true
	d, err := Open(dir)
	if err != nil {
		t.Fatalf("Open after the holder died: %v", err)
	}
	d.Close()
}
