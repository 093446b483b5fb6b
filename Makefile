# detour — the two commands a newcomer needs are `make demo` and `make test`.
GO       ?= go
BIN      ?= bin
PKGS     ?= ./...

.PHONY: all build test lint gen bench bench-quick fuzz demo clean package

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -buildvcs=auto -o $(BIN)/ $$($(GO) list -f '{{if eq .Name "main"}}{{.ImportPath}}{{end}}' ./... )

# The whole test suite: lint, then `go test -race` against real servers
# (embedded etcd in-process, ZooKeeper from Debian's package started and
# stopped by scripts/test.sh, the Nacos test server in-process), then the
# quick form of every benchmark so none of them rots.
test:
	bash scripts/test.sh

lint:
	bash scripts/lint.sh

# Regenerate the protobuf/gRPC code under naming-agent/api (committed).
gen:
	bash scripts/gen.sh

# Benchmarks against a direct connection, nginx and haproxy, and of the
# control plane; writes docs/BENCHMARKS.md (about 12 minutes; not part of
# `make test`, which runs the quick form).
bench:
	bash scripts/bench.sh

bench-quick:
	bash scripts/bench.sh -quick

# Run every fuzz target for FUZZTIME each (default 20s).
fuzz:
	bash scripts/fuzz.sh

# The main job: a two-host mesh on the embedded registry (A = 127.0.0.2,
# B = 127.0.0.3), showing takeover and fallback. Built first and run
# directly, so a Ctrl-C reaches the demo, which stops everything it started.
demo:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/detour-demo ./examples/demo
	@$(BIN)/detour-demo

# dist/detour_*.deb and dist/detour-*.rpm (nfpm v2.48.0 via go run); see
# packaging/ and docs/OPERATIONS.md.
package:
	bash packaging/build.sh

clean:
	rm -rf $(BIN) dist
