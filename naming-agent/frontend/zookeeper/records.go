package zookeeper

// The records of zookeeper.jute this server reads and writes. Decoders
// read every field and return r.err; trailing bytes are ignored, as
// ZooKeeper ignores them (a 3.3 client's ConnectRequest has no readOnly
// byte, so that one field is optional).

// stat is org.apache.zookeeper.data.Stat.
type stat struct {
	Czxid, Mzxid, Ctime, Mtime  int64
	Version, Cversion, Aversion int32
	EphemeralOwner              int64
	DataLength, NumChildren     int32
	Pzxid                       int64
}

func (s *stat) encode(w *writer) {
	w.int64(s.Czxid)
	w.int64(s.Mzxid)
	w.int64(s.Ctime)
	w.int64(s.Mtime)
	w.int32(s.Version)
	w.int32(s.Cversion)
	w.int32(s.Aversion)
	w.int64(s.EphemeralOwner)
	w.int32(s.DataLength)
	w.int32(s.NumChildren)
	w.int64(s.Pzxid)
}

func (s *stat) decode(r *reader) {
	s.Czxid, s.Mzxid, s.Ctime, s.Mtime = r.int64(), r.int64(), r.int64(), r.int64()
	s.Version, s.Cversion, s.Aversion = r.int32(), r.int32(), r.int32()
	s.EphemeralOwner = r.int64()
	s.DataLength, s.NumChildren = r.int32(), r.int32()
	s.Pzxid = r.int64()
}

// acl is org.apache.zookeeper.data.ACL (with its Id inlined).
type acl struct {
	Perms  int32
	Scheme string
	ID     string
}

func decodeACLs(r *reader) []acl {
	n := r.count(12)
	out := make([]acl, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		out = append(out, acl{Perms: r.int32(), Scheme: r.string(), ID: r.string()})
	}
	return out
}

func encodeACLs(w *writer, acls []acl) {
	w.int32(int32(len(acls)))
	for _, a := range acls {
		w.int32(a.Perms)
		w.string(a.Scheme)
		w.string(a.ID)
	}
}

type connectRequest struct {
	ProtocolVersion int32
	LastZxidSeen    int64
	TimeOut         int32
	SessionID       int64
	Passwd          []byte
	ReadOnly        bool
	HasReadOnly     bool // the client sent the readOnly byte (3.4+), so it reads one back
}

func decodeConnectRequest(b []byte) (connectRequest, error) {
	r := newReader(b)
	c := connectRequest{
		ProtocolVersion: r.int32(),
		LastZxidSeen:    r.int64(),
		TimeOut:         r.int32(),
		SessionID:       r.int64(),
		Passwd:          r.buffer(),
	}
	if r.err == nil && r.left() > 0 {
		c.ReadOnly, c.HasReadOnly = r.bool(), true
	}
	return c, r.err
}

type connectResponse struct {
	TimeOut     int32
	SessionID   int64
	Passwd      []byte
	HasReadOnly bool
}

func (c *connectResponse) frame() []byte {
	w := newWriter()
	w.int32(0) // protocolVersion
	w.int32(c.TimeOut)
	w.int64(c.SessionID)
	w.buffer(c.Passwd)
	if c.HasReadOnly {
		w.bool(false) // never a read-only server
	}
	return w.frame()
}

// replyFrame starts a reply: ReplyHeader, then the caller's body.
func replyFrame(xid int32, zxid int64, err code) *writer {
	w := newWriter()
	w.int32(xid)
	w.int64(zxid)
	w.int32(int32(err))
	return w
}

// eventFrame is a watch notification: a ReplyHeader with xid -1 and a
// WatcherEvent.
func eventFrame(zxid int64, typ int32, path string) []byte {
	w := replyFrame(xidNotification, zxid, codeOK)
	w.int32(typ)
	w.int32(stateSyncConnected)
	w.string(path)
	return w.frame()
}

// createRequest is CreateRequest, and CreateTTLRequest with TTL set.
type createRequest struct {
	Path  string
	Data  []byte
	ACL   []acl
	Flags int32
	TTL   int64
}

func decodeCreate(r *reader, ttl bool) createRequest {
	c := createRequest{Path: r.string(), Data: r.buffer(), ACL: decodeACLs(r), Flags: r.int32(), TTL: -1}
	if ttl {
		c.TTL = r.int64()
	}
	return c
}

// pathVersion is DeleteRequest and CheckVersionRequest.
type pathVersion struct {
	Path    string
	Version int32
}

