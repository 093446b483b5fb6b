package zookeeper

import (
	"reflect"
	"testing"
)

func TestFixACL(t *testing.T) {
	world := acl{Perms: 31, Scheme: "world", ID: "anyone"}
	bob := authID{Scheme: "digest", ID: digestID("bob:pw")}
	tests := []struct {
		name string
		in   []acl
		auth []authID
		want []acl
		code code
	}{
		{"world anyone", []acl{world}, nil, []acl{world}, codeOK},
		{"duplicates dropped", []acl{world, world}, nil, []acl{world}, codeOK},
		{"empty", nil, nil, nil, codeInvalidACL},
		{"world someone", []acl{{31, "world", "someone"}}, nil, nil, codeInvalidACL},
		{"auth without a digest identity", []acl{{31, "auth", ""}}, []authID{{"ip", "127.0.0.1"}}, nil, codeInvalidACL},
		{"auth expands to the digest identity", []acl{{5, "auth", "ignored"}}, []authID{{"ip", "127.0.0.1"}, bob},
			[]acl{{5, "digest", bob.ID}}, codeOK},
		{"digest id", []acl{{1, "digest", "u:hash"}}, nil, []acl{{1, "digest", "u:hash"}}, codeOK},
		{"digest id with a trailing colon", []acl{{1, "digest", "u:hash:"}}, nil, []acl{{1, "digest", "u:hash:"}}, codeOK},
		{"digest id without a colon", []acl{{1, "digest", "u"}}, nil, nil, codeInvalidACL},
		{"digest id with two colons", []acl{{1, "digest", "u:h:x"}}, nil, nil, codeInvalidACL},
		{"ip", []acl{{1, "ip", "10.0.0.0/8"}}, nil, []acl{{1, "ip", "10.0.0.0/8"}}, codeOK},
		{"ipv6", []acl{{1, "ip", "::1/128"}}, nil, []acl{{1, "ip", "::1/128"}}, codeOK},
		{"ip prefix too long", []acl{{1, "ip", "10.0.0.0/33"}}, nil, nil, codeInvalidACL},
		{"not an ip", []acl{{1, "ip", "host"}}, nil, nil, codeInvalidACL},
		{"unknown scheme", []acl{{1, "sasl", "x"}}, nil, nil, codeInvalidACL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, c := fixACL(tt.in, tt.auth)
			if c != tt.code || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("fixACL = %v, %v; want %v, %v", got, c, tt.want, tt.code)
			}
		})
	}
}

func TestAuthenticate(t *testing.T) {
	// The digest ZooKeeper's DigestAuthenticationProvider gives "super:test".
	if got := digestID("super:test"); got != "super:D/InIHSb7yEEbrWz8b9l71RjZJU=" {
		t.Errorf("digestID = %q", got)
	}
	tests := []struct {
		scheme string
		want   authID
		ok     bool
	}{
		{"digest", authID{"digest", digestID("u:p")}, true},
		{"ip", authID{"ip", "10.1.2.3"}, true},
		{"sasl", authID{}, false},
		{"", authID{}, false},
	}
	for _, tt := range tests {
		got, ok := authenticate(authPacket{Scheme: tt.scheme, Auth: []byte("u:p")}, "10.1.2.3")
		if got != tt.want || ok != tt.ok {
			t.Errorf("authenticate(%q) = %v, %v", tt.scheme, got, ok)
		}
	}
	if s, u := clientInfo(authID{"digest", "bob:xyz"}); s != "digest" || u != "bob" {
		t.Errorf("clientInfo = %s, %s", s, u)
	}
}
