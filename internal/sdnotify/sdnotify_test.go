package sdnotify

import (
	"net"
	"path/filepath"
	"testing"
)

func TestSendOutsideSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if sent, err := Ready(); sent || err != nil {
		t.Fatalf("Ready() = %v, %v; want false, nil", sent, err)
	}
}

func TestSendDatagram(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	if sent, err := Send("STATUS=x\nREADY=1"); !sent || err != nil {
		t.Fatalf("Send = %v, %v", sent, err)
	}
	buf := make([]byte, 256)
	n, err := l.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(buf[:n]); got != "STATUS=x\nREADY=1" {
		t.Fatalf("got %q", got)
	}
}

func TestSendAbstract(t *testing.T) {
	name := "@detour-sdnotify-test-" + filepath.Base(t.TempDir())
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: "\x00" + name[1:], Net: "unixgram"})
	if err != nil {
		t.Skip("no abstract sockets:", err)
	}
	defer l.Close()
	t.Setenv("NOTIFY_SOCKET", name)
	if sent, err := Stopping(); !sent || err != nil {
		t.Fatalf("Stopping = %v, %v", sent, err)
	}
	buf := make([]byte, 64)
	n, _ := l.Read(buf)
	if string(buf[:n]) != "STOPPING=1" {
		t.Fatalf("got %q", buf[:n])
	}
}
