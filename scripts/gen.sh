#!/usr/bin/env bash
# gen.sh: regenerate the Go code of the naming agent's .proto files
# (api/proto) into api/agentpb and
# api/sidecarpb. Installs protoc (Debian's package) and the Go
# plugins (protoc-gen-go at the version of google.golang.org/protobuf in
# go.mod) when they are missing. The generated code is committed.
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="$(go env GOPATH)/bin:$PATH"

if ! command -v protoc >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq protobuf-compiler libprotobuf-dev
  else
    sudo apt-get update -qq && sudo apt-get install -y -qq protobuf-compiler libprotobuf-dev
  fi
fi
pbver=$(go list -m -f '{{.Version}}' google.golang.org/protobuf)
if ! command -v protoc-gen-go >/dev/null || [ "$(protoc-gen-go --version 2>&1 | awk '{print $2}')" != "$pbver" ]; then
  GOFLAGS= go install "google.golang.org/protobuf/cmd/protoc-gen-go@$pbver"
fi
if ! command -v protoc-gen-go-grpc >/dev/null; then
  GOFLAGS= go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@latest
fi

root=api/proto
module=github.com/detourmesh/detour
protoc -I "$root" \
  --go_out=. --go_opt=module="$module" \
  --go-grpc_out=. --go-grpc_opt=module="$module" \
  "$root"/detour/agent/v1/agent.proto "$root"/detour/sidecar/v1/sidecar.proto
# The examples' greeter.
protoc -I examples/greeter/greeterpb \
  --go_out=. --go_opt=module="$module" \
  --go-grpc_out=. --go-grpc_opt=module="$module" \
  examples/greeter/greeterpb/greeter.proto
echo "gen: ok"
