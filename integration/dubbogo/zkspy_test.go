package dubbogo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
)

// zkSpy is a TCP proxy in front of a ZooKeeper server that decodes the
// client protocol (jute frames: a 4-byte length, then the record) in both
// directions and counts what passes: each request's opcode and path (URL
// nodes abbreviated), create modes, watch flags, the error of each reply
// and the watch events the server sends. It changes nothing it forwards.
type zkSpy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu       sync.Mutex // guards everything below; held by each connection's decoders
	conns    []net.Conn
	sessions []string       // one line per session: timeout asked and granted
	ops      map[string]int // "getChildren2 /dubbo/S/providers watch" -> count
	replies  map[string]int // "create NodeExists" -> count
	events   map[string]int // "NodeChildrenChanged /dubbo/S/providers" -> count
}

func startZKSpy(t *testing.T, target string) *zkSpy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &zkSpy{ln: ln, target: target, ops: map[string]int{}, replies: map[string]int{}, events: map[string]int{}}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.close)
	return s
}

func (s *zkSpy) addr() string { return s.ln.Addr().String() }

func (s *zkSpy) close() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *zkSpy) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", s.target)
		if err != nil {
			c.Close()
			continue
		}
		s.mu.Lock()
		s.conns = append(s.conns, c, u)
		p := &zkPair{spy: s, id: len(s.conns) / 2, xids: map[int32]string{}}
		s.mu.Unlock()
		s.wg.Add(2)
		go func() { defer s.wg.Done(); defer u.Close(); p.pipe(u, c, p.request) }()
		go func() { defer s.wg.Done(); defer c.Close(); p.pipe(c, u, p.reply) }()
	}
}

// zkPair decodes one client connection.
type zkPair struct {
	spy        *zkSpy
	id         int              // the connection's number, from 1, in the order accepted
	mu         sync.Mutex       // guards xids and askedTimeout
	xids       map[int32]string // request xid -> opcode name, to name replies
	askedMs    int32
	sawConnect bool // request side only
	sawAnswer  bool // reply side only
}

