package etcd

import (
	"github.com/detourmesh/detour/registry-adapters/registry"
)

// ErrCompacted exposes errCompacted to the external tests.
var ErrCompacted = errCompacted

// FollowFrom runs the watch loop of w (a watcher of this package) from
// revision rev, as the watcher does after listing, and returns why it
// ended.
func FollowFrom(w registry.Watcher, rev int64) error {
	ww := w.(*watcher)
	return ww.follow(map[string]registry.Endpoint{}, rev)
}
