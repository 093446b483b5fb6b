// Package version says which build a binary is, from what the Go
// toolchain recorded in it (runtime/debug.ReadBuildInfo): the module
// version and the VCS commit, its time, and whether the tree was dirty.
// Every detour binary answers --version with String.
package version

import (
	"runtime/debug"
	"strings"
)

// Info is what a build recorded about itself. Fields the build did not
// record are empty: a test binary, `go run`, or -buildvcs=false has no
// commit.
type Info struct {
	// Version is the main module's version: a tag, a pseudo-version
	// (v0.0.0-20261205100000-abcdef123456, "+dirty" when modified), or
	// "(devel)".
	Version string
	// Revision is the VCS commit (vcs.revision), in full.
	Revision string
	// Time is the commit's time (vcs.time), RFC 3339.
	Time string
	// Modified: the work tree had uncommitted changes (vcs.modified).
	Modified bool
}

// Read returns the running binary's Info.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{}
	}
	return FromBuildInfo(bi)
}

// FromBuildInfo extracts Info from bi.
func FromBuildInfo(bi *debug.BuildInfo) Info {
	i := Info{Version: bi.Main.Version}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			i.Revision = s.Value
		case "vcs.time":
			i.Time = s.Value
		case "vcs.modified":
			i.Modified = s.Value == "true"
		}
	}
	return i
}

// shortRevision is how much of the commit String shows, as in Go's
// pseudo-versions.
const shortRevision = 12

// String is "PROGRAM VERSION (commit REV[-dirty], TIME)", leaving out what
// the build did not record:
//
//	naming-agent v0.0.0-20261205100000-abcdef123456 (commit abcdef123456, 2026-12-05T10:00:00Z)
//	naming-agent (devel) (commit abcdef123456-dirty, 2026-12-05T10:00:00Z)
//	naming-agent (devel)
func (i Info) String(program string) string {
	var b strings.Builder
	b.WriteString(program)
	v := i.Version
	if v == "" {
		v = "(devel)"
	}
	b.WriteString(" " + v)
	var paren []string
	if i.Revision != "" {
		rev := i.Revision
		if len(rev) > shortRevision {
			rev = rev[:shortRevision]
		}
		if i.Modified {
			rev += "-dirty"
		}
		paren = append(paren, "commit "+rev)
	}
	if i.Time != "" {
		paren = append(paren, i.Time)
	}
	if len(paren) > 0 {
		b.WriteString(" (" + strings.Join(paren, ", ") + ")")
	}
	return b.String()
}

// String is Read().String(program): the line --version prints.
func String(program string) string { return Read().String(program) }
