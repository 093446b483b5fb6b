package zookeeper

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"slices"
	"strings"
)

// version is what srvr and mntr report: the ZooKeeper release whose
// client protocol this server speaks, and who it really is.
const version = "3.9.0-detour, built on detour"

// fourLetterWords are ZooKeeper's (FourLetterCommands); the served ones
// answer, the others get ZooKeeper's answer for a command not in its
// whitelist.
var fourLetterWords = map[string]bool{
	"ruok": true, "srvr": true, "stat": true, "mntr": true, "conf": true, "envi": true, "isro": true,
	"cons": false, "crst": false, "dirs": false, "dump": false, "gtmk": false, "hash": false,
	"srst": false, "stmk": false, "wchc": false, "wchp": false, "wchs": false,
}

// fourLetterWord reports whether a connection's first 4 bytes, read as a
// frame length, are a four-letter word (ZooKeeper checks before the
// length's range).
func fourLetterWord(n int32) (string, bool) {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(n))
	cmd := string(b[:])
	_, ok := fourLetterWords[cmd]
	return cmd, ok
}

// fourLetter answers cmd; the connection is closed after.
func (s *Server) fourLetter(cmd string) []byte {
	if !fourLetterWords[cmd] {
		return []byte(cmd + " is not executed because it is not in the whitelist.\n")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	switch cmd {
	case "ruok":
		b.WriteString("imok")
	case "isro":
		b.WriteString("rw")
	case "srvr", "stat":
		fmt.Fprintf(&b, "Zookeeper version: %s\n", version)
		if cmd == "stat" {
			b.WriteString("Clients:\n")
			for _, addr := range s.clientAddrs() {
				fmt.Fprintf(&b, " /%s[1](queued=0,recved=0,sent=0)\n", addr)
			}
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "Latency min/avg/max: 0/0.0/0\nReceived: %d\nSent: %d\nConnections: %d\n"+
			"Outstanding: 0\nZxid: 0x%x\nMode: standalone\nNode count: %d\n",
			s.received.Load(), s.sent.Load(), len(s.conns), s.tree.zxid, s.nodeCount())
	case "mntr":
		ephemerals := 0
		for _, set := range s.tree.ephemerals {
			ephemerals += len(set)
		}
		for _, kv := range [][2]any{
			{"zk_version", version}, {"zk_server_state", "standalone"},
			{"zk_num_alive_connections", len(s.conns)}, {"zk_outstanding_requests", 0},
			{"zk_znode_count", s.nodeCount()},
			{"zk_watch_count", s.watches.data.count() + s.watches.child.count()},
			{"zk_ephemerals_count", ephemerals}, {"zk_global_sessions", len(s.sessions)},
			{"zk_packets_received", s.received.Load()}, {"zk_packets_sent", s.sent.Load()},
		} {
			fmt.Fprintf(&b, "%s\t%v\n", kv[0], kv[1])
		}
	case "conf":
		fmt.Fprintf(&b, "clientPortAddress=%s\ntickTime=%d\nmaxClientCnxns=%d\nminSessionTimeout=%d\n"+
			"maxSessionTimeout=%d\nserverId=%d\n", s.cfg.Listen, s.cfg.TickTime.Milliseconds(), s.cfg.MaxClientConns,
			s.cfg.MinSessionTimeout.Milliseconds(), s.cfg.MaxSessionTimeout.Milliseconds(), s.cfg.ServerID)
	case "envi":
		fmt.Fprintf(&b, "Environment:\nzookeeper.version=%s\nserver=detour naming agent\ngo.version=%s\nos.name=%s\nos.arch=%s\n",
			version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	}
	return []byte(b.String())
}

func (s *Server) clientAddrs() []string {
	out := make([]string, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c.nc.RemoteAddr().String())
	}
	slices.Sort(out)
	return out
}

// nodeCount is the node count as ZooKeeper reports it: its node map holds
// the root under "" and "/".
func (s *Server) nodeCount() int { return len(s.tree.nodes) + 1 }
