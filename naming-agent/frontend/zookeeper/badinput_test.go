package zookeeper

import (
	"bytes"
	"encoding/binary"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

// Bad input and limits: the offending connection is closed (with
// ZooKeeper's error where it has one), the server stays up and other
// sessions see nothing.
func TestBadInputClosesOnlyTheOffender(t *testing.T) {
	cfg := testConfig()
	cfg.ConnectTimeout = 200 * time.Millisecond
	s := startServer(t, cfg)
	bystander := dialRaw(t, s.addr, 0, nil)
	if h, _, _ := bystander.call(opExists, pathWatchBody("/watched", true)); h.err != codeNoNode {
		t.Fatalf("exists: %v", h.err)
	}

	length := func(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }
	tests := []struct {
		name    string
		session bool   // establish a session first
		send    []byte // then send this
		reply   code   // the reply header's error, if one is due
	}{
		{"frame over jute.maxbuffer at connect", false, length(maxBuffer + 1), 0},
		{"negative frame length at connect", false, length(0xfffffff0), 0},
		{"truncated connect request", false, append(length(6), 0, 0, 0, 0, 0, 0), 0},
		{"connect request never sent", false, nil, 0},
		{"half a connect request, then nothing", false, append(length(40), 1, 2, 3), 0},
		{"frame over jute.maxbuffer in a session", true, length(maxBuffer + 1), 0},
		{"negative frame length in a session", true, length(0x80000000), 0},
		{"request header too short", true, append(length(3), 1, 2, 3), 0},
		{"unknown opcode", true, append(length(8), 0, 0, 0, 9, 0, 0, 3, 0xe7), codeUnimplemented},
		{"check outside a multi", true, append(length(14), 0, 0, 0, 9, 0, 0, 0, 13, 0, 0, 0, 0, 0, 0), codeUnimplemented},
		{"sasl", true, append(length(12), 0, 0, 0, 9, 0, 0, 0, 102, 0, 0, 0, 0), codeUnimplemented},
		{"auth packet cut short", true, append(length(10), 0xff, 0xff, 0xff, 0xfc, 0, 0, 0, 100, 0, 0), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c *rawClient
			if tt.session {
				c = dialRaw(t, s.addr, 0, nil)
			} else {
				c = dialRawConn(t, s.addr)
			}
			if tt.send != nil {
				c.sendFrame(tt.send)
			}
			if tt.reply != 0 {
				r := c.readFrame()
				if r == nil {
					t.Fatal("no reply")
				}
				if xid, _, err := r.int32(), r.int64(), code(r.int32()); xid != 9 || err != tt.reply {
					t.Fatalf("reply xid %d err %v, want 9 %v", xid, err, tt.reply)
				}
			}
			if !c.closed() {
				t.Fatal("connection not closed")
			}
		})
	}
	// A malformed body is answered MarshallingError; the connection stays.
	c := dialRaw(t, s.addr, 0, nil)
	for _, op := range []int32{opCreate, opDelete, opSetData, opGetData, opGetChildren2, opMulti, opSetWatches, opAddWatch, opSync} {
		h, _, ok := c.call(op, func(w *writer) { w.int32(1 << 20) })
		if !ok || h.err != codeMarshallingError {
			t.Errorf("op %d with a bad body: %v (open %v), want MarshallingError", op, h.err, ok)
		}
	}
	if h, _, ok := bystander.call(opSync, pathBody("/")); !ok || h.err != codeOK || len(bystander.events) != 0 {
		t.Fatalf("bystander: %v open %v events %v", h.err, ok, bystander.events)
	}
}

func TestFourLetterWords(t *testing.T) {
	s := startServer(t, testConfig())
	dialRaw(t, s.addr, 0, nil) // one client, for the counts
	tests := []struct {
		cmd  string
		want []string
	}{
		{"ruok", []string{"imok"}},
		{"isro", []string{"rw"}},
		{"srvr", []string{"Zookeeper version: 3.9.0-detour", "Mode: standalone", "Connections: ", "Node count: 5"}},
		{"stat", []string{"Clients:\n /127.0.0.1:", "Mode: standalone"}},
		{"mntr", []string{"zk_server_state\tstandalone\n", "zk_global_sessions\t1\n"}},
		{"conf", []string{"tickTime=50\n", "maxClientCnxns=60\n"}},
		{"envi", []string{"Environment:\n", "zookeeper.version=3.9.0-detour"}},
		{"dump", []string{"dump is not executed because it is not in the whitelist.\n"}},
	}
	for _, tt := range tests {
		c := dialRawConn(t, s.addr)
		c.sendFrame([]byte(tt.cmd))
		out, err := io.ReadAll(c.nc)
		if err != nil {
			t.Fatalf("%s: %v", tt.cmd, err)
		}
		for _, w := range tt.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("%s: %q lacks %q", tt.cmd, out, w)
			}
		}
	}
}

func TestSlowReaderIsDisconnected(t *testing.T) {
	cfg := testConfig()
	cfg.OutgoingQueueBytes = 2 * maxBuffer
	s := startServer(t, cfg)
	c := dialRaw(t, s.addr, 0, nil)
	big := bytes.Repeat([]byte("x"), maxBuffer-1024)
	if h, _, _ := c.call(opCreate, createBody("/big", big, 0)); h.err != codeOK {
		t.Fatalf("create: %v", h.err)
	}
	// Ask for it again and again without reading: far more than the queue
	// and the socket buffers hold.
	var reqs bytes.Buffer
	for i := range 200 {
		w := newWriter()
		w.int32(int32(100 + i))
		w.int32(opGetData)
		w.string("/big")
		w.bool(false)
		reqs.Write(w.frame())
	}
	go func() { _, _ = c.nc.Write(reqs.Bytes()) }() // may block: the server stops reading
	if !c.closed() {
		t.Fatal("a client that does not read was not disconnected")
	}
	other := dialRaw(t, s.addr, 0, nil)
	if h, _, ok := other.call(opExists, pathWatchBody("/big", false)); !ok || h.err != codeOK {
		t.Fatalf("another client after a slow one: %v", h.err)
	}
}

func TestConnectionAndSessionLimits(t *testing.T) {
	cfg := testConfig()
	cfg.MaxClientConns = 2
	cfg.MaxSessions = 1
	s := startServer(t, cfg)
	one := dialRaw(t, s.addr, 0, nil)
	two := dialRawConn(t, s.addr) // connected, no session yet
	three := dialRawConn(t, s.addr)
	if !three.closed() {
		t.Fatal("a third connection from one address was accepted (max_client_conns 2)")
	}
	w := newWriter()
	w.int32(0)
	w.int64(0)
	w.int32(1000)
	w.int64(0)
	w.buffer(make([]byte, 16))
	two.sendFrame(w.frame())
	if !two.closed() {
		t.Fatal("a second session was accepted (max_sessions 1)")
	}
	if h, _, ok := one.call(opCloseSession, nil); !ok || h.err != codeOK || !one.closed() {
		t.Fatal("closeSession")
	}
	// Room again once they are gone.
	registrytest.Eventually(t, wait, "a new session after the others left", func() bool {
		c := dialRawConn(t, s.addr)
		c.sendFrame(w.frame())
		r := c.readFrame()
		return r != nil
	})
}
