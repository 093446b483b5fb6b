package version

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	const rev = "abcdef1234567890abcdef1234567890abcdef12"
	for _, tc := range []struct {
		name     string
		version  string
		settings map[string]string
		want     string
	}{
		{"tagged", "v1.2.3", map[string]string{"vcs.revision": rev, "vcs.time": "2026-12-05T10:00:00Z", "vcs.modified": "false"},
			"naming-agent v1.2.3 (commit abcdef123456, 2026-12-05T10:00:00Z)"},
		{"dirty", "v0.0.0-20261205100000-abcdef123456+dirty", map[string]string{"vcs.revision": rev, "vcs.time": "2026-12-05T10:00:00Z", "vcs.modified": "true"},
			"naming-agent v0.0.0-20261205100000-abcdef123456+dirty (commit abcdef123456-dirty, 2026-12-05T10:00:00Z)"},
		{"no vcs", "(devel)", nil, "naming-agent (devel)"},
		{"nothing recorded", "", nil, "naming-agent (devel)"},
		{"short revision", "(devel)", map[string]string{"vcs.revision": "abc1234"}, "naming-agent (devel) (commit abc1234)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/detourmesh/detour", Version: tc.version}}
			for k, v := range tc.settings {
				bi.Settings = append(bi.Settings, debug.BuildSetting{Key: k, Value: v})
			}
			if got := FromBuildInfo(bi).String("naming-agent"); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestBuiltBinary builds a program in a throwaway git repository and
// checks that what the toolchain records reaches the line: the commit,
// its time, and -dirty once the tree changes.
func TestBuiltBinary(t *testing.T) {
	for _, tool := range []string{"go", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not found: %v", tool, err)
			}
			t.Skipf("%s not found (CI fails here): %v", tool, err)
		}
	}
	src, err := os.ReadFile("version.go")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A module of its own holding a copy of this package (internal: it
	// cannot be imported from outside), so the build records this
	// throwaway repository's commit.
	// -buildvcs=true: the environment may turn stamping off in GOFLAGS.
	const mainGo = "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/v/internal/version\"\n)\n\nfunc main() { fmt.Println(version.String(\"prog\")) }\n"
	write("go.mod", "module example.com/v\n\ngo 1.22\n")
	write("internal/version/version.go", string(src))
	write("main.go", mainGo)
	cmd := func(name string, args ...string) string {
		t.Helper()
		c := exec.Command(name, args...)
		c.Dir = dir
		c.Env = append(os.Environ(), "GIT_AUTHOR_DATE=2026-12-05T10:00:00Z", "GIT_COMMITTER_DATE=2026-12-05T10:00:00Z",
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	cmd("git", "init", "-q")
	cmd("git", "add", ".")
	cmd("git", "commit", "-qm", "x")
	rev := cmd("git", "rev-parse", "HEAD")
	cmd("go", "build", "-buildvcs=true", "-o", "prog", ".")
	want := "(commit " + rev[:12] + ", 2026-12-05T10:00:00Z)"
	if got := cmd(filepath.Join(dir, "prog")); !strings.HasPrefix(got, "prog v0.0.0-20261205100000-"+rev[:12]) || !strings.HasSuffix(got, want) {
		t.Errorf("clean build: %q, want prog v0.0.0-20261205100000-%s... %s", got, rev[:12], want)
	}
	write("main.go", mainGo+"\n// changed\n")
	cmd("go", "build", "-buildvcs=true", "-o", "prog", ".")
	if got := cmd(filepath.Join(dir, "prog")); !strings.Contains(got, "(commit "+rev[:12]+"-dirty, ") {
		t.Errorf("dirty build: %q, want commit %s-dirty", got, rev[:12])
	}
}
