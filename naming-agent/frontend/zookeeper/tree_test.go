package zookeeper

import (
	"reflect"
	"testing"
)

const testSession int64 = 0x42

// run applies one op in a transaction of its own, committing it unless it
// failed, and returns the code.
func run(tr *tree, op func(tx *txn) code) code {
	tx := tr.begin(testSession, 1000)
	c := op(tx)
	if c != codeOK {
		tx.rollback()
	}
	return c
}

func mk(tr *tree, path string, mode int32) code {
	return run(tr, func(tx *txn) code {
		_, _, c := tx.create(opCreate, createRequest{Path: path, ACL: openACL, Flags: mode}, opEnv{})
		return c
	})
}

func TestCreateErrors(t *testing.T) {
	tests := []struct {
		name string
		op   int32
		req  createRequest
		want code
	}{
		{"ok", opCreate, createRequest{Path: "/p/new", ACL: openACL}, codeOK},
		{"exists", opCreate, createRequest{Path: "/p", ACL: openACL}, codeNodeExists},
		{"no parent", opCreate, createRequest{Path: "/x/y", ACL: openACL}, codeNoNode},
		{"child of an ephemeral", opCreate, createRequest{Path: "/p/eph/c", ACL: openACL}, codeNoChildrenForEphemerals},
		{"bad flag", opCreate, createRequest{Path: "/p/z", ACL: openACL, Flags: 9}, codeBadArguments},
		{"TTL flag", opCreate, createRequest{Path: "/p/z", ACL: openACL, Flags: modePersistentTTL}, codeUnimplemented},
		{"createTTL without a TTL mode", opCreateTTL, createRequest{Path: "/p/z", ACL: openACL, TTL: 5}, codeBadArguments},
		{"no slash", opCreate, createRequest{Path: "p", ACL: openACL}, codeBadArguments},
		{"NUL", opCreate, createRequest{Path: "/p/a\x00", ACL: openACL}, codeBadArguments},
		{"trailing slash", opCreate, createRequest{Path: "/p/", ACL: openACL}, codeBadArguments},
		{"trailing slash, sequential", opCreate, createRequest{Path: "/p/", ACL: openACL, Flags: modePersistentSequential}, codeOK},
		// ZooKeeper's order: the ACL before the parent, the parent before the path.
		{"no ACL and no parent", opCreate, createRequest{Path: "/x/y"}, codeInvalidACL},
		{"no parent and a bad name", opCreate, createRequest{Path: "/x/y/", ACL: openACL}, codeNoNode},
		{"exists under an ephemeral", opCreate, createRequest{Path: "/p/eph", ACL: openACL}, codeNodeExists},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTree(0)
			mk(tr, "/p", modePersistent)
			mk(tr, "/p/eph", modeEphemeral)
			got := run(tr, func(tx *txn) code {
				_, _, c := tx.create(tt.op, tt.req, opEnv{})
				return c
			})
			if got != tt.want {
				t.Fatalf("create = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCreateModesAndStats(t *testing.T) {
	tr := newTree(100)
	tx := tr.begin(testSession, 5000)
	p, st, c := tx.create(opCreate2, createRequest{Path: "/a", Data: []byte("xyz"), ACL: openACL}, opEnv{})
	if c != codeOK || p != "/a" {
		t.Fatalf("create /a = %q, %v", p, c)
	}
	want := stat{Czxid: 101, Mzxid: 101, Pzxid: 101, Ctime: 5000, Mtime: 5000, DataLength: 3}
	if st != want {
		t.Fatalf("stat = %+v, want %+v", st, want)
	}
	names := []string{}
	for _, mode := range []int32{modePersistentSequential, modeEphemeralSequential, modeEphemeral} {
		name := "/a/s-"
		if mode == modeEphemeral {
			name = "/a/e"
		}
		p, st, c := tx.create(opCreate2, createRequest{Path: name, ACL: openACL, Flags: mode}, opEnv{})
		if c != codeOK {
			t.Fatalf("create %s: %v", name, c)
		}
		names = append(names, p)
		if wantOwner := map[bool]int64{true: testSession, false: 0}[mode != modePersistentSequential]; st.EphemeralOwner != wantOwner {
			t.Errorf("%s: owner %#x, want %#x", p, st.EphemeralOwner, wantOwner)
		}
	}
	if !reflect.DeepEqual(names, []string{"/a/s-0000000000", "/a/s-0000000001", "/a/e"}) {
		t.Fatalf("names = %v", names)
	}
	if got := tr.ephemeralsOf(testSession); !reflect.DeepEqual(got, []string{"/a/e", "/a/s-0000000001"}) {
		t.Fatalf("ephemerals = %v", got)
	}
	// Delete one: the reported cversion counts it, sequential names do not.
	tx.remove("/a/e")
	if st := statOf(tr.get("/a")); st.Cversion != 4 || st.NumChildren != 2 {
		t.Fatalf("after a delete: cversion %d, children %d; want 4, 2", st.Cversion, st.NumChildren)
	}
	p, _, _ = tx.create(opCreate, createRequest{Path: "/a/s-", ACL: openACL, Flags: modePersistentSequential}, opEnv{})
	if p != "/a/s-0000000003" {
		t.Fatalf("sequential after a delete = %q", p)
	}
	// A container shows owner 0; create with the container flag is a plain node.
	_, st, _ = tx.create(opCreateContainer, createRequest{Path: "/box", ACL: openACL, Flags: modeContainer}, opEnv{})
	if st.EphemeralOwner != 0 || tr.get("/box").st.EphemeralOwner != containerOwner {
		t.Fatalf("container owner %#x (stat %#x)", tr.get("/box").st.EphemeralOwner, st.EphemeralOwner)
	}
	tx.create(opCreate, createRequest{Path: "/plain", ACL: openACL, Flags: modeContainer}, opEnv{})
	if tr.get("/plain").st.EphemeralOwner != 0 {
		t.Fatal("create (not createContainer) with the container flag made a container")
	}
}

func TestDeleteSetDataCheckSetACL(t *testing.T) {
	tr := newTree(0)
	mk(tr, "/a", modePersistent)
	mk(tr, "/a/b", modePersistent)
	tests := []struct {
		name string
		op   func(tx *txn) code
		want code
	}{
		{"delete the root", func(tx *txn) code { return tx.delete(pathVersion{"/", -1}) }, codeBadArguments},
		{"delete /zookeeper", func(tx *txn) code { return tx.delete(pathVersion{"/zookeeper", -1}) }, codeBadArguments},
		{"delete no slash", func(tx *txn) code { return tx.delete(pathVersion{"a", -1}) }, codeBadArguments},
		{"delete missing", func(tx *txn) code { return tx.delete(pathVersion{"/a/x", -1}) }, codeNoNode},
		{"delete missing parent", func(tx *txn) code { return tx.delete(pathVersion{"/x/y", -1}) }, codeNoNode},
		{"delete bad version", func(tx *txn) code { return tx.delete(pathVersion{"/a/b", 4}) }, codeBadVersion},
		{"delete not empty", func(tx *txn) code { return tx.delete(pathVersion{"/a", -1}) }, codeNotEmpty},
		{"delete not empty, bad version", func(tx *txn) code { return tx.delete(pathVersion{"/a", 3}) }, codeBadVersion},
		{"delete", func(tx *txn) code { return tx.delete(pathVersion{"/a/b", 0}) }, codeOK},
		{"setData bad path", func(tx *txn) code { _, c := tx.setDataOp(setDataRequest{Path: "/a/", Version: -1}); return c }, codeBadArguments},
		{"setData missing", func(tx *txn) code { _, c := tx.setDataOp(setDataRequest{Path: "/n", Version: -1}); return c }, codeNoNode},
		{"setData bad version", func(tx *txn) code { _, c := tx.setDataOp(setDataRequest{Path: "/a", Version: 1}); return c }, codeBadVersion},
		{"check", func(tx *txn) code { return tx.check(pathVersion{"/a", 0}) }, codeOK},
		{"check bad version", func(tx *txn) code { return tx.check(pathVersion{"/a", 2}) }, codeBadVersion},
		{"check missing", func(tx *txn) code { return tx.check(pathVersion{"/n", -1}) }, codeNoNode},
		{"setACL invalid", func(tx *txn) code { _, c := tx.setACLOp(setACLRequest{Path: "/a", Version: -1}, opEnv{}); return c }, codeInvalidACL},
		{"setACL bad aversion", func(tx *txn) code {
			_, c := tx.setACLOp(setACLRequest{Path: "/a", ACL: openACL, Version: 2}, opEnv{})
			return c
		}, codeBadVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := run(tr, tt.op); got != tt.want {
				t.Fatalf("= %v, want %v", got, tt.want)
			}
		})
	}
	tx := tr.begin(testSession, 9)
	st, _ := tx.setDataOp(setDataRequest{Path: "/a", Data: []byte("v"), Version: 0})
	if st.Version != 1 || st.Mzxid != tx.zxid || st.Mtime != 9 || st.DataLength != 1 {
		t.Fatalf("setData stat %+v", st)
	}
	st, _ = tx.setACLOp(setACLRequest{Path: "/a", ACL: openACL, Version: 0}, opEnv{})
	if st.Aversion != 1 || st.Mzxid != tx.zxid {
		t.Fatalf("setACL stat %+v", st)
	}
}

func TestNextVersionSkipsMinusOne(t *testing.T) {
	if nextVersion(-2) != 0 || nextVersion(0) != 1 || nextVersion(1<<31-1) != -1<<31 {
		t.Fatal("nextVersion")
	}
}

func TestMultiRollsBack(t *testing.T) {
	tr := newTree(0)
	mk(tr, "/a", modePersistent)
	before := len(tr.nodes)
	cversion := tr.get("/a").st.Cversion
	tx := tr.begin(testSession, 1)
	results, ok := tx.multi([]multiOp{
		{Op: opCreate, Create: createRequest{Path: "/a/1", ACL: openACL, Flags: modeEphemeral}},
		{Op: opSetData, SetData: setDataRequest{Path: "/a", Data: []byte("x"), Version: -1}},
		{Op: opDelete, PV: pathVersion{Path: "/a/missing", Version: -1}},
		{Op: opCreate, Create: createRequest{Path: "/a/2", ACL: openACL}},
	}, opEnv{})
	if ok {
		t.Fatal("multi succeeded")
	}
	want := []multiResult{{Type: opError, Err: codeOK}, {Type: opError, Err: codeOK},
		{Type: opError, Err: codeNoNode}, {Type: opError, Err: codeRuntimeInconsistency}}
	if !reflect.DeepEqual(results, want) {
		t.Fatalf("results %+v", results)
	}
	if len(tr.nodes) != before || tr.get("/a").data != nil || tr.get("/a").st.Cversion != cversion ||
		len(tr.ephemerals) != 0 || len(tx.fires) != 0 || len(tx.notes) != 0 {
		t.Fatal("a failed multi left changes behind")
	}
	// Success: each result typed as ZooKeeper types it.
	tx = tr.begin(testSession, 2)
	results, ok = tx.multi([]multiOp{
		{Op: opCreate, Create: createRequest{Path: "/a/1", ACL: openACL}},
		{Op: opCreate2, Create: createRequest{Path: "/a/2", ACL: openACL}},
		{Op: opCheck, PV: pathVersion{Path: "/a/1", Version: 0}},
		{Op: opDelete, PV: pathVersion{Path: "/a/1", Version: 0}},
	}, opEnv{})
	types := []int32{}
	for _, r := range results {
		types = append(types, r.Type)
	}
	if !ok || !reflect.DeepEqual(types, []int32{opCreate, opCreate2, opCheck, opDelete}) {
		t.Fatalf("ok %v, types %v", ok, types)
	}
}

func TestMaterializeOverlayParents(t *testing.T) {
	tr := newTree(0)
	env := opEnv{auth: nil, overlaid: func(p string) bool { return p == "/o" || p == "/o/p" }}
	tx := tr.begin(testSession, 1)
	if _, _, c := tx.create(opCreate, createRequest{Path: "/o/p/leaf", ACL: openACL, Flags: modeEphemeral}, env); c != codeOK {
		t.Fatalf("create under an overlay path: %v", c)
	}
	for _, p := range []string{"/o", "/o/p", "/o/p/leaf"} {
		if tr.get(p) == nil {
			t.Errorf("%s missing", p)
		}
	}
	if _, _, c := tx.create(opCreate, createRequest{Path: "/q/leaf", ACL: openACL}, env); c != codeNoNode {
		t.Fatalf("create under a path nobody has: %v", c)
	}
}
