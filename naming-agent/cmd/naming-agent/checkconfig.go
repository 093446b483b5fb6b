package main

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// fieldPrefix is the field path a config error starts with:
// "ports.ingress.to: ..." or "api.scoped_tokens[1].token_file: ...".
var fieldPrefix = regexp.MustCompile(`^([a-z_]+(?:\[\d+\])?(?:\.[A-Za-z0-9_\-]+(?:\[\d+\])?)*): `)

// yamlLine is the decoder's "[yaml: ]line N: why".
var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// locate rewrites each line of a config error as "FILE:LINE: field: why",
// the line being where the field is set in the file (or where its
// nearest set parent is). Lines it cannot place (a field left at its
// default, a flag) are kept as they are, prefixed with the file.
// The YAML decoder's own errors already say "line N"; those are left alone.
func locate(path string, err error) string {
	msg := strings.TrimPrefix(err.Error(), "config: ")
	msg = strings.TrimPrefix(msg, "config "+path+": ")
	var root yaml.Node
	if b, rerr := os.ReadFile(path); rerr == nil {
		_ = yaml.Unmarshal(b, &root) // a parse error leaves root empty
	}
	var out []string
	for _, l := range strings.Split(msg, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if l == "yaml: unmarshal errors:" {
			continue
		}
		if m := yamlLine.FindStringSubmatch(l); m != nil {
			out = append(out, path+":"+m[1]+": "+m[2])
			continue
		}
		m := fieldPrefix.FindStringSubmatch(l)
		if m == nil {
			out = append(out, path+": "+l)
			continue
		}
		if line := fieldLine(&root, m[1]); line > 0 {
			out = append(out, fmt.Sprintf("%s:%d: %s", path, line, l))
		} else {
			out = append(out, fmt.Sprintf("%s: %s (not set in the file: the default or a flag)", path, l))
		}
	}
	return strings.Join(out, "\n")
}

// fieldLine is the line of the deepest node of path ("a.b[2].c") present
// in the document, 0 when not even its first key is.
func fieldLine(doc *yaml.Node, path string) int {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	for _, part := range strings.Split(path, ".") {
		key, idx := part, -1
		if i := strings.IndexByte(part, '['); i > 0 && strings.HasSuffix(part, "]") {
			key = part[:i]
			idx, _ = strconv.Atoi(part[i+1 : len(part)-1])
		}
		next := mapValue(n, key)
		if next == nil {
			return line
		}
		line, n = next.Line, next
		if idx >= 0 {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return line
			}
			n = n.Content[idx]
			line = n.Line
		}
	}
	return line
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			if n.Content[i+1].Kind == yaml.ScalarNode {
				return n.Content[i+1]
			}
			// a mapping or sequence: its key's line, for a parent field
			v := *n.Content[i+1]
			if v.Line == 0 {
				v.Line = n.Content[i].Line
			}
			return &v
		}
	}
	return nil
}
