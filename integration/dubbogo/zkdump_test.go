package dubbogo

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/dubbogo/go-zookeeper/zk"
)

// zkConnect opens a session of the test's own (never through the spy).
func zkConnect(t *testing.T, addr string) *zk.Conn {
	t.Helper()
	c, _, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatalf("zookeeper %s: %v", addr, err)
	}
	t.Cleanup(c.Close)
	return c
}

// zkDump writes the tree under each root: one node a line with its mode
// (ephemeral when it has an owner session, else persistent) and its data;
// a node whose name is a URL-escaped Dubbo URL is shown decoded, its
// parameters one a line. Roots that do not exist are skipped.
func zkDump(c *zk.Conn, roots ...string) (string, error) {
	var b strings.Builder
	var walk func(p string, depth int) error
	walk = func(p string, depth int) error {
		data, st, err := c.Get(p)
		if errors.Is(err, zk.ErrNoNode) {
			return nil // gone meanwhile
		}
		if err != nil {
			return fmt.Errorf("get %s: %w", p, err)
		}
		mode := "persistent"
		if st.EphemeralOwner != 0 {
			mode = "ephemeral"
		}
		name := path.Base(p)
		if depth == 0 {
			name = p
		}
		indent := strings.Repeat("  ", depth)
		if dec, err := url.PathUnescape(name); err == nil && strings.Contains(dec, "://") {
			u, err := url.Parse(dec)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "%s%s://%s%s?...  [%s]", indent, u.Scheme, u.Host, u.Path, mode)
			if len(data) > 0 {
				fmt.Fprintf(&b, " = %q", data)
			}
			b.WriteString("\n")
			for k, v := range sortedQuery(u.Query()) {
				fmt.Fprintf(&b, "%s    %s=%s\n", indent, k, v)
			}
		} else {
			fmt.Fprintf(&b, "%s%s  [%s]", indent, name, mode)
			if len(data) > 0 {
				fmt.Fprintf(&b, " = %s", data)
			}
			b.WriteString("\n")
		}
		kids, _, err := c.Children(p)
		if errors.Is(err, zk.ErrNoNode) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("children %s: %w", p, err)
		}
		for _, k := range sortStrings(kids) {
			if err := walk(path.Join(p, k), depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	for _, r := range roots {
		if ok, _, err := c.Exists(r); err != nil {
			return "", err
		} else if !ok {
			continue
		}
		if err := walk(r, 0); err != nil {
			return "", err
		}
	}
	return b.String(), nil
}
