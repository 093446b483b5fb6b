package dubbogo

import (
	"iter"
	"net/url"
	"slices"
	"strings"
)

func sortStrings(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// sortedQuery yields a URL's parameters sorted by key, values joined.
func sortedQuery(q url.Values) iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		keys := make([]string, 0, len(q))
		for k := range q {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if !yield(k, strings.Join(q[k], ",")) {
				return
			}
		}
	}
}
