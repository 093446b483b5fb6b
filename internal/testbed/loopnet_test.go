package testbed

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
)

func TestReserveNetIsExclusive(t *testing.T) {
	t.Setenv(NetEnv, "")
	n, err := ReserveNet()
	if err != nil {
		t.Fatal(err)
	}
	defer n.Release()
	if !strings.HasPrefix(n.Host(2), n.Prefix()+".") || n.String() != n.Prefix()+".0/24" {
		t.Errorf("block %s: host 2 = %s", n, n.Host(2))
	}
	// A second claim of the same block (flock is per open file, so this
	// process counts as another run) is refused, and says by whom.
	if _, err := ClaimNet(n.Prefix()); err == nil || !strings.Contains(err.Error(), "held by another run") {
		t.Fatalf("second claim of %s: %v, want held by another run", n, err)
	}
	n.Release()
	n.Release() // idempotent
	again, err := ClaimNet(n.Prefix())
	if err != nil {
		t.Fatalf("claim after release: %v", err)
	}
	again.Release()
}

func TestReserveNetPinned(t *testing.T) {
	base, err := ReserveNet() // a free block to pin from
	if err != nil {
		t.Fatal(err)
	}
	prefix := base.Prefix()
	base.Release()
	if strings.HasSuffix(prefix, ".255") {
		t.Skip("drew the last block of a /16; nothing above it to take")
	}
	t.Setenv(NetEnv, prefix)
	first, err := ReserveNet()
	if err != nil {
		t.Fatal(err)
	}
	defer first.Release()
	if first.Prefix() != prefix {
		t.Fatalf("%s=%s took %s", NetEnv, prefix, first)
	}
	// Another process of the same run (here: a second reservation) takes
	// the next free block.
	second, err := ReserveNet()
	if err != nil {
		t.Fatal(err)
	}
	defer second.Release()
	a, b, _ := parsePrefix(prefix)
	if want := fmt.Sprintf("127.%d.%d", a, b+1); second.Prefix() != want {
		t.Errorf("second reservation took %s, want %s", second, want)
	}
}

func TestClaimNetRefusesATakenPort(t *testing.T) {
	n, err := ReserveNet()
	if err != nil {
		t.Fatal(err)
	}
	n.Release()
	l, err := net.Listen("tcp", net.JoinHostPort(n.Host(3), strconv.Itoa(AgentHTTPPort)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := ClaimNet(n.Prefix()); err == nil || !strings.Contains(err.Error(), "is taken") {
		t.Fatalf("claim with %s taken: %v", l.Addr(), err)
	}
}

func TestParsePrefix(t *testing.T) {
	for _, s := range []string{"127.0.40", "127.255.0"} {
		if _, _, err := parsePrefix(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	for _, s := range []string{"", "127.0", "127.0.40.0", "10.0.40", "127.0.256", "127.x.1", "127.-1.2"} {
		if _, _, err := parsePrefix(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}
