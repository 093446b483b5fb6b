package zookeeper

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dubbogo/go-zookeeper/zk"

	"github.com/detourmesh/detour/naming-agent/frontend/frontendtest/xchk"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

// zkSide is one side of the cross-check: a go-zookeeper client and a raw
// client (for the opcodes go-zookeeper does not send) on one server,
// under a root of its own.
type zkSide struct {
	t    testing.TB
	addr string
	root string
	zc   *zkClient
	raw  *rawClient
	seen int // node events of zc already answered
}

func newSide(t testing.TB, addr, root string) *zkSide {
	return &zkSide{t: t, addr: addr, root: root, zc: connectZK(t, addr, 10*time.Second), raw: dialRaw(t, addr, 0, nil)}
}

func (s *zkSide) p(rel string) string { return s.root + rel }

// rel strips the side's root from a path the server returned.
func (s *zkSide) rel(p string) string { return strings.TrimPrefix(p, s.root) }

// normStat keeps what must match between two servers: versions, counts,
// lengths, what owns the node, and how its zxids relate (not their
// values).
func (s *zkSide) normStat(st *zk.Stat, owner int64) string {
	if st == nil {
		return "<nil>"
	}
	own := "other session"
	switch st.EphemeralOwner {
	case 0:
		own = "none"
	case owner:
		own = "own session"
	case containerOwner:
		own = "container"
	}
	return fmt.Sprintf("version=%d cversion=%d aversion=%d dataLength=%d numChildren=%d owner=%s mzxid==czxid:%v pzxid==czxid:%v times:%v",
		st.Version, st.Cversion, st.Aversion, st.DataLength, st.NumChildren, own,
		st.Mzxid == st.Czxid, st.Pzxid == st.Czxid, st.Ctime > 0 && st.Mtime >= st.Ctime)
}

func (s *zkSide) stat(st *zk.Stat) string { return s.normStat(st, s.zc.SessionID()) }

// events answers the watch events zc got since the last call. A round
// trip first: a server sends a client the events of a change before any
// later reply, so every event due is in by then.
func (s *zkSide) events() xchk.Answer {
	_, _, err := s.zc.Exists("/")
	evs := s.zc.nodeEvents()
	var out []string
	for _, e := range evs[s.seen:] {
		out = append(out, fmt.Sprintf("%s %s", e.Type, s.rel(e.Path)))
	}
	s.seen = len(evs)
	return xchk.F("events", out, "err", err)
}

func (s *zkSide) rawStat(r *reader) string {
	var st stat
	st.decode(r)
	return s.normStat(&zk.Stat{Czxid: st.Czxid, Mzxid: st.Mzxid, Ctime: st.Ctime, Mtime: st.Mtime,
		Version: st.Version, Cversion: st.Cversion, Aversion: st.Aversion, EphemeralOwner: st.EphemeralOwner,
		DataLength: st.DataLength, NumChildren: st.NumChildren, Pzxid: st.Pzxid}, s.raw.sid)
}

var worldACL = zk.WorldACL(zk.PermAll)

// TestCrossCheck runs one sequence against the real ZooKeeper
// (DETOUR_ZK_ADDR, started by scripts/with-servers.sh) and this server,
// and compares the answers field by field.
func TestCrossCheck(t *testing.T) {
	real := registrytest.RequireEnv(t, "DETOUR_ZK_ADDR", "run: ZK_PORT=21870 bash scripts/with-servers.sh go test ...")
	front := startServer(t, testConfig())
	var b [6]byte
	_, _ = rand.Read(b[:])
	root := "/xchk-" + hex.EncodeToString(b[:])
	r, f := newSide(t, real, root), newSide(t, front.addr, root)
	t.Cleanup(func() { cleanTree(t, r.zc.Conn, root) })

	rep := xchk.Run(t, r, f, crossSteps())
	t.Logf("cross-check: %d steps, %d fields compared, %d mismatches", rep.Steps, rep.Fields, len(rep.Mismatches))
}

func cleanTree(t testing.TB, c *zk.Conn, p string) {
	kids, _, err := c.Children(p)
	if err != nil {
		return
	}
	for _, k := range kids {
		cleanTree(t, c, p+"/"+k)
	}
	if err := c.Delete(p, -1); err != nil && err != zk.ErrNoNode {
		t.Errorf("cleanup %s: %v", p, err)
	}
}

type step = xchk.Step[*zkSide]

