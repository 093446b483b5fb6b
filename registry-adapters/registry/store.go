package registry

import "context"

// Store is an optional capability of a Registry: keys and values kept in
// the registry as written, where every client sees them. The agent's
// registry front ends pass through it what apps write that is not a
// registration (a Dubbo app's consumer nodes, configurators, metadata
// reports), so every host's apps and, where the registry is the apps'
// own kind, apps outside the mesh read it.
//
// Keys are absolute '/'-separated paths ("/dubbo/mapping/org.x.S"); how
// they map to the registry's keys is the adapter's business (ZooKeeper:
// the znode at that path; etcd: a key under the adapter's prefix).
// Methods are safe for concurrent use. Errors wrap ErrUnavailable when
// the registry cannot be reached, ErrInvalid for a bad key, ErrClosed
// after Close.
type Store interface {
	// PutKey sets key to value. An ephemeral key lives with this
	// client's registry session (a ZooKeeper session, an etcd lease):
	// the adapter writes it again after the session is replaced, as it
	// does its registrations, and it goes with the session when the
	// process dies or Close is called.
	PutKey(ctx context.Context, key string, value []byte, ephemeral bool) error
	// DeleteKey deletes key; a missing key is not an error.
	DeleteKey(ctx context.Context, key string) error
	// WatchKeys calls fn with every key equal to prefix or below it
	// ("/" is every key), now and after each change, until ctx ends;
	// then it returns ctx.Err(). skip, if not nil, leaves out the keys
	// it reports and every key below them (ZooKeeper does not read or
	// watch those subtrees at all). While the registry is unreachable it
	// keeps trying, and calls fn again once it has read the keys anew.
	// Calls to fn are sequential; the map is fn's to keep.
	WatchKeys(ctx context.Context, prefix string, skip func(key string) bool, fn func(map[string][]byte)) error
}

// ValidKey reports whether key is a Store key: "/" followed by non-empty
// segments without NUL, "." or "..", no trailing '/'.
func ValidKey(key string) bool {
	if len(key) < 2 || key[0] != '/' || key[len(key)-1] == '/' {
		return false
	}
	start := 1
	for i := 1; i <= len(key); i++ {
		if i < len(key) && key[i] == 0 {
			return false
		}
		if i == len(key) || key[i] == '/' {
			seg := key[start:i]
			if seg == "" || seg == "." || seg == ".." {
				return false
			}
			start = i + 1
		}
	}
	return true
}

// Skipped reports whether key or one of its ancestors below prefix is
// one skip reports (nil: none).
func Skipped(key, prefix string, skip func(string) bool) bool {
	if skip == nil {
		return false
	}
	for k := key; len(k) >= len(prefix) && k != "" && k != "/"; {
		if skip(k) {
			return true
		}
		i := len(k) - 1
		for i > 0 && k[i] != '/' {
			i--
		}
		k = k[:i]
	}
	return false
}

// UnderPrefix reports whether key is prefix or below it.
func UnderPrefix(key, prefix string) bool {
	if prefix == "/" {
		return true
	}
	return key == prefix || len(key) > len(prefix) && key[len(prefix)] == '/' && key[:len(prefix)] == prefix
}
