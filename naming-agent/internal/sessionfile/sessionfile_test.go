package sessionfile

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry-session")
	s := New(path)
	if b, err := s.Load(); err != nil || b != nil {
		t.Fatalf("Load of nothing = %q, %v", b, err)
	}
	if err := s.Save([]byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := s.Save([]byte("two")); err != nil {
		t.Fatal(err)
	}
	if b, err := New(path).Load(); err != nil || !bytes.Equal(b, []byte("two")) {
		t.Fatalf("Load = %q, %v", b, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v, %v; want 0600 (it may hold a session password)", fi.Mode(), err)
	}
	if err := New(filepath.Join(path, "under-a-file")).Save([]byte("x")); err == nil {
		t.Fatal("Save under a file succeeded")
	}
}
