package zookeeper

import "strings"

// validPath is ZooKeeper's PathUtils.validatePath. Java checks UTF-16
// units, so every character outside the Basic Multilingual Plane (a
// surrogate pair) is refused, as is invalid UTF-8 (Java reads it as
// U+FFFD, which is in a refused range).
func validPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	if p == "/" {
		return true
	}
	if p[len(p)-1] == '/' {
		return false
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	for _, c := range p { // invalid UTF-8 ranges as U+FFFD: refused below
		switch {
		case c == 0,
			c > 0 && c <= 0x1f,
			c >= 0x7f && c <= 0x9f,
			c >= 0xd800 && c <= 0xf8ff,
			c >= 0xfff0:
			return false
		}
	}
	return true
}

// split returns path's parent and last name. The parent of a child of
// the root is "/"; splitting "/" or a path without a slash gives ok false.
func split(p string) (parent, name string, ok bool) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 || p == "/" {
		return "", "", false
	}
	if i == 0 {
		return "/", p[1:], true
	}
	return p[:i], p[i+1:], true
}

// join is the path of name under parent.
func join(parent, name string) string {
	if parent == "/" {
		return "/" + name
	}
	return parent + "/" + name
}

// parentOf is split's parent, "" for the root.
func parentOf(p string) string {
	parent, _, _ := split(p)
	return parent
}

// specialPath: ZooKeeper refuses to delete these (DataTree.isSpecialPath).
func specialPath(p string) bool {
	switch p {
	case "/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config":
		return true
	}
	return false
}
