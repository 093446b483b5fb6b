// Package zookeeper is the detour registry adapter for ZooKeeper, in
// Dubbo's layout, so Dubbo and dubbo-go applications and detour see each
// other's instances.
//
// An endpoint of service S is the ephemeral node
//
//	ROOT/S/providers/URL.encode(dubbo://HOST:PORT/S?anyhost=false&interface=S&side=provider&timestamp=MS&weight=W&METADATA)
//
// under persistent parents (ROOT is "/dubbo" by default). The node belongs
// to the client's ZooKeeper session: when the process dies the server
// deletes it; when the session expires while the process lives, the
// adapter creates it again on the new session. Watchers re-list and re-arm
// their children watch after every event and every reconnect.
//
// See README.md for the URL format, which parameters are metadata, and the
// configuration.
package zookeeper
