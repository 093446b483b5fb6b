#!/usr/bin/env bash
# make package: dist/detour_VERSION_ARCH.deb and dist/detour-VERSION.ARCH.rpm.
# Static binaries (CGO_ENABLED=0) whose --version comes from the Go build's
# VCS stamp; nfpm v2.48.0 run from the Go module proxy (go run ...@v2.48.0:
# nothing added to the main go.mod). VERSION may be given; by default it is
# 0.0.0~gitYYYYMMDDhhmmss.SHA12 from the last commit (sorts by time).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
NFPM=${NFPM:-github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0}
ARCH=${ARCH:-$($GO env GOARCH)}
DIST=${DIST:-dist}
if [ -z "${VERSION:-}" ]; then
	VERSION=0.0.0~git$(TZ=UTC git log -1 --date=format-local:%Y%m%d%H%M%S --format=%cd).$(git rev-parse --short=12 HEAD)
fi
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE"/{bin,man,doc} "$DIST"
export VERSION ARCH STAGE

echo "== binaries ($ARCH, static) =="
CGO_ENABLED=0 GOOS=linux GOARCH=$ARCH $GO build -trimpath -buildvcs=true -ldflags='-s -w -buildid=' \
	-o "$STAGE/bin/" ./naming-agent/cmd/naming-agent ./sidecar/cmd/sidecar ./naming-agent/cmd/detourctl
"$STAGE/bin/naming-agent" --version

echo "== man pages, docs =="
bash packaging/man.sh "$STAGE/bin/naming-agent" 8 "detour naming agent: registry client, local API, sidecar control plane" "$STAGE/man/naming-agent.8.gz"
bash packaging/man.sh "$STAGE/bin/sidecar" 8 "detour sidecar: the data plane" "$STAGE/man/sidecar.8.gz"
bash packaging/man.sh "$STAGE/bin/detourctl" 1 "inspect and steer the local detour naming agent" "$STAGE/man/detourctl.1.gz"
gzip -9n <docs/OPERATIONS.md >"$STAGE/doc/OPERATIONS.md.gz"
cp packaging/copyright "$STAGE/doc/copyright"
{
	echo "detour ($VERSION-1) unstable; urgency=medium"
	echo
	echo "  * Built from commit $(git rev-parse HEAD)."
	echo
	echo " -- detour maintainers <detour@detourmesh.invalid>  $(TZ=UTC git log -1 --date=rfc2822 --format=%cd)"
} | gzip -9n >"$STAGE/doc/changelog.Debian.gz"

echo "== packages (nfpm v2.48.0) =="
# nfpm expands $VERSION and $ARCH itself, but not paths in contents.
sed "s#\${STAGE}#$STAGE#g" packaging/nfpm.yaml >"$STAGE/nfpm.yaml"
rm -f "$DIST"/detour[_-]*.deb "$DIST"/detour-*.rpm
for p in deb rpm; do
	$GO run "$NFPM" package --config "$STAGE/nfpm.yaml" --packager "$p" --target "$DIST/"
done
ls -l "$DIST"
