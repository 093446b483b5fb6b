package zookeeper

import "testing"

func TestValidPath(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{"/", true},
		{"/a", true},
		{"/a/b.c/..d/...", true},
		{"/dubbo/org.apache.Svc/providers/dubbo%3A%2F%2F10.0.0.1%3A20880", true},
		{"/日本", true},
		{"", false},
		{"a", false},
		{"/a/", false},
		{"//a", false},
		{"/a//b", false},
		{"/a/.", false},
		{"/a/../b", false},
		{"/a\x00b", false},
		{"/a\x01", false},
		{"/a\u007f", false},
		{"/a\u009f", false},
		{"/a\ue000", false},     // private use: refused by ZooKeeper
		{"/a\U0001F600", false}, // outside the BMP: a surrogate pair in Java
		{"/a\ufff0", false},
		{"/a\xff", false}, // invalid UTF-8
	}
	for _, tt := range tests {
		if got := validPath(tt.path); got != tt.want {
			t.Errorf("validPath(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}

func TestSplitJoin(t *testing.T) {
	tests := []struct {
		path, parent, name string
		ok                 bool
	}{
		{"/a", "/", "a", true},
		{"/a/b", "/a", "b", true},
		{"/", "", "", false},
		{"a", "", "", false},
	}
	for _, tt := range tests {
		parent, name, ok := split(tt.path)
		if parent != tt.parent || name != tt.name || ok != tt.ok {
			t.Errorf("split(%q) = %q, %q, %v", tt.path, parent, name, ok)
		}
		if ok && join(parent, name) != tt.path {
			t.Errorf("join(%q, %q) = %q", parent, name, join(parent, name))
		}
	}
	for _, p := range []string{"/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"} {
		if !specialPath(p) {
			t.Errorf("specialPath(%q) = false", p)
		}
	}
	if specialPath("/zookeeper/other") {
		t.Error("specialPath(/zookeeper/other) = true")
	}
}
