package zookeeper

// Overlay serves some paths in place of the tree: the rewrite layer
// answers a Dubbo consumer's read of ROOT/S/providers with the agent's
// view of S, not with what apps wrote there.
//
// A path exists for reads when the tree has it, or Children or Data
// reports it. The tree's own node at an exact path wins for its data and
// stat; Children, when ok, replaces the names getChildren and
// getChildren2 return (and numChildren in the stat), tree node or not.
// A node only the overlay makes has a synthetic stat: zero but for
// dataLength, numChildren, and cversion, pzxid and mzxid that move when
// OverlayChanged is called for it or its parent. Writes go to the tree:
// creating a child of a path only the overlay has first creates that
// path (and its missing ancestors) as persistent nodes; deleting or
// setting data on such a path is NoNode.
//
// Concurrency: the Server calls Children and Data with its lock held,
// from many goroutines; they must be quick, must not block and must not
// call back into the Server (read a snapshot the overlay keeps, such as
// an atomic.Pointer). The slices returned are not modified by the Server
// and must not be modified by the overlay afterwards.
type Overlay interface {
	// Children returns the names of path's children when the overlay
	// owns path (ok), in the order to return them.
	Children(path string) (children []string, ok bool)
	// Data returns the data of path when the overlay synthesizes that
	// node (ok).
	Data(path string) (data []byte, ok bool)
}

// Preparer is an Overlay that may need time before it can answer a
// path's first read (the first read of a service's providers waits for
// the agent's first answer, so a consumer that checks for providers at
// start finds them). The Server calls Prepare before each exists,
// getData, getChildren and getChildren2, without its lock held; it may
// block, delaying that connection's requests only, and should return at
// once when it has nothing to wait for.
type Preparer interface {
	Overlay
	Prepare(path string)
}

// Observer is told about changes after they commit, so the rewrite layer
// can publish what apps register (an ephemeral provider node) and end it
// when the node or its session goes.
//
// Concurrency: calls come from one goroutine of the Server, one at a
// time, in commit order, never with the Server's lock held: an Observer
// may call any Server method (OverlayChanged included). A slow call
// delays the calls after it, not the clients. Byte slices passed are the
// Observer's to keep. SessionsRestored comes before anything else, once,
// also when no session was restored; Close stops the calls after the ones already
// committed, and ending the Server is not the end of its sessions (they
// are persisted and taken back by the next run).
type Observer interface {
	// NodeCreated: session created path (ephemeral: owned by session, and
	// gone when it ends). Parents the server made for an overlay path
	// are reported too.
	NodeCreated(session int64, path string, data []byte, ephemeral bool)
	// NodeDataChanged: session set path's data.
	NodeDataChanged(session int64, path string, data []byte)
	// NodeDeleted: session deleted path, or path was session's ephemeral
	// node and the session ended (then SessionEnded follows), or path was
	// an empty container (session 0).
	NodeDeleted(session int64, path string)
	// SessionEnded: the session was closed by its client or expired; its
	// ephemeral nodes were deleted just before (NodeDeleted each).
	SessionEnded(session int64)
	// SessionsRestored: at New, the sessions a SessionStore gave back,
	// with their ephemeral nodes, already in the tree. They expire like
	// any other unless their clients reconnect within their timeout.
	SessionsRestored(sessions []RestoredSession)
}

// RestoredSession is a session taken back from the SessionStore.
type RestoredSession struct {
	ID         int64
	Ephemerals []Ephemeral
}

// Ephemeral is an ephemeral node of a restored session.
type Ephemeral struct {
	Path string
	Data []byte
}

type noteKind uint8

const (
	noteCreated noteKind = iota
	noteDataChanged
	noteDeleted
	noteSessionEnded
	noteRestored
)

// note is one Observer call waiting to be made.
type note struct {
	kind      noteKind
	session   int64
	path      string
	data      []byte
	ephemeral bool
	restored  []RestoredSession
}

func (n note) deliver(o Observer) {
	switch n.kind {
	case noteCreated:
		o.NodeCreated(n.session, n.path, n.data, n.ephemeral)
	case noteDataChanged:
		o.NodeDataChanged(n.session, n.path, n.data)
	case noteDeleted:
		o.NodeDeleted(n.session, n.path)
	case noteSessionEnded:
		o.SessionEnded(n.session)
	case noteRestored:
		o.SessionsRestored(n.restored)
	}
}
