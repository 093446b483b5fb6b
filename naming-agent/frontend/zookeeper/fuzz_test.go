package zookeeper

import (
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap"
)

// Fuzz targets for every decoder of outside input; make fuzz runs them.

func FuzzDecodeConnectRequest(f *testing.F) {
	w := newWriter()
	w.int32(0)
	w.int64(5)
	w.int32(30000)
	w.int64(0x1234)
	w.buffer(make([]byte, 16))
	w.bool(false)
	f.Add(w.frame()[4:])
	f.Add([]byte{})
	f.Add(be32(-1))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := decodeConnectRequest(b)
		if err == nil && len(req.Passwd) > len(b) {
			t.Fatalf("password of %d bytes from %d", len(req.Passwd), len(b))
		}
	})
}

func FuzzDecodeMulti(f *testing.F) {
	for _, seed := range multiSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, allowed := range []func(int32) bool{isWriteOp, isReadOp} {
			r := newReader(b)
			ops := decodeMulti(r, allowed)
			if len(ops)*5 > len(b) {
				t.Fatalf("%d ops from %d bytes", len(ops), len(b))
			}
		}
	})
}

// FuzzDecodeRequest feeds whole request frames (header and body) to a
// session of an in-process server: whatever the bytes, no panic, and the
// tree stays a tree.
func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range requestSeeds() {
		f.Add(seed)
	}
	s, err := New(testConfig(), WithLogger(zap.NewNop()), WithOverlay(&testOverlay{}))
	if err != nil {
		f.Fatal(err)
	}
	s.overlay.(*testOverlay).set(map[string][]string{"/o": {"x"}}, map[string][]byte{"/o/x": []byte("d")})
	f.Cleanup(func() { _ = s.Close() })
	f.Fuzz(func(t *testing.T, b []byte) {
		c := pipeConn(t, s)
		if v := s.connect(c, connectRequest{TimeOut: 10000}); v != keepOpen {
			t.Fatalf("connect: %v", v)
		}
		c.handle(b)
		c.handle(b) // twice: a create then exists, a delete then missing
		s.mu.Lock()
		defer s.mu.Unlock()
		if err := checkTree(s.tree); err != nil {
			t.Fatal(err)
		}
		if c.sess != nil {
			s.endSession(c.sess)
		}
		s.watches.removeConn(c)
		if err := checkTree(s.tree); err != nil {
			t.Fatal(err)
		}
	})
}

// checkTree verifies the tree's invariants: every node but the root has
// its parent, which lists it; children exist; ephemerals are indexed by
// their owner and childless.
func checkTree(tr *tree) error {
	for p, n := range tr.nodes {
		for k := range n.kids {
			if tr.nodes[join(p, k)] == nil {
				return fmt.Errorf("%s lists a missing child %s", p, k)
			}
		}
		owner := n.st.EphemeralOwner
		if isSessionOwner(owner) {
			if _, ok := tr.ephemerals[owner][p]; !ok {
				return fmt.Errorf("ephemeral %s not indexed under %#x", p, owner)
			}
			if len(n.kids) > 0 {
				return fmt.Errorf("ephemeral %s has children", p)
			}
		}
		if p == "/" {
			continue
		}
		parent, name, ok := split(p)
		if !ok || tr.nodes[parent] == nil {
			return fmt.Errorf("%s has no parent", p)
		}
		if _, ok := tr.nodes[parent].kids[name]; !ok {
			return fmt.Errorf("%s not listed by its parent", p)
		}
	}
	for owner, set := range tr.ephemerals {
		for p := range set {
			if n := tr.nodes[p]; n == nil || n.st.EphemeralOwner != owner {
				return fmt.Errorf("ephemeral index has %s for %#x", p, owner)
			}
		}
	}
	return nil
}

func requestSeeds() [][]byte {
	req := func(op int32, body func(w *writer)) []byte {
		w := newWriter()
		w.int32(1)
		w.int32(op)
		if body != nil {
			body(w)
		}
		return w.frame()[4:]
	}
	seeds := [][]byte{
		req(opPing, nil),
		req(opCreate, createBody("/a", []byte("x"), modePersistent)),
		req(opCreate2, createBody("/a/b", nil, modeEphemeralSequential)),
		req(opCreateContainer, createBody("/c", nil, modeContainer)),
		req(opCreate, createBody("/o/x/y", nil, modeEphemeral)),
		req(opDelete, func(w *writer) { w.string("/a"); w.int32(-1) }),
		req(opSetData, func(w *writer) { w.string("/a"); w.buffer([]byte("y")); w.int32(-1) }),
		req(opExists, pathWatchBody("/a", true)),
		req(opGetData, pathWatchBody("/o/x", true)),
		req(opGetChildren2, pathWatchBody("/o", true)),
		req(opGetACL, pathBody("/")),
		req(opSetACL, func(w *writer) { w.string("/a"); encodeACLs(w, openACL); w.int32(-1) }),
		req(opSync, pathBody("/")),
		req(opAuth, func(w *writer) { w.int32(0); w.string("digest"); w.buffer([]byte("u:p")) }),
		req(opSetWatches2, func(w *writer) {
			w.int64(0)
			for range 5 {
				w.strings([]string{"/a", "/o"})
			}
		}),
		req(opAddWatch, func(w *writer) { w.string("/"); w.int32(addWatchPersistentRecursive) }),
		req(opRemoveWatches, func(w *writer) { w.string("/"); w.int32(watcherAny) }),
		req(opGetEphemerals, pathBody("/")),
		req(opWhoAmI, nil),
		req(opCloseSession, nil),
	}
	for _, m := range multiSeeds() {
		seeds = append(seeds, req(opMulti, func(w *writer) { w.b = append(w.b, m...) }),
			req(opMultiRead, func(w *writer) { w.b = append(w.b, m...) }))
	}
	return seeds
}

func multiSeeds() [][]byte {
	w := newWriter()
	for _, op := range []int32{opCreate, opSetData, opCheck, opDelete, opGetData} {
		w.int32(op)
		w.bool(false)
		w.int32(-1)
		switch op {
		case opCreate:
			createBody("/m", []byte("1"), 0)(w)
		case opSetData:
			w.string("/m")
			w.buffer(nil)
			w.int32(0)
		case opCheck, opDelete:
			w.string("/m")
			w.int32(-1)
		case opGetData:
			pathWatchBody("/m", false)(w)
		}
	}
	w.int32(-1)
	w.bool(true)
	w.int32(-1)
	return [][]byte{w.frame()[4:], []byte(strings.Repeat("\xff", 9))}
}

func TestTreeInvariantsAfterClients(t *testing.T) {
	s := startServer(t, testConfig())
	for _, seed := range requestSeeds() {
		c := dialRaw(t, s.addr, 0, nil)
		w := newWriter()
		w.b = append(w.b, seed...)
		c.sendFrame(w.frame())
		c.call(opSync, pathBody("/")) // after the seed's reply (or the close)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := checkTree(s.tree); err != nil {
		t.Fatal(err)
	}
}
