package zookeeper

import (
	"strings"
	"testing"

	"github.com/detourmesh/detour/naming-agent/frontend"
)

// FuzzPassthroughApply feeds readings of the store (another host's or
// anyone's keys: outside input) to the pass-through: whatever they hold,
// nothing panics and the tree stays a tree (every node's parent there and
// listing it), with nothing under /zookeeper or the rewrite layer's paths.
// Input: two readings separated by "\n--\n", each "key=value" lines.
func FuzzPassthroughApply(f *testing.F) {
	f.Add("/dubbo=\n/dubbo/mapping/S=app\n--\n/dubbo/mapping/S=app2\n/dubbo/S/consumers/c=")
	f.Add("/dubbo/a//b=x\n/dubbo/./x=\n/zookeeper/q=1\n--\n/dubbo/S/providers/p=1\n/services/app/1.2.3.4:5=x")
	f.Add("/dubbo/a/b/c=1\n--\n/dubbo/a=2")
	f.Fuzz(func(t *testing.T, in string) {
		first, second, _ := strings.Cut(in, "\n--\n")
		srv, err := New(testConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		pt := NewPassthrough(frontend.NewMemoryStore(), PassthroughConfig{Roots: []string{"/dubbo", "/services"}}, testOwns, nil)
		pt.srv = srv
		a, b := readingOf(first), readingOf(second)
		pt.apply(nil, a)
		pt.apply(a, b)
		srv.mu.Lock()
		defer srv.mu.Unlock()
		for p, n := range srv.tree.nodes {
			if p == "/" {
				continue
			}
			if !validPath(p) {
				t.Fatalf("node %q: not a path", p)
			}
			parent, name, _ := split(p)
			pn := srv.tree.nodes[parent]
			if pn == nil {
				t.Fatalf("node %q without its parent", p)
			}
			if _, ok := pn.kids[name]; !ok {
				t.Fatalf("node %q not listed by its parent", p)
			}
			if n.kids == nil {
				t.Fatalf("node %q: nil children", p)
			}
			if testOwns(p) || (isZooKeeperPath(p) && !specialPath(p)) {
				t.Fatalf("node %q served from the store", p)
			}
		}
	})
}

func readingOf(s string) map[string][]byte {
	m := map[string][]byte{}
	for _, line := range strings.Split(s, "\n") {
		k, v, _ := strings.Cut(line, "=")
		if k != "" {
			m[k] = []byte(v)
		}
	}
	return m
}
