package portalloc

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func open(t *testing.T, path string, free func(string, int) bool) (*Allocator, *[]error) {
	t.Helper()
	return openRanges(t, path, map[string]Range{"ingress": {20000, 20002}, "egress": {30000, 30009}}, free)
}

// openRanges opens an allocator that collects its warnings.
func openRanges(t *testing.T, path string, ranges map[string]Range, free func(string, int) bool) (*Allocator, *[]error) {
	t.Helper()
	var warns []error
	a, err := Open(Config{
		Path:   path,
		Ranges: ranges,
		Free:   free,
		Warn:   func(err error) { warns = append(warns, err) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return a, &warns
}

func TestAssignPersistsAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ports.json")
	a, _ := open(t, path, nil)
	p1, err := a.Assign("ingress", "s1")
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := a.Assign("ingress", "s2")
	if p1 == p2 {
		t.Fatalf("two services share port %d", p1)
	}
	if again, _ := a.Assign("ingress", "s1"); again != p1 {
		t.Fatalf("second Assign = %d, want %d", again, p1)
	}
	e1, _ := a.Assign("egress", "s1")

	b, warns := open(t, path, nil)
	if got, ok := b.Get("ingress", "s1"); !ok || got != p1 {
		t.Errorf("after restart ingress s1 = %d,%v want %d", got, ok, p1)
	}
	if got, _ := b.Assign("ingress", "s2"); got != p2 {
		t.Errorf("after restart ingress s2 = %d want %d", got, p2)
	}
	if got, _ := b.Get("egress", "s1"); got != e1 {
		t.Errorf("after restart egress s1 = %d want %d", got, e1)
	}
	if len(*warns) != 0 {
		t.Errorf("warnings: %v", *warns)
	}
}

func TestTakenPortSkippedAndExhaustion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ports.json")
	a, _ := open(t, path, func(pool string, port int) bool { return port != 20000 })
	p, err := a.Assign("ingress", "s1")
	if err != nil || p != 20001 {
		t.Fatalf("Assign = %d, %v; want 20001 (20000 taken)", p, err)
	}
	if p, _ := a.Assign("ingress", "s2"); p != 20002 {
		t.Fatalf("Assign s2 = %d", p)
	}
	_, err = a.Assign("ingress", "s3")
	if !errors.Is(err, ErrExhausted) {
		t.Fatalf("Assign on a full range = %v, want ErrExhausted", err)
	}
	if _, ok := a.Get("ingress", "s3"); ok {
		t.Error("failed Assign recorded something")
	}
}

func TestBindFreeSeesRealListener(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	free := BindFree(map[string]string{"ingress": "127.0.0.1"})
	if free("ingress", port) {
		t.Errorf("port %d held by a listener reported free", port)
	}
	if !free("other", port) {
		t.Error("pool without an IP should be free")
	}
	a, err := Open(Config{Path: filepath.Join(t.TempDir(), "p"), Ranges: map[string]Range{"ingress": {port, port + 1}}, Free: free})
	if err != nil {
		t.Fatal(err)
	}
	got, err := a.Assign("ingress", "s")
	if err == nil && got == port {
		t.Fatalf("assigned the taken port %d", port)
	}
}

func TestCorruptFileMovedAside(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ports.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	a, warns := open(t, path, nil)
	if len(*warns) != 1 || !strings.Contains((*warns)[0].Error(), "corrupt") {
		t.Fatalf("warnings = %v", *warns)
	}
	if _, err := os.Stat(path + ".corrupt"); err != nil {
		t.Errorf("corrupt file not kept aside: %v", err)
	}
	if p, err := a.Assign("ingress", "s"); err != nil || p != 20000 {
		t.Errorf("Assign after corrupt file = %d, %v", p, err)
	}
}

func TestOutOfRangeAndDuplicatesDropped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ports.json")
	body := `{"version":1,"pools":{"ingress":{"old":25000,"a":20001,"b":20001},"gone":{"x":1}}}`
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	a, warns := open(t, path, nil)
	if len(*warns) != 3 {
		t.Errorf("warnings = %v, want 3", *warns)
	}
	if _, ok := a.Get("ingress", "old"); ok {
		t.Error("out-of-range assignment kept")
	}
	all := a.All("ingress")
	if len(all) != 1 {
		t.Errorf("assignment = %v, want one of a/b on 20001", all)
	}
}

func TestUnwritableDirFailsCleanly(t *testing.T) {
	// The data dir vanishes under the agent: the write fails, even for root.
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	a, _ := open(t, filepath.Join(dir, "ports.json"), nil)
	os.Remove(dir)
	if _, err := a.Assign("ingress", "s"); err == nil {
		t.Fatal("Assign with an unwritable file succeeded")
	}
	if _, ok := a.Get("ingress", "s"); ok {
		t.Error("assignment kept although it was not saved")
	}
}

// TestUsedPortsTracked: ports loaded from the file or lost to a failed
// write are (not) skipped by the next Assign, as the O(1) index says.
func TestUsedPortsTracked(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "ports.json")
	a, _ := open(t, path, nil)
	for _, k := range []string{"s1", "s2"} {
		if _, err := a.Assign("egress", k); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := open(t, path, nil)
	if p, _ := b.Assign("egress", "s3"); p != 30002 {
		t.Fatalf("after reload s3 = %d, want 30002 (30000-30001 loaded)", p)
	}
	os.RemoveAll(dir)
	if _, err := b.Assign("egress", "s4"); err == nil {
		t.Fatal("Assign with an unwritable file succeeded")
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if p, _ := b.Assign("egress", "s5"); p != 30003 {
		t.Fatalf("s5 = %d, want 30003 (s4's failed assignment left it free)", p)
	}
}

func TestRelease(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ports.json")
	cfg := Config{Path: path, Ranges: map[string]Range{"egress": {From: 30000, To: 30001}}}
	a, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p1, _ := a.Assign("egress", "typo")
	p2, _ := a.Assign("egress", "real")
	if _, err := a.Assign("egress", "third"); !errors.Is(err, ErrExhausted) {
		t.Fatalf("range of 2 gave a third port: %v", err)
	}
	if err := a.Release("egress", "typo"); err != nil {
		t.Fatal(err)
	}
	if err := a.Release("egress", "never"); err != nil {
		t.Fatalf("release of an unknown key: %v", err)
	}
	if p, err := a.Assign("egress", "third"); err != nil || p != p1 {
		t.Fatalf("after release: Assign = %d, %v; want the released %d", p, err, p1)
	}
	// A restart sees the release, and keeps the rest.
	b, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Get("egress", "typo"); ok {
		t.Error("released key back after a restart")
	}
	if p, _ := b.Get("egress", "real"); p != p2 {
		t.Errorf("real = %d after restart, want %d", p, p2)
	}
	if p, _ := b.Get("egress", "third"); p != p1 {
		t.Errorf("third = %d after restart, want %d", p, p1)
	}
}
