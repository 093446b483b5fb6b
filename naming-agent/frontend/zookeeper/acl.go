package zookeeper

import (
	"crypto/sha1"
	"encoding/base64"
	"net"
	"slices"
	"strconv"
	"strings"
)

// ACLs are kept, validated and returned as ZooKeeper does, but never
// enforced: every local app may read and write every node. The front end
// listens on loopback; an app that relies on ZooKeeper ACLs to keep
// other apps of its host out is not protected here (README).

// authID is an identity a connection proved with an auth packet, or the
// "ip" one every connection has.
type authID struct {
	Scheme string
	ID     string
}

// authenticate handles an auth packet as ZooKeeper's providers do:
// "digest" (user:password, kept as user:base64(sha1(user:password))) and
// "ip" (the peer's address) succeed; any other scheme fails, and
// ZooKeeper then closes the connection.
func authenticate(p authPacket, peerIP string) (authID, bool) {
	switch p.Scheme {
	case "digest":
		return authID{Scheme: "digest", ID: digestID(string(p.Auth))}, true
	case "ip":
		return authID{Scheme: "ip", ID: peerIP}, true
	}
	return authID{}, false
}

// digestID is DigestAuthenticationProvider.generateDigest.
func digestID(userPassword string) string {
	user, _, _ := strings.Cut(userPassword, ":")
	sum := sha1.Sum([]byte(userPassword))
	return user + ":" + base64.StdEncoding.EncodeToString(sum[:])
}

// fixACL is PrepRequestProcessor.fixupACL: duplicates dropped, an empty
// list refused, "auth" expanded to the connection's digest identities,
// every other id checked by its scheme's rules.
func fixACL(acls []acl, auth []authID) ([]acl, code) {
	var uniq []acl
	for _, a := range acls {
		if !slices.Contains(uniq, a) {
			uniq = append(uniq, a)
		}
	}
	if len(uniq) == 0 {
		return nil, codeInvalidACL
	}
	out := make([]acl, 0, len(uniq))
	for _, a := range uniq {
		switch {
		case a.Scheme == "world" && a.ID == "anyone":
			out = append(out, a)
		case a.Scheme == "auth":
			found := false
			for _, id := range auth {
				if id.Scheme == "digest" { // the only provider that says isAuthenticated
					out = append(out, acl{Perms: a.Perms, Scheme: id.Scheme, ID: id.ID})
					found = true
				}
			}
			if !found {
				return nil, codeInvalidACL
			}
		case a.Scheme == "digest" && validDigestID(a.ID),
			a.Scheme == "ip" && validIPID(a.ID):
			out = append(out, a)
		default:
			return nil, codeInvalidACL
		}
	}
	return out, codeOK
}

// validDigestID is Java's id.split(":").length == 2: split drops
// trailing empty strings.
func validDigestID(id string) bool {
	parts := strings.Split(id, ":")
	for len(parts) > 1 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	return len(parts) == 2
}

// validIPID is an address, optionally with a prefix length that fits it.
func validIPID(id string) bool {
	addr, bits, hasBits := strings.Cut(id, "/")
	ip := net.ParseIP(addr)
	if ip == nil {
		return false
	}
	if !hasBits {
		return true
	}
	size := 128
	if ip.To4() != nil && !strings.Contains(addr, ":") {
		size = 32
	}
	n, err := strconv.Atoi(bits)
	return err == nil && n >= 0 && n <= size
}

// clientInfo is whoAmI's answer for one identity (AuthUtil.getClientInfos).
func clientInfo(id authID) (scheme, user string) {
	if id.Scheme == "digest" {
		user, _, _ := strings.Cut(id.ID, ":")
		return id.Scheme, user
	}
	return id.Scheme, id.ID
}
