package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckConfig: --check-config names the file, the line and the field
// of every problem, and exits 2; a good file exits 0.
func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, yaml string
		code       int
		want       []string
	}{
		{"valid", "host_ip: 10.0.0.5\n", 0, []string{"valid"}},
		{"range", "host_ip: 10.0.0.5\nports:\n  ingress:\n    from: 20000\n    to: 100\n", 2, []string{"range.yaml:5: ports.ingress.to:"}},
		{"unknown", "host_ip: 10.0.0.5\nbogus: 1\n", 2, []string{"unknown.yaml:2: field bogus not found"}},
		{"syntax", "host_ip: [\n", 2, []string{"syntax.yaml:1: "}},
		{"default", "ports:\n  egress: {from: 30000, to: 30999}\n", 0, []string{"valid"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, c.name+".yaml")
			if err := os.WriteFile(p, []byte(c.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			var out, errb bytes.Buffer
			code := run(context.Background(), []string{"--config", p, "--check-config"}, &out, &errb, registries(), nil)
			if code != c.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, c.code, errb.String())
			}
			all := out.String() + errb.String()
			for _, w := range c.want {
				if !strings.Contains(all, w) {
					t.Errorf("output %q lacks %q", all, w)
				}
			}
		})
	}
}

func TestFieldLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.yaml")
	os.WriteFile(p, []byte("api:\n  scoped_tokens:\n    - name: a\n    - name: b\n      token_file: /x\n"), 0o600)
	got := locate(p, errString("config: api.scoped_tokens[1].token_file: unreadable\nhost_ip: bad"))
	for _, w := range []string{p + ":5: api.scoped_tokens[1].token_file", p + ": host_ip: bad (not set in the file"} {
		if !strings.Contains(got, w) {
			t.Errorf("%q lacks %q", got, w)
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }
