package registry

import (
	"cmp"
	"slices"
)

// Sort orders endpoints by Addr, the order List and Watcher.Next return.
func Sort(eps []Endpoint) {
	slices.SortFunc(eps, func(a, b Endpoint) int { return cmp.Compare(a.Addr, b.Addr) })
}

// EqualSets reports whether two sorted endpoint sets are the same, endpoint
// by endpoint. Watchers use it to decide whether a change is worth
// returning.
func EqualSets(a, b []Endpoint) bool {
	return slices.EqualFunc(a, b, Endpoint.Equal)
}