func decodePathVersion(r *reader) pathVersion {
	return pathVersion{Path: r.string(), Version: r.int32()}
}

type setDataRequest struct {
	Path    string
	Data    []byte
	Version int32
}

func decodeSetData(r *reader) setDataRequest {
	return setDataRequest{Path: r.string(), Data: r.buffer(), Version: r.int32()}
}

// pathWatch is ExistsRequest, GetDataRequest, GetChildrenRequest and
// GetChildren2Request.
type pathWatch struct {
	Path  string
	Watch bool
}

func decodePathWatch(r *reader) pathWatch {
	return pathWatch{Path: r.string(), Watch: r.bool()}
}

type setACLRequest struct {
	Path    string
	ACL     []acl
	Version int32
}

func decodeSetACL(r *reader) setACLRequest {
	return setACLRequest{Path: r.string(), ACL: decodeACLs(r), Version: r.int32()}
}

type authPacket struct {
	Type   int32
	Scheme string
	Auth   []byte
}

func decodeAuth(r *reader) authPacket {
	return authPacket{Type: r.int32(), Scheme: r.string(), Auth: r.buffer()}
}

// setWatches is SetWatches, and SetWatches2 with the persistent lists.
type setWatches struct {
	RelativeZxid                    int64
	Data, Exist, Child              []string
	Persistent, PersistentRecursive []string
}

func decodeSetWatches(r *reader, v2 bool) setWatches {
	s := setWatches{RelativeZxid: r.int64(), Data: r.strings(), Exist: r.strings(), Child: r.strings()}
	if v2 {
		s.Persistent, s.PersistentRecursive = r.strings(), r.strings()
	}
	return s
}

// pathType is AddWatchRequest (type is the mode), CheckWatchesRequest and
// RemoveWatchesRequest.
type pathType struct {
	Path string
	Type int32
}

func decodePathType(r *reader) pathType {
	return pathType{Path: r.string(), Type: r.int32()}
}

// multiOp is one operation of a multi or multiRead request.
type multiOp struct {
	Op      int32
	Create  createRequest
	PV      pathVersion // delete, check
	SetData setDataRequest
	Read    pathWatch // getData, getChildren (multiRead)
}

// decodeMulti reads MultiHeader-prefixed ops until the done header.
// allowed says which op types the request may carry; another one is a
// marshalling error, as ZooKeeper's MultiOperationRecord makes it.
func decodeMulti(r *reader, allowed func(op int32) bool) []multiOp {
	var ops []multiOp
	for r.err == nil {
		typ, done, _ := r.int32(), r.bool(), r.int32()
		if r.err != nil || done {
			break
		}
		if !allowed(typ) {
			r.fail("op %d not allowed here", typ)
			break
		}
		// Each op takes at least 5 bytes: a bound on the ops a frame holds.
		if len(ops) > maxBuffer/5 {
			r.fail("too many ops")
			break
		}
		op := multiOp{Op: typ}
		switch typ {
		case opCreate, opCreate2, opCreateContainer:
			op.Create = decodeCreate(r, false)
		case opCreateTTL:
			op.Create = decodeCreate(r, true)
		case opDelete, opCheck:
			op.PV = decodePathVersion(r)
		case opSetData:
			op.SetData = decodeSetData(r)
		case opGetData, opGetChildren: // a full request, watch flag and all (ignored)
			op.Read = decodePathWatch(r)
		}
		ops = append(ops, op)
	}
	return ops
}

func isWriteOp(op int32) bool {
	switch op {
	case opCreate, opCreate2, opCreateContainer, opCreateTTL, opDelete, opSetData, opCheck:
		return true
	}
	return false
}

func isReadOp(op int32) bool { return op == opGetData || op == opGetChildren }

// multiResult is one result of a multi: Type is the op's type, or
// opError with Err set.
type multiResult struct {
	Type int32
	Err  code
	Path string
	Stat stat
	Data []byte
	Kids []string
}

func encodeMultiResults(w *writer, results []multiResult) {
	for _, res := range results {
		w.int32(res.Type)
		w.bool(false)
		w.int32(int32(res.Err))
		switch res.Type {
		case opCreate:
			w.string(res.Path)
		case opCreate2:
			w.string(res.Path)
			res.Stat.encode(w)
		case opSetData:
			res.Stat.encode(w)
		case opGetData:
			w.buffer(res.Data)
			res.Stat.encode(w)
		case opGetChildren:
			w.strings(res.Kids)
		case opError:
			w.int32(int32(res.Err))
		}
	}
	w.int32(-1)
	w.bool(true)
	w.int32(-1)
}
