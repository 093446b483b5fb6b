package zookeeper

import (
	"fmt"
	"slices"

	"github.com/dubbogo/go-zookeeper/zk"

	"github.com/detourmesh/detour/naming-agent/frontend/frontendtest/xchk"
)

// rawSteps cross-check what go-zookeeper does not send, byte by byte.
func rawSteps() []step {
	call := func(s *zkSide, op int32, body func(*writer)) (replyHeader, *reader, bool) {
		return s.raw.call(op, body)
	}
	rawEvents := func(s *zkSide) []string {
		call(s, opSync, pathBody("/")) // a round trip: the events due are in
		var out []string
		for _, e := range s.raw.events {
			out = append(out, fmt.Sprintf("%s %s", zk.EventType(e.typ), s.rel(e.path)))
		}
		s.raw.events = nil
		return out
	}
	// closes runs a request on a connection of its own and reports the
	// reply's error and whether the server then closed the connection.
	closes := func(name string, op int32, body func(*writer)) step {
		return step{Name: name, Do: func(s *zkSide) xchk.Answer {
			c := dialRaw(s.t, s.addr, 0, nil)
			h, _, ok := c.call(op, body)
			return xchk.F("replied", ok, "err", h.err, "xid", h.xid, "closed", c.closed())
		}}
	}
	return []step{
		{Name: "create2", Do: func(s *zkSide) xchk.Answer {
			h, r, _ := call(s, opCreate2, createBody(s.p("/r2"), []byte("x"), modePersistentSequential))
			return xchk.F("err", h.err, "path", s.rel(r.string()), "stat", s.rawStat(r))
		}},
		{Name: "createContainer", Do: func(s *zkSide) xchk.Answer {
			h, r, _ := call(s, opCreateContainer, createBody(s.p("/box"), nil, modeContainer))
			path := s.rel(r.string())
			h2, _, _ := call(s, opCreate, createBody(s.p("/box/item"), nil, modeEphemeral))
			return xchk.F("err", h.err, "path", path, "stat", s.rawStat(r), "child err", h2.err)
		}},
		{Name: "createTTL: Unimplemented", Do: func(s *zkSide) xchk.Answer {
			h, _, _ := call(s, opCreateTTL, func(w *writer) {
				createBody(s.p("/ttl"), nil, modePersistentTTL)(w)
				w.int64(1000)
			})
			return xchk.F("err", h.err)
		}},
		{Name: "create with a null ACL: InvalidACL", Do: func(s *zkSide) xchk.Answer {
			h, _, _ := call(s, opCreate, func(w *writer) { w.string(s.p("/nullacl")); w.buffer(nil); w.int32(-1); w.int32(0) })
			return xchk.F("err", h.err)
		}},
		{Name: "getData with a truncated body: MarshallingError", Do: func(s *zkSide) xchk.Answer {
			h, _, ok := call(s, opGetData, func(w *writer) { w.int32(50) })
			return xchk.F("err", h.err, "open", ok)
		}},
		{Name: "exists with a NUL: BadArguments", Do: func(s *zkSide) xchk.Answer {
			h, _, _ := call(s, opExists, pathWatchBody(s.p("/a\x00b"), false))
			return xchk.F("err", h.err)
		}},
		{Name: "multiRead", Do: func(s *zkSide) xchk.Answer {
			h, r, _ := call(s, opMultiRead, func(w *writer) {
				for _, op := range []struct {
					op   int32
					path string
				}{{opGetData, "/a"}, {opGetChildren, "/m1"}, {opGetData, "/nope"}} {
					w.int32(op.op)
					w.bool(false)
					w.int32(-1)
					w.string(s.p(op.path))
					w.bool(false)
				}
				w.int32(-1)
				w.bool(true)
				w.int32(-1)
			})
			var res []string
			for r.err == nil {
				typ, done, err := r.int32(), r.bool(), r.int32()
				if done || r.err != nil {
					break
				}
				switch typ {
				case opGetData:
					d := r.buffer()
					res = append(res, fmt.Sprintf("data %q %s", d, s.rawStat(r)))
				case opGetChildren:
					res = append(res, fmt.Sprintf("children %v", r.strings()))
				default:
					res = append(res, fmt.Sprintf("type %d err %d body %d", typ, err, r.int32()))
				}
			}
			return xchk.F("err", h.err, "results", res, "decode", r.err)
		}},
		{Name: "failed multi: header and results", Do: func(s *zkSide) xchk.Answer {
			h, r, _ := call(s, opMulti, func(w *writer) {
				w.int32(opCheck)
				w.bool(false)
				w.int32(-1)
				w.string(s.p("/a"))
				w.int32(-1)
				w.int32(opDelete)
				w.bool(false)
				w.int32(-1)
				w.string(s.p("/nope"))
				w.int32(-1)
				w.int32(-1)
				w.bool(true)
				w.int32(-1)
			})
			var res []string
			for r.err == nil {
				typ, done, err := r.int32(), r.bool(), r.int32()
				if done || r.err != nil {
					break
				}
				res = append(res, fmt.Sprintf("type %d err %d body %d", typ, err, r.int32()))
			}
			return xchk.F("header err", h.err, "results", res)
		}},
		{Name: "getEphemerals, getAllChildrenNumber, whoAmI", Do: func(s *zkSide) xchk.Answer {
			h, r, _ := call(s, opGetEphemerals, pathBody(s.p("/")))
			var eph []string
			for _, p := range r.strings() {
				eph = append(eph, s.rel(p))
			}
			h2, r2, _ := call(s, opGetAllChildrenNumber, pathBody(s.p("/m1")))
			h3, r3, _ := call(s, opWhoAmI, nil)
			n := r3.int32()
			var who []string
			for range n {
				who = append(who, r3.string()+":"+r3.string())
			}
			slices.Sort(who)
			return xchk.F("eph err", h.err, "ephemerals", eph, "count err", h2.err, "count", r2.int32(),
				"whoami err", h3.err, "whoami", who)
		}},
		{Name: "auth digest twice (Curator may send it twice), then whoAmI: once", Do: func(s *zkSide) xchk.Answer {
			h, _, _ := s.raw.callXid(xidAuth, opAuth, func(w *writer) { w.int32(0); w.string("digest"); w.buffer([]byte("bob:secret")) })
			_, _, _ = s.raw.callXid(xidAuth, opAuth, func(w *writer) { w.int32(0); w.string("digest"); w.buffer([]byte("bob:secret")) })
			_, r, _ := call(s, opWhoAmI, nil)
			n := r.int32()
			var who []string
			for range n {
				who = append(who, r.string()+":"+r.string())
			}
			slices.Sort(who) // ZooKeeper keeps them in a hash set
			return xchk.F("err", h.err, "xid", h.xid, "whoami", who)
		}},
		{Name: "persistent and recursive watches", Do: func(s *zkSide) xchk.Answer {
			h, r, _ := call(s, opAddWatch, func(w *writer) { w.string(s.p("/pw")); w.int32(addWatchPersistent) })
			body := r.int32()
			h2, _, _ := call(s, opAddWatch, func(w *writer) { w.string(s.p("/m1")); w.int32(addWatchPersistentRecursive) })
			for _, p := range []string{"/pw", "/pw/x", "/m1/deep", "/m1/deep/er"} {
				_, _ = s.zc.Create(s.p(p), nil, 0, worldACL)
			}
			_, _ = s.zc.Set(s.p("/pw"), []byte("1"), -1)
			_, _ = s.zc.Set(s.p("/pw"), []byte("2"), -1)
			_ = s.zc.Delete(s.p("/m1/deep/er"), -1)
			return xchk.F("err", h.err, "body", body, "recursive err", h2.err, "events", rawEvents(s))
		}},
		{Name: "checkWatches and removeWatches", Do: func(s *zkSide) xchk.Answer {
			var errs []code
			for _, q := range []struct {
				op, typ int32
				path    string
			}{
				{opCheckWatches, watcherAny, "/pw"}, {opCheckWatches, watcherData, "/pw"},
				{opCheckWatches, watcherChildren, "/nowatch"}, {opRemoveWatches, watcherData, "/pw"},
				{opCheckWatches, watcherData, "/pw"}, {opCheckWatches, watcherChildren, "/pw"},
				{opRemoveWatches, watcherData, "/pw"},
			} {
				h, _, _ := call(s, q.op, func(w *writer) { w.string(s.p(q.path)); w.int32(q.typ) })
				errs = append(errs, h.err)
			}
			_, _ = s.zc.Set(s.p("/pw"), []byte("3"), -1)
			return xchk.F("errs", errs, "events", rawEvents(s))
		}},
		{Name: "setWatches after changes", Do: func(s *zkSide) xchk.Answer {
			h0, _, _ := call(s, opSync, pathBody("/"))
			rel := h0.zxid
			_, _ = s.zc.Set(s.p("/a"), []byte("moved"), -1)
			_, _ = s.zc.Create(s.p("/m1/new"), nil, 0, worldACL)
			h, _, _ := call(s, opSetWatches, func(w *writer) {
				w.int64(rel)
				w.strings([]string{s.p("/a"), s.p("/r20000000000"), s.p("/gone")})
				w.strings([]string{s.p("/m1"), s.p("/notyet")})
				w.strings([]string{s.p("/m1"), s.p("/r20000000000"), s.p("/gone")})
			})
			_, _ = s.zc.Create(s.p("/notyet"), nil, 0, worldACL)
			_, _ = s.zc.Set(s.p("/r20000000000"), nil, -1)
			return xchk.F("err", h.err, "events", rawEvents(s))
		}},
		{Name: "reconfig in standalone", Do: func(s *zkSide) xchk.Answer {
			h, _, ok := call(s, opReconfig, func(w *writer) { w.string(""); w.string(""); w.string(""); w.int64(-1) })
			return xchk.F("err", h.err, "open", ok)
		}},
		{Name: "ping", Do: func(s *zkSide) xchk.Answer {
			h, _, ok := s.raw.callXid(xidPing, opPing, nil)
			return xchk.F("xid", h.xid, "err", h.err, "ok", ok)
		}},
		closes("unknown opcode: Unimplemented, closed", 999, nil),
		closes("auth with an unknown scheme: AuthFailed, closed", opAuth, func(w *writer) { w.int32(0); w.string("nosuch"); w.buffer(nil) }),
		closes("closeSession", opCloseSession, nil),
	}
}
