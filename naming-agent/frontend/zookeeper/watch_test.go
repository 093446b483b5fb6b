package zookeeper

import (
	"fmt"
	"net"
	"reflect"
	"testing"

	"go.uber.org/zap"
)

// pipeConn is a conn on one end of a pipe, for tests that look at what
// it queues rather than read it off a socket.
func pipeConn(t *testing.T, s *Server) *conn {
	a, b := net.Pipe()
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	if s == nil {
		s = &Server{cfg: Default(), log: zap.NewNop()}
	}
	return newConn(s, a, "127.0.0.1")
}

// queued decodes the events c has queued, and empties its queue.
func queued(c *conn) []string {
	c.q.mu.Lock()
	items := c.q.items
	c.q.items, c.q.size = nil, 0
	c.q.mu.Unlock()
	var out []string
	for _, it := range items {
		r := newReader(it.frame[4:])
		xid, _, _ := r.int32(), r.int64(), r.int32()
		if xid != xidNotification {
			out = append(out, fmt.Sprintf("reply %d", xid))
			continue
		}
		typ, _ := r.int32(), r.int32()
		out = append(out, fmt.Sprintf("%d %s", typ, r.string()))
	}
	return out
}

func TestWatchesFire(t *testing.T) {
	tests := []struct {
		name  string
		set   func(w *watches, c *conn)
		fires []fire
		want  []string
	}{
		{"data watch fires once", func(w *watches, c *conn) { w.data.add("/a", c, modeStandard) },
			[]fire{{"/a", eventNodeDataChanged}, {"/a", eventNodeDataChanged}}, []string{"3 /a"}},
		{"exist watch sees the create", func(w *watches, c *conn) { w.data.add("/a", c, modeStandard) },
			[]fire{{"/a", eventNodeCreated}}, []string{"1 /a"}},
		{"child watch sees children, not data", func(w *watches, c *conn) { w.child.add("/a", c, modeStandard) },
			[]fire{{"/a", eventNodeDataChanged}, {"/a", eventNodeChildrenChanged}}, []string{"4 /a"}},
		{"data and child watch: one NodeDeleted", func(w *watches, c *conn) {
			w.data.add("/a", c, modeStandard)
			w.child.add("/a", c, modeStandard)
		}, []fire{{"/a", eventNodeDeleted}, {"/a", eventNodeChildrenChanged}}, []string{"2 /a"}},
		{"persistent watch stays", func(w *watches, c *conn) {
			w.data.add("/a", c, modePersistentWatch)
			w.child.add("/a", c, modePersistentWatch)
		}, []fire{{"/a", eventNodeDataChanged}, {"/a", eventNodeChildrenChanged}, {"/a", eventNodeDataChanged}},
			[]string{"3 /a", "4 /a", "3 /a"}},
		{"recursive watch: below, but no children changes", func(w *watches, c *conn) { w.data.add("/a", c, modeRecursive) },
			[]fire{{"/a/b/c", eventNodeCreated}, {"/a/b", eventNodeChildrenChanged}, {"/a/b/c", eventNodeDataChanged}, {"/x", eventNodeCreated}},
			[]string{"1 /a/b/c", "3 /a/b/c"}},
		{"standard and persistent on one path: one event", func(w *watches, c *conn) {
			w.data.add("/a", c, modeStandard)
			w.data.add("/a", c, modePersistentWatch)
		}, []fire{{"/a", eventNodeDataChanged}}, []string{"3 /a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWatches()
			c := pipeConn(t, nil)
			tt.set(w, c)
			for _, f := range tt.fires {
				w.fire(f.path, f.ev, 1)
			}
			if got := queued(c); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("events %v, want %v", got, tt.want)
			}
		})
	}
}

func TestWatchBookkeeping(t *testing.T) {
	w := newWatches()
	c, d := pipeConn(t, nil), pipeConn(t, nil)
	w.data.add("/a", c, modeStandard)
	w.data.add("/r", c, modeRecursive)
	w.child.add("/a", c, modeStandard)
	w.data.add("/a", d, modeStandard)
	if c.watched["/a"] != 2 || c.watched["/r"] != 1 || w.data.recursive != 1 {
		t.Fatalf("watched %v, recursive %d", c.watched, w.data.recursive)
	}
	w.fire("/a", eventNodeDataChanged, 1) // consumes both data watches on /a
	if c.watched["/a"] != 1 || len(d.watched) != 0 {
		t.Fatalf("after a fire: c %v, d %v", c.watched, d.watched)
	}
	if !w.data.remove("/r", c, modeRecursive) || w.data.remove("/r", c, modeRecursive) || w.data.recursive != 0 {
		t.Fatal("remove of a recursive watch")
	}
	w.data.add("/r", c, modeRecursive)
	w.removeConn(c)
	if len(c.watched) != 0 || len(w.data.paths) != 0 || len(w.child.paths) != 0 || w.data.recursive != 0 {
		t.Fatalf("after removeConn: watched %v, data %v, child %v", c.watched, w.data.paths, w.child.paths)
	}
}
