package zookeeper

import (
	"errors"
	"fmt"
	"time"

	"github.com/dubbogo/go-zookeeper/zk"
)

// Digest auth: go-zookeeper sends the credentials of a successful
// AddAuth again on every reconnect, before any other request, but only
// after the first AddAuth has been answered. The registration connection
// authenticates in New (so ZooKeeper must answer within RequestTimeout
// when credentials are set); a watch connection's session is not handed
// to the watchers until its AddAuth is answered (watchconn.go).

// digest is the credential of cfg, nil without one. Never logged.
func (c Config) digest() []byte {
	if c.Username == "" {
		return nil
	}
	return []byte(c.Username + ":" + c.Password)
}

// authenticate adds the digest credentials to conn, retrying while the
// connection is not up yet, for up to RequestTimeout.
func (r *Registry) authenticate(conn *zk.Conn) error {
	cred := r.cfg.digest()
	if cred == nil {
		return nil
	}
	done := make(chan error, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() { done <- addAuth(conn, cred, stop) }()
	t := time.NewTimer(r.cfg.RequestTimeout)
	defer t.Stop()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("zookeeper: digest auth as %q: %w", r.cfg.Username, err)
		}
		return nil
	case <-t.C:
		// The caller closes conn, which ends addAuth's pending request.
		return fmt.Errorf("zookeeper: digest auth as %q: no answer within %v", r.cfg.Username, r.cfg.RequestTimeout)
	}
}

// addAuth calls conn.AddAuth until it is answered, conn is closed or stop
// is closed. A request sent before the connection is up fails with a
// connection error; it is sent again.
func addAuth(conn *zk.Conn, cred []byte, stop <-chan struct{}) error {
	bo := backoff{min: 50 * time.Millisecond, max: time.Second}
	for {
		err := conn.AddAuth("digest", cred)
		if err == nil || errors.Is(err, zk.ErrAuthFailed) || errors.Is(err, zk.ErrClosing) {
			return err
		}
		t := time.NewTimer(bo.delay())
		select {
		case <-t.C:
		case <-stop:
			t.Stop()
			return err
		}
	}
}
