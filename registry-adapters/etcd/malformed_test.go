package etcd

import (
	"errors"
	"testing"

	"go.uber.org/zap/zaptest"
)

func TestReporterOncePerEntry(t *testing.T) {
	var got []string
	r := newReporter(zaptest.NewLogger(t), func(service, key string, err error) {
		got = append(got, service+" "+key)
	})
	// bad is the entry at key written with value at revision create
	// and last modified at mod.
	bad := func(key, value string, create, mod int64) badEntry {
		return badEntry{key: key, value: []byte(value), create: create, mod: mod, err: errors.New("bad")}
	}
	steps := []struct {
		name string
		do   func()
		want int // reports so far
	}{
		{"first listing", func() { r.listed("s", 10, []badEntry{bad("k1", "x", 5, 5), bad("k2", "y", 6, 6)}) }, 2},
		{"same listing again", func() { r.listed("s", 11, []badEntry{bad("k1", "x", 5, 5), bad("k2", "y", 6, 6)}) }, 2},
		{"a watcher sees the same entry", func() { r.put("s", bad("k1", "x", 5, 5)) }, 2},
		{"value changed", func() { r.put("s", bad("k1", "x2", 5, 12)) }, 3},
		{"a slow reader reads the old value", func() { r.put("s", bad("k1", "x", 5, 5)) }, 3},
		{"an old listing with the old value", func() { r.listed("s", 11, []badEntry{bad("k1", "x", 5, 5), bad("k2", "y", 6, 6)}) }, 3},
		{"an old listing without k1 keeps it", func() { r.listed("s", 11, []badEntry{bad("k2", "y", 6, 6)}) }, 3},
		{"other service, same key", func() { r.listed("t", 12, []badEntry{bad("k1", "x2", 5, 12)}) }, 4},
		{"k2 gone from a listing", func() { r.listed("s", 13, []badEntry{bad("k1", "x2", 5, 12)}) }, 4},
		{"k2 written again", func() { r.listed("s", 15, []badEntry{bad("k1", "x2", 5, 12), bad("k2", "y", 14, 14)}) }, 5},
		{"k1 deleted", func() { r.deleted("s", "k1", 16) }, 5},
		{"k1 deleted, seen by a second watcher after the rewrite", func() {
			r.put("s", bad("k1", "x2", 17, 17))
			r.deleted("s", "k1", 16)
		}, 6},
		{"the second watcher sees the rewrite", func() { r.put("s", bad("k1", "x2", 17, 17)) }, 6},
		{"empty listing forgets the service", func() { r.listed("s", 20, nil) }, 6},
	}
	for _, s := range steps {
		s.do()
		if len(got) != s.want {
			t.Fatalf("after %q: %d reports, want %d: %v", s.name, len(got), s.want, got)
		}
	}
	if _, ok := r.seen["s"]; ok {
		t.Errorf("service s still remembered after an empty listing")
	}
}
