package portalloc

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// openRange opens an allocator with one pool, egress 30000 to to.
func openRange(t *testing.T, path string, to int) (*Allocator, *[]error) {
	t.Helper()
	return openRanges(t, path, map[string]Range{"egress": {30000, to}}, nil)
}

// TestJournalFoldedIn: new assignments go to the journal, which is folded
// into the file once long enough, and at the next Open; nothing is lost
// either way.
func TestJournalFoldedIn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ports.json")
	a, warns := openRange(t, path, 39999)
	want := map[string]int{}
	for i := range minCompact + 10 {
		key := fmt.Sprintf("s%d", i)
		p, err := a.Assign("egress", key)
		if err != nil {
			t.Fatal(err)
		}
		want[key] = p
	}
	if a.journaled >= minCompact {
		t.Fatalf("journal holds %d assignments: never folded in", a.journaled)
	}
	if _, err := os.Stat(path + ".journal"); err != nil {
		t.Fatalf("the assignments after the fold are not journaled: %v", err)
	}
	b, _ := openRange(t, path, 39999)
	for key, p := range want {
		if got, ok := b.Get("egress", key); !ok || got != p {
			t.Fatalf("after restart %s = %d, %v; want %d", key, got, ok, p)
		}
	}
	if _, err := os.Stat(path + ".journal"); !os.IsNotExist(err) {
		t.Fatalf("journal left after Open folded it in: %v", err)
	}
	if len(*warns) != 0 {
		t.Fatalf("warnings: %v", *warns)
	}
}

// TestJournalTornLine: a crash mid-append leaves a torn last line; the
// lines before it count, the torn one is reported.
func TestJournalTornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ports.json")
	a, _ := openRange(t, path, 30009)
	p1, _ := a.Assign("egress", "s1")
	f, err := os.OpenFile(path+".journal", os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"pool":"egress","key":"s2","po`)
	f.Close()
	b, warns := openRange(t, path, 30009)
	if got, ok := b.Get("egress", "s1"); !ok || got != p1 {
		t.Fatalf("s1 = %d, %v; want %d", got, ok, p1)
	}
	if _, ok := b.Get("egress", "s2"); ok {
		t.Fatal("the torn line's assignment was taken")
	}
	if len(*warns) != 1 {
		t.Fatalf("warnings %v, want one for the torn line", *warns)
	}
	if p2, _ := b.Assign("egress", "s2"); p2 == p1 {
		t.Fatalf("s2 got s1's port %d", p1)
	}
}

// TestJournalRepeatsFile: a crash after the file was written but before
// the journal was dropped replays assignments the file already has: no
// warning, nothing changes.
func TestJournalRepeatsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ports.json")
	a, _ := openRange(t, path, 30009)
	p1, _ := a.Assign("egress", "s1")
	journal, err := os.ReadFile(path + ".journal")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.foldLocked(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path+".journal", journal, 0o644)
	b, warns := openRange(t, path, 30009)
	if got, _ := b.Get("egress", "s1"); got != p1 || len(*warns) != 0 {
		t.Fatalf("s1 = %d (want %d), warnings %v", got, p1, *warns)
	}
}

// TestJournalGarbageLineSkipped: a garbage line in the middle of the
// journal (a stray write, a bad edit) costs only itself: every valid line
// after it still counts, and the bad one is reported with its number. A
// line over the scanner's old 1 MiB limit is just another bad line.
func TestJournalGarbageLineSkipped(t *testing.T) {
	for _, tc := range []struct{ name, garbage string }{
		{"not json", "garbage\x00 here"},
		{"json, no key", `{"pool":"egress","port":30005}`},
		{"longer than a MiB", strings.Repeat("x", 2<<20)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ports.json")
			journal := `{"pool":"egress","key":"s1","port":30001}` + "\n" +
				tc.garbage + "\n" +
				`{"pool":"egress","key":"s2","port":30002}` + "\n" +
				`{"pool":"egress","key":"s3","port":30003}` + "\n"
			if err := os.WriteFile(path+".journal", []byte(journal), 0o644); err != nil {
				t.Fatal(err)
			}
			a, warns := openRange(t, path, 30009)
			for key, want := range map[string]int{"s1": 30001, "s2": 30002, "s3": 30003} {
				if got, ok := a.Get("egress", key); !ok || got != want {
					t.Errorf("%s = %d, %v; want %d", key, got, ok, want)
				}
			}
			if len(*warns) != 1 || !strings.Contains((*warns)[0].Error(), "line 2") {
				t.Fatalf("warnings %v, want one naming line 2", *warns)
			}
		})
	}
}
