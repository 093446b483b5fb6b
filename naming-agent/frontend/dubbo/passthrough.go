package dubbo

import "strings"

// Owns reports whether path is the rewrite layer's: a providers
// directory (/ROOT/SERVICE/providers) or a node in one, or an
// application-level instance (/services/APP/INSTANCE) or a node below
// one. The ZooKeeper front end's pass-through leaves these to the
// rewriter: they are publications and answers from the agent's view,
// never passed to the registry as written, nor read from it as another
// host wrote them. An app's directory /services/APP is not owned: the
// persistent node its provider creates is passed through like any
// parent; only its listing is the rewriter's (Rewriter.Children answers
// it, owned or not).
func Owns(path string) bool {
	parts := strings.Split(path, "/")
	if len(parts) < 2 || parts[0] != "" {
		return false
	}
	switch {
	case len(parts) >= 4 && parts[1] != "" && parts[2] != "" && parts[3] == "providers":
		return true
	case len(parts) >= 4 && parts[1] == "services" && parts[2] != "":
		return true
	}
	return false
}
