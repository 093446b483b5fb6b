#!/usr/bin/env bash
# gofmt, go vet, and `go mod tidy` leaving no diff.
set -euo pipefail
cd "$(dirname "$0")/.."

# Tracked and new files that exist (a deletion not yet staged is listed too).
gofiles=$(git ls-files -co --exclude-standard '*.go' | while read -r f; do [ -f "$f" ] && echo "$f"; done)
unformatted=$(gofmt -l $gofiles)
if [ -n "$unformatted" ]; then
  echo "lint: gofmt would change:" >&2
  echo "$unformatted" >&2
  exit 1
fi

go vet ./...

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp go.mod go.sum "$tmp"/
go mod tidy
if ! diff -q "$tmp/go.mod" go.mod >/dev/null || ! diff -q "$tmp/go.sum" go.sum >/dev/null; then
  diff -u "$tmp/go.mod" go.mod >&2 || true
  cp "$tmp/go.mod" "$tmp/go.sum" .
  echo "lint: go mod tidy changes go.mod/go.sum; run it and commit the result" >&2
  exit 1
fi
echo "lint: ok"
