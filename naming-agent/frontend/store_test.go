package frontend

import (
	"context"
	"testing"
	"time"
)

func TestMemoryStore(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := NewMemoryStore()
	_ = m.Put(ctx, "/dubbo/mapping/S", []byte("app"), false)
	_ = m.Put(ctx, "/dubbox", []byte("no"), false)
	got := make(chan map[string][]byte, 10)
	done := make(chan error, 1)
	go func() { done <- m.Watch(ctx, "/dubbo", nil, func(k map[string][]byte) { got <- k }) }()
	next := func() map[string][]byte {
		t.Helper()
		select {
		case k := <-got:
			return k
		case <-time.After(10 * time.Second):
			t.Fatal("no call")
			return nil
		}
	}
	if k := next(); len(k) != 1 || string(k["/dubbo/mapping/S"]) != "app" {
		t.Fatalf("first call %v", k)
	}
	_ = m.Put(ctx, "/dubbox/y", []byte("no"), false) // not under /dubbo: no call
	_ = m.Put(ctx, "/dubbo/c", []byte("c"), true)
	if k := next(); len(k) != 2 || string(k["/dubbo/c"]) != "c" {
		t.Fatalf("after put %v", k)
	}
	_ = m.Delete(ctx, "/dubbo/c")
	_ = m.Delete(ctx, "/dubbo/missing")
	if k := next(); len(k) != 1 {
		t.Fatalf("after delete %v", k)
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("Watch = %v, want context.Canceled", err)
	}
}

func TestMemoryStoreSkip(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := NewMemoryStore()
	for _, k := range []string{"/dubbo/S/providers", "/dubbo/S/providers/p", "/dubbo/S/consumers/c"} {
		_ = m.Put(ctx, k, nil, false)
	}
	_ = m.Watch(ctx, "/dubbo", func(k string) bool { return k == "/dubbo/S/providers" }, func(k map[string][]byte) {
		if _, ok := k["/dubbo/S/consumers/c"]; len(k) != 1 || !ok {
			t.Errorf("keys %v, want only the consumer", k)
		}
		cancel()
	})
}

func TestUnderPrefix(t *testing.T) {
	for _, c := range []struct {
		key, prefix string
		want        bool
	}{
		{"/a", "/", true}, {"/a", "/a", true}, {"/a/b", "/a", true}, {"/ab", "/a", false}, {"/", "/a", false},
	} {
		if got := UnderPrefix(c.key, c.prefix); got != c.want {
			t.Errorf("UnderPrefix(%q, %q) = %v", c.key, c.prefix, got)
		}
	}
}
