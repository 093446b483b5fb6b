package nacos

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/detourmesh/detour/naming-agent/frontend"
	"github.com/detourmesh/detour/naming-agent/frontend/frontendtest"
)

// TestUDPPush: a 1.x client that lists a service with its udpPort gets
// each change pushed by UDP at once, in the shape nacos-sdk-go's and the
// Java client's PushReceiver read (gzipped when large), until its asks
// stop.
func TestUDPPush(t *testing.T) {
	core := frontendtest.NewFakeCore()
	core.SetView(frontend.View{Service: "pushed", Known: true, Instances: []frontend.Instance{{Addr: "10.0.0.1:80", Weight: 100}}})
	s := startServer(t, core)
	uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	port := uc.LocalAddr().(*net.UDPAddr).Port
	if code, body := call(t, "GET", fmt.Sprintf("http://%s/nacos/v1/ns/instance/list?serviceName=pushed&udpPort=%d&clientIP=10.9.9.9", s.addr, port), nil); code != 200 {
		t.Fatalf("list: %d %q", code, body)
	}
	// read returns the next push's list.
	read := func() listJSON {
		t.Helper()
		_ = uc.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 65536)
		n, from, err := uc.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("no push: %v", err)
		}
		b := buf[:n]
		if bytes.HasPrefix(b, []byte("\x1f\x8b")) {
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if b, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		}
		var p pushData
		if err := json.Unmarshal(b, &p); err != nil || p.Type != "dom" || p.LastRefTime == 0 {
			t.Fatalf("push %q: %+v, %v", b, p, err)
		}
		var l listJSON
		if err := json.Unmarshal([]byte(p.Data), &l); err != nil {
			t.Fatalf("push data %q: %v", p.Data, err)
		}
		ack, _ := json.Marshal(map[string]string{"type": "push-ack", "lastRefTime": strconv.FormatInt(p.LastRefTime, 10), "data": ""})
		_, _ = uc.WriteToUDP(ack, from)
		return l
	}
	core.SetView(frontend.View{Service: "pushed", Known: true, Mesh: true, Egress: "127.0.0.2:15001", Instances: []frontend.Instance{{Addr: "10.0.0.1:80", Weight: 100}}})
	if l := read(); l.Name != "DEFAULT_GROUP@@pushed" || len(l.Hosts) != 1 || l.Hosts[0].Ip != "127.0.0.2" || l.Hosts[0].Port != 15001 {
		t.Fatalf("push with the egress: %+v", l)
	}
	// Many instances on fallback: a large push, gzipped.
	var many []frontend.Instance
	for i := range 50 {
		many = append(many, frontend.Instance{Addr: fmt.Sprintf("10.0.1.%d:80", i+1), Weight: 100, Metadata: map[string]string{"k": "v"}})
	}
	core.SetView(frontend.View{Service: "pushed", Known: true, Instances: many})
	if l := read(); len(l.Hosts) != 50 {
		t.Fatalf("large push: %d hosts", len(l.Hosts))
	}
	// Asks stopped: no more pushes.
	s.mu.Lock()
	later := time.Now().Add(2 * udpTTL)
	s.now = func() time.Time { return later }
	s.mu.Unlock()
	core.SetView(frontend.View{Service: "pushed", Known: true})
	_ = uc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, _, err := uc.ReadFromUDP(make([]byte, 65536)); err == nil {
		t.Fatalf("a push (%d bytes) after the client's asks stopped", n)
	}
}