func create(name, rel string, data []byte, flags int32) step {
	return step{Name: name, Do: func(s *zkSide) xchk.Answer {
		p, err := s.zc.Create(s.p(rel), data, flags, worldACL)
		return xchk.F("path", s.rel(p), "err", err)
	}}
}

func get(name, rel string) step {
	return step{Name: name, Do: func(s *zkSide) xchk.Answer {
		d, st, err := s.zc.Get(s.p(rel))
		return xchk.F("data", d, "stat", s.stat(st), "err", err)
	}}
}

func set(name, rel string, data []byte, version int32) step {
	return step{Name: name, Do: func(s *zkSide) xchk.Answer {
		st, err := s.zc.Set(s.p(rel), data, version)
		return xchk.F("stat", s.stat(st), "err", err)
	}}
}

func del(name, rel string, version int32) step {
	return step{Name: name, Do: func(s *zkSide) xchk.Answer {
		return xchk.F("err", s.zc.Delete(s.p(rel), version))
	}}
}

func kids(name, rel string) step {
	return step{Name: name, Do: func(s *zkSide) xchk.Answer {
		k, st, err := s.zc.Children(s.p(rel))
		slices.Sort(k) // ZooKeeper's order is a hash set's
		return xchk.F("children", k, "stat", s.stat(st), "err", err)
	}}
}

func events(name string) step { return step{Name: name, Do: (*zkSide).events} }

func crossSteps() []step {
	steps := []step{
		create("create root", "", []byte("r"), 0),
		create("create /a", "/a", []byte("hello"), 0),
		create("create /a again: NodeExists", "/a", nil, 0),
		create("create under a missing parent: NoNode", "/missing/child", nil, 0),
		create("create with null data", "/null", nil, 0),
		get("get null data", "/null"),
		create("create with TTL flags: Unimplemented", "/ttl", nil, 5),
		create("create with a bad flag: BadArguments", "/bad", nil, 7),
		create("create with the container flag over create", "/c", nil, 4),
		get("it is a plain persistent node", "/c"),
		{Name: "create with no ACL: InvalidACL", Do: func(s *zkSide) xchk.Answer {
			_, err := s.zc.Create(s.p("/noacl"), nil, 0, []zk.ACL{})
			return xchk.F("err", err)
		}},
		get("get /a", "/a"),
		set("set /a at a wrong version: BadVersion", "/a", []byte("x"), 5),
		set("set /a at version 0", "/a", []byte("hello2"), 0),
		set("set /a at any version", "/a", []byte("hello3"), -1),
		get("get /a after sets", "/a"),
		create("ephemeral /a/e", "/a/e", []byte("e"), zk.FlagEphemeral),
		get("ephemeral's stat", "/a/e"),
		create("child of an ephemeral: NoChildrenForEphemerals", "/a/e/x", nil, 0),
		create("sequential 1", "/a/s-", []byte("1"), zk.FlagSequence),
		create("sequential 2", "/a/s-", []byte("2"), zk.FlagSequence),
		create("ephemeral sequential", "/a/es-", nil, zk.FlagEphemeral|zk.FlagSequence),
		create("sequential with a trailing slash", "/a/", nil, zk.FlagSequence),
		kids("children of /a", "/a"),
		del("delete /a: NotEmpty", "/a", -1),
		del("delete /a/e at a wrong version: BadVersion", "/a/e", 3),
		del("delete /a/e", "/a/e", 0),
		del("delete /a/e again: NoNode", "/a/e", -1),
		kids("children of /a after a delete", "/a"),
		create("sequential after a delete", "/a/s-", nil, zk.FlagSequence),
		{Name: "exists missing", Do: func(s *zkSide) xchk.Answer {
			ok, st, err := s.zc.Exists(s.p("/nope"))
			return xchk.F("exists", ok, "stat", s.stat(st), "err", err)
		}},
		{Name: "sync", Do: func(s *zkSide) xchk.Answer {
			p, err := s.zc.Sync(s.p("/a"))
			return xchk.F("path", s.rel(p), "err", err)
		}},
		{Name: "getACL, setACL", Do: func(s *zkSide) xchk.Answer {
			a, st, err := s.zc.GetACL(s.p("/a"))
			st2, err2 := s.zc.SetACL(s.p("/a"), worldACL, 0)
			_, err3 := s.zc.SetACL(s.p("/a"), worldACL, 0)
			_, err4 := s.zc.SetACL(s.p("/a"), []zk.ACL{{Perms: 31, Scheme: "world", ID: "someone"}}, -1)
			return xchk.F("acl", a, "stat", s.stat(st), "err", err, "set stat", s.stat(st2), "set err", err2,
				"again err", err3, "bad id err", err4)
		}},
	}
	steps = append(steps, watchSteps()...)
	steps = append(steps, multiSteps()...)
	return append(steps, rawSteps()...)
}