// pipe copies frames from src to dst, handing each to decode.
func (p *zkPair) pipe(dst io.Writer, src io.Reader, decode func([]byte)) {
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(src, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > 4<<20 {
			return
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(src, body); err != nil {
			return
		}
		decode(body)
		if _, err := dst.Write(append(hdr[:], body...)); err != nil {
			return
		}
	}
}

var zkOps = map[int32]string{
	0: "notification", 1: "create", 2: "delete", 3: "exists", 4: "getData", 5: "setData",
	6: "getACL", 7: "setACL", 8: "getChildren", 9: "sync", 11: "ping", 12: "getChildren2",
	13: "check", 14: "multi", 15: "create2", 16: "reconfig", 17: "checkWatches", 18: "removeWatches",
	19: "createContainer", 20: "deleteContainer", 21: "createTTL", 22: "multiRead",
	100: "auth", 101: "setWatches", 102: "sasl", 103: "getEphemerals", 104: "getAllChildrenNumber",
	105: "setWatches2", 106: "addWatch", 107: "whoAmI", -10: "createSession", -11: "closeSession",
}

var zkErrs = map[int32]string{
	0: "ok", -1: "SystemError", -4: "ConnectionLoss", -5: "MarshallingError", -6: "Unimplemented",
	-7: "OperationTimeout", -8: "BadArguments", -101: "NoNode", -102: "NoAuth", -103: "BadVersion",
	-108: "NoChildrenForEphemerals", -110: "NodeExists", -111: "NotEmpty", -112: "SessionExpired",
	-113: "InvalidCallback", -114: "InvalidACL", -115: "AuthFailed", -118: "SessionMoved", -121: "NoWatcher",
}

var zkEvents = map[int32]string{
	-1: "None", 1: "NodeCreated", 2: "NodeDeleted", 3: "NodeDataChanged", 4: "NodeChildrenChanged",
	5: "DataWatchRemoved", 6: "ChildWatchRemoved", 7: "PersistentWatchRemoved",
}

// createModes are the flags of create/create2/createTTL.
var createModes = map[int32]string{0: "persistent", 1: "ephemeral", 2: "persistent_sequential", 3: "ephemeral_sequential", 4: "container", 5: "persistent_ttl", 6: "persistent_sequential_ttl"}

// jute reads the big-endian records of ZooKeeper's protocol.
type jute struct {
	b   []byte
	err error
}

func (j *jute) int32() int32 {
	if j.err != nil || len(j.b) < 4 {
		j.err = errors.New("short")
		return 0
	}
	v := int32(binary.BigEndian.Uint32(j.b))
	j.b = j.b[4:]
	return v
}

func (j *jute) int64() int64 {
	hi := j.int32()
	lo := j.int32()
	return int64(hi)<<32 | int64(uint32(lo))
}

func (j *jute) buffer() []byte {
	n := j.int32()
	if n < 0 || j.err != nil {
		return nil
	}
	if int(n) > len(j.b) {
		j.err = errors.New("short")
		return nil
	}
	v := j.b[:n]
	j.b = j.b[n:]
	return v
}

func (j *jute) str() string { return string(j.buffer()) }

func (j *jute) bool() bool {
	if j.err != nil || len(j.b) < 1 {
		j.err = errors.New("short")
		return false
	}
	v := j.b[0] != 0
	j.b = j.b[1:]
	return v
}

// shortPath abbreviates the variable parts of Dubbo's paths: a URL node
// becomes <scheme-url>, an ip:port node <ip:port>, a revision <revision>.
func shortPath(p string) string {
	parts := strings.Split(p, "/")
	for i, part := range parts {
		if dec, err := url.PathUnescape(part); err == nil && strings.Contains(dec, "://") {
			parts[i] = "<" + dec[:strings.Index(dec, "://")] + "-url>"
		} else if _, _, err := net.SplitHostPort(part); err == nil {
			parts[i] = "<ip:port>"
		} else if i == 3 && parts[1] == "dubbo" && isDigits(part) {
			parts[i] = "<revision>"
		}
	}
	return strings.Join(parts, "/")
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// request decodes a frame from the client.
func (p *zkPair) request(b []byte) {
	j := &jute{b: b}
	if !p.sawConnect {
		p.sawConnect = true
		j.int32() // protocol version
		j.int64() // last zxid seen
		ms := j.int32()
		sid := j.int64()
		p.mu.Lock()
		p.askedMs = ms
		p.mu.Unlock()
		p.count("connect", fmt.Sprintf("session=%s", map[bool]string{true: "new", false: "resume"}[sid == 0]))
		return
	}
	xid, op := j.int32(), j.int32()
	name, ok := zkOps[op]
	if !ok {
		name = fmt.Sprintf("op%d", op)
	}
	p.mu.Lock()
	p.xids[xid] = name
	p.mu.Unlock()
	line := name
	switch op {
	case 1, 15, 19, 21: // create, create2, createContainer, createTTL: path, data, acl, flags
		path := j.str()
		j.buffer()
		acls := j.int32()
		var acl string
		for i := int32(0); i < acls && j.err == nil; i++ {
			perms := j.int32()
			acl = fmt.Sprintf("%s:%s:%d", j.str(), j.str(), perms)
		}
		flags := j.int32()
		line = fmt.Sprintf("%s %s %s acl=%s", name, shortPath(path), createModes[flags], acl)
	case 3, 4, 8, 12: // exists, getData, getChildren, getChildren2: path, watch
		path := j.str()
		w := ""
		if j.bool() {
			w = " watch"
		}
		line = fmt.Sprintf("%s %s%s", name, shortPath(path), w)
	case 2, 5, 9, 104, 103: // delete, setData, sync...: path first
		line = fmt.Sprintf("%s %s", name, shortPath(j.str()))
	case 101, 105: // setWatches: relativeZxid, then lists of paths
		j.int64()
		var n []string
		for _, kind := range []string{"data", "exist", "child", "persistent", "persistentRecursive"} {
			if op == 101 && len(n) == 3 {
				break
			}
			c := j.int32()
			for i := int32(0); i < c && j.err == nil; i++ {
				j.str()
			}
			n = append(n, fmt.Sprintf("%s=%d", kind, c))
		}
		line = fmt.Sprintf("%s %s", name, strings.Join(n, " "))
	case 100: // auth: type, scheme, auth
		j.int32()
		line = fmt.Sprintf("%s scheme=%s", name, j.str())
	}
	p.count("op", line)
}

// reply decodes a frame from the server.
func (p *zkPair) reply(b []byte) {
	j := &jute{b: b}
	if !p.sawAnswer {
		p.sawAnswer = true
		j.int32()
		granted := j.int32()
		p.mu.Lock()
		asked := p.askedMs
		p.mu.Unlock()
		p.spy.mu.Lock()
		p.spy.sessions = append(p.spy.sessions, fmt.Sprintf("s%d: timeout asked %dms, granted %dms", p.id, asked, granted))
		p.spy.mu.Unlock()
		return
	}
	xid := j.int32()
	j.int64() // zxid
	code := j.int32()
	if xid == -1 { // watch event: type, state, path
		typ := j.int32()
		j.int32()
		p.count("event", fmt.Sprintf("%s %s", zkEvents[typ], shortPath(j.str())))
		return
	}
	p.mu.Lock()
	name := p.xids[xid]
	delete(p.xids, xid)
	p.mu.Unlock()
	if code != 0 {
		p.count("reply", fmt.Sprintf("%s %s", name, zkErrs[code]))
	}
}

func (p *zkPair) count(kind, line string) {
	s := p.spy
	line = fmt.Sprintf("s%d %s", p.id, line)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch kind {
	case "op", "connect":
		s.ops[line]++
	case "reply":
		s.replies[line]++
	case "event":
		s.events[line]++
	}
}

// report is the spy's tally, one "count  sN line" per line (sN: the
// connection), sorted.
func (s *zkSpy) report() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	sessions := sortStrings(s.sessions)
	fmt.Fprintf(&b, "sessions: %d (%s)\n", len(sessions), strings.Join(sessions, "; "))
	for _, sec := range []struct {
		name string
		m    map[string]int
	}{{"requests", s.ops}, {"error replies", s.replies}, {"watch events", s.events}} {
		fmt.Fprintf(&b, "%s:\n", sec.name)
		keys := make([]string, 0, len(sec.m))
		for k := range sec.m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "  %5d  %s\n", sec.m[k], k)
		}
	}
	return b.String()
}
