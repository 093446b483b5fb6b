# detour — the two commands a newcomer needs are `make demo` and `make test`.
GO       ?= go
BIN      ?= bin
PKGS     ?= ./...

.PHONY: all build test lint gen bench bench-quick fuzz demo clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ $$($(GO) list -f '{{if eq .Name "main"}}{{.ImportPath}}{{end}}' ./... )

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

# Full benchmarks (slow; not part of `make test`).
bench:
	BENCHTIME=200x bash scripts/bench.sh

bench-quick:
	BENCHTIME=20x bash scripts/bench.sh

# Run every fuzz target for FUZZTIME each (default 20s).
fuzz:
	bash scripts/fuzz.sh

demo:
	@echo "make demo: not available yet. The two-host demo (takeover and fallback on the"
	@echo "embedded registry) arrives with the naming agent, the sidecar and the SDK shim."
	@echo "Today the repository holds the registry layer only: run 'make test'."
	@exit 2

clean:
	rm -rf $(BIN)
