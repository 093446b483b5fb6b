package zookeeper

import "fmt"

// Opcodes of ZooKeeper's client protocol (ZooDefs.OpCode).
const (
	opNotification         int32 = 0
	opCreate               int32 = 1
	opDelete               int32 = 2
	opExists               int32 = 3
	opGetData              int32 = 4
	opSetData              int32 = 5
	opGetACL               int32 = 6
	opSetACL               int32 = 7
	opGetChildren          int32 = 8
	opSync                 int32 = 9
	opPing                 int32 = 11
	opGetChildren2         int32 = 12
	opCheck                int32 = 13
	opMulti                int32 = 14
	opCreate2              int32 = 15
	opReconfig             int32 = 16
	opCheckWatches         int32 = 17
	opRemoveWatches        int32 = 18
	opCreateContainer      int32 = 19
	opDeleteContainer      int32 = 20
	opCreateTTL            int32 = 21
	opMultiRead            int32 = 22
	opAuth                 int32 = 100
	opSetWatches           int32 = 101
	opSASL                 int32 = 102
	opGetEphemerals        int32 = 103
	opGetAllChildrenNumber int32 = 104
	opSetWatches2          int32 = 105
	opAddWatch             int32 = 106
	opWhoAmI               int32 = 107
	opCloseSession         int32 = -11
	opError                int32 = -1 // the type of a failed op's result in a multi
)

// Special xids (ClientCnxn).
const (
	xidNotification int32 = -1
	xidPing         int32 = -2
	xidAuth         int32 = -4
	xidSetWatches   int32 = -8
)

// code is a KeeperException.Code: 0 or the error a reply header carries.
type code int32

const (
	codeOK                      code = 0
	codeRuntimeInconsistency    code = -2
	codeMarshallingError        code = -5
	codeUnimplemented           code = -6
	codeBadArguments            code = -8
	codeNoNode                  code = -101
	codeBadVersion              code = -103
	codeNoChildrenForEphemerals code = -108
	codeNodeExists              code = -110
	codeNotEmpty                code = -111
	codeSessionExpired          code = -112
	codeInvalidACL              code = -114
	codeAuthFailed              code = -115
	codeNoWatcher               code = -121
	codeReconfigDisabled        code = -123
)

var codeNames = map[code]string{
	codeOK:                      "OK",
	codeRuntimeInconsistency:    "RuntimeInconsistency",
	codeMarshallingError:        "MarshallingError",
	codeUnimplemented:           "Unimplemented",
	codeBadArguments:            "BadArguments",
	codeNoNode:                  "NoNode",
	codeBadVersion:              "BadVersion",
	codeNoChildrenForEphemerals: "NoChildrenForEphemerals",
	codeNodeExists:              "NodeExists",
	codeNotEmpty:                "NotEmpty",
	codeSessionExpired:          "SessionExpired",
	codeInvalidACL:              "InvalidACL",
	codeAuthFailed:              "AuthFailed",
	codeNoWatcher:               "NoWatcher",
	codeReconfigDisabled:        "ReconfigDisabled",
}

func (c code) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("code(%d)", int32(c))
}

// Watcher event types (Watcher.Event.EventType) and the one state this
// server reports in events (KeeperState.SyncConnected).
const (
	eventNodeCreated         int32 = 1
	eventNodeDeleted         int32 = 2
	eventNodeDataChanged     int32 = 3
	eventNodeChildrenChanged int32 = 4
	stateSyncConnected       int32 = 3
)

// Create modes (CreateMode.fromFlag). The TTL modes are refused as
// ZooKeeper refuses them when extended types are off (its default).
const (
	modePersistent           int32 = 0
	modeEphemeral            int32 = 1
	modePersistentSequential int32 = 2
	modeEphemeralSequential  int32 = 3
	modeContainer            int32 = 4
	modePersistentTTL        int32 = 5
	modePersistentSeqTTL     int32 = 6
)

// containerOwner is the ephemeralOwner ZooKeeper gives a container node
// (EphemeralType.CONTAINER_EPHEMERAL_OWNER).
const containerOwner int64 = -1 << 63

// Watch types of removeWatches and checkWatches (WatcherType), and the
// modes of addWatch (AddWatchMode).
const (
	watcherChildren            int32 = 1
	watcherData                int32 = 2
	watcherAny                 int32 = 3
	watcherPersistent          int32 = 4
	watcherPersistentRecursive int32 = 5

	addWatchPersistent          int32 = 0
	addWatchPersistentRecursive int32 = 1
)

// maxBuffer is jute.maxbuffer's default: the largest frame, string or
// buffer ZooKeeper accepts.
const maxBuffer = 0xfffff