// watchSteps: one-shot watches of each kind, the events and their order.
func watchSteps() []step {
	return []step{
		{Name: "set watches", Do: func(s *zkSide) xchk.Answer {
			_, _, _, err1 := s.zc.ExistsW(s.p("/w"))
			_, _, _, err2 := s.zc.GetW(s.p("/a"))
			_, _, _, err3 := s.zc.ChildrenW(s.p("/a"))
			_, _, _, err4 := s.zc.GetW(s.p("/a/s-0000000001"))
			_, _, _, err5 := s.zc.ChildrenW(s.p("/a/s-0000000001"))
			return xchk.F("errs", []error{err1, err2, err3, err4, err5})
		}},
		create("create /w", "/w", nil, 0),
		set("set /a", "/a", []byte("changed"), -1),
		create("create /a/c", "/a/c", nil, 0),
		del("delete /a/s-0000000001 (data and child watch)", "/a/s-0000000001", -1),
		events("events of the watched changes"),
		set("set /a again (watch used up)", "/a", []byte("again"), -1),
		events("no event for a used watch"),
		{Name: "watch another session's ephemeral", Do: func(s *zkSide) xchk.Answer {
			other := connectZK(s.t, s.addr, 10*time.Second)
			_, err := other.Create(s.p("/w/eph"), nil, zk.FlagEphemeral, worldACL)
			_, _, _, err2 := s.zc.GetW(s.p("/w/eph"))
			_, _, _, err3 := s.zc.ChildrenW(s.p("/w"))
			other.Close() // closeSession: its ephemeral goes
			return xchk.F("errs", []error{err, err2, err3})
		}},
		events("events of a closed session's ephemeral"),
	}
}

// multiSteps: multi's results, on success and on failure.
func multiSteps() []step {
	multi := func(name string, ops func(s *zkSide) []any) step {
		return step{Name: name, Do: func(s *zkSide) xchk.Answer {
			res, err := s.zc.Multi(ops(s)...)
			var out []string
			for _, r := range res {
				out = append(out, fmt.Sprintf("path=%q stat=%s err=%v", s.rel(r.String), s.stat(r.Stat), r.Error))
			}
			return xchk.F("results", out, "err", err)
		}}
	}
	return []step{
		multi("multi that succeeds", func(s *zkSide) []any {
			return []any{
				&zk.CreateRequest{Path: s.p("/m1"), Data: []byte("1"), Acl: worldACL},
				&zk.CreateRequest{Path: s.p("/m1/seq-"), Acl: worldACL, Flags: zk.FlagSequence},
				&zk.SetDataRequest{Path: s.p("/m1"), Data: []byte("11"), Version: 0},
				&zk.CheckVersionRequest{Path: s.p("/m1"), Version: 1},
				&zk.DeleteRequest{Path: s.p("/w"), Version: -1},
			}
		}),
		get("after the multi", "/m1"),
		multi("multi that fails in the middle", func(s *zkSide) []any {
			return []any{
				&zk.CreateRequest{Path: s.p("/m2"), Acl: worldACL},
				&zk.CheckVersionRequest{Path: s.p("/m1"), Version: 7},
				&zk.CreateRequest{Path: s.p("/m3"), Acl: worldACL},
			}
		}),
		multi("multi that fails on a node an earlier op made", func(s *zkSide) []any {
			return []any{
				&zk.CreateRequest{Path: s.p("/m4"), Acl: worldACL},
				&zk.CreateRequest{Path: s.p("/m4"), Acl: worldACL},
			}
		}),
		{Name: "a failed multi left nothing", Do: func(s *zkSide) xchk.Answer {
			a, _, _ := s.zc.Exists(s.p("/m2"))
			b, _, _ := s.zc.Exists(s.p("/m4"))
			return xchk.F("m2", a, "m4", b)
		}},
		multi("empty multi", func(*zkSide) []any { return nil }),
		kids("children of root", ""),
	}
}
