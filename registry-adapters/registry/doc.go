// Package registry is the contract between detour and a service registry:
// the Endpoint model, the Registry and Watcher interfaces every adapter
// implements, the sentinel errors, and the validation of service names and
// addresses done once here for every adapter.
//
// It imports only the standard library, so adapters, the naming agent and
// tests can all depend on it without pulling anything else in.
package registry
