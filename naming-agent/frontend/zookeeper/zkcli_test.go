package zookeeper

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// zkCli finds ZooKeeper's own Java command line client (Debian's
// zookeeper package); without it the test fails in CI and skips
// elsewhere.
func zkCli(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("ZKCLI"), "/usr/share/zookeeper/bin/zkCli.sh"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			if _, err := exec.LookPath("java"); err == nil {
				return p
			}
		}
	}
	if p, err := exec.LookPath("zkCli.sh"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("zkCli.sh or java is missing and CI=true: install Debian's zookeeper package")
	}
	t.Skip("zkCli.sh or java not found (Debian's zookeeper package, or set ZKCLI)")
	return ""
}

// zkCliScript is what a person would type: every node kind, reads,
// writes, errors, watches.
const zkCliScript = `create ROOT top
create ROOT/a hello
create -e ROOT/a/eph e
create -s ROOT/a/seq- s
create -s -e ROOT/a/eseq- es
create -c ROOT/box
create ROOT/box/item
create ROOT/a dup
create ROOT/missing/x x
create -t 1000 ROOT/ttl t
create ROOT/a/eph/child c
ls ROOT/a
ls -s ROOT
get ROOT/a
get -s ROOT/a
stat ROOT/a/eph
set ROOT/a world
set -v 7 ROOT/a again
get ROOT/a
getAcl ROOT/a
sync ROOT/a
getEphemerals ROOT
getAllChildrenNumber ROOT
whoami
get -w ROOT/a
set ROOT/a watched
ls -w ROOT/a
create ROOT/a/new n
addWatch -m PERSISTENT ROOT/box
set ROOT/box b1
set ROOT/box b2
delete ROOT/a
delete -v 5 ROOT/a/new
delete ROOT/a/new
delete ROOT/nope
deleteall ROOT
ls ROOT
quit
`

func runZkCli(t *testing.T, cli, addr, root string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli, "-server", addr)
	cmd.Stdin = strings.NewReader(strings.ReplaceAll(zkCliScript, "ROOT", root))
	cmd.Env = append(os.Environ(), "ZOO_LOG_DIR="+t.TempDir(), "CLIENT_JVMFLAGS=-Xshare:auto -XX:TieredStopAtLevel=1")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) { // it exits 1 when its last command failed
		t.Fatalf("zkCli against %s: %v\n%s", addr, err, out)
	}
	return normalizeCli(string(out), root)
}

var (
	// cliWatch is one message of zkCli's event thread: println("\n"+msg),
	// whole, but anywhere in the output, even inside a reply printed in
	// pieces (ls appends "[", each child, ", ", "]\n").
	cliWatch     = regexp.MustCompile(`\n(WATCHER::|WatchedEvent [^\n]*)\n`)
	cliWatchMute = regexp.MustCompile(`^WatchedEvent state:(SyncConnected type:None path:null|Closed)`)
	cliNoise     = regexp.MustCompile(`(?m)^(SLF4J:.*|Connecting to .*|Welcome to ZooKeeper!|JLine support is .*|\s*)$\n?`)
	cliHex       = regexp.MustCompile(`0x[0-9a-f]+`)
	cliTime      = regexp.MustCompile(`(?m)^([cm]time = ).*$`)
)

// normalizeCli keeps what two servers must agree on: session ids, zxids
// and times are masked, the root named ROOT, noise dropped, lists
// sorted (ZooKeeper's sets have no order). zkCli prints watch events
// from another thread, anywhere among the replies: they are taken out
// and put, sorted, at the end.
func normalizeCli(out, root string) string {
	out = strings.ReplaceAll(out, root, "ROOT")
	var events []string
	out = cliWatch.ReplaceAllStringFunc(out, func(m string) string {
		if e := m[1 : len(m)-1]; strings.HasPrefix(e, "WatchedEvent ") && !cliWatchMute.MatchString(e) {
			events = append(events, cliHex.ReplaceAllString(e, "0xN"))
		}
		return ""
	})
	out = cliNoise.ReplaceAllString(out, "")
	out = cliHex.ReplaceAllString(out, "0xN")
	out = cliTime.ReplaceAllString(out, "${1}T")
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			items := strings.Split(l[1:len(l)-1], ", ")
			slices.Sort(items)
			lines = append(lines, "["+strings.Join(items, ", ")+"]")
		default:
			lines = append(lines, l)
		}
	}
	slices.Sort(events)
	return strings.Join(append(lines, events...), "\n")
}

// TestNormalizeCliInterleaved: a watch event printed inside ls's list
// (seen under load) reads as if printed after it.
func TestNormalizeCliInterleaved(t *testing.T) {
	ev := "\nWATCHER::\n\nWatchedEvent state:SyncConnected type:NodeDataChanged path:/r/a\n"
	connect := "\nWATCHER::\n\nWatchedEvent state:SyncConnected type:None path:null\n"
	want := "hello\n[eph, seq]\nworld\n\nWatchedEvent state:SyncConnected type:NodeDataChanged path:ROOT/a"
	for _, out := range []string{
		"Connecting to x\n" + connect + "hello\n[eph, seq]\nworld\n" + ev,
		"Connecting to x\n" + connect + "hello\n[eph" + ev + ", seq]\nworld\n",
		"Connecting to x\n" + connect + "hello\n" + ev + "[seq, eph]\nworld\n",
		"Connecting to x\nhello" + connect + "\n[eph, seq]\nwor" + ev + "ld\n",
	} {
		if got := normalizeCli(out, "/r"); got != want {
			t.Errorf("normalizeCli(%q) =\n%q\nwant\n%q", out, got, want)
		}
	}
}

func TestZkCli(t *testing.T) {
	cli := zkCli(t)
	s := startServer(t, testConfig())
	var b [4]byte
	_, _ = rand.Read(b[:])
	root := "/cli-" + hex.EncodeToString(b[:])
	front := runZkCli(t, cli, s.addr, root)
	for _, want := range []string{
		"Created ROOT/a\n", "Created ROOT/a/seq-0000000001\n", "Created ROOT/a/eseq-0000000002\n",
		"Created ROOT/box\n", "Node already exists: ROOT/a\n", "Node does not exist: ROOT/missing/x\n",
		"KeeperErrorCode = Unimplemented for ROOT/ttl\n", "Ephemerals cannot have children: ROOT/a/eph/child\n",
		"[eph, eseq-0000000002, seq-0000000001]\n", "[ROOT/a/eph, ROOT/a/eseq-0000000002]\n", "hello\n", "ephemeralOwner = 0xN\n", "world\n",
		"version No is not valid : ROOT/a\n", "WatchedEvent state:SyncConnected type:NodeDataChanged path:ROOT/a\n",
		"WatchedEvent state:SyncConnected type:NodeChildrenChanged path:ROOT/a\n",
		"Node not empty: ROOT/a\n", "Node does not exist: ROOT/nope\n",
	} {
		if !strings.Contains(front, want) {
			t.Errorf("zkCli output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("zkCli output:\n%s", front)
	}
	// The same script against the real ZooKeeper, when there is one: the
	// outputs, masked, are the same.
	real := os.Getenv("DETOUR_ZK_ADDR")
	if real == "" {
		t.Log("DETOUR_ZK_ADDR unset: zkCli's output not compared with a real ZooKeeper")
		return
	}
	if got := runZkCli(t, cli, real, root); got != front {
		t.Errorf("zkCli output differs from the real ZooKeeper's:\n--- real\n%s\n--- front end\n%s", got, front)
	}
}
