package registry

// SessionStore keeps, across restarts of the process, what an adapter
// needs to take its registry session back: a ZooKeeper session id and
// password, an etcd lease id. With one, a process that crashes and is
// restarted within the session's timeout finds its registrations still
// in the registry, so they never disappear for the readers.
//
// Load returns nil and no error when nothing is stored. Save replaces
// what is stored; an adapter calls it whenever its session changes (made,
// lost, taken back) and, where it keeps them there, when its
// registrations change. What the bytes mean is the adapter's business.
// Implementations must be safe for concurrent use.
type SessionStore interface {
	Load() ([]byte, error)
	Save(state []byte) error
}

// Resumer is implemented by adapters that took a stored session back at
// New. Adopted returns the registrations an earlier run of this process
// made that the session still holds in the registry. They now belong to
// this client as if it had registered them: Register of the same
// (Service, Addr) replaces one (and leaves it in place when nothing
// differs), Deregister removes one, Close removes them with the rest.
// The caller deregisters those it no longer wants. It returns nil when
// no session was taken back.
type Resumer interface {
	Adopted() []Endpoint
}
